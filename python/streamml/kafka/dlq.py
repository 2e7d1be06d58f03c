"""Dead letters and the headers of every Kafka command's messages.

A message that cannot be read, scored or joined goes to the dead-letter topic with its original
key and bytes and these headers: the model that handled it (:data:`HEADER_MODEL`,
:data:`HEADER_VERSION`, :data:`HEADER_SHA256` where known), why (:data:`HEADER_ERROR`) and where
it came from (:data:`HEADER_TOPIC`, :data:`HEADER_PARTITION`, :data:`HEADER_OFFSET`). A letter
that would exceed the topic's message size limit is cut to fit, and :data:`HEADER_SIZE` gives the
size of the message it copies. ``streamml score`` and ``streamml feedback`` write the same letters.

Examples:
    >>> sent = []
    >>> letters = DeadLetters("in.dlq", model_headers("m", "1"), lambda *a: sent.append(a), max_bytes=200)
    >>> class Message:
    ...     def key(self): return b"k"
    ...     def value(self): return b"x" * 500
    ...     def topic(self): return "in"
    ...     def partition(self): return 0
    ...     def offset(self): return 7
    >>> letters.send(Message(), "invalid JSON")
    >>> topic, key, value, headers = sent[0]
    >>> (topic, key, len(value) < 200, dict(headers)[HEADER_ERROR], dict(headers)[HEADER_SIZE])
    ('in.dlq', b'k', True, b'invalid JSON', b'500')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from streamml.kafka.config import DEFAULT_MESSAGE_MAX_BYTES

#: Headers on every output (and dead letter): the model that scored it.
HEADER_MODEL = "streamml.model"
HEADER_VERSION = "streamml.model.version"
HEADER_SHA256 = "streamml.model.sha256"
#: Headers on a dead letter: why, and where it came from.
HEADER_ERROR = "streamml.error"
HEADER_TOPIC = "streamml.source.topic"
HEADER_PARTITION = "streamml.source.partition"
HEADER_OFFSET = "streamml.source.offset"
#: Header on a truncated dead letter: the size (bytes) of the message it copies.
HEADER_SIZE = "streamml.source.size"

#: Bytes a record needs beyond its key, value and headers (batch and record framing), with room to spare:
#: outputs and dead letters are kept this far under the limit.
RECORD_OVERHEAD = 512
#: A dead letter's reason is cut to this many characters.
MAX_REASON = 2000

Headers = list[tuple[str, bytes]]
#: ``send(topic, key, value, headers)``: produce one message.
Send = Callable[[str, Any, bytes, Headers], None]


def model_headers(name: str, version: str, sha256: str | None = None) -> Headers:
    """The headers naming a model (its SHA-256 where known)."""
    headers = [(HEADER_MODEL, name.encode()), (HEADER_VERSION, version.encode())]
    if sha256 is not None:
        headers.append((HEADER_SHA256, sha256.encode()))
    return headers


def source_headers(m: Any, reason: str) -> Headers:
    """The reason a consumed message ``m`` is dead-lettered, and where it came from."""
    return [
        (HEADER_ERROR, reason[:MAX_REASON].encode()),
        (HEADER_TOPIC, m.topic().encode()),
        (HEADER_PARTITION, str(m.partition()).encode()),
        (HEADER_OFFSET, str(m.offset()).encode()),
    ]


def record_size(key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]) -> int:
    """The bytes a record takes towards the size limit (key, value, headers; framing is in ``max_bytes``)."""
    return len(key or b"") + len(value) + sum(len(k) + len(v) + 4 for k, v in headers)


class DeadLetters:
    """Writes a command's dead letters (see the module docs).

    Args:
        topic: the dead-letter topic.
        headers: headers on every letter (the model's), before the reason and the source.
        send: produces one message (the command's producer, with its backpressure).
        max_bytes: the size limit of a letter, framing left out (see :func:`streamml.kafka.config.message_limit`).
    """

    def __init__(
        self, topic: str, headers: Headers, send: Send, max_bytes: int = DEFAULT_MESSAGE_MAX_BYTES - RECORD_OVERHEAD
    ) -> None:
        """A writer to ``topic``; nothing sent yet."""
        self.topic, self.headers, self._send, self.max_bytes = topic, headers, send, max_bytes

    def letter(self, m: Any, reason: str) -> tuple[Any, bytes, Headers]:
        """The key, value and headers of ``m``'s letter, cut to the size limit if need be."""
        value, key = m.value() or b"", m.key()
        headers = [*self.headers, *source_headers(m, reason)]
        limit = self.max_bytes
        room = limit - record_size(key, b"", headers) - len(HEADER_SIZE) - 20
        if len(value) > room:
            if key is not None and len(key) > limit // 2:  # a key nearly as large as the limit
                key = key[: limit // 2]
                room = limit - record_size(key, b"", headers) - len(HEADER_SIZE) - 20
            headers.append((HEADER_SIZE, str(len(value)).encode()))
            value = value[: max(room, 0)]
        return key, value, headers

    def send(self, m: Any, reason: str) -> None:
        """Dead-letter the consumed message ``m`` for ``reason``."""
        key, value, headers = self.letter(m, reason)
        self._send(self.topic, key, value, headers)
