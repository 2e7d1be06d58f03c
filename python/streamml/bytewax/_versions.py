"""The Bytewax host's side of the model lifecycle: a scorer per version, shadow and canary.

A :class:`VersionedScorer` wraps a :class:`streamml.lifecycle.ModelSlot` and keeps the native
``ItemScorer`` of each version it has seen; a batch asks it once for the version to use, so a
batch is scored wholly by one version. Shadow scoring scores each batch with every version and
lines their outputs up per item; the canary picks the first challenger's output for the events
:func:`streamml.lifecycle.canary_share` puts below the fraction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from streamml.lifecycle import LoadedVersion, ModelSlot, canary_share, loaded_once
from streamml.model import Model, TrustedSha256

log = logging.getLogger("streamml.bytewax")

#: How often a reference is re-resolved when no ``reload_interval`` is given.
DEFAULT_RELOAD_INTERVAL = timedelta(seconds=30)

#: Scorers kept per reference: the versions a flow has used lately.
_KEEP = 4


def is_fixed(model: Any, reload_interval: timedelta | float | None) -> bool:
    """Whether ``model`` is scored as one fixed model, as before references existed."""
    if isinstance(model, ModelSlot):
        return False
    if isinstance(model, Model):
        if reload_interval is not None:
            msg = "reload_interval needs a model reference (a path, directory or models:/ URI), not a loaded Model"
            raise ValueError(msg)
        return True
    if isinstance(model, (str, os.PathLike)):
        return loaded_once(model, reload_interval)
    msg = (
        "model must be a streamml.Model, a model reference (a binary's path, a model directory, "
        f"DIR@ALIAS, models:/NAME@ALIAS) or a ModelSlot, got a {type(model).__name__}"
    )
    raise TypeError(msg)


class VersionedScorer:
    """A slot's versions, each with the scorer ``make(model, version)`` builds for it."""

    def __init__(self, slot: ModelSlot, make: Callable[[Model, str], Any]) -> None:
        """Score with ``slot``'s versions; ``make`` builds a version's scorer once."""
        self.slot = slot
        self._make = make
        self._scorers: dict[str, Any] = {}
        #: Items a challenger could not score (the champion's failures go to ``errs``).
        self.failures = 0

    @classmethod
    def of(
        cls,
        model: Any,
        reload_interval: timedelta | float | None,
        trusted_sha256: TrustedSha256,
        make: Callable[[Model, str], Any],
    ) -> VersionedScorer:
        """A scorer over ``model`` (a reference, or a :class:`ModelSlot` used as it is)."""
        if isinstance(model, Model):
            msg = "challengers must be model references or ModelSlots, not loaded Models"
            raise TypeError(msg)
        if not isinstance(model, ModelSlot):
            interval = DEFAULT_RELOAD_INTERVAL if reload_interval is None else reload_interval
            model = ModelSlot(model, reload_interval=interval, trusted_sha256=trusted_sha256)
        return cls(model, make)

    def current(self) -> tuple[LoadedVersion, Any]:
        """The version for the next batch (a staged one takes over here) and its scorer."""
        version = self.slot.acquire()
        scorer = self._scorers.get(version.sha256)
        if scorer is None:
            if len(self._scorers) >= _KEEP:
                self._scorers.clear()
            scorer = self._scorers[version.sha256] = self._make(version.model, version.version)
        return version, scorer

    def mapper(self) -> Callable[[Any], Any]:
        """``mapper(item)`` for ``op.map``: each item is its own batch."""
        slot = self.slot
        last: list[Any] = list(self.current())

        def score_one(item: Any) -> Any:
            # Two attribute reads per item instead of a call of acquire(): the per-item path
            # is a few microseconds, so a Python call shows. A staged version (or one another
            # user of the slot took over) goes through acquire() in current().
            if slot._staged is not None or slot._current is not last[0]:
                last[0], last[1] = self.current()
            return last[1](item)

        return score_one

    def batch_scorer(self) -> Callable[[list[Any]], tuple[list[Any], list[Any]]]:
        """``score(items) -> (oks, errs)``, every item of a call scored by one version."""

        def score(items: list[Any]) -> tuple[list[Any], list[Any]]:
            return self.current()[1].score_split(items)

        return score

    def shadow_scorer(
        self,
        challengers: Sequence[VersionedScorer],
        canary: float,
        event_id: str | None,
        canary_field: str,
    ) -> Callable[[list[Any]], tuple[list[Any], list[Any], list[Any]]]:
        """``score(items) -> (oks, errs, shadow)``: every version scores every item."""

        def score(items: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
            results = [self.current()[1].score_split(items)]
            for c in challengers:
                c_oks, c_errs = c.current()[1].score_split(items)
                if c_errs:
                    c.failures += len(c_errs)
                    log.warning(
                        "challenger %s could not score %d item(s) of a batch; first: %s",
                        c.slot.current.version, len(c_errs), c_errs[0].reason,
                    )
                results.append((c_oks, c_errs))
            shadow = [out for oks, _ in results for out in oks]
            if not canary:
                return results[0][0], results[0][1], shadow
            oks, errs = _serve(items, results[0], results[1], canary, event_id, canary_field)
            return oks, errs, shadow

        return score


def _per_item(items: list[Any], oks: list[Any], errs: list[Any]) -> list[tuple[Any, Any]]:
    """``(output, None)`` or ``(None, failure)`` per item: outputs come in item order, failures name their item."""
    failed = {id(f.item): f for f in errs}
    scored = iter(oks)
    return [(None, failed[id(it)]) if id(it) in failed else (next(scored), None) for it in items]


def _serve(
    items: list[Any],
    champion: tuple[list[Any], list[Any]],
    canary_side: tuple[list[Any], list[Any]],
    fraction: float,
    event_id: str | None,
    field: str,
) -> tuple[list[Any], list[Any]]:
    """Each item's output from the side its event id falls on, marked with the side."""
    oks: list[Any] = []
    errs: list[Any] = []
    for item, ours, theirs in zip(items, _per_item(items, *champion), _per_item(items, *canary_side), strict=True):
        row = item[1] if type(item) is tuple else item
        eid = row.get(event_id) if isinstance(row, dict) else None
        side = "canary" if eid is not None and canary_share(eid) < fraction else "champion"
        out, failure = theirs if side == "canary" else ours
        if failure is not None:
            errs.append(failure)
            continue
        target = out[1] if type(out) is tuple else out
        if isinstance(target, dict):
            target[field] = side
        oks.append(out)
    return oks, errs
