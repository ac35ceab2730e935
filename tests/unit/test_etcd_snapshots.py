"""cluster.etcdSnapshots (issue 14, "Snapshots and restore"): RKE2's scheduled etcd snapshots and
their S3 target, parsed, refused with key + value + what is allowed, and rendered into every
server's config.yaml (never an agent's).

Upstream, as read for this (the key names and defaults the program writes and documents):
- docs.rke2.io reference/server_config (rancher/rke2-docs docs/reference/server_config.md),
  "Database" and "S3 etcd Snapshot Storage": etcd-disable-snapshots, etcd-snapshot-schedule-cron
  (default "0 */12 * * *"), etcd-snapshot-retention (5), etcd-s3, etcd-s3-endpoint
  ("s3.amazonaws.com"), etcd-s3-endpoint-ca, etcd-s3-skip-ssl-verify, etcd-s3-access-key,
  etcd-s3-secret-key, etcd-s3-session-token, etcd-s3-bucket, etcd-s3-region ("us-east-1"),
  etcd-s3-folder, etcd-s3-retention (5), etcd-s3-insecure, etcd-s3-config-secret.
- docs.rke2.io datastore/backup_restore: scheduled snapshots at 00:00 and 12:00, 5 kept; a restore
  with an S3 configuration in config.yaml fetches the file from the bucket unless
  `--etcd-s3=false` is passed with the full local path.
- k3s pkg/cli/cmds/server.go (the same flags and defaults) and etcd_snapshot.go (the
  `etcd-snapshot` subcommand reads them too); pkg/etcd/etcd.go NewETCD (`cron.New(...)`, robfig/
  cron v3's standard parser: 5 fields or a descriptor) and pkg/etcd/snapshot.go
  (setSnapshotFunction, snapshotRetention: nothing pruned below 1); pkg/etcd/s3/s3.go
  (`minio.New(Endpoint, ...)`: host[:port] without a scheme, `Secure: !Insecure`; the credentials
  chain Static -> AWS credentials file -> IAM; "either disable SSL verification or use a custom
  CA bundle").
- k3s-io/k3s#12669 (2025-08 releases: etcd-s3-retention, 5 by default whatever
  etcd-snapshot-retention says) and #13769/#13770 (2026-03: etcd-snapshot-retention is its
  default again).

Where upstream differs from the issue's wording, upstream is followed: `retention` accepts 0
(RKE2 prunes nothing), `schedule` accepts robfig/cron's descriptors (@daily, @every 6h), `s3.bucket`
follows minio-go's rule, and `s3.retention` (etcd-s3-retention) exists.
"""

import pytest
import yaml

from components import plan, render
from components.config import ConfigError, parse_config
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("dev")
HA_RAW, HA_SECRETS = load_stack("ha")
CREDS = {"accessKey": "AKIAEXAMPLEKEY01", "secretKey": "s3-secret-value-never-shown-42"}
FULL_S3 = {"endpoint": "minio.internal:9000", "bucket": "rke2-snapshots", "folder": "rke2/prod",
           "region": "eu-central-1", "endpointCa": "/etc/pki/minio-ca.pem", "retention": 30}


def parse(snapshots=None, raw=RAW, secrets=SECRETS, **changes):
    if snapshots is not None:
        changes["cluster__etcdSnapshots"] = snapshots
    return parse_config(with_changes(raw, **changes), secrets)


def refused(changes: dict, raw=RAW, secrets=SECRETS) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(raw, **changes), secrets)
    return err.value


# -- defaults ------------------------------------------------------------------------------


def test_without_etcd_snapshots_nothing_is_written_and_rke2_defaults_hold():
    stack = parse()
    assert stack.cluster.etcd_snapshots is None
    cfg = render.server_config(stack, 0)
    assert not [k for k in cfg if k.startswith(("etcd-snapshot", "etcd-s3", "etcd-disable"))]
    assert render.etcd_snapshot_props(stack) == {}


def test_an_empty_section_writes_no_key_and_reports_rke2_defaults_as_props():
    stack = parse({})
    snaps = stack.cluster.etcd_snapshots
    assert (snaps.schedule, snaps.retention, snaps.disabled, snaps.s3) == (None, None, False, None)
    assert render.etcd_snapshot_keys(stack) == {}
    assert render.etcd_snapshot_props(stack) == {"etcdSnapshots": {
        "schedule": "0 */12 * * *", "retention": 5, "disabled": False, "s3": None}}


