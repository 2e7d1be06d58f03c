"""The model lifecycle in ``streamml score``: the versions that score, their headers, shadow and canary.

The scorer holds a :class:`~streamml.lifecycle.ModelSlot` for its ``--model`` reference and one
per ``--challenger``. The slot's ``prepare`` (:class:`Preparer`) builds, when a version is loaded
and off the scoring path, what the scorer needs of it: a :class:`Serving` with the Rust
``MessageScorer`` codec, the output headers naming the version (:func:`version_headers`) and its
drift windows (against its own frozen reference). The loop asks each slot once per batch, when
the batch starts scoring (:meth:`~streamml.lifecycle.ModelSlot.acquire`), so a batch is scored
wholly by one version of each; the versions swap between batches.

A fixed model (a loaded :class:`~streamml.Model`, or a binary's path without a reload interval)
is scored as before, by a :class:`FixedSlot` whose ``acquire`` returns the same version always.

Shadow: every challenger scores every batch on the worker thread, after the champion; only the
champion's outputs are published (or, with a canary fraction, the first challenger's for the
events :func:`~streamml.lifecycle.canary_share` puts below it, marked with
:data:`HEADER_SERVED_BY`); every version's predictions go to the store and, optionally, to a
shadow topic. A challenger that fails on a message is counted and logged, never dead-lettered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from streamml import _streamml
from streamml.drift import DriftMonitor, DriftWindows
from streamml.errors import ModelLoadError
from streamml.kafka.config import KafkaScorerError
from streamml.kafka.dlq import Headers, model_headers
from streamml.kafka.sinks import DriftExport
from streamml.lifecycle import LoadedVersion, ModelSlot, Reference, canary_share, loaded_once
from streamml.model import Model, TrustedSha256

log = logging.getLogger("streamml.kafka")

#: How often a reference is re-resolved when no reload interval is given (as the Bytewax host).
DEFAULT_RELOAD_INTERVAL = timedelta(seconds=30)
#: Header on every output when a canary fraction is set: which side served it.
HEADER_SERVED_BY = "streamml.served_by"
SERVED_BY_CHAMPION = b"champion"
SERVED_BY_CANARY = b"canary"


@dataclass
class Serving:
    """What the scorer built for one version, off the scoring path (``LoadedVersion.prepared``).

    Attributes:
        name: the model's name.
        version: the version outputs and store rows carry.
        sha256: the binary's SHA-256.
        codec: the Rust step (``_streamml.MessageScorer``) of this version.
        headers: the headers of its outputs and dead letters (model, version, SHA-256).
        drift: its drift windows (against its own reference), or ``None``.
        export: the export of those windows (Prometheus and store), or ``None``.
    """

    name: str
    version: str
    sha256: str
    codec: Any
    headers: Headers
    drift: DriftWindows | None
    export: DriftExport | None


def version_headers(name: str, version: str, sha256: str) -> Headers:
    """The headers of an output scored by this version (:func:`streamml.kafka.dlq.model_headers`)."""
    return model_headers(name, version, sha256)


@dataclass
class Preparer:
    """``prepare(model, version)`` of the scorer's slots: a :class:`Serving` per version.

    A version whose codec cannot be built (a carried field that is one of its outputs), whose
    drift reference cannot be used, whose outputs lack the stored score field, or whose SHA-256
    is not the pinned one raises here, so the slot refuses it and the old version keeps serving.
    """

    format: str
    id_field: str | None
    carry_fields: list[str]
    missing_fields: str
    drift: bool
    window_ms: int
    shard: str
    store: str | None
    score_field: str | None = None
    sha256: str | None = None

    def __call__(self, model: Model, version: str) -> Serving:
        """Build the version's codec, headers and drift windows (pinned to ``sha256``, if set)."""
        return self.build(model, version, self.sha256)

    def unpinned(self, model: Model, version: str) -> Serving:
        """As a call, without the ``sha256`` pin (a challenger's versions)."""
        return self.build(model, version, None)

    def build(self, model: Model, version: str, pin: str | None) -> Serving:
        """Build the version's codec, headers and drift windows; refuse a binary other than ``pin``."""
        sha = model.sha256 or ""
        if pin is not None and sha != pin:
            msg = (
                f"model binary '{model.path}' has sha256 {sha}, not the pinned {pin} (--sha256); "
                "a pinned scorer serves only that binary"
            )
            raise ModelLoadError(msg)
        if self.score_field is not None and self.score_field not in model.output_schema.names:
            msg = (
                f"version {version} of model '{model.name}' has no output '{self.score_field}' (the stored score); "
                f"its outputs are {model.output_schema.names}"
            )
            raise ModelLoadError(msg)
        codec = _streamml.MessageScorer.create(
            model._inner, self.format, self.id_field, self.carry_fields, self.missing_fields
        )
        reference = model.info.get("drift_reference") if self.drift else None
        windows = export = None
        if reference:
            try:
                DriftMonitor(reference)
            except Exception as e:
                msg = (
                    f"model '{model.name}' carries a drift reference that cannot be used: {e}; "
                    "compile it again with --reference, or score with --no-drift"
                )
                raise KafkaScorerError(msg) from e
            windows = DriftWindows(reference, window_ms=self.window_ms)
            export = DriftExport(windows, {**model.info, "version": version}, self.shard, self.store)
        return Serving(model.name, version, sha, codec, version_headers(model.name, version, sha), windows, export)


