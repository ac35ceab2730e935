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
