"""load_stack_config reads the namespace from the Pulumi runtime config."""

import json

import pytest
import pulumi

from components.config import ConfigError, load_stack_config
from tests.stacks import load_stack


@pytest.fixture
def runtime_config():
    def set_config(raw: dict, secret: set[str]):
        pulumi.runtime.set_all_config(
            {f"rke2-rancher:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()},
            secret_keys=list(secret))
    yield set_config
    pulumi.runtime.set_all_config({}, secret_keys=[])


def test_reads_the_dev_stack(runtime_config):
    raw, secrets = load_stack("dev")
    runtime_config(raw, secrets)
    cfg = load_stack_config()
    assert cfg.cluster.hostname == "jjtestserver" and cfg.cluster.mobile


def test_token_secretness_comes_from_the_runtime(runtime_config):
    raw, secrets = load_stack("ha")
    runtime_config(raw, secrets)
    assert load_stack_config().token_is_secret
    runtime_config(raw, secrets - {"rke2-rancher:token"})
    assert not load_stack_config().token_is_secret


def test_misspelt_top_level_key_is_reported(runtime_config):
    raw, secrets = load_stack("dev")
    runtime_config({**raw, "rancer": {"replicas": 1}}, secrets)
    with pytest.raises(ConfigError, match="rke2-rancher:rancer: .* not a known key"):
        load_stack_config()


SECRET = "hunter2-private-key-material"


@pytest.mark.parametrize("key, text", [
    ("ssh", SECRET),                       # `pulumi config set rke2-rancher:ssh <key>`: not JSON
    ("rancher", "{" + SECRET),             # broken JSON
    ("cluster", '"' + SECRET + '"'),       # JSON, but a string
    ("servers", "[1, 2"),
])
def test_a_section_that_is_not_an_object_is_a_one_line_error(runtime_config, key, text):
    """pulumi's get_object would raise ConfigTypeError with the raw value (a traceback that
    prints the secret); the loader reads text and parse_config names the key instead."""
    raw, secrets = load_stack("dev")
    pulumi.runtime.set_all_config({**{f"rke2-rancher:{k}": v if isinstance(v, str) else json.dumps(v)
                                      for k, v in raw.items()}, f"rke2-rancher:{key}": text},
                                  secret_keys=[])
    with pytest.raises(ConfigError) as err:
        load_stack_config()
    assert err.value.key == key and "\n" not in str(err.value), str(err.value)
    assert SECRET not in str(err.value)


def test_unreadable_key_file_at_up_is_a_config_error(runtime_config, tmp_path, monkeypatch):
    raw, secrets = load_stack("dev")
    missing = tmp_path / "no-such-key"
    raw["ssh"] = {"privateKeyPath": str(missing)}
    runtime_config(raw, secrets - {"rke2-rancher:ssh"})
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    with pytest.raises(ConfigError, match=r"rke2-rancher:ssh.privateKeyPath: .* a readable private key file"):
        load_stack_config()
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    assert load_stack_config().ssh.private_key == ""  # preview goes on (with a warning)
    missing.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nk\n-----END OPENSSH PRIVATE KEY-----\n")
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: False)
    assert load_stack_config().ssh.private_key.startswith("-----BEGIN")


def test_bad_config_stops_the_program_before_any_registration(tmp_path):
    """Runs __main__.py itself under mocks (an `up`, not a preview): a bad value, or an
    unreadable key file, ends with exit 1 and nothing registered."""
    import runpy
    from pathlib import Path

    from tests.harness import Mocks, RecordingMonitor

    raw, secrets = load_stack("dev")
    main = str(Path(__file__).resolve().parents[2] / "__main__.py")
    for bad in ({**raw, "servers": [{"name": "jjtestserver", "address": "fe80::1%eth0"}]},
                {**raw, "ssh": {"privateKeyPath": str(tmp_path / "missing")}}):
        mocks = Mocks()
        monitor = RecordingMonitor(mocks)
        pulumi.runtime.set_mocks(mocks, project="rke2-rancher", stack="test", preview=False, monitor=monitor)
        pulumi.runtime.set_all_config({f"rke2-rancher:{k}": v if isinstance(v, str) else json.dumps(v)
                                       for k, v in bad.items()}, secret_keys=[])
        try:
            with pytest.raises(SystemExit) as exit_:
                runpy.run_path(main, run_name="__main__")
            assert exit_.value.code == 1
            assert monitor.registrations == []
        finally:
            pulumi.runtime.set_all_config({}, secret_keys=[])


def _mirror_config(raw: dict, ca_file: str, repository: str = "https://charts.example.internal") -> dict:
    return {**raw, "certManager": {**raw.get("certManager", {}), "repository": repository,
                                   "repositoryCaFile": ca_file}}


def test_chart_repository_ca_file_is_checked_at_load(runtime_config, tmp_path):
    """The CA file is read by Helm inside the kubernetes provider, whose error would not name
    the key: the program checks it first, at preview and at up."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import datetime

    raw, secret = load_stack("dev")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "mirror-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    good = tmp_path / "ca.pem"
    good.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    runtime_config(_mirror_config(raw, str(good)), secret)
    assert load_stack_config().cert_manager.repository_ca_file == str(good)

    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello\n")
    for path, words in ((str(tmp_path / "missing.pem"), "No such file"), (str(not_pem), "PEM certificates")):
        runtime_config(_mirror_config(raw, path), secret)
        with pytest.raises(ConfigError) as err:
            load_stack_config()
        assert err.value.key == "certManager.repositoryCaFile" and words in str(err.value), str(err.value)

    runtime_config(_mirror_config(raw, str(good), repository="http://charts.example.internal"), secret)
    with pytest.raises(ConfigError, match="not an https:// URL"):
        load_stack_config()


def test_repository_ca_file_expands_home(runtime_config, tmp_path, monkeypatch):
    raw, secret = load_stack("dev")
    monkeypatch.setenv("HOME", str(tmp_path))
    runtime_config({**raw, "rancher": {**raw["rancher"], "repositoryCaFile": "~/ca.pem"}}, secret)
    with pytest.raises(ConfigError) as err:  # no such file yet: the error names the expanded path
        load_stack_config()
    assert err.value.key == "rancher.repositoryCaFile" and f"{tmp_path}/ca.pem" in str(err.value)