class Reuse:
    """A slot's ``prepare`` that gives a version loaded again (the alias moved back) the :class:`Serving` it had.

    So a version's drift windows stay one set (its counts in the store are not replaced by a
    second set's) however often the alias moves back and forth. One per slot: two slots naming
    the same binary keep their own counts.
    """

    def __init__(self, prepare: Callable[[Model, str], Serving]) -> None:
        """Wrap ``prepare``."""
        self._prepare = prepare
        self._seen: dict[tuple[str, str], Serving] = {}

    def __call__(self, model: Model, version: str) -> Serving:
        """The version's :class:`Serving`, built the first time it is loaded."""
        key = (model.sha256 or "", version)
        serving = self._seen.get(key)
        if serving is None:
            serving = self._seen[key] = self._prepare(model, version)
        return serving


class FixedSlot:
    """One loaded model scored always (the slot of a fixed model): ``acquire`` never swaps."""

    refused = 0
    resolve_errors = 0
    swaps = 0
    last_error = None

    def __init__(self, model: Model, prepare: Preparer) -> None:
        """Prepare ``model`` (its own version)."""
        self.reference = model.path or model.name
        path = Path(model.path) if model.path else Path()
        self._current = LoadedVersion(model, model.version, model.sha256 or "", path, prepare(model, model.version))

    @property
    def current(self) -> LoadedVersion:
        """The model."""
        return self._current

    def acquire(self) -> LoadedVersion:
        """The model."""
        return self._current

    def close(self) -> None:
        """Nothing to stop."""


Slot = ModelSlot | FixedSlot


def champion_slot(
    model: Model | Reference,
    reload_interval: float | None,
    trusted_sha256: TrustedSha256,
    prepare: Preparer,
) -> Slot:
    """The slot of ``--model``: fixed for a loaded model or a binary's path without an interval."""
    if isinstance(model, Model):
        if reload_interval is not None:
            msg = "a reload interval needs a model reference (a path, a model directory, DIR@ALIAS, models:/...)"
            raise KafkaScorerError(msg)
        return FixedSlot(model, prepare)
    fixed = loaded_once(model, reload_interval)
    interval = None if fixed else (reload_interval or DEFAULT_RELOAD_INTERVAL.total_seconds())
    return ModelSlot(model, reload_interval=interval, trusted_sha256=trusted_sha256, prepare=Reuse(prepare))


def challenger_slots(
    references: Sequence[Reference],
    reload_interval: float | None,
    trusted_sha256: TrustedSha256,
    prepare: Preparer,
) -> list[ModelSlot]:
    """A slot per ``--challenger`` reference (re-resolved like the champion's; no ``--sha256`` pin)."""
    interval = reload_interval or DEFAULT_RELOAD_INTERVAL.total_seconds()
    slots = []
    for ref in references:
        if isinstance(ref, Model):
            msg = "challengers are model references (a path, a model directory, DIR@ALIAS, models:/...)"
            raise KafkaScorerError(msg)
        unpinned = Reuse(prepare.unpinned)
        slots.append(ModelSlot(ref, reload_interval=interval, trusted_sha256=trusted_sha256, prepare=unpinned))
    return slots


def canary_sides(values: Sequence[bytes], id_field: str, fraction: float) -> list[bool]:
    """Per JSON message, whether its event goes to the canary (``canary_share(id) < fraction``).

    A message that is not a JSON object or has no id stays with the champion.
    """
    sides = []
    for value in values:
        try:
            event_id = json.loads(value).get(id_field)
        except (ValueError, AttributeError):
            event_id = None
        sides.append(event_id is not None and canary_share(event_id) < fraction)
    return sides


class LifecycleCollector:
    """Prometheus view of the slots' counters, read at scrape time.

    ``streamml_model_swaps_total``, ``streamml_model_refused_total``,
    ``streamml_model_resolve_errors_total`` (labels ``role``: champion/challenger, ``reference``),
    ``streamml_model_challenger_failures_total`` (messages a challenger could not score, by
    model and version) and ``streamml_model_serving`` (1, labelled with the version serving and its SHA-256).
    """

    def __init__(self, champion: Slot, challengers: Sequence[ModelSlot], failures: dict[tuple[str, str], int]) -> None:
        """Read these slots, and ``failures`` (``(model, version) -> count``) of the challengers."""
        self.slots = [("champion", champion), *(("challenger", c) for c in challengers)]
        self.failures = failures

    def collect(self) -> Any:
        """The metric families (prometheus-client's custom collector protocol)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        labels = ["role", "reference"]
        swaps = CounterMetricFamily("streamml_model_swaps", "Versions taken over after the first.", labels=labels)
        refused = CounterMetricFamily(
            "streamml_model_refused", "New versions refused (failed to load, verify or prepare).", labels=labels
        )
        errors = CounterMetricFamily(
            "streamml_model_resolve_errors", "Re-resolutions of the reference that failed.", labels=labels
        )
        serving = GaugeMetricFamily(
            "streamml_model_serving", "The version each reference scores with now (value 1).",
            labels=[*labels, "model", "version", "sha256"],
        )  # fmt: skip
        for role, slot in self.slots:
            ref = str(slot.reference)
            swaps.add_metric([role, ref], slot.swaps)
            refused.add_metric([role, ref], slot.refused)
            errors.add_metric([role, ref], slot.resolve_errors)
            current = slot.current
            serving.add_metric([role, ref, current.model.name, current.version, current.sha256], 1)
        failures = CounterMetricFamily(
            "streamml_model_challenger_failures", "Messages a challenger could not score (not dead-lettered).",
            labels=["model", "version"],
        )  # fmt: skip
        for (ref, version), count in sorted(self.failures.items()):
            failures.add_metric([ref, version], count)
        yield from (swaps, refused, errors, serving, failures)