def test_s3_defaults_are_rke2s():
    stack = parse({"s3": {"bucket": "rke2-snapshots"}})
    t = stack.cluster.etcd_snapshots.s3
    assert (t.endpoint, t.folder, t.region, t.skip_ssl_verify, t.endpoint_ca, t.insecure, t.retention) == \
        (None, None, None, False, None, False, None)
    assert render.etcd_snapshot_keys(stack) == {"etcd-s3": True, "etcd-s3-bucket": "rke2-snapshots"}
    props = render.etcd_snapshot_props(stack)
    assert props["etcdSnapshots"]["s3"] == {
        "endpoint": "s3.amazonaws.com", "bucket": "rke2-snapshots", "folder": None, "region": "us-east-1",
        "skipSslVerify": False, "endpointCa": None, "insecure": False, "retention": 5}
    assert props["etcdS3Credentials"] == "host"  # the servers' AWS credentials file or instance role


# -- accepted values -----------------------------------------------------------------------


@pytest.mark.parametrize("schedule", [
    "0 */12 * * *", "0 */4 * * *", "*/30 * * * *", "15 2 * * 1-5", "0 0 1 jan,jul *", "0 3 * * SUN",
    "0 0-23/6 * * *", "5,35 * ? * *", "0 0 31 12 6", "@hourly", "@daily", "@midnight", "@weekly", "@monthly",
    "@yearly", "@annually", "@every 6h", "@every 1h30m", "@every 90m", "@every 1.5h",
])
def test_schedules_rke2s_cron_parser_takes(schedule):
    assert parse({"schedule": schedule}).cluster.etcd_snapshots.schedule == schedule


def test_retention_zero_means_rke2_prunes_none():
    # k3s pkg/etcd/snapshot.go snapshotRetention: `if retention < 1 { return nil, nil }`.
    assert parse({"retention": 0}).cluster.etcd_snapshots.retention == 0
    assert parse({"retention": "12"}).cluster.etcd_snapshots.retention == 12  # `pulumi config set` strings


# -- refused, with key, value and what is allowed ------------------------------------------


