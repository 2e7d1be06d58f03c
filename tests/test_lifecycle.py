"""Model references, the model directory and hot swap (streamml.lifecycle), and the Bytewax host on them."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import pyarrow as pa
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

import streamml.bytewax
from streamml import Model, ModelLoadError
from streamml.lifecycle import ModelSlot, canary_share, reference_kind, resolve, set_alias
from streamml_dev.lifecycle import FEATURES, compile_versions, events, model_directory
from streamml_dev.repo import REPO_ROOT

VERSIONS = ["1", "2", "3", "4"]


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return compile_versions(tmp_path_factory.mktemp("versions"), VERSIONS)


@pytest.fixture
def models(tmp_path: Path, binaries: dict[str, Path]) -> Path:
    return model_directory(tmp_path / "fraud", binaries, champion="1", challenger="2")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected(binaries: dict[str, Path], version: str, rows: list[dict[str, Any]]) -> list[float]:
    """What ``Model.predict`` of ``version`` gives for the rows."""
    batch = pa.record_batch({f: [r[f] for r in rows] for f in FEATURES})
    return Model.load(binaries[version]).predict(batch).column("probability").to_pylist()


# --- resolving ---------------------------------------------------------------------------------


def test_a_model_directory_resolves_its_aliases(models: Path, binaries: dict[str, Path]) -> None:
    champion = resolve(models)
    assert (champion.version, champion.path, champion.sha256) == ("1", models / "1.so", sha(binaries["1"]))
    challenger = resolve(f"{models}@challenger")
    assert (challenger.version, challenger.sha256) == ("2", sha(binaries["2"]))
    set_alias(models, "champion", "3")
    assert resolve(models).version == "3"
    assert (models / "champion").read_text() == "3\n"
    assert [reference_kind(models), reference_kind(f"{models}@x"), reference_kind(models / "1.so")] == [
        "directory",
        "directory",
        "file",
    ]
    plain = resolve(models / "4.so")
    assert (plain.version, plain.sha256) == (None, sha(binaries["4"]))


def test_a_missing_alias_is_refused_by_name(models: Path) -> None:
    with pytest.raises(ModelLoadError) as e:
        resolve(f"{models}@canary")
    assert str(e.value) == (
        f"model directory '{models}' has no alias 'canary': expected a file '{models}/canary' holding a "
        "version name; write one (streamml.lifecycle.set_alias) or name another alias as DIR@ALIAS"
    )


def test_an_alias_naming_a_missing_version_is_refused(models: Path) -> None:
    (models / "champion").write_text("7\n")
    with pytest.raises(ModelLoadError) as e:
        ModelSlot(models)
    assert str(e.value) == (
        f"alias 'champion' of model directory '{models}' names version '7', but '{models}/7.so' does not "
        "exist; add that binary or move the alias to a version the directory has"
    )
    with pytest.raises(ModelLoadError) as e:
        set_alias(models, "champion", "7")
    assert str(e.value) == (
        f"model directory '{models}' has no version '7' ('{models}/7.so' does not exist); copy the binary there first"
    )
    (models / "champion").write_text("../../etc/passwd\n")
    with pytest.raises(ModelLoadError, match=r"holds '\.\./\.\./etc/passwd', expected one version name"):
        resolve(models)


def test_an_untrusted_resolved_binary_is_refused_before_it_runs(models: Path, binaries: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError) as e:
        ModelSlot(models, trusted_sha256=[sha(binaries["2"])])
    assert str(e.value) == (
        f"cannot load model binary '{models}/1.so': its sha256 {sha(binaries['1'])} is not in the trusted_sha256 "
        "list (1 digest(s)); loading a binary runs its code, so only listed binaries load: add the digest there "
        "if you trust this file"
    )
    # A new version outside the trust list is refused at a refresh; the trusted one keeps serving.
    slot = ModelSlot(models, trusted_sha256=[sha(binaries["1"])])
    set_alias(models, "champion", "2")
    assert slot.refresh() is False
    assert (slot.refused, slot.acquire().version) == (1, "1")
    assert slot.last_error is not None
    assert slot.last_error.startswith(f"cannot load model binary '{models}/2.so'")


# --- the slot ----------------------------------------------------------------------------------


def test_a_slot_swaps_only_when_the_next_batch_asks(models: Path, binaries: dict[str, Path]) -> None:
    slot = ModelSlot(models)
    first = slot.acquire()
    assert (first.version, first.sha256, slot.swaps) == ("1", sha(binaries["1"]), 0)
    assert slot.refresh() is False  # nothing changed
    set_alias(models, "champion", "2")
    assert slot.refresh() is True
    assert slot.current.version == "1"  # staged, not yet serving
    assert slot.acquire().version == "2"
    assert slot.swaps == 1
    # Rolling back is moving the alias back.
    set_alias(models, "champion", "1")
    assert slot.refresh() is True
    assert (slot.acquire().version, slot.swaps) == ("1", 2)


def test_a_corrupt_new_version_is_refused_and_counted_once(models: Path) -> None:
    slot = ModelSlot(models)
    (models / "5.so").write_bytes(b"\x7fELF this is no library")
    set_alias(models, "champion", "5")
    assert slot.refresh() is False
    assert slot.refresh() is False  # the same bytes are not tried (or counted) again
    assert (slot.refused, slot.acquire().version) == (1, "1")
    assert slot.last_error is not None
    assert slot.last_error.startswith(f"cannot load model binary '{models}/5.so': not a well-formed shared library")
    (models / "champion").unlink()
    assert slot.refresh() is False
    assert (slot.resolve_errors, slot.acquire().version) == (1, "1")
    assert slot.last_error.startswith(f"model directory '{models}' has no alias 'champion'")


def test_the_reload_thread_stages_a_moved_alias(models: Path) -> None:
    slot = ModelSlot(models, reload_interval=0.02)
    try:
        set_alias(models, "champion", "3")
        deadline = time.monotonic() + 20
        while slot.acquire().version != "3" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (slot.current.version, slot.swaps) == ("3", 1)
    finally:
        slot.close()
    with pytest.raises(ValueError, match="reload_interval must be a positive duration or None, got 0"):
        ModelSlot(models, reload_interval=0)


def test_the_reload_thread_ends_with_its_slot(models: Path) -> None:
    """A slot nobody holds any more (a finished flow's) does not keep a thread re-resolving forever."""
    import gc

    slot = ModelSlot(models, reload_interval=0.02)
    thread = slot._thread
    assert thread is not None
    assert thread.is_alive()
    del slot
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


# --- Bytewax -----------------------------------------------------------------------------------


def moving_source(models: Path, slot: ModelSlot, rows: list[dict[str, Any]], moves: dict[int, str]) -> Any:
    """The rows, moving the champion alias (and refreshing the slot) before the given indexes."""
    for i, row in enumerate(rows):
        if i in moves:
            set_alias(models, "champion", moves[i])
            slot.refresh()
        yield row


@pytest.mark.parametrize("batching", [False, True], ids=["bytewax-batches", "max_batch_rows"])
def test_bytewax_swaps_between_batches_while_the_alias_moves(
    models: Path, binaries: dict[str, Path], batching: bool
) -> None:
    n = 20_000
    rows = events(n)
    (models / "bad.so").write_bytes(b"corrupt")
    moves = {3_000: "2", 7_000: "bad", 9_000: "3", 15_000: "4"}
    slot = ModelSlot(models)
    flow = Dataflow("swap")
    up = op.input("in", flow, TestingSource(moving_source(models, slot, rows, moves), batch_size=250))
    options = {"max_batch_rows": 300} if batching else {}
    scored = streamml.bytewax.predict("score", up, slot, **options)
    oks: list[dict[str, Any]] = []
    errs: list[Any] = []
    op.output("oks", scored.oks, TestingSink(oks))
    op.output("errs", scored.errs, TestingSink(errs))
    run_main(flow)
    assert errs == []
    assert sorted(o["id"] for o in oks) == list(range(n))  # every event scored exactly once
    by_id = sorted(oks, key=lambda o: o["id"])
    versions = [o["model_version"] for o in by_id]
    assert versions == sorted(versions, key=int)  # never backwards
    assert set(versions) == {"1", "2", "3", "4"}
    assert (slot.refused, slot.swaps) == (1, 3)  # the corrupt version: refused, version 2 kept serving
    for v in VERSIONS:
        mine = [o for o in by_id if o["model_version"] == v]
        assert [o["probability"] for o in mine] == expected(binaries, v, mine)


def test_predict_op_names_the_version_and_a_fixed_model_stays_as_it_was(
    models: Path, binaries: dict[str, Path]
) -> None:
    rows = events(50)
    flow = Dataflow("op")
    up = op.input("in", flow, TestingSource(rows))
    by_ref: list[dict[str, Any]] = []
    fixed: list[dict[str, Any]] = []
    op.output("ref_out", op.map("by_ref", up, streamml.bytewax.predict_op(str(models))), TestingSink(by_ref))
    op.output("fixed_out", op.map("fixed", up, streamml.bytewax.predict_op(binaries["1"])), TestingSink(fixed))
    run_main(flow)
    assert [o.pop("model_version") for o in by_ref] == ["1"] * 50
    assert by_ref == fixed
    assert "model_version" not in fixed[0]
    assert [o["probability"] for o in fixed] == expected(binaries, "1", rows)


def test_shadow_scores_every_event_with_every_version(models: Path, binaries: dict[str, Path]) -> None:
    n = 3_000
    rows = events(n, seed=2)
    flow = Dataflow("shadow")
    up = op.input("in", flow, TestingSource(rows, batch_size=128))
    scored = streamml.bytewax.predict("score", up, str(models), challengers=[f"{models}@challenger"])
    assert scored.shadow is not None
    oks: list[dict[str, Any]] = []
    shadow: list[dict[str, Any]] = []
    op.output("oks", scored.oks, TestingSink(oks))
    op.output("shadow", scored.shadow, TestingSink(shadow))
    run_main(flow)
    assert [o["id"] for o in oks] == list(range(n))
    assert {o["model_version"] for o in oks} == {"1"}
    assert len(shadow) == 2 * n
    for v in ("1", "2"):
        mine = sorted((s for s in shadow if s["model_version"] == v), key=lambda s: s["id"])
        assert [s["id"] for s in mine] == list(range(n))
        assert [s["probability"] for s in mine] == expected(binaries, v, mine)


def test_the_canary_fraction_holds_over_100k_ids_and_is_sticky() -> None:
    shares = [canary_share(f"event-{i}") for i in range(100_000)]
    for fraction in (0.01, 0.1, 0.5):
        got = sum(s < fraction for s in shares) / len(shares)
        assert abs(got - fraction) <= 0.01, (fraction, got)
    assert shares == [canary_share(f"event-{i}") for i in range(100_000)]
    assert canary_share(42) == canary_share("42") == canary_share(b"42")


def test_the_canary_rule_is_the_shared_table_s() -> None:
    """tests/fixtures/canary.json: the same ids and shares JUnit checks Java's rule against."""
    table = json.loads((REPO_ROOT / "tests" / "fixtures" / "canary.json").read_text(encoding="utf-8"))
    assert len(table["cases"]) == 15
    for case in table["cases"]:
        assert canary_share(case["id"]) == case["share"], case
        assert (canary_share(case["id"]) < 0.1) == case["canary_at_0.1"], case


def test_the_canary_serves_its_share_of_events_from_the_challenger(models: Path, binaries: dict[str, Path]) -> None:
    n = 5_000
    rows = events(n, seed=3)
    runs = []
    for _ in range(2):
        flow = Dataflow("canary")
        up = op.input("in", flow, TestingSource(rows, batch_size=100))
        scored = streamml.bytewax.predict(
            "score", up, models, challengers=[f"{models}@challenger"], canary=0.2, event_id="id"
        )
        oks: list[dict[str, Any]] = []
        op.output("oks", scored.oks, TestingSink(oks))
        run_main(flow)
        runs.append(oks)
    oks = runs[0]
    assert [o["id"] for o in oks] == list(range(n))
    assert runs[0] == runs[1]  # sticky: the same ids go to the same side
    for o in oks:
        side = "canary" if canary_share(o["id"]) < 0.2 else "champion"
        assert (o["served_by"], o["model_version"]) == (side, "2" if side == "canary" else "1")
    canaries = [o for o in oks if o["served_by"] == "canary"]
    assert 0.17 < len(canaries) / n < 0.23
    assert [o["probability"] for o in canaries] == expected(binaries, "2", canaries)
    with pytest.raises(ValueError, match="canary needs event_id"):
        streamml.bytewax.predict("x", up, models, challengers=[models], canary=0.1)


def test_predict_op_takes_a_new_version_from_the_next_item(models: Path, binaries: dict[str, Path]) -> None:
    slot = ModelSlot(models)
    score = streamml.bytewax.predict_op(slot)
    row = events(1)[0]
    first = score(row)
    set_alias(models, "champion", "2")
    assert slot.refresh() is True
    second = score(row)
    assert (first["model_version"], second["model_version"]) == ("1", "2")
    assert [first["probability"], second["probability"]] == expected(binaries, "1", [row]) + expected(
        binaries, "2", [row]
    )


def join_flow(items: list[tuple[str, pa.Table]], sink: list[pa.Table], **options: Any) -> Dataflow:
    """Predictions and labels from one ordered source into ``feedback_join``."""
    flow = Dataflow("quality")
    both = op.branch("tag", op.input("in", flow, TestingSource(items, batch_size=1)), lambda x: x[0] == "p")
    out = streamml.bytewax.feedback_join(
        "join",
        op.map("p", both.trues, lambda x: x[1]),
        op.map("l", both.falses, lambda x: x[1]),
        ttl=60_000,
        window=10_000,
        max_future_skew=None,
        model="fraud",
        **options,
    )
    op.output("fb", out.feedback, TestingSink(sink))
    op.output("q", out.quality, TestingSink(sink))
    return flow


def last_quality(tables: list[pa.Table]) -> dict[tuple[str, int, str], float]:
    last: dict[tuple[str, int, str], float] = {}
    for t in tables:
        if "metric" in t.column_names:
            for r in t.to_pylist():
                last[(r["model_version"], r["window_start"], r["metric"])] = r["value"]
    return last


def test_quality_per_version_pairs_each_label_with_every_version(binaries: dict[str, Path], tmp_path: Path) -> None:
    rows = events(3_000, seed=4)
    times = [1_000 * (i // 100) for i in range(len(rows))]
    shadow = []  # what predict's shadow stream gives, as Arrow: every version's prediction of every event
    for v in ("1", "2"):
        p = expected(binaries, v, rows)
        shadow.append(
            pa.table(
                {"event_id": range(len(rows)), "event_time": times, "probability": p, "model_version": [v] * len(rows)}
            )
        )
    both = pa.concat_tables(shadow)
    labels = pa.table(
        {
            "event_id": range(0, len(rows), 2),
            "label_time": [t + 500 for t in times[::2]],
            "label": [int(r["x0"] > 0) for r in rows[::2]],
        }
    )
    chunks = [("p", both.slice(i, 1_000)) for i in range(0, both.num_rows, 1_000)]
    chunks += [("l", labels.slice(i, 500)) for i in range(0, labels.num_rows, 500)]
    versioned: list[pa.Table] = []
    run_main(join_flow(chunks, versioned, version_field="model_version"), epoch_interval=timedelta(0))
    got = last_quality(versioned)
    assert {v for v, _, _ in got} == {"1", "2"}
    feedback = pa.concat_tables([t for t in versioned if "label" in t.column_names])
    for v in ("1", "2"):
        assert feedback.filter(pa.compute.equal(feedback["model_version"], v)).num_rows == labels.num_rows
        # Each version's quality equals the one-version join over that version's predictions alone.
        alone: list[pa.Table] = []
        mine = [("p", shadow[int(v) - 1].slice(i, 500)) for i in range(0, len(rows), 500)]
        run_main(join_flow(mine + chunks[-len(labels) // 500 :], alone, model_version=v), epoch_interval=timedelta(0))
        want = last_quality(alone)
        assert {k: x for k, x in got.items() if k[0] == v} == want
        assert want[(v, 0, "labeled")] == 500
    assert got[("1", 0, "logloss_sum")] != got[("2", 0, "logloss_sum")]
    # The store keeps both versions' windows; the report draws them side by side, never summed.
    from streamml.report import gather, render
    from streamml.store import Store

    with Store(f"sqlite:///{tmp_path / 'monitoring.db'}") as store:
        for t in versioned:
            store.write("quality" if "metric" in t.column_names else "feedback", t)
        data = gather(store)
    assert sorted(data["quality_by_version"]) == ["1", "2"]
    for v in ("1", "2"):
        assert data["quality_by_version"][v][0]["labeled"] == 500
        assert data["quality_by_version"][v][0]["logloss_sum"] == got[(v, 0, "logloss_sum")]
    page = render(data)
    assert 'data-name="v1 AUC"' in page
    assert 'data-name="v2 AUC"' in page
    assert "model versions: 1, 2;" in page


def test_record_batches_get_a_version_column(models: Path, binaries: dict[str, Path]) -> None:
    rows = events(10)
    batch = pa.RecordBatch.from_pylist(rows)
    flow = Dataflow("arrow")
    scored = streamml.bytewax.predict("score", op.input("in", flow, TestingSource([batch])), models)
    out: list[pa.RecordBatch] = []
    op.output("oks", scored.oks, TestingSink(out))
    run_main(flow)
    assert out[0].column("model_version").to_pylist() == ["1"] * 10
    assert out[0].column("probability").to_pylist() == expected(binaries, "1", rows)


def test_drift_is_counted_per_version_against_its_own_reference(models: Path, binaries: dict[str, Path]) -> None:
    from streamml.lifecycle import version_info

    rows = [{**r, "event_time": 1_000 * r["id"]} for r in events(400, seed=5)]
    flow = Dataflow("drift")
    scored = streamml.bytewax.predict(
        "score", op.input("in", flow, TestingSource(rows, batch_size=100)), models, challengers=[f"{models}@challenger"]
    )
    assert scored.shadow is not None
    batches = op.flat_map_batch("arrow", scored.shadow, lambda items: [pa.Table.from_pylist(items)])
    refs = {v: version_info(models, v)["drift_reference"] for v in ("1", "2")}
    assert refs["1"] != refs["2"]  # each version froze its own training data
    drift = streamml.bytewax.drift_counts(
        "drift",
        batches,
        refs.__getitem__,
        version_field="model_version",
        model="fraud",
        window=timedelta(minutes=1),
    )
    out: list[pa.Table] = []
    op.output("out", drift, TestingSink(out))
    run_main(flow)
    last: dict[tuple[str, int, str, int], int] = {}
    for t in out:
        for r in t.to_pylist():
            last[(r["model_version"], r["window_start"], r["feature"], r["bin"])] = r["count"]
    assert {k[0] for k in last} == {"1", "2"}
    # Each version's counts equal a monitor over the same rows with that version's reference.
    from streamml.drift import DriftMonitor

    for v in ("1", "2"):
        table = pa.Table.from_pylist(rows).append_column("probability", pa.array(expected(binaries, v, rows)))
        for start in range(0, 400_000, 60_000):
            time = table["event_time"]
            window = table.filter(
                pa.compute.and_(pa.compute.greater_equal(time, start), pa.compute.less(time, start + 60_000))
            )
            monitor = DriftMonitor(refs[v])
            monitor.observe(window, window)
            want = {
                (v, start, r["feature"], r["bin"]): r["count"]
                for r in monitor.table(model="fraud", model_version=v, window_start=start, shard="0").to_pylist()
            }
            assert {k: n for k, n in last.items() if k[0] == v and k[1] == start} == want


def test_the_reload_thread_swaps_between_bytewax_batches(models: Path, binaries: dict[str, Path]) -> None:
    slot = ModelSlot(models, reload_interval=0.01)
    rows = events(2_000, seed=6)

    def source() -> Any:
        for i, row in enumerate(rows):
            if i and i % 500 == 0:
                target = str(i // 500 + 1)
                set_alias(models, "champion", target)
                deadline = time.monotonic() + 20  # the thread stages it; the next batch takes it over
                while (slot._staged or slot.current).version != target and time.monotonic() < deadline:
                    time.sleep(0.005)
            yield row

    try:
        flow = Dataflow("thread")
        scored = streamml.bytewax.predict("score", op.input("in", flow, TestingSource(source(), batch_size=100)), slot)
        oks: list[dict[str, Any]] = []
        op.output("oks", scored.oks, TestingSink(oks))
        run_main(flow)
    finally:
        slot.close()
    assert [o["id"] for o in oks] == list(range(2_000))
    for block in range(0, 2_000, 100):  # one Bytewax batch: one version
        assert len({o["model_version"] for o in oks[block : block + 100]}) == 1
    versions = [int(o["model_version"]) for o in oks]
    assert versions == sorted(versions)
    assert set(versions) == {1, 2, 3, 4}
    for v in VERSIONS:
        mine = [o for o in oks if o["model_version"] == v]
        assert [o["probability"] for o in mine] == expected(binaries, v, mine)
