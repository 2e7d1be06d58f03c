"""Configuration shared by the Kafka commands (``streamml score``, ``streamml feedback``).

Both build their clients from one :class:`ClientConfig`: the brokers, the consumer group and
the librdkafka properties given with ``-X key=value`` (a key prefixed ``consumer.`` or
``producer.`` goes to that client only). Whatever is needed to reach a secured cluster (TLS:
``security.protocol=SSL``, ``ssl.*``; SASL: ``sasl.*``) is passed through unchanged to every
client, the admin client that reads topic limits included.

Examples:
    >>> config = ClientConfig("b:9092", "g", parse_properties(["security.protocol=SSL", "consumer.fetch.min.bytes=1"]))
    >>> c = config.consumer()
    >>> (c["group.id"], c["security.protocol"], c["fetch.min.bytes"], c["enable.auto.commit"])
    ('g', 'SSL', '1', False)
    >>> "fetch.min.bytes" in config.producer()
    False
    >>> admin_config(config.producer())
    {'bootstrap.servers': 'b:9092', 'security.protocol': 'SSL'}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamml.errors import StreammlError

log = logging.getLogger("streamml.kafka")

#: librdkafka's default ``message.max.bytes`` and Kafka's default topic ``max.message.bytes``.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
DEFAULT_TOPIC_MAX_BYTES = 1_048_588
#: Client properties an admin client shares with the producer (where the brokers are and how to reach them).
_ADMIN_KEYS = {"bootstrap.servers", "security.protocol", "client.id", "socket.timeout.ms", "broker.address.family"}


class KafkaScorerError(StreammlError):
    """A Kafka command cannot go on (bad configuration, a fatal Kafka error)."""


def parse_properties(items: Sequence[str]) -> dict[str, str]:
    """``["key=value", ...]`` (the ``-X`` options) as a dict.

    Examples:
        >>> parse_properties(["linger.ms=10", "consumer.fetch.min.bytes=1"])
        {'linger.ms': '10', 'consumer.fetch.min.bytes': '1'}

    Raises:
        KafkaScorerError: an item has no ``=``.
    """
    props = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            msg = f"-X {item!r} is not key=value (a librdkafka property)"
            raise KafkaScorerError(msg)
        props[key.strip()] = value.strip()
    return props


def split_config(config: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """``config`` as (for both clients, consumer only, producer only), the prefixes removed."""
    common: dict[str, str] = {}
    consumer: dict[str, str] = {}
    producer: dict[str, str] = {}
    for key, value in config.items():
        if key.startswith("consumer."):
            consumer[key.removeprefix("consumer.")] = value
        elif key.startswith("producer."):
            producer[key.removeprefix("producer.")] = value
        else:
            common[key] = value
    return common, consumer, producer


@dataclass(frozen=True)
class ClientConfig:
    """The brokers, the consumer group and the ``-X`` properties of one command.

    Args:
        bootstrap_servers: the Kafka brokers (``host:port,...``).
        group_id: the consumer group.
        properties: librdkafka properties (``-X``); ``consumer.``/``producer.`` prefixed keys
            go to that client only, and override the defaults below.
    """

    bootstrap_servers: str
    group_id: str
    properties: Mapping[str, str] = field(default_factory=dict)

    def consumer(self) -> dict[str, Any]:
        """A consumer that commits only what the command says (no auto-commit) and reads committed data."""
        common, consumer, _ = split_config(self.properties)
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            **common,
            **consumer,
        }

    def producer(self) -> dict[str, Any]:
        """An idempotent producer acknowledged by all in-sync replicas, reporting only failed deliveries."""
        common, _, producer = split_config(self.properties)
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "delivery.report.only.error": True,
            **common,
            **producer,
        }

    @property
    def instance_id(self) -> str | None:
        """The consumer's static member id (``group.instance.id``), if configured."""
        return self.consumer().get("group.instance.id")


def admin_config(producer_config: Mapping[str, Any]) -> dict[str, Any]:
    """The producer's properties an admin client takes: the brokers, TLS and SASL."""
    return {k: v for k, v in producer_config.items() if k in _ADMIN_KEYS or k.startswith(("ssl.", "sasl."))}


def message_limit(producer_config: Mapping[str, Any], topics: Sequence[str]) -> int:
    """The size (bytes) a message to any of ``topics`` may have, framing included.

    The smallest of the producer's ``message.max.bytes`` and each topic's ``max.message.bytes``
    (asked of the broker; a topic it cannot describe, e.g. not created yet, has the broker's
    default). A message over it would be refused by the broker after it was produced.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    limit = int(producer_config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
    admin = AdminClient(admin_config(producer_config))
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
    for resource, future in admin.describe_configs(resources, request_timeout=10).items():
        try:
            entry = future.result(15).get("max.message.bytes")
        except KafkaException as e:
            log.info("cannot read max.message.bytes of topic '%s' (%s); assuming the default", resource.name, e)
            entry = None
        topic_limit = int(entry.value) if entry is not None and entry.value else DEFAULT_TOPIC_MAX_BYTES
        limit = min(limit, topic_limit)
    return limit