@pytest.mark.parametrize("snapshots, key, value, words", [
    ("daily", "cluster.etcdSnapshots", None, "an object"),
    ({"scheduel": "@daily"}, "cluster.etcdSnapshots.scheduel", None, "not a known key"),
    ({"schedule": "0 */12 * *"}, "cluster.etcdSnapshots.schedule", "'0 */12 * *'", "4 fields given"),
    ({"schedule": "0 0 */12 * * *"}, "cluster.etcdSnapshots.schedule", "'0 0 */12 * * *'", "no seconds field"),
    ({"schedule": "60 * * * *"}, "cluster.etcdSnapshots.schedule", "'60 * * * *'", "minute field '60'"),
    ({"schedule": "0 24 * * *"}, "cluster.etcdSnapshots.schedule", "'0 24 * * *'", "hour field '24'"),
    ({"schedule": "0 0 0 * *"}, "cluster.etcdSnapshots.schedule", "'0 0 0 * *'", "day-of-month field '0'"),
    ({"schedule": "0 0 * 13 *"}, "cluster.etcdSnapshots.schedule", "'0 0 * 13 *'", "month field '13'"),
    ({"schedule": "0 0 * * 7"}, "cluster.etcdSnapshots.schedule", "'0 0 * * 7'", "day-of-week field '7'"),
    ({"schedule": "*/0 * * * *"}, "cluster.etcdSnapshots.schedule", "'*/0 * * * *'", "minute field '*/0'"),
    ({"schedule": "5-1 * * * *"}, "cluster.etcdSnapshots.schedule", "'5-1 * * * *'", "minute field '5-1'"),
    ({"schedule": "1,,2 * * * *"}, "cluster.etcdSnapshots.schedule", "'1,,2 * * * *'", "minute field"),
    ({"schedule": "0 0 * * funday"}, "cluster.etcdSnapshots.schedule", "'0 0 * * funday'", "sun/mon/tue"),
    ({"schedule": "@fortnightly"}, "cluster.etcdSnapshots.schedule", "'@fortnightly'", "@every <Go duration>"),
    ({"schedule": "@every 0s"}, "cluster.etcdSnapshots.schedule", "'@every 0s'", "at least 1s"),
    ({"schedule": "@every 6 hours"}, "cluster.etcdSnapshots.schedule", "'@every 6 hours'", "Go duration"),
    ({"schedule": "TZ=UTC 0 * * * *"}, "cluster.etcdSnapshots.schedule", "'TZ=UTC 0 * * * *'", "local time"),
    ({"schedule": 12}, "cluster.etcdSnapshots.schedule", "12", "a cron expression of 5 fields"),
    ({"schedule": "@daily", "disabled": True}, "cluster.etcdSnapshots.schedule", "'@daily'",
     "unset while cluster.etcdSnapshots.disabled is true"),
    ({"retention": -1}, "cluster.etcdSnapshots.retention", "-1", "an integer from 0 to 10000"),
    ({"retention": 10001}, "cluster.etcdSnapshots.retention", "10001", "0: RKE2 prunes none"),
    ({"retention": "five"}, "cluster.etcdSnapshots.retention", "'five'", "an integer"),
    ({"retention": True}, "cluster.etcdSnapshots.retention", "True", "an integer"),
    ({"disabled": "maybe"}, "cluster.etcdSnapshots.disabled", "'maybe'", "true or false"),
    ({"s3": True}, "cluster.etcdSnapshots.s3", None, "an object"),
    ({"s3": {}}, "cluster.etcdSnapshots.s3.bucket", "None", "required"),
    ({"s3": {"endpoint": "minio:9000"}}, "cluster.etcdSnapshots.s3.bucket", "None", "required"),
    ({"s3": {"bucket": "b", "bucekt": "x"}}, "cluster.etcdSnapshots.s3.bucekt", None, "not a known key"),
    ({"s3": {"bucket": "ab"}}, "cluster.etcdSnapshots.s3.bucket", "'ab'", "3 to 63"),
    ({"s3": {"bucket": "snap..shots"}}, "cluster.etcdSnapshots.s3.bucket", "'snap..shots'", "no '..'"),
    ({"s3": {"bucket": "10.0.0.1"}}, "cluster.etcdSnapshots.s3.bucket", "'10.0.0.1'", "not an IP address"),
    ({"s3": {"bucket": "-snapshots"}}, "cluster.etcdSnapshots.s3.bucket", "'-snapshots'", "starting"),
    ({"s3": {"bucket": "rke2 snapshots"}}, "cluster.etcdSnapshots.s3.bucket", "'rke2 snapshots'", "bucket name"),
    ({"s3": {"bucket": "snaps", "endpoint": "https://minio.internal:9000"}}, "cluster.etcdSnapshots.s3.endpoint",
     "'https://minio.internal:9000'", "without its scheme"),
    ({"s3": {"bucket": "snaps", "endpoint": "minio.internal:9000/snaps"}}, "cluster.etcdSnapshots.s3.endpoint",
     "'minio.internal:9000/snaps'", "host[:port]"),
    ({"s3": {"bucket": "snaps", "endpoint": "minio.internal:99999"}}, "cluster.etcdSnapshots.s3.endpoint",
     "'minio.internal:99999'", "host[:port]"),
    ({"s3": {"bucket": "snaps", "endpoint": "fd00::9"}}, "cluster.etcdSnapshots.s3.endpoint", "'fd00::9'",
     "host[:port]"),
    ({"s3": {"bucket": "snaps", "folder": "/prod"}}, "cluster.etcdSnapshots.s3.folder", "'/prod'", "key prefix"),
    ({"s3": {"bucket": "snaps", "folder": "a//b"}}, "cluster.etcdSnapshots.s3.folder", "'a//b'", "key prefix"),
    ({"s3": {"bucket": "snaps", "folder": "a/../b"}}, "cluster.etcdSnapshots.s3.folder", "'a/../b'", "no . or .."),
    ({"s3": {"bucket": "snaps", "region": "us east 1"}}, "cluster.etcdSnapshots.s3.region", "'us east 1'",
     "an S3 region"),
    ({"s3": {"bucket": "snaps", "endpointCa": "ca.pem"}}, "cluster.etcdSnapshots.s3.endpointCa", "'ca.pem'",
     "absolute path"),
    ({"s3": {"bucket": "snaps", "skipSslVerify": "no"}}, "cluster.etcdSnapshots.s3.skipSslVerify", "'no'",
     "true or false"),
    ({"s3": {"bucket": "snaps", "insecure": 1}}, "cluster.etcdSnapshots.s3.insecure", "1", "true or false"),
    ({"s3": {"bucket": "snaps", "skipSslVerify": True, "endpointCa": "/etc/ca.pem"}},
     "cluster.etcdSnapshots.s3.endpointCa", "'/etc/ca.pem'", "unset while cluster.etcdSnapshots.s3.skipSslVerify"),
    ({"s3": {"bucket": "snaps", "insecure": True, "skipSslVerify": True}}, "cluster.etcdSnapshots.s3.insecure",
     "True", "plain http"),
    ({"s3": {"bucket": "snaps", "insecure": True, "endpointCa": "/etc/ca.pem"}}, "cluster.etcdSnapshots.s3.insecure",
     "True", "false while cluster.etcdSnapshots.s3.endpointCa is set"),
    ({"s3": {"bucket": "snaps", "retention": -2}}, "cluster.etcdSnapshots.s3.retention", "-2", "0 to 10000"),
])
def test_bad_values_are_refused_naming_key_value_and_what_is_allowed(snapshots, key, value, words):
    err = refused({"cluster__etcdSnapshots": snapshots})
    message = str(err)
    assert err.key == key, message
    assert message.startswith(f"rke2-rancher:{key}: "), message
    if value is not None:
        assert message.startswith(f"rke2-rancher:{key}: {value} is not valid: "), message
    assert words in message, message
    assert "\n" not in message


