"""cluster.upgrade: agent batches and draining for a cluster.version change."""

import math

import pytest

from components.config import ConfigError, UpgradeConfig, parse_config
from tests.stacks import load_stack, with_changes

RAW, SECRETS = load_stack("dev")


def test_defaults():
    up = parse_config(RAW, SECRETS).cluster.upgrade
    assert up == UpgradeConfig(agent_batch="10%", drain=True, drain_timeout_seconds=300,
                               drain_grace_period_seconds=-1)


def test_values_are_read():
    up = parse_config(with_changes(RAW, cluster__upgrade={
        "agentBatch": 3, "drain": "false", "drainTimeoutSeconds": "120", "drainGracePeriodSeconds": 0}),
        SECRETS).cluster.upgrade
    assert up == UpgradeConfig(agent_batch="3", drain=False, drain_timeout_seconds=120,
                               drain_grace_period_seconds=0)
    assert parse_config(with_changes(RAW, cluster__upgrade__agentBatch="100%"),
                        SECRETS).cluster.upgrade.agent_batch == "100%"


@pytest.mark.parametrize("value", [0, -1, "0", "0%", "101%", "10 %", "%", "1.5", "10%%", "ten", True,
                                   "１０", "10000", "05", ["1"], {"n": 1}, "1;id"])
def test_bad_agent_batch_names_key_value_and_allowed(value):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(RAW, cluster__upgrade__agentBatch=value), SECRETS)
    message = str(err.value)
    assert err.value.key == "cluster.upgrade.agentBatch", message
    assert "a number of agents from 1 to 9999" in message and "a percent from 1% to 100%" in message, message


@pytest.mark.parametrize("key,value,words", [
    ("drain", "yes", "true or false"),
    ("drainTimeoutSeconds", 0, "from 1 to 86400"),
    ("drainTimeoutSeconds", "5m", "from 1 to 86400"),
    ("drainGracePeriodSeconds", -2, "-1 (each pod's own grace period) or an integer from 0 to 86400"),
    ("drainGracePeriodSeconds", "86401", "-1 (each pod's own grace period) or an integer from 0 to 86400"),
    ("drainGracePeriodSeconds", 1.5, "-1 (each pod's own grace period) or an integer from 0 to 86400"),
    ("batch", 1, "not a known key"),
])
def test_bad_upgrade_keys(key, value, words):
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(RAW, **{f"cluster__upgrade__{key}": value}), SECRETS)
    assert err.value.key == f"cluster.upgrade.{key}", str(err.value)
    assert words in str(err.value)


def test_upgrade_must_be_an_object():
    with pytest.raises(ConfigError) as err:
        parse_config(with_changes(RAW, cluster__upgrade="10%"), SECRETS)
    assert err.value.key == "cluster.upgrade" and "an object" in str(err.value)


@pytest.mark.parametrize("batch", ["1", "2", "3", "7", "10%", "25%", "33%", "50%", "100%"])
@pytest.mark.parametrize("agents", [1, 2, 3, 5, 9, 10, 11, 25])
def test_batches_cover_every_agent_once_in_order(batch, agents):
    # Expected size computed here: a count as is, a percent rounded down, at least 1, at most all.
    if batch.endswith("%"):
        want = math.floor(agents * int(batch[:-1]) / 100)
    else:
        want = int(batch)
    want = min(max(want, 1), agents)
    batches = UpgradeConfig(agent_batch=batch).batches(agents)
    assert [i for b in batches for i in b] == list(range(agents))
    assert all(len(b) == want for b in batches[:-1]) and 1 <= len(batches[-1]) <= want
    assert len(batches) == math.ceil(agents / want)


def test_batches_of_no_agents():
    assert UpgradeConfig().batches(0) == []
