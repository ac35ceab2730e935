"""cluster.etcdSnapshots under Pulumi mocks (issue 14): the settings reach every server's config
step and restart the servers one at a time through the service step (its restart fingerprint),
agents are untouched, and the S3 credentials (cluster.etcdS3) travel only in the secret drop-in.
Key names and upstream sources: tests/unit/test_etcd_snapshots.py."""

import pytest

from tests.harness import changed_inputs, evaluate, plaintext_outside_secrets
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("ha")
SERVERS = ["rke2-server-1", "rke2-server-2", "rke2-server-3"]
AGENTS = ["rke2-agent-1", "rke2-agent-2"]
CREDS = {"accessKey": "AKIAEXAMPLEKEY01", "secretKey": "s3-secret-value-never-shown-42"}
S3 = {"endpoint": "minio.internal:9000", "bucket": "rke2-snapshots", "folder": "prod"}




@pytest.fixture(scope="module")
def daily():
    return evaluate(with_changes(RAW, cluster__etcdSnapshots={"schedule": "@daily", "s3": S3}), SECRETS)


def test_a_schedule_change_touches_only_the_servers_config_and_service(daily):
    hourly = evaluate(with_changes(RAW, cluster__etcdSnapshots={"schedule": "@hourly", "s3": S3}), SECRETS)
    diff = changed_inputs(daily, hourly)
    assert diff == {**{f"{s}-config": ["stdin"] for s in SERVERS},
                    **{f"{s}-service": ["triggers"] for s in SERVERS}}  # a new trigger replaces: one restart
    assert not [name for name in diff if name.startswith(tuple(AGENTS))]
    # ... one server at a time: each server's service waits for the previous server to be ready.
    for prev, cur in zip(SERVERS, SERVERS[1:]):
        assert hourly.depends_on(f"{cur}-service", f"{prev}-san-refresh"), f"{cur} must wait for {prev}"
    for s in SERVERS:
        assert "etcd-snapshot-schedule-cron: '@hourly'" in hourly.by_name(f"{s}-config").input("stdin")
        assert "ACTION=ensure" in hourly.by_name(f"{s}-service").input("update")  # an update never restarts


def test_setting_etcd_snapshots_on_a_stack_without_restarts_the_servers_only(daily):
    diff = changed_inputs(evaluate(RAW, SECRETS), daily)
    assert set(diff) == {f"{s}-{step}" for s in SERVERS for step in ("config", "service")}


def test_agents_get_none_of_the_settings(daily):
    for a in AGENTS:
        config = daily.by_name(f"{a}-config").input("stdin")
        assert "etcd-" not in config, config
        assert "etcdSnapshots" not in daily.by_name(a).raw_inputs


def test_server_props_carry_the_settings_for_policies(daily):
    for s in SERVERS:
        props = daily.by_name(s).raw_inputs
        assert props["etcdSnapshots"] == {
            "schedule": "@daily", "retention": 5, "disabled": False,
            "s3": {"endpoint": "minio.internal:9000", "bucket": "rke2-snapshots", "folder": "prod",
                   "region": "us-east-1", "skipSslVerify": False, "endpointCa": None, "insecure": False,
                   "retention": 5}}, s
        assert props["etcdS3Credentials"] == "host"
    assert "etcdSnapshots" not in evaluate(RAW, SECRETS).by_name(SERVERS[0]).raw_inputs


def test_credentials_only_in_the_secret_drop_in():
    raw = with_changes(RAW, cluster__etcdS3=CREDS, cluster__etcdSnapshots={"schedule": "@daily", "s3": S3})
    ev = evaluate(raw, SECRETS | {"rke2-rancher:cluster"})
    for s in SERVERS:
        drop_in = ev.by_name(f"{s}-etcd-s3")
        assert "stdin" in drop_in.secret_paths()
        assert f"etcd-s3-secret-key: {CREDS['secretKey']}" in drop_in.input("stdin")
        config = ev.by_name(f"{s}-config").input("stdin")
        assert "etcd-s3-bucket: rke2-snapshots" in config
        assert CREDS["secretKey"] not in config and CREDS["accessKey"] not in config
        assert ev.by_name(s).raw_inputs["etcdS3Credentials"] == "static"
    for reg in ev.registrations:
        visible = plaintext_outside_secrets(reg.raw_inputs)
        assert CREDS["secretKey"] not in visible and CREDS["accessKey"] not in visible, reg.urn
    assert not [n for n in ev.names() if n.startswith(tuple(AGENTS)) and n.endswith("-etcd-s3")]


def test_a_credential_change_restarts_the_servers_without_showing_the_credentials():
    base = with_changes(RAW, cluster__etcdSnapshots={"s3": S3})
    before = evaluate(with_changes(base, cluster__etcdS3=CREDS), SECRETS | {"rke2-rancher:cluster"})
    after = evaluate(with_changes(base, cluster__etcdS3={**CREDS, "secretKey": "rotated-secret-value-7"}),
                     SECRETS | {"rke2-rancher:cluster"})
    diff = changed_inputs(before, after)
    assert diff == {**{f"{s}-etcd-s3": ["stdin"] for s in SERVERS}, **{f"{s}-service": ["triggers"] for s in SERVERS}}
    for s in SERVERS:
        assert "triggers[2]" in after.by_name(f"{s}-service").secret_paths()


def test_a_restore_with_an_s3_target_uses_the_local_file():
    # docs.rke2.io datastore/backup_restore: with an etcd-s3 configuration in config.yaml the
    # restore would fetch the path from the bucket; --etcd-s3=false keeps it local.
    snapshot = "before-x-rke2-server-1-1764670000"
    with_s3 = evaluate(with_changes(RAW, cluster__restore=snapshot, cluster__etcdSnapshots={"s3": S3}), SECRETS)
    assert "S3=1" in with_s3.by_name("rke2-server-1-restore").input("create")
    without = evaluate(with_changes(RAW, cluster__restore=snapshot), SECRETS)
    assert "S3=" not in without.by_name("rke2-server-1-restore").input("create")