def test_an_endpoint_with_credentials_is_never_shown():
    for endpoint in ("https://AKIAEXAMPLE:hunter2-s3@minio.internal", "AKIAEXAMPLE:hunter2-s3@minio.internal"):
        err = refused({"cluster__etcdSnapshots": {"s3": {"bucket": "snaps", "endpoint": endpoint}}})
        assert err.key == "cluster.etcdSnapshots.s3.endpoint" and "hunter2" not in str(err), str(err)


# -- credentials (cluster.etcdS3) and the target (cluster.etcdSnapshots.s3) ------------------


def test_credentials_without_a_target_are_refused_naming_both_keys_never_the_values():
    for snapshots in (None, {}, {"schedule": "@daily"}):
        changes = {"cluster__etcdS3": CREDS} | ({"cluster__etcdSnapshots": snapshots} if snapshots is not None else {})
        err = refused(changes, HA_RAW, HA_SECRETS | {"rke2-rancher:cluster"})
        message = str(err)
        assert err.key == "cluster.etcdS3" and "cluster.etcdSnapshots.s3" in message, message
        assert message.startswith("rke2-rancher:cluster.etcdS3: [secret] is not valid: "), message
        assert CREDS["secretKey"] not in message and CREDS["accessKey"] not in message


def test_a_target_without_credentials_uses_the_hosts_own():
    stack = parse({"s3": {"bucket": "snaps"}}, HA_RAW, HA_SECRETS)
    assert stack.cluster.etcd_s3 is None and render.etcd_snapshot_props(stack)["etcdS3Credentials"] == "host"


def test_credentials_with_a_target_stay_out_of_config_yaml_and_props():
    stack = parse({"s3": FULL_S3}, HA_RAW, HA_SECRETS | {"rke2-rancher:cluster"}, cluster__etcdS3=CREDS)
    for i in range(len(stack.servers)):
        text = render.to_yaml(render.server_config(stack, i))
        assert CREDS["secretKey"] not in text and CREDS["accessKey"] not in text
    props = render.etcd_snapshot_props(stack)
    assert props["etcdS3Credentials"] == "static"
    assert CREDS["secretKey"] not in repr(props) and CREDS["secretKey"] not in repr(stack)
    drop_in = yaml.safe_load(render.etcd_s3_yaml(stack.cluster.etcd_s3))
    assert set(drop_in) == {"etcd-s3-access-key", "etcd-s3-secret-key"}  # only the credentials


