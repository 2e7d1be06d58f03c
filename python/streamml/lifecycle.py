"""Model references and hot swap, for every host: which binary to score with now.

* :func:`resolve` turns a **model reference** into a binary, its SHA-256 and its version:
  a binary's path; a **model directory** (``<dir>/<version>.so`` plus alias files such as
  ``champion`` naming a version; ``DIR`` means ``DIR@champion``), read by the Rust core so
  the JNI shim reads it the same way; or an MLflow registry URI ``models:/NAME@ALIAS`` /
  ``models:/NAME/VERSION`` (``pip install 'streamml[mlflow]'``), read by MLflow's own client.
  The layout and the rules: ``docs/lifecycle.md``.
* :func:`set_alias` moves an alias of a model directory, atomically. Rolling back is moving
  it back.
* :class:`ModelSlot` holds the model a reference names now. It re-resolves on an interval
  (a background thread) or when the host calls :meth:`ModelSlot.refresh`, loads and verifies
  a changed binary off the scoring path, and hands it over only when the host asks for the
  model of its next batch (:meth:`ModelSlot.acquire`): a batch is scored wholly by one
  version. A version that fails to load or verify is refused; the old one keeps serving and
  :attr:`ModelSlot.refused`, :attr:`ModelSlot.last_error` and a log line say why.

Every resolved binary is loaded pinned to the SHA-256 it resolved to, through
:meth:`streamml.Model.load`: the trust list, the size cap and every loader check apply, and a
file replaced between resolving and loading is refused, not run.

Examples:
    >>> import pathlib, shutil, tempfile
    >>> from streamml.lifecycle import ModelSlot, resolve, set_alias
    >>> models = pathlib.Path(tempfile.mkdtemp())
    >>> (models / "1.so").write_bytes(b"not a model yet")
    15
    >>> set_alias(models, "champion", "1")
    >>> resolve(models).version, resolve(f"{models}@champion").path.name
    ('1', '1.so')
    >>> shutil.rmtree(models)
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from streamml import _streamml
from streamml.errors import ModelLoadError
from streamml.model import Model, TrustedSha256

log = logging.getLogger("streamml.lifecycle")

#: The prefix of an MLflow registry reference.
MLFLOW_PREFIX = "models:/"

#: A reference as hosts take it: a path (binary or model directory), ``DIR@ALIAS`` or ``models:/...``.
Reference = str | os.PathLike[str]


@dataclass(frozen=True)
class Resolved:
    """What a reference names now.

    Attributes:
        reference: the reference as given.
        path: the binary to load (for MLflow, the local copy MLflow downloaded).
        sha256: the binary's SHA-256 (hex); the host loads the file pinned to it.
        version: the version the reference's store calls it (the model directory's file name,
            the MLflow registry version); ``None`` for a plain path, whose binary's own info
            names its version.
    """

    reference: str
    path: Path
    sha256: str
    version: str | None


def is_mlflow(reference: Reference) -> bool:
    """Whether ``reference`` is an MLflow registry URI (``models:/...``)."""
    return isinstance(reference, str) and reference.startswith(MLFLOW_PREFIX)


def reference_kind(reference: Reference) -> str:
    """``"mlflow"``, ``"directory"`` (a model directory, or ``DIR@ALIAS``) or ``"file"`` (a binary's path).

    Examples:
        >>> reference_kind("models:/fraud@champion"), reference_kind("/no/such/model.so")
        ('mlflow', 'file')
    """
    if is_mlflow(reference):
        return "mlflow"
    return _streamml.parse_reference(os.fspath(reference))[0]


def loaded_once(reference: Reference, reload_interval: timedelta | float | None) -> bool:
    """Whether a host loads ``reference`` once, as before references existed: a binary's path with no interval.

    Every other reference (a model directory, ``DIR@ALIAS``, ``models:/...``, or a path given an
    interval) is held in a :class:`ModelSlot` that re-resolves it.

    Examples:
        >>> loaded_once("/no/such/model.so", None), loaded_once("/no/such/model.so", 10.0)
        (True, False)
        >>> loaded_once("models:/fraud@champion", None)
        False
    """
    return reload_interval is None and reference_kind(reference) == "file"


def resolve(reference: Reference, *, max_bytes: int | None = None) -> Resolved:
    """Resolve a model reference to a binary, its SHA-256 and its version.

    Args:
        reference: a binary's path, a model directory (its ``champion``), ``DIR@ALIAS``,
            ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
        max_bytes: refuse binaries larger than this (default: the loader's cap).

    Raises:
        ModelLoadError: the directory has no such alias, the alias names a version the
            directory does not have, the binary is not a regular file under the cap, or
            the registry has no such model version; the message names the file or URI.
    """
    if is_mlflow(reference):
        from streamml.mlflow import resolve as resolve_mlflow

        return resolve_mlflow(str(reference), max_bytes=max_bytes)
    ref = os.fspath(reference)
    path, sha256, version = _streamml.resolve_reference(ref, max_bytes)
    return Resolved(ref, Path(path), sha256, version)


def version_info(reference: Reference, version: str) -> dict[str, Any]:
    """The info document of one version of a reference, read without running the binary.

    For a model directory the version's file (``<dir>/<version>.so``), for an MLflow reference
    ``models:/NAME/<version>``, for a binary's path that binary; a compiled binary's info is read
    from its footer. For the drift
    reference of each version in :func:`streamml.bytewax.drift_counts`.

    Raises:
        ModelLoadError: no such version, or a binary that is not compiled (its info only its
            own code can give: load it with :class:`streamml.Model`).
    """
    import json

    if is_mlflow(reference):
        from streamml.mlflow import parse_uri

        name = parse_uri(str(reference))[0]
        path = resolve(f"{MLFLOW_PREFIX}{name}/{version}").path
    else:
        kind, where, _ = _streamml.parse_reference(os.fspath(reference))
        path = Path(where)
        if kind == "directory":
            path = Path(_streamml.resolve_reference(str(path / f"{version}{path_suffix()}"))[0])
    found = _streamml.Model.inspect_compiled(str(path))
    if found is None:
        msg = f"'{path}' is not a compiled binary; its info is only known by loading it (streamml.Model.load)"
        raise ModelLoadError(msg)
    return json.loads(found[0])


def path_suffix() -> str:
    """The file suffix of a model binary on this platform (``.so``, ``.dylib``)."""
    return ".dylib" if sys.platform == "darwin" else ".so"


def set_alias(directory: str | os.PathLike[str], alias: str, version: str) -> None:
    """Point ``alias`` of a model directory at ``version``, atomically.

    Hosts re-resolving at the same moment read the old version or the new one, never a
    partial file. Rolling back is pointing the alias back.

    Raises:
        ModelLoadError: a name with characters other than letters, digits, ``.``, ``_``,
            ``-`` (or starting with ``.``), or no binary ``<dir>/<version>.so``.
    """
    _streamml.set_alias(os.fspath(directory), alias, str(version))


def canary_share(event_id: Any) -> float:
    """Where an event id falls in [0, 1): the canary rule every host shares.

    The first 8 bytes of the SHA-256 of the id's UTF-8 text (``str(id)``; bytes as they
    are), read as a big-endian unsigned integer, divided by 2**64. An event goes to the
    canary when this is below the canary fraction: deterministic, the same in every host
    and process, and sticky (an id keeps its side while the fraction does not shrink).

    Examples:
        >>> round(canary_share("event-1"), 6), canary_share(1) == canary_share("1")
        (0.805519, True)
    """
    data = event_id if isinstance(event_id, bytes) else str(event_id).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") / 18446744073709551616.0


@dataclass(frozen=True)
class LoadedVersion:
    """One version of a reference, loaded and verified, ready to score batches.

    Attributes:
        model: the loaded model.
        version: the name outputs carry: the reference's version, else the binary's own.
        sha256: the binary's SHA-256.
        path: where it was loaded from.
        prepared: what the host built for this version when it was loaded (for example a
            Bytewax host's scorer), off the scoring path; ``None`` without a ``prepare``.
    """

    model: Model
    version: str
    sha256: str
    path: Path
    prepared: Any = field(default=None, compare=False)


def _seconds(interval: timedelta | float | None) -> float | None:
    if interval is None:
        return None
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
    if not seconds > 0:
        msg = f"reload_interval must be a positive duration or None, got {interval!r}"
        raise ValueError(msg)
    return seconds


class ModelSlot:
    """The model a reference names now, swapped only between batches.

    A host asks :meth:`acquire` for the model of each batch and scores the whole batch with
    what it returns; a version loaded since (by the background thread every
    ``reload_interval``, or by :meth:`refresh`) takes over at the next :meth:`acquire`.
    With no change waiting, :meth:`acquire` reads one attribute.

    Args:
        reference: see :func:`resolve`. It must resolve and load at start
            (:class:`~streamml.errors.ModelLoadError` otherwise): a host never starts empty.
        reload_interval: re-resolve this often in a background thread (a ``timedelta`` or
            seconds); ``None``: only when the host calls :meth:`refresh`.
        trusted_sha256: the trust list every resolved binary must be in (see
            :meth:`streamml.Model.load`; ``$STREAMML_TRUSTED_MODELS`` applies without it).
        max_bytes: the size cap for every resolved binary.
        prepare: ``prepare(model, version) -> Any``, run when a version is loaded (off the
            scoring path); the result is :attr:`LoadedVersion.prepared`. An exception refuses
            the version like a failed load.

    Attributes:
        refused: versions refused (a binary that failed to load, verify or prepare); each
            binary counts once, however often the reference keeps naming it.
        resolve_errors: re-resolutions that failed (alias missing, registry unreachable);
            the current version keeps serving.
        swaps: versions taken over after the first.
        last_error: why the last refusal or failed resolution happened, or ``None``.
    """

    def __init__(
        self,
        reference: Reference,
        *,
        reload_interval: timedelta | float | None = None,
        trusted_sha256: TrustedSha256 = None,
        max_bytes: int | None = None,
        prepare: Callable[[Model, str], Any] | None = None,
    ) -> None:
        """Resolve and load the reference now; start the reload thread if an interval is given."""
        self.reference = reference if is_mlflow(reference) else os.fspath(reference)
        self._interval = _seconds(reload_interval)
        self._trusted = trusted_sha256
        self._max_bytes = max_bytes
        self._prepare = prepare
        self._lock = threading.Lock()  # one refresh at a time; acquire never takes it
        self.refused = 0
        self.resolve_errors = 0
        self.swaps = 0
        self.last_error: str | None = None
        self._refused_sha: set[str] = set()
        self._current = self._load(resolve(self.reference, max_bytes=max_bytes))
        self._staged: LoadedVersion | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._interval is not None:
            # The thread holds the slot weakly: a slot nobody uses any more (a finished flow's) stops it.
            self._thread = threading.Thread(
                target=_reload_while_used,
                args=(weakref.ref(self), self._stop, self._interval),
                name=f"streamml-reload {self.reference}",
                daemon=True,
            )
            self._thread.start()

    @property
    def current(self) -> LoadedVersion:
        """The version scoring now (a staged one is not taken over by reading this)."""
        return self._current

    def acquire(self) -> LoadedVersion:
        """The version to score the next batch with: a staged new version takes over here."""
        staged = self._staged
        if staged is None:
            return self._current
        # Only the scoring thread swaps; a refresh that stages again meanwhile waits for the next batch.
        self._staged = None
        old, self._current = self._current, staged
        self.swaps += 1
        log.info("model %s: version %s takes over from %s", self.reference, staged.version, old.version)
        return staged

    def refresh(self) -> bool:
        """Re-resolve now; load and stage a changed binary. True if a new version is staged.

        Never raises for a bad new version or a failed resolution: those are counted
        (:attr:`refused`, :attr:`resolve_errors`), logged, kept in :attr:`last_error`,
        and the current version keeps serving.
        """
        with self._lock:
            try:
                resolved = resolve(self.reference, max_bytes=self._max_bytes)
            except Exception as e:
                self.resolve_errors += 1
                self.last_error = str(e)
                serving = self._current.version
                log.warning("model %s: cannot re-resolve; version %s keeps serving: %s", self.reference, serving, e)
                return False
            if resolved.sha256 == self._current.sha256:
                self._staged = None  # moved back before a batch took the staged version
                return False
            staged = self._staged
            if (staged is not None and resolved.sha256 == staged.sha256) or resolved.sha256 in self._refused_sha:
                return False
            try:
                loaded = self._load(resolved)
            except Exception as e:
                self._refused_sha.add(resolved.sha256)
                self.refused += 1
                self.last_error = str(e)
                log.error(
                    "model %s: refused version %s (sha256 %s); version %s keeps serving: %s",
                    self.reference,
                    resolved.version,
                    resolved.sha256,
                    self._current.version,
                    e,
                )
                return False
            self._staged = loaded
            log.info("model %s: version %s loaded; it takes over at the next batch", self.reference, loaded.version)
            return True

    def _load(self, resolved: Resolved) -> LoadedVersion:
        model = Model.load(
            resolved.path, sha256=resolved.sha256, trusted_sha256=self._trusted, max_bytes=self._max_bytes
        )
        version = resolved.version if resolved.version is not None else model.version
        prepared = self._prepare(model, version) if self._prepare is not None else None
        return LoadedVersion(model, version, resolved.sha256, resolved.path, prepared)

    def close(self) -> None:
        """Stop the reload thread (the current version keeps serving)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __repr__(self) -> str:
        """The reference and the version serving."""
        return f"ModelSlot({self.reference!r}, version {self._current.version!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the reference and options (a resumed or remote worker resolves again)."""
        return (_rebuild_slot, (self.reference, self._interval, self._trusted, self._max_bytes, self._prepare))


def _reload_while_used(slot: weakref.ref[ModelSlot], stop: threading.Event, interval: float) -> None:
    """The reload thread: refresh every ``interval`` until closed or the slot is garbage."""
    while not stop.wait(interval):
        alive = slot()
        if alive is None:
            return
        alive.refresh()
        del alive


def _rebuild_slot(
    reference: Any, interval: float | None, trusted: Any, max_bytes: int | None, prepare: Any
) -> ModelSlot:
    return ModelSlot(reference, reload_interval=interval, trusted_sha256=trusted, max_bytes=max_bytes, prepare=prepare)
