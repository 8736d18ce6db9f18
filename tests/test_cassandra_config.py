"""CASSANDRA_* settings and the driver Cluster built from them (no server needed)."""

from __future__ import annotations

import pytest
from cassandra import ConsistencyLevel
from cassandra.policies import (
    ConstantSpeculativeExecutionPolicy,
    DCAwareRoundRobinPolicy,
    FallthroughRetryPolicy,
    NoSpeculativeExecutionPolicy,
    RetryPolicy,
    RoundRobinPolicy,
    TokenAwarePolicy,
)

from csd import replication_of
from flaskandmnist.config import CassandraSettings, ConfigError
from flaskandmnist.storage import build_cluster


def test_defaults_suit_a_local_single_node() -> None:
    settings = CassandraSettings.from_env({})
    assert settings == CassandraSettings()
    assert (settings.contact_points, settings.port, settings.keyspace) == (
        ("127.0.0.1",),
        9042,
        "flaskandmnist",
    )
    assert replication_of(settings) == {"class": "SimpleStrategy", "replication_factor": "1"}


def test_every_setting_is_read_from_the_environment() -> None:
    settings = CassandraSettings.from_env(
        {
            "CASSANDRA_CONTACT_POINTS": "10.0.0.1, 10.0.0.2",
            "CASSANDRA_PORT": "19042",
            "CASSANDRA_KEYSPACE": "digits_prod",
            "CASSANDRA_USERNAME": "app",
            "CASSANDRA_PASSWORD": "secret",
            "CASSANDRA_CONSISTENCY": "quorum",
            "CASSANDRA_LOCAL_DC": "eu-west",
            "CASSANDRA_LOAD_BALANCING": "Round_Robin",
            "CASSANDRA_RETRY_POLICY": "FALLTHROUGH",
            "CASSANDRA_CONNECT_TIMEOUT": "2.5",
            "CASSANDRA_REQUEST_TIMEOUT": "4",
            "CASSANDRA_SPECULATIVE_DELAY_MS": "150",
            "CASSANDRA_PROTOCOL_VERSION": "4",
            "CASSANDRA_REPLICATION_FACTOR": "3",
            "CASSANDRA_DATACENTERS": "eu-west:3, us.east:2",
        }
    )
    assert settings == CassandraSettings(
        contact_points=("10.0.0.1", "10.0.0.2"),
        port=19042,
        keyspace="digits_prod",
        username="app",
        password="secret",
        consistency="QUORUM",
        local_dc="eu-west",
        load_balancing="round_robin",
        retry_policy="fallthrough",
        connect_timeout_s=2.5,
        request_timeout_s=4.0,
        speculative_delay_ms=150,
        protocol_version=4,
        replication_factor=3,
        datacenters=(("eu-west", 3), ("us.east", 2)),
    )
    assert replication_of(settings) == {
        "class": "NetworkTopologyStrategy",
        "eu-west": "3",
        "us.east": "2",
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CASSANDRA_KEYSPACE", "flask-and-mnist"),
        ("CASSANDRA_KEYSPACE", "x; DROP KEYSPACE system_auth"),
        ("CASSANDRA_KEYSPACE", "k" * 49),
        ("CASSANDRA_CONSISTENCY", "MOST"),
        ("CASSANDRA_LOAD_BALANCING", "random"),
        ("CASSANDRA_RETRY_POLICY", "always"),
        ("CASSANDRA_DATACENTERS", "dc1"),
        ("CASSANDRA_DATACENTERS", "dc1:0"),
        ("CASSANDRA_DATACENTERS", "dc'1:3"),
        ("CASSANDRA_REPLICATION_FACTOR", "0"),
        ("CASSANDRA_PORT", "nine"),
        ("CASSANDRA_SPECULATIVE_DELAY_MS", "-1"),
    ],
)
def test_unusable_values_are_config_errors_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        CassandraSettings.from_env({name: value})


def test_the_cluster_follows_the_settings() -> None:
    cluster = build_cluster(
        CassandraSettings(
            contact_points=("10.1.1.1", "10.1.1.2"),
            port=9142,
            username="app",
            password="secret",
            consistency="LOCAL_ONE",
            local_dc="dc2",
            connect_timeout_s=3.0,
            request_timeout_s=7.0,
        )
    )
    profile = cluster.profile_manager.default
    assert (cluster.contact_points, cluster.port, cluster.protocol_version) == (
        ["10.1.1.1", "10.1.1.2"],
        9142,
        5,
    )
    assert cluster.auth_provider is not None
    assert cluster.connect_timeout == 3.0
    assert profile.consistency_level == ConsistencyLevel.LOCAL_ONE
    assert profile.request_timeout == 7.0
    assert isinstance(profile.retry_policy, RetryPolicy)
    assert isinstance(profile.load_balancing_policy, TokenAwarePolicy)
    assert profile.load_balancing_policy._child_policy.local_dc == "dc2"
    # A second attempt on the next replica after the default delay, for statements that
    # may be sent twice.
    assert isinstance(profile.speculative_execution_policy, ConstantSpeculativeExecutionPolicy)
    assert profile.speculative_execution_policy.delay == 0.3
    assert profile.speculative_execution_policy.max_attempts == 1


def test_speculative_execution_can_be_turned_off() -> None:
    profile = build_cluster(CassandraSettings(speculative_delay_ms=0)).profile_manager.default
    assert isinstance(profile.speculative_execution_policy, NoSpeculativeExecutionPolicy)


@pytest.mark.parametrize(
    ("load_balancing", "policy"),
    [
        ("dc_aware", DCAwareRoundRobinPolicy),
        ("round_robin", RoundRobinPolicy),
    ],
)
def test_other_policies(load_balancing: str, policy: type) -> None:
    settings = CassandraSettings(load_balancing=load_balancing, retry_policy="fallthrough")
    profile = build_cluster(settings).profile_manager.default
    assert type(profile.load_balancing_policy) is policy
    assert isinstance(profile.retry_policy, FallthroughRetryPolicy)
    assert build_cluster(CassandraSettings()).auth_provider is None