def test_errors_under_a_secret_cluster_section_hide_the_value():
    err = refused({"cluster__etcdS3": CREDS, "cluster__etcdSnapshots": {"s3": {"bucket": "snaps", "region": "a b"}}},
                  HA_RAW, HA_SECRETS | {"rke2-rancher:cluster"})
    assert err.key == "cluster.etcdSnapshots.s3.region" and "[secret]" in str(err) and "'a b'" not in str(err)


# -- cluster.extraConfig: the keys cluster.etcdSnapshots owns are refused -------------------


@pytest.mark.parametrize("rke2_key, field", [
    ("etcd-snapshot-schedule-cron", "schedule"), ("etcd-snapshot-retention", "retention"),
    ("etcd-disable-snapshots", "disabled"), ("etcd-s3", "s3"), ("etcd-s3-endpoint", "s3.endpoint"),
    ("etcd-s3-endpoint-ca", "s3.endpointCa"), ("etcd-s3-skip-ssl-verify", "s3.skipSslVerify"),
    ("etcd-s3-insecure", "s3.insecure"), ("etcd-s3-bucket", "s3.bucket"), ("etcd-s3-region", "s3.region"),
    ("etcd-s3-folder", "s3.folder"), ("etcd-s3-retention", "s3.retention"),
])
@pytest.mark.parametrize("section", ["extraConfig", "agentExtraConfig"])
def test_extra_config_keys_of_etcd_snapshots_name_the_field_to_use(rke2_key, field, section):
    for key in (rke2_key, rke2_key + "+"):
        err = refused({f"cluster__{section}": {key: "value"}, "cluster__etcdSnapshots": {"s3": {"bucket": "snaps"}}})
        assert err.key == f"cluster.{section}.{key}", str(err)
        assert f"(use cluster.etcdSnapshots.{field})" in str(err), str(err)


def test_extra_config_s3_secret_config_and_other_s3_keys_need_the_target():
    err = refused({"cluster__extraConfig": {"etcd-s3-config-secret": "k3s-etcd-snapshot-s3-config"}})
    assert err.key == "cluster.extraConfig.etcd-s3-config-secret" and "cluster.etcdSnapshots.s3" in str(err)
    err = refused({"cluster__extraConfig": {"etcd-s3-timeout": "10m"}})
    assert err.key == "cluster.extraConfig.etcd-s3-timeout" and "only with cluster.etcdSnapshots.s3" in str(err)
    stack = parse({"s3": {"bucket": "snaps"}}, cluster__extraConfig={"etcd-s3-timeout": "10m",
                                                                     "etcd-s3-bucket-lookup-type": "path"})
    cfg = render.server_config(stack, 0)
    assert cfg["etcd-s3-timeout"] == "10m" and cfg["etcd-s3-bucket-lookup-type"] == "path"


def test_snapshot_keys_cluster_etcd_snapshots_does_not_own_stay_in_extra_config():
    stack = parse(None, cluster__extraConfig={"etcd-snapshot-dir": "/srv/snaps", "etcd-snapshot-compress": True,
                                              "etcd-snapshot-name": "nightly"})
    cfg = render.server_config(stack, 0)
    assert (cfg["etcd-snapshot-dir"], cfg["etcd-snapshot-compress"], cfg["etcd-snapshot-name"]) == \
        ("/srv/snaps", True, "nightly")


def test_the_sample_stacks_set_none_of_the_refused_keys():
    for name in ("dev", "ha"):
        raw, secrets = load_stack(name)
        stack = parse_config(raw, secrets)
        extra = (*stack.cluster.extra_config, *stack.cluster.agent_extra_config)
        assert not [k for k in extra if k.startswith("etcd-")], name


# -- rendering -----------------------------------------------------------------------------


