"""``streamml score`` on model references: hot swap between batches, refused versions, shadow, canary (real broker)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from kafka_support import ScorerProcess, consume, kafka_topics, produce, wait_until
from streamml import Model
from streamml.feedback import FeedbackJoin
from streamml.kafka import HEADER_MODEL, HEADER_SHA256, HEADER_VERSION, KafkaScorerError, ScoringLoop
from streamml.kafka.versions import HEADER_SERVED_BY
from streamml.lifecycle import canary_share, set_alias
from streamml.store import Store
from streamml_dev.lifecycle import FEATURES, assert_quality_offline, compile_versions, events, model_directory
from test_kafka_roundtrip import free_port

pytestmark = pytest.mark.kafka

VERSIONS = ["1", "2", "3", "4"]
START_MS = 1_767_225_600_000  # 2026-01-01


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return compile_versions(tmp_path_factory.mktemp("versions"), VERSIONS)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return events(100_000, seed=7)


@pytest.fixture(scope="module")
def expected(binaries: dict[str, Path], rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """``Model.predict`` of every version over every event (``probability``)."""
    batch = pa.record_batch({f: [r[f] for r in rows] for f in FEATURES})
    return {v: Model.load(p).predict(batch).column("probability").to_pylist() for v, p in binaries.items()}


def values_of(rows: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(r, separators=(",", ":")).encode() for r in rows]


def keys_of(rows: list[dict[str, Any]]) -> list[bytes]:
    return [f"k{r['id'] % 29}".encode() for r in rows]


class Running:
    """A ScoringLoop run in a thread; ``stop()`` waits for it and re-raises what it raised."""

    def __init__(self, scorer: ScoringLoop) -> None:
        self.scorer = scorer
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.scorer.run()
        except BaseException as e:
            self.errors.append(e)

    def wait_for(self, n: int, timeout: float = 120) -> None:
        wait_until(lambda: self.scorer.stats["in"] >= n or not self.thread.is_alive(), timeout, f"{n} scored")
        assert not self.errors, self.errors

    def stop(self) -> None:
        self.scorer.stop()
        self.thread.join(120)
        assert not self.thread.is_alive()
        if self.errors:
            raise self.errors[0]


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_the_alias_moves_three_times_while_100k_events_are_scored(
    kafka_bootstrap: str,
    binaries: dict[str, Path],
    rows: list[dict[str, Any]],
    expected: dict[str, list[float]],
    tmp_path: Path,
    guarantee: str,
) -> None:
    models = model_directory(tmp_path / "fraud", binaries, champion="1")
    values, keys = values_of(rows), keys_of(rows)
    n = len(rows)
    quarter = n // 4
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=3) as (inp, out, dlq):
        scorer = ScoringLoop(
            str(models), kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id",
            max_batch_rows=500, max_wait_ms=20, guarantee=guarantee, reload_interval=0.1, commit_interval_ms=200,
        )  # fmt: skip
        running = Running(scorer)
        try:
            for i in range(4):
                chunk = slice(i * quarter, (i + 1) * quarter)
                produce(kafka_bootstrap, inp, values[chunk], keys[chunk])
                if i == 3:
                    break
                # Move the alias while this quarter is being scored: the swap lands between two of its batches
                # (or, if the quarter is done first, before the next one's first batch).
                running.wait_for(i * quarter + quarter // 3)
                set_alias(models, "champion", VERSIONS[i + 1])
                wait_until(
                    lambda i=i: scorer.slot._staged is not None or scorer.slot.swaps > i, 30, "the new version staged"
                )
            running.wait_for(n)
        finally:
            running.stop()
        assert scorer.slot.swaps == 3
        assert (scorer.stats["in"], scorer.stats["out"], scorer.stats["dlq"]) == (n, n, 0)
        records = consume(kafka_bootstrap, out, at_least=n, committed=True)
        assert consume(kafka_bootstrap, dlq, at_least=0, idle=0.5) == []
    ids = [json.loads(r.value)["id"] for r in records]
    if guarantee == "exactly-once":
        assert sorted(ids) == list(range(n))
    else:
        assert set(ids) == set(range(n))
    shas = {v: hashlib.sha256(p.read_bytes()).hexdigest() for v, p in binaries.items()}
    by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    seen = defaultdict(int)
    for r in records:
        version = r.headers[HEADER_VERSION].decode()
        assert r.headers[HEADER_MODEL] == b"fraud"
        assert r.headers[HEADER_SHA256].decode() == shas[version]
        value = json.loads(r.value)
        assert value["probability"] == expected[version][value["id"]], (version, value)
        by_partition[r.partition].append((r.offset, int(version)))
        seen[version] += 1
    assert sorted(seen) == VERSIONS
    assert len(by_partition) == 3
    for partition, stream in by_partition.items():
        versions = [v for _, v in sorted(stream)]
        assert versions == sorted(versions), f"partition {partition}: a version went backwards"


def metric_lines(port: int, name: str) -> list[str]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return [line for line in text.splitlines() if line.startswith(name)]


def test_a_corrupt_new_version_is_refused_and_the_old_one_keeps_serving(
    kafka_bootstrap: str,
    binaries: dict[str, Path],
    rows: list[dict[str, Any]],
    expected: dict[str, list[float]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    models = model_directory(tmp_path / "fraud", binaries, champion="1")
    n = 6_000
    values, keys = values_of(rows[:n]), keys_of(rows[:n])
    port = free_port()
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=2) as (inp, out, dlq):
        scorer = ScoringLoop(
            str(models), kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id",
            max_batch_rows=500, max_wait_ms=20, reload_interval=0.1, metrics_port=port,
        )  # fmt: skip
        running = Running(scorer)
        try:
            produce(kafka_bootstrap, inp, values[: n // 2], keys[: n // 2])
            running.wait_for(n // 2)
            data = binaries["2"].read_bytes()
            (models / "5.so").write_bytes(data[: len(data) // 3])  # truncated: not a loadable library
            with caplog.at_level(logging.ERROR, logger="streamml.lifecycle"):
                set_alias(models, "champion", "5")
                wait_until(lambda: scorer.slot.refused == 1, 30, "the corrupt version refused")
            produce(kafka_bootstrap, inp, values[n // 2 :], keys[n // 2 :])
            running.wait_for(n)
            refused = metric_lines(port, "streamml_model_refused_total")
            serving = metric_lines(port, "streamml_model_serving{")
            swaps = metric_lines(port, "streamml_model_swaps_total")
        finally:
            running.stop()
        records = consume(kafka_bootstrap, out, at_least=n)
    assert (scorer.slot.refused, scorer.slot.swaps, scorer.slot.current.version) == (1, 0, "1")
    assert refused == [f'streamml_model_refused_total{{reference="{models}",role="champion"}} 1.0']
    assert swaps == [f'streamml_model_swaps_total{{reference="{models}",role="champion"}} 0.0']
    assert len(serving) == 1
    assert 'version="1"' in serving[0]
    assert serving[0].endswith(" 1.0")
    lines = [r.getMessage() for r in caplog.records if "refused version 5" in r.getMessage()]
    assert len(lines) == 1
    assert f"model {models}: refused version 5 (sha256 " in lines[0]
    assert f"version 1 keeps serving: cannot load model binary '{models}/5.so'" in lines[0]
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(n))
    for r in records:
        assert r.headers[HEADER_VERSION] == b"1"
        value = json.loads(r.value)
        assert value["probability"] == expected["1"][value["id"]]


def test_shadow_stores_every_versions_prediction_and_quality_per_version_matches_offline(
    kafka_bootstrap: str,
    binaries: dict[str, Path],
    rows: list[dict[str, Any]],
    expected: dict[str, list[float]],
    tmp_path: Path,
) -> None:
    models = model_directory(tmp_path / "fraud", binaries, champion="1", challenger="2")
    n = 8_000
    values, keys = values_of(rows[:n]), keys_of(rows[:n])
    stamps = [START_MS + 10 * i for i in range(n)]
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq", "shadow"], partitions=2) as (inp, out, dlq, shadow):
        produce(kafka_bootstrap, inp, values, keys, stamps)
        scorer = ScoringLoop(
            str(models), kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id",
            max_batch_rows=500, max_wait_ms=20, challengers=[f"{models}@challenger"], store=store,
            shadow_topic=shadow, drift_window_s=30,
        )  # fmt: skip
        running = Running(scorer)
        try:
            running.wait_for(n)
        finally:
            running.stop()
        published = consume(kafka_bootstrap, out, at_least=n)
        shadowed = consume(kafka_bootstrap, shadow, at_least=2 * n)
    # Only the champion's outputs are published; the shadow topic has every version's.
    assert sorted(json.loads(r.value)["id"] for r in published) == list(range(n))
    assert {r.headers[HEADER_VERSION] for r in published} == {b"1"}
    assert all(HEADER_SERVED_BY not in r.headers for r in published)
    got_shadow = sorted((r.headers[HEADER_VERSION].decode(), json.loads(r.value)["id"]) for r in shadowed)
    assert got_shadow == sorted((v, i) for v in ("1", "2") for i in range(n))
    assert scorer.challenger_failures == {}
    with Store(store) as s:
        stored = s.query("SELECT event_id, model, model_version, event_time, score FROM predictions").to_pylist()
        drift_versions = s.query("SELECT DISTINCT model_version FROM drift ORDER BY 1").column(0).to_pylist()
    assert drift_versions == ["1", "2"]  # each version's drift counted against its own reference
    assert len(stored) == 2 * n
    by_version: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in stored:
        assert r["model"] == "fraud"
        by_version[r["model_version"]][int(r["event_id"])] = r
    assert sorted(by_version) == ["1", "2"]
    for v, got in by_version.items():
        assert sorted(got) == list(range(n))
        assert all(got[i]["score"] == expected[v][i] for i in range(n))
        assert all(got[i]["event_time"] == stamps[i] for i in range(n))
    # Quality per version from the stored rows, through the feedback join, equals the offline computation.
    labeled = list(range(0, n, 3))
    label = {i: float(rows[i]["x0"] + rows[i]["x1"] > 0) for i in labeled}
    labels = pa.table({"event_id": [str(i) for i in labeled], "label_time": [stamps[i] + 5 for i in labeled],
                       "label": [label[i] for i in labeled]})  # fmt: skip
    window = 40_000
    for got in by_version.values():
        join = FeedbackJoin(ttl=60_000, window=window)
        preds = sorted(got.values(), key=lambda r: r["event_time"])
        join.add_predictions(pa.table({"event_id": [r["event_id"] for r in preds],
                                       "event_time": [r["event_time"] for r in preds],
                                       "probability": [r["score"] for r in preds]}))  # fmt: skip
        join.add_labels(labels)
        times = {int(i): r["event_time"] for i, r in got.items()}
        assert_quality_offline(join.windows, window, times, {i: r["score"] for i, r in got.items()}, label)


def test_the_canary_serves_its_share_from_the_challenger_and_says_so(
    kafka_bootstrap: str,
    binaries: dict[str, Path],
    rows: list[dict[str, Any]],
    expected: dict[str, list[float]],
    tmp_path: Path,
) -> None:
    models = model_directory(tmp_path / "fraud", binaries, champion="1", challenger="3")
    n = len(rows)
    fraction = 0.2
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=3) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values_of(rows), keys_of(rows))
        scorer = ScoringLoop(
            str(models), kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id",
            max_batch_rows=1000, max_wait_ms=20, challengers=[f"{models}@challenger"], canary=fraction,
        )  # fmt: skip
        running = Running(scorer)
        try:
            running.wait_for(n)
        finally:
            running.stop()
        records = consume(kafka_bootstrap, out, at_least=n)
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(n))
    canary = 0
    for r in records:
        value = json.loads(r.value)
        side = r.headers[HEADER_SERVED_BY]
        want = b"canary" if canary_share(value["id"]) < fraction else b"champion"
        assert side == want
        version = "3" if side == b"canary" else "1"
        assert r.headers[HEADER_VERSION].decode() == version
        assert value["probability"] == expected[version][value["id"]]
        canary += side == b"canary"
    assert abs(canary / n - fraction) <= 0.01


def test_lifecycle_options_are_refused_without_what_they_need(binaries: dict[str, Path], tmp_path: Path) -> None:
    models = model_directory(tmp_path / "fraud", binaries, champion="1", challenger="2")
    with pytest.raises(KafkaScorerError) as e:
        ScoringLoop(str(models), "127.0.0.1:1", "a", "b", canary=0.1)
    assert str(e.value) == "--canary needs a challenger (--challenger): the canary's share is served by the first one"
    with pytest.raises(KafkaScorerError) as e:
        ScoringLoop(str(models), "127.0.0.1:1", "a", "b", canary=0.1, challengers=[f"{models}@challenger"])
    assert str(e.value) == "--canary needs --id-field and JSON messages: the event id picks each event's side"
    with pytest.raises(KafkaScorerError) as e:
        ScoringLoop(str(models), "127.0.0.1:1", "a", "b", shadow_topic="s")
    assert str(e.value) == "--shadow-topic needs a challenger (--challenger)"
    with pytest.raises(KafkaScorerError) as e:
        ScoringLoop(Model.load(binaries["1"]), "127.0.0.1:1", "a", "b", reload_interval=1.0)
    assert str(e.value) == (
        "a reload interval needs a model reference (a path, a model directory, DIR@ALIAS, models:/...)"
    )
    # A binary's path without an interval stays fixed; with one, or a directory, it is re-resolved.
    fixed = ScoringLoop(str(binaries["2"]), "127.0.0.1:1", "a", "b")
    assert fixed.slot._interval is None
    assert fixed.slot.current.version == "2"
    fixed.slot.close()
    directory = ScoringLoop(str(models), "127.0.0.1:1", "a", "b")
    assert (directory.slot._interval, directory.slot.current.version) == (30.0, "1")
    directory.slot.close()


def test_streamml_score_takes_references_challengers_and_a_canary(
    kafka_bootstrap: str,
    binaries: dict[str, Path],
    rows: list[dict[str, Any]],
    expected: dict[str, list[float]],
    tmp_path: Path,
) -> None:
    models = model_directory(tmp_path / "fraud", binaries, champion="1", challenger="2")
    n = 4_000
    fraction = 0.3
    trusted = tmp_path / "trusted.txt"
    trusted.write_text("".join(hashlib.sha256(p.read_bytes()).hexdigest() + "\n" for p in binaries.values()))
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq", "shadow"], partitions=2) as (inp, out, dlq, shadow):
        produce(kafka_bootstrap, inp, values_of(rows[: n // 2]), keys_of(rows[: n // 2]))
        scorer = ScorerProcess(
            [
                "--model", str(models), "--reload-interval", "0.2", "--challenger", f"{models}@challenger",
                "--canary", str(fraction), "--id-field", "id", "--shadow-topic", shadow,
                "--trusted-models", str(trusted), "--bootstrap-servers", kafka_bootstrap, "--input-topic", inp,
                "--output-topic", out, "--dlq-topic", dlq, "--group-id", f"g-{inp}", "--guarantee", "exactly-once",
            ],
            tmp_path / "scorer.log",
        ).start()  # fmt: skip
        try:
            first = consume(kafka_bootstrap, out, at_least=n // 2, timeout=90)
            set_alias(models, "champion", "4")  # the champion moves; the challenger stays
            wait_until(lambda: "version 4 loaded" in scorer.output() or not scorer.alive(), 30, "version 4 staged")
            produce(kafka_bootstrap, inp, values_of(rows[n // 2 : n]), keys_of(rows[n // 2 : n]))
            records = consume(kafka_bootstrap, out, at_least=n, timeout=90)
            assert scorer.stop() == 0, scorer.output()
        finally:
            if scorer.alive():
                scorer.kill()
        shadowed = consume(kafka_bootstrap, shadow, at_least=2 * n)
    assert len(first) >= n // 2
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(n))
    champions = set()
    for r in records:
        value = json.loads(r.value)
        canary = canary_share(value["id"]) < fraction
        assert r.headers[HEADER_SERVED_BY] == (b"canary" if canary else b"champion")
        version = r.headers[HEADER_VERSION].decode()
        if canary:
            assert version == "2"
        else:
            champions.add(version)
        assert value["probability"] == expected[version][value["id"]]
    assert champions == {"1", "4"}
    versions = sorted((r.headers[HEADER_VERSION].decode(), json.loads(r.value)["id"]) for r in shadowed)
    assert len(versions) == 2 * n
    assert {v for v, _ in versions} == {"1", "2", "4"}
    assert sorted(i for v, i in versions if v == "2") == list(range(n))


def test_a_registry_alias_moved_in_mlflow_swaps_the_scorer(
    kafka_bootstrap: str,
    binaries: dict[str, Path],
    rows: list[dict[str, Any]],
    expected: dict[str, list[float]],
    tmp_path: Path,
) -> None:
    import mlflow

    from streamml.mlflow import log_model

    old = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    n = 4_000
    try:
        experiment = mlflow.create_experiment("kafka", artifact_location=(tmp_path / "artifacts").as_uri())
        client = mlflow.MlflowClient()
        client.create_registered_model("fraud")
        for version in ("1", "2"):
            with mlflow.start_run(experiment_id=experiment):
                info = log_model(binaries[version], name="model")
            mlflow.register_model(info.model_uri, "fraud")
        client.set_registered_model_alias("fraud", "champion", "1")
        with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=2) as (inp, out, dlq):
            scorer = ScoringLoop(
                "models:/fraud@champion", kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq,
                id_field="id", max_batch_rows=500, max_wait_ms=20, reload_interval=0.2,
            )  # fmt: skip
            running = Running(scorer)
            try:
                produce(kafka_bootstrap, inp, values_of(rows[: n // 2]), keys_of(rows[: n // 2]))
                running.wait_for(n // 2)
                client.set_registered_model_alias("fraud", "champion", "2")
                wait_until(lambda: scorer.slot._staged is not None, 30, "version 2 staged")
                produce(kafka_bootstrap, inp, values_of(rows[n // 2 : n]), keys_of(rows[n // 2 : n]))
                running.wait_for(n)
            finally:
                running.stop()
            records = consume(kafka_bootstrap, out, at_least=n)
    finally:
        mlflow.set_tracking_uri(old)
    assert scorer.slot.swaps == 1
    got = {json.loads(r.value)["id"]: r for r in records}
    assert sorted(got) == list(range(n))
    for i, r in got.items():
        version = "1" if i < n // 2 else "2"
        assert r.headers[HEADER_VERSION].decode() == version
        assert json.loads(r.value)["probability"] == expected[version][i]


def test_the_pin_and_the_trust_list_apply_to_every_resolved_version(binaries: dict[str, Path], tmp_path: Path) -> None:
    models = model_directory(tmp_path / "fraud", binaries, champion="1", challenger="2")
    shas = {v: hashlib.sha256(p.read_bytes()).hexdigest() for v, p in binaries.items()}
    scorer = ScoringLoop(
        str(models), "127.0.0.1:1", "a", "b", sha256=shas["1"], trusted_sha256=[shas["1"], shas["2"], shas["4"]],
        challengers=[f"{models}@challenger"],
    )  # fmt: skip
    try:
        set_alias(models, "champion", "2")  # trusted, but not the pinned binary
        assert scorer.slot.refresh() is False
        assert (scorer.slot.refused, scorer.slot.acquire().version) == (1, "1")
        assert scorer.slot.last_error == (
            f"model binary '{models}/2.so' has sha256 {shas['2']}, not the pinned {shas['1']} (--sha256); "
            "a pinned scorer serves only that binary"
        )
        challenger = scorer.challengers[0]
        set_alias(models, "challenger", "3")  # not on the trust list
        assert challenger.refresh() is False
        assert (challenger.refused, challenger.acquire().version) == (1, "2")
        assert challenger.last_error is not None
        assert challenger.last_error.startswith(f"cannot load model binary '{models}/3.so': its sha256 {shas['3']}")
        set_alias(models, "challenger", "4")  # trusted; challengers are not pinned
        assert challenger.refresh() is True
        assert challenger.acquire().version == "4"
    finally:
        scorer.slot.close()
        for c in scorer.challengers:
            c.close()


def test_a_challengers_failures_are_counted_never_dead_lettered(
    kafka_bootstrap: str,
    binaries: dict[str, Path],
    rows: list[dict[str, Any]],
    expected: dict[str, list[float]],
    tmp_path: Path,
) -> None:
    from sklearn.linear_model import LogisticRegression

    from streamml.compile import compile as streamml_compile

    # A challenger reading a field the messages do not have: it fails on every message.
    x = np.random.default_rng(5).normal(size=(200, 5))
    est = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    other = tmp_path / "other"
    other.mkdir()
    streamml_compile(est, other / "9.so", name="fraud", version="9", features=[*FEATURES, "x_missing"])
    set_alias(other, "champion", "9")
    models = model_directory(tmp_path / "fraud", binaries, champion="1")
    n = 1_000
    port = free_port()
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=2) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values_of(rows[:n]), keys_of(rows[:n]))
        scorer = ScoringLoop(
            str(models), kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id",
            max_batch_rows=200, max_wait_ms=20, challengers=[str(other)], metrics_port=port,
        )  # fmt: skip
        running = Running(scorer)
        try:
            running.wait_for(n)
            failures = metric_lines(port, "streamml_model_challenger_failures_total")
        finally:
            running.stop()
        records = consume(kafka_bootstrap, out, at_least=n)
        assert consume(kafka_bootstrap, dlq, at_least=0, idle=0.5) == []
    assert scorer.challenger_failures == {("fraud", "9"): n}
    assert failures == [f'streamml_model_challenger_failures_total{{model="fraud",version="9"}} {n}.0']
    assert (scorer.stats["out"], scorer.stats["dlq"]) == (n, 0)
    assert sorted(json.loads(r.value)["id"] for r in records) == list(range(n))
    assert {r.headers[HEADER_VERSION] for r in records} == {b"1"}
