"""docker-compose.yml's Kafka runs with the broker settings of scripts/services.sh's local Kafka."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

#: Settings that name the node and its listeners: the container has its own (HOST and DOCKER
#: listeners, a volume for the log), so these may differ.
NODE_AND_LISTENERS = frozenset({
    "process.roles", "node.id", "controller.quorum.voters", "listeners", "advertised.listeners",
    "controller.listener.names", "inter.broker.listener.name", "listener.security.protocol.map",
    "log.dirs",
})


def local_properties() -> dict[str, str]:
    """scripts/kafka/server.properties.in, which scripts/services.sh renders for its Kafka."""
    out: dict[str, str] = {}
    for line in (ROOT / "scripts" / "kafka" / "server.properties.in").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def compose_properties() -> dict[str, str]:
    """The broker properties of docker-compose.yml's kafka service (the apache/kafka image turns
    ``KAFKA_LOG_RETENTION_MS`` into ``log.retention.ms``)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["kafka"]["environment"]
    return {
        name[len("KAFKA_"):].lower().replace("_", "."): str(value)
        for name, value in env.items()
        if name.startswith("KAFKA_") and name != "KAFKA_HEAP_OPTS"  # JVM option, not a property
    }


def test_compose_kafka_has_the_local_broker_settings() -> None:
    local = {k: v for k, v in local_properties().items() if k not in NODE_AND_LISTENERS}
    compose = {k: v for k, v in compose_properties().items() if k not in NODE_AND_LISTENERS}
    assert compose == local


def test_both_keep_event_time_data_without_a_time_limit() -> None:
    """Replays carry event times years in the past: time-based retention would delete them at once."""
    for props in (local_properties(), compose_properties()):
        retention = {k: v for k, v in props.items() if k.startswith("log.retention.")}
        assert retention == {"log.retention.ms": "-1"}
