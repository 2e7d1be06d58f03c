"""One feedback join per model version, for ``streamml feedback``.

``streamml score`` names the version that scored each output in the headers
``streamml.model`` and ``streamml.model.version`` (:func:`streamml.kafka.dlq.model_headers`);
its shadow topic (``--challenger ... --shadow-topic``) carries every version's outputs, each with
its own version's headers. :class:`VersionedJoins` routes each prediction to the
:class:`~streamml.feedback.FeedbackJoin` of its ``(model, version)`` (a message without the
headers: the fallback version, ``--model``/``--model-version``), created on first sight with the
same settings, and offers every label to every live version's join, so each version's quality is
computed from its own predictions.

- **A (version, event) prediction is taken once.** The champion's prediction of an event arrives on
  both the output topic and the shadow topic (and an at-least-once scorer may publish one twice);
  the join itself would keep the later row and count the earlier one as a prediction again. So a
  prediction whose id the version's join already holds (pending, expired or labelled: what it
  remembers for ``ttl + late_horizon`` of label time; :meth:`FeedbackJoin.unseen`) is dropped
  before the join and counted as a duplicate (:attr:`VersionedJoins.duplicates`); the first one
  read wins (the copies are the same output).
- **A version is live while its join holds something**: pending predictions, or expired or labelled
  ids it remembers. Labels go to the live versions only. A version whose predictions stopped (the
  alias moved on) therefore retires once the label stream has passed its last prediction by
  ``ttl + late_horizon``: it keeps only its quality windows (already in the store) and costs
  nothing per label; if its predictions come back, the same join takes them up again.

Examples:
    >>> import pyarrow as pa
    >>> joins = VersionedJoins(JoinSettings(ttl=100, window=1000, fields=Fields(), max_future_skew=None))
    >>> for key, ids in ((("m", "1"), ["a", "b", "a"]), (("m", "2"), ["a"])):
    ...     joins.take_predictions(key, ids)
    [0, 1]
    [0]
    >>> sorted(joins.versions), joins.duplicates
    ([('m', '1'), ('m', '2')], 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streamml.feedback import FeedbackJoin, Fields
from streamml.kafka.dlq import HEADER_MODEL, HEADER_VERSION

#: ``(model, version)``.
Key = tuple[str, str]


@dataclass(frozen=True)
class JoinSettings:
    """The settings every version's join is created with (see :class:`~streamml.feedback.FeedbackJoin`)."""

    ttl: int
    window: int
    fields: Fields
    max_future_skew: int | None
    max_watermark_jump: int | None = None

    def new(self) -> FeedbackJoin:
        """An empty join with these settings."""
        return FeedbackJoin(
            ttl=self.ttl,
            window=self.window,
            fields=self.fields,
            max_future_skew=self.max_future_skew,
            max_watermark_jump=self.max_watermark_jump,
        )


@dataclass
class Version:
    """One version's join."""

    model: str
    version: str
    join: FeedbackJoin

    @property
    def live(self) -> bool:
        """Whether the join holds anything a label could still find (see the module docs)."""
        j = self.join
        return bool(j.pending_count or j.tombstone_count or j.labelled_count)


def version_of(headers: Iterable[tuple[str, bytes]] | None, fallback: Key) -> Key:
    """The ``(model, version)`` an output's headers name; the fallback's for a missing header.

    Examples:
        >>> version_of([("streamml.model", b"fraud"), ("streamml.model.version", b"2")], ("m", "0"))
        ('fraud', '2')
        >>> version_of(None, ("m", "0"))
        ('m', '0')
    """
    model, version = fallback
    for k, v in headers or ():
        if k == HEADER_MODEL:
            model = v.decode(errors="replace")
        elif k == HEADER_VERSION:
            version = v.decode(errors="replace")
    return model, version


@dataclass
class VersionedJoins:
    """The joins of every version seen (see the module docs).

    Args:
        settings: what each join is created with.
        fallback: the version of a prediction without version headers.
    """

    settings: JoinSettings
    fallback: Key = ("model", "0")
    versions: dict[Key, Version] = field(default_factory=dict)
    #: Predictions dropped because their (version, id) was already taken.
    duplicates: int = 0

    def version(self, key: Key) -> Version:
        """The version's join, created on first sight."""
        v = self.versions.get(key)
        if v is None:
            v = self.versions[key] = Version(key[0], key[1], self.settings.new())
        return v

    def take_predictions(self, key: Key, ids: Sequence[str]) -> list[int]:
        """The rows of ``key``'s predictions its join does not hold yet (the others are counted as duplicates)."""
        fresh = self.version(key).join.unseen(ids)
        self.duplicates += len(ids) - len(fresh)
        return fresh

    def live(self) -> list[Version]:
        """The versions labels go to."""
        return [v for v in self.versions.values() if v.live]

    def joins(self) -> dict[Key, FeedbackJoin]:
        """Every version's join."""
        return {k: v.join for k, v in self.versions.items()}

    @classmethod
    def restore(cls, settings: JoinSettings, fallback: Key, joins: dict[Key, FeedbackJoin]) -> VersionedJoins:
        """The versions of a checkpoint."""
        out = cls(settings, fallback)
        for (model, version), join in joins.items():
            out.versions[(model, version)] = Version(model, version, join)
        return out
