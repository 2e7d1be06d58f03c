"""The real services tests run against are reachable (they are started, never mocked)."""

from __future__ import annotations

import socket

import pytest


@pytest.mark.kafka
def test_the_kafka_broker_accepts_connections(kafka_bootstrap: str) -> None:
    host, _, port = kafka_bootstrap.split(",")[0].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10):
        pass