def test_every_server_gets_the_keys_and_no_agent_does():
    stack = parse({"schedule": "0 */6 * * *", "retention": 20, "s3": {**FULL_S3, "retention": None}},
                  HA_RAW, HA_SECRETS)
    expected = {
        "etcd-snapshot-schedule-cron": "0 */6 * * *", "etcd-snapshot-retention": 20, "etcd-s3": True,
        "etcd-s3-endpoint": "minio.internal:9000", "etcd-s3-endpoint-ca": "/etc/pki/minio-ca.pem",
        "etcd-s3-bucket": "rke2-snapshots", "etcd-s3-region": "eu-central-1", "etcd-s3-folder": "rke2/prod",
        # etcd-s3-retention follows retention when s3.retention is unset (k3s-io/k3s#12669, #13770).
        "etcd-s3-retention": 20,
    }
    for i in range(len(stack.servers)):
        doc = yaml.safe_load(render.to_yaml(render.server_config(stack, i)))
        assert {k: v for k, v in doc.items() if k.startswith(("etcd-", "etcd-s3"))} == expected, i
    for i in range(len(stack.agents)):
        agent = render.agent_config(stack, i)
        assert not [k for k in agent if k.startswith("etcd")], agent


def test_keys_only_for_fields_set_and_booleans_only_when_true():
    assert render.etcd_snapshot_keys(parse({"retention": 0})) == {"etcd-snapshot-retention": 0}
    assert render.etcd_snapshot_keys(parse({"disabled": False})) == {}
    assert render.etcd_snapshot_keys(parse({"disabled": True})) == {"etcd-disable-snapshots": True}
    keys = render.etcd_snapshot_keys(parse({"s3": {"bucket": "snaps", "insecure": True}}))
    assert keys == {"etcd-s3": True, "etcd-s3-insecure": True, "etcd-s3-bucket": "snaps"}
    keys = render.etcd_snapshot_keys(parse({"s3": {"bucket": "snaps", "skipSslVerify": True, "retention": 3}}))
    assert keys == {"etcd-s3": True, "etcd-s3-skip-ssl-verify": True, "etcd-s3-bucket": "snaps",
                    "etcd-s3-retention": 3}
    # s3.retention wins over retention for the bucket.
    keys = render.etcd_snapshot_keys(parse({"retention": 10, "s3": {"bucket": "snaps", "retention": 40}}))
    assert keys["etcd-snapshot-retention"] == 10 and keys["etcd-s3-retention"] == 40


def test_schedules_survive_yaml_as_strings():
    for schedule in ("0 */12 * * *", "@daily", "@every 1h30m", "5,35 * ? * *"):
        text = render.to_yaml(render.server_config(parse({"schedule": schedule}), 0))
        assert yaml.safe_load(text)["etcd-snapshot-schedule-cron"] == schedule


def test_a_schedule_change_changes_the_restart_fingerprint_a_san_change_does_not():
    base = render.restart_fingerprint(render.server_config(parse({"schedule": "@daily"}), 0))
    other = render.restart_fingerprint(render.server_config(parse({"schedule": "@hourly"}), 0))
    assert base != other
    same = render.restart_fingerprint(render.server_config(parse({"schedule": "@daily"}, cluster__tlsSans=[
        "jjtestserver", "localhost", "127.0.0.1", "jj.example.net"]), 0))
    assert same == base


def test_props_carry_the_settings_in_force():
    stack = parse({"schedule": "@every 6h", "retention": 8, "s3": FULL_S3}, HA_RAW, HA_SECRETS)
    assert render.etcd_snapshot_props(stack) == {
        "etcdSnapshots": {"schedule": "@every 6h", "retention": 8, "disabled": False, "s3": {
            "endpoint": "minio.internal:9000", "bucket": "rke2-snapshots", "folder": "rke2/prod",
            "region": "eu-central-1", "skipSslVerify": False, "endpointCa": "/etc/pki/minio-ca.pem",
            "insecure": False, "retention": 30}},
        "etcdS3Credentials": "host"}


def test_the_plan_names_the_config_key_behind_a_prop_change():
    assert plan._config_key("rke2:index:RKE2Server", {}, "etcdSnapshots.schedule") == "cluster.etcdSnapshots.schedule"
    assert plan._config_key("rke2:index:RKE2Server", {}, "etcdSnapshots.s3.bucket") == \
        "cluster.etcdSnapshots.s3.bucket"
    assert plan._config_key("rke2:index:RKE2Server", {}, "etcdS3Credentials").startswith("cluster.etcdS3 ")
