"""`streamml feedback` per model version: the router, the /2 checkpoint, and real `streamml score` runs."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from kafka_support import committed_total, consume, kafka_topics, produce, wait_until
from streamml import InputError, Model
from streamml.feedback import FeedbackJoin, Fields
from streamml.feedback_service import (
    CHECKPOINT_KEY,
    DeadLetters,
    FeedbackStats,
    _labels,
    _predictions,
    decode_checkpoint,
    encode_checkpoint,
    run,
)
from streamml.feedback_versions import JoinSettings, VersionedJoins, version_of
from streamml.kafka import HEADER_VERSION, ScoringLoop
from streamml.kafka.dlq import model_headers
from streamml.lifecycle import set_alias
from streamml.store import Store
from streamml_dev.lifecycle import FEATURES, assert_quality_offline, compile_versions, events, model_directory
from test_kafka_lifecycle import Running, keys_of

START_MS = 1_767_225_600_000  # 2026-01-01
FIELDS = Fields(id="id", event_time="event_time", score="probability")
TTL, WINDOW = 60_000, 20_000
HEADERS = {"1": model_headers("fraud", "1"), "2": model_headers("fraud", "2")}


# --- the router, without a broker ------------------------------------------------------------------


class Message:
    """What the service reads of a consumed message."""

    def __init__(self, topic: str, offset: int, value: dict, headers: list | None = None) -> None:
        self._topic, self._offset, self._value, self._headers = topic, offset, json.dumps(value).encode(), headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> None:
        return None

    def headers(self) -> list | None:
        return self._headers


def settings() -> JoinSettings:
    return JoinSettings(TTL, WINDOW, FIELDS, None)


def predictions(topic: str, version: str | None, ids: range, score: float = 0.8) -> list[Message]:
    headers = None if version is None else HEADERS[version]
    return [Message(topic, i, {"id": i, "event_time": 1000 + i, "probability": score}, headers) for i in ids]


def labels(ids: range, at: int = 1500) -> list[Message]:
    return [Message("labels", i, {"id": i, "label_time": at + i, "label": 1}) for i in ids]


def route(joins: VersionedJoins, messages: list[Message]) -> Any:
    groups: dict = {}
    for m in messages:
        groups.setdefault(version_of(m.headers(), joins.fallback), []).append(m)
    dead = DeadLetters(None, None, FeedbackStats())
    rows, _ = _predictions(joins, groups, FIELDS, WINDOW, 10**13, dead)
    assert dead.stats.dead_letters == 0
    return rows


def test_each_version_gets_its_own_join_and_a_repeated_prediction_counts_once() -> None:
    joins = VersionedJoins(settings(), ("fraud", "0"))
    # Version 1 on the output and the shadow topic, version 2 on the shadow topic, 5 without headers.
    rows = route(
        joins,
        predictions("out", "1", range(10)) + predictions("shadow", "1", range(10))
        + predictions("shadow", "2", range(10), 0.3) + predictions("out", None, range(5)),
    )  # fmt: skip
    assert Counter(zip(rows.column("model").to_pylist(), rows.column("model_version").to_pylist(), strict=True)) == {
        ("fraud", "1"): 10, ("fraud", "2"): 10, ("fraud", "0"): 5,
    }  # fmt: skip
    assert joins.duplicates == 10
    assert route(joins, predictions("shadow", "1", range(4, 12))).num_rows == 2  # 10 and 11 are new
    assert joins.duplicates == 16
    assert {k: v.join.pending_count for k, v in joins.versions.items()} == {
        ("fraud", "1"): 12, ("fraud", "2"): 10, ("fraud", "0"): 5,
    }  # fmt: skip
    dead = DeadLetters(None, None, FeedbackStats())
    stored, fb, n = _labels(joins, labels(range(3)), FIELDS, 10**13, dead)
    # Each label once in `labels`; one feedback row per version that predicted the event.
    assert (stored.num_rows, n) == (3, 3)
    got = sorted(zip(fb.column("model_version").to_pylist(), fb.column("event_id").to_pylist(),
                     fb.column("score").to_pylist(), strict=True))  # fmt: skip
    assert got == sorted((v, str(i), s) for v, s in (("0", 0.8), ("1", 0.8), ("2", 0.3)) for i in range(3))
    # A label already joined is a duplicate label in every version, not a second feedback row.
    assert _labels(joins, labels(range(3)), FIELDS, 10**13, dead)[1] is None
    assert [joins.versions[("fraud", v)].join.windows[0]["duplicate_labels"] for v in "012"] == [3.0, 3.0, 3.0]


def test_a_version_retires_once_its_ttl_and_late_horizon_passed_and_takes_no_more_labels() -> None:
    joins = VersionedJoins(settings(), ("fraud", "0"))
    route(joins, predictions("out", "1", range(100)))
    one = joins.versions[("fraud", "1")]
    assert (one.live, one.join.unseen([str(i) for i in range(98, 102)])) == (True, [2, 3])
    dead = DeadLetters(None, None, FeedbackStats())
    # Labels of 50 events; then the alias moved: version 2 scores events 1000.., labelled much later.
    _labels(joins, labels(range(50)), FIELDS, 10**13, dead)
    route(joins, [Message("out", i, {"id": i, "event_time": 200_000 + i, "probability": 0.4}, HEADERS["2"])
                  for i in range(1000, 1010)])  # fmt: skip
    assert [v.version for v in joins.live()] == ["1", "2"]
    late = [Message("labels", i, {"id": i, "label_time": 200_500 + i, "label": 0}) for i in range(1000, 1005)]
    _labels(joins, late, FIELDS, 10**13, dead)
    # Label time 201,504 is 200,404 past version 1's last prediction: more than ttl + late_horizon (120 s).
    assert (one.join.pending_count, one.join.tombstone_count, one.join.labelled_count) == (0, 0, 0)
    assert (one.live, one.join.unseen([str(i) for i in range(98, 102)])) == (False, [0, 1, 2, 3])
    assert [v.version for v in joins.live()] == ["2"]
    before = one.join.windows
    assert (before[0]["predictions"], before[0]["labeled"], before[0]["expired"]) == (100, 50, 50)
    _, fb, _ = _labels(joins, [Message("labels", 7, {"id": 1005, "label_time": 200_600, "label": 1})], FIELDS,
                       10**13, dead)  # fmt: skip
    assert fb.column("model_version").to_pylist() == ["2"]
    assert one.join.windows == before  # a retired version counts no orphans
    # Its predictions come back: the same join (its windows kept) takes them up again.
    route(joins, predictions("out", "1", range(300, 302)))
    assert (one.live, one.join.windows[0]["predictions"]) == (True, 102)


def test_a_restored_join_still_knows_its_predictions_and_forgets_them_on_its_horizon() -> None:
    join = FeedbackJoin(ttl=TTL, window=WINDOW, fields=FIELDS, max_future_skew=None)
    join.add_predictions(pa.table({"id": ["a", "b", "c"], "event_time": [10, 20, 30], "probability": [0.1] * 3}))
    join.add_labels(pa.table({"id": ["a"], "label_time": [40], "label": [1.0]}))
    restored = FeedbackJoin.restore(join.snapshot())
    # a labelled, b and c pending; d new (once).
    assert restored.unseen(["a", "d", "d", "c"]) == [1]
    restored.add_labels(pa.table({"id": ["z"], "label_time": [50 + 2 * TTL + join.bucket], "label": [1.0]}))
    assert restored.unseen(["a", "b", "c"]) == [0, 1, 2]
    assert version_of([(HEADER_VERSION, b"7")], ("m", "0")) == ("m", "7")


def test_checkpoint_2_holds_every_version_and_1_is_read_as_the_fallback() -> None:
    a, b = (FeedbackJoin(ttl=100, window=1000) for _ in range(2))
    a.add_predictions(pa.table({"event_id": [1, 2], "event_time": [5, 6], "probability": [0.2, 0.9]}))
    b.add_predictions(pa.table({"event_id": [3], "event_time": [7], "probability": [0.5]}))
    text = encode_checkpoint({("m", "2"): b, ("m", "1"): a}, {("p", 1): 7, ("l", 0): 3})
    doc = json.loads(text)
    assert (doc["format"], doc["offsets"]) == ("streamml.feedback_checkpoint/2", [["l", 0, 3], ["p", 1, 7]])
    assert [(v["model"], v["version"], v["join_format"], v["fields"]) for v in doc["versions"]] == [
        ("m", "1", "streamml.feedback_join/3", ["event_id", "event_time", "probability", "label_time", "label"]),
        ("m", "2", "streamml.feedback_join/3", ["event_id", "event_time", "probability", "label_time", "label"]),
    ]
    joins, offsets = decode_checkpoint(text, "row x")
    assert sorted(joins) == [("m", "1"), ("m", "2")]
    assert (joins[("m", "1")].pending, joins[("m", "2")].pending) == (a.pending, b.pending)
    assert offsets == {("p", 1): 7, ("l", 0): 3}
    # The single-join document of earlier releases: the fallback version's join.
    snap = a.snapshot()
    old = json.dumps({"format": "streamml.feedback_checkpoint/1", "join_format": snap["format"],
                      "fields": list(snap["fields"]), "state": base64.b64encode(snap["state"]).decode(),
                      "offsets": [["p", 0, 9]]})  # fmt: skip
    joins, offsets = decode_checkpoint(old, "row y", ("fraud", "4"))
    assert (list(joins), joins[("fraud", "4")].pending, offsets) == ([("fraud", "4")], a.pending, {("p", 0): 9})


def test_a_corrupt_checkpoint_2_is_refused_with_the_reason() -> None:
    a = FeedbackJoin(ttl=100, window=1000)
    a.add_predictions(pa.table({"event_id": [1], "event_time": [5], "probability": [0.2]}))
    doc = json.loads(encode_checkpoint({("m", "1"): a, ("m", "2"): a}, {}))
    tail = (
        "; expected a streamml.feedback_checkpoint/2 (or streamml.feedback_checkpoint/1) JSON document; delete "
        "that row to start the join afresh (the service then re-reads what the group has not committed)"
    )
    cases = {
        "version 1: 'model' and 'version' are 'm' and 2, not strings": dict(
            doc, versions=[doc["versions"][0], dict(doc["versions"][1], version=2)]
        ),
        "version 1: model m version 1 is listed twice": dict(doc, versions=[doc["versions"][0]] * 2),
        "'versions' is not a list of objects": dict(doc, versions={"m": 1}),
        "version 0: 'state' is missing": dict(
            doc, versions=[{k: v for k, v in doc["versions"][0].items() if k != "state"}]
        ),
        "its format is 'streamml.feedback_checkpoint/3'": dict(doc, format="streamml.feedback_checkpoint/3"),
    }
    for why, bad in cases.items():
        with pytest.raises(InputError) as e:
            decode_checkpoint(json.dumps(bad), "row x")
        assert str(e.value) == f"feedback service: the checkpoint row x cannot be read: {why}{tail}"
    state = bytearray(base64.b64decode(doc["versions"][1]["state"]))
    state[-1] ^= 1
    altered = dict(doc, versions=[doc["versions"][0], dict(doc["versions"][1], state=base64.b64encode(state).decode())])
    with pytest.raises(InputError) as e:
        decode_checkpoint(json.dumps(altered), "row x")
    assert re.fullmatch(
        r"feedback service: the checkpoint row x cannot be read: version 1: feedback join: the saved state cannot be "
        r"read: the payload's CRC-32C is [0-9a-f]{8}, the header says [0-9a-f]{8} \(the bytes were changed\); it must "
        r"come from FeedbackJoin state bytes of this version" + re.escape(tail),
        str(e.value),
    ), str(e.value)


# --- real runs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return compile_versions(tmp_path_factory.mktemp("versions"), ["1", "2"])


def timed_events(n: int) -> list[dict[str, Any]]:
    """``n`` events (id, inputs) with an event time, 10 ms apart."""
    return [dict(e, event_time=START_MS + 10 * e["id"]) for e in events(n, seed=11)]


def predicted(binaries: dict[str, Path], rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    batch = pa.record_batch({f: [r[f] for r in rows] for f in FEATURES})
    return {v: Model.load(p).predict(batch).column("probability").to_pylist() for v, p in binaries.items()}


def label_of(row: dict[str, Any]) -> float:
    return float(row["x0"] + row["x1"] > 0)


def label_values(rows: list[dict[str, Any]], ids: list[int]) -> list[bytes]:
    return [json.dumps({"id": i, "label_time": rows[i]["event_time"] + 5, "label": label_of(rows[i])}).encode()
            for i in ids]  # fmt: skip


def count(uri: str, table: str) -> int:
    with Store(uri) as store:
        return store.query(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py()


def stored(bootstrap: str, group: str, topics: list[str], n: int) -> Callable[[], bool]:
    """Whether the service committed ``n`` messages of ``topics`` (3 partitions each): they are in the store.

    (The store's SQLite file is not read from this process while the service writes it: two SQLite
    libraries in one process break each other's POSIX locks.)
    """
    return lambda: sum(committed_total(bootstrap, group, t, 3) for t in topics) == n


class Service:
    """``feedback_service.run`` in a thread (it ends when idle for ``idle_exit_s``)."""

    def __init__(self, **kwargs: Any) -> None:
        self.stats: FeedbackStats | None = None
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, kwargs=kwargs)
        self.thread.start()

    def _run(self, **kwargs: Any) -> None:
        try:
            self.stats = run(**kwargs)
        except BaseException as e:
            self.errors.append(e)

    def join(self) -> FeedbackStats:
        self.thread.join(180)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors
        assert self.stats is not None
        return self.stats


def quality_by_version(uri: str) -> dict[str, dict[int, dict[str, float]]]:
    out: dict[str, dict[int, dict[str, float]]] = {}
    with Store(uri) as store:
        for r in store.read("quality").to_pylist():
            out.setdefault(r["model_version"], {}).setdefault(r["window_start"], {})[r["metric"]] = r["value"]
    return out


@pytest.mark.kafka
def test_champion_and_challenger_through_score_s_output_and_shadow_topics(
    kafka_bootstrap: str, binaries: dict[str, Path], tmp_path: Path
) -> None:
    """`streamml score` with a challenger and a shadow topic over 5,000 events; labels for every third:
    one feedback row per (version, labelled event) with that version's score; quality per version
    equals numpy's."""
    n = 5_000
    rows = timed_events(n)
    expected = predicted(binaries, rows)
    models = model_directory(tmp_path / "fraud", binaries, champion="1", challenger="2")
    uri = str(tmp_path / "store.db")
    labelled = list(range(0, n, 3))
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq", "shadow", "labels"], partitions=3) as (
        inp, out, dlq, shadow, labels_topic,
    ):  # fmt: skip
        produce(kafka_bootstrap, inp, [json.dumps(r).encode() for r in rows], keys_of(rows))
        scorer = ScoringLoop(
            str(models), kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id",
            carry_fields=["event_time"], max_batch_rows=500, max_wait_ms=20, challengers=[f"{models}@challenger"],
            shadow_topic=shadow,
        )  # fmt: skip
        running = Running(scorer)
        try:
            running.wait_for(n)
        finally:
            running.stop()
        group = f"fb-{uuid.uuid4().hex[:6]}"
        service = Service(
            bootstrap_servers=kafka_bootstrap, predictions_topic=[out, shadow], labels_topic=labels_topic,
            store_uri=uri, group_id=group, fields=FIELDS, ttl_ms=TTL, window_ms=WINDOW,
            model="fraud", model_version="0", dlq_topic=dlq, idle_exit_s=5, checkpoint_s=0.5,
        )  # fmt: skip
        # Every prediction is in (so no label is read before its prediction); then the labels.
        wait_until(stored(kafka_bootstrap, group, [out, shadow], 3 * n), 120, "the predictions stored")
        produce(kafka_bootstrap, labels_topic, label_values(rows, labelled), [None] * len(labelled))
        stats = service.join()
        assert consume(kafka_bootstrap, dlq, at_least=0, idle=0.5) == []
    # The champion's predictions came on both topics: each taken once.
    assert (stats.predictions, stats.duplicates, stats.labels, stats.feedback) == (
        2 * n,
        n,
        len(labelled),
        2 * len(labelled),
    )
    assert (stats.dead_letters, count(uri, "labels")) == (0, len(labelled))
    with Store(uri) as store:
        feedback = store.read("feedback").to_pylist()
        versions = store.query("SELECT model, model_version, count(*) AS n FROM predictions GROUP BY 1, 2").to_pylist()
    assert sorted((v["model"], v["model_version"], v["n"]) for v in versions) == [("fraud", "1", n), ("fraud", "2", n)]
    assert len(feedback) == 2 * len(labelled)
    assert sorted((r["model_version"], int(r["event_id"])) for r in feedback) == sorted(
        (v, i) for v in ("1", "2") for i in labelled
    )
    for r in feedback:
        i = int(r["event_id"])
        assert (r["model"], r["score"], r["label"]) == ("fraud", expected[r["model_version"]][i], label_of(rows[i]))
    quality = quality_by_version(uri)
    assert sorted(quality) == ["1", "2"]
    times = {r["id"]: r["event_time"] for r in rows}
    labels_by_id = {i: label_of(rows[i]) for i in labelled}
    for v, windows in quality.items():
        assert sum(w["predictions"] for w in windows.values()) == n
        assert (
            sum(w.get("duplicates", 0) + w.get("orphan_labels", 0) + w.get("expired", 0) for w in windows.values()) == 0
        )
        assert_quality_offline(windows, WINDOW, times, dict(enumerate(expected[v])), labels_by_id)


@pytest.mark.kafka
def test_an_alias_moved_mid_stream_joins_each_event_with_the_version_that_scored_it(
    kafka_bootstrap: str, binaries: dict[str, Path], tmp_path: Path
) -> None:
    n = 4_000
    rows = timed_events(n)
    expected = predicted(binaries, rows)
    models = model_directory(tmp_path / "fraud", binaries, champion="1")
    uri = str(tmp_path / "store.db")
    values = [json.dumps(r).encode() for r in rows]
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq", "labels"], partitions=3) as (inp, out, dlq, labels_topic):
        scorer = ScoringLoop(
            str(models), kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, id_field="id",
            carry_fields=["event_time"], max_batch_rows=500, max_wait_ms=20, reload_interval=0.1,
        )  # fmt: skip
        running = Running(scorer)
        try:
            produce(kafka_bootstrap, inp, values[: n // 2], keys_of(rows[: n // 2]))
            running.wait_for(n // 2)
            set_alias(models, "champion", "2")
            wait_until(lambda: scorer.slot._staged is not None or scorer.slot.swaps == 1, 30, "version 2 staged")
            produce(kafka_bootstrap, inp, values[n // 2 :], keys_of(rows[n // 2 :]))
            running.wait_for(n)
        finally:
            running.stop()
        records = consume(kafka_bootstrap, out, at_least=n)
        header = {json.loads(r.value)["id"]: r.headers[HEADER_VERSION].decode() for r in records}
        assert sorted(header) == list(range(n))
        assert set(header.values()) == {"1", "2"}
        group = f"fb-{uuid.uuid4().hex[:6]}"
        service = Service(
            bootstrap_servers=kafka_bootstrap, predictions_topic=out, labels_topic=labels_topic, store_uri=uri,
            group_id=group, fields=FIELDS, ttl_ms=TTL, window_ms=WINDOW, model="fraud",
            model_version="0", idle_exit_s=5, checkpoint_s=0.5,
        )  # fmt: skip
        wait_until(stored(kafka_bootstrap, group, [out], n), 120, "the predictions stored")
        produce(kafka_bootstrap, labels_topic, label_values(rows, list(range(n))), [None] * n)
        stats = service.join()
    assert (stats.predictions, stats.labels, stats.feedback, stats.dead_letters) == (n, n, n, 0)
    with Store(uri) as store:
        feedback = store.read("feedback").to_pylist()
    assert sorted(int(r["event_id"]) for r in feedback) == list(range(n))
    for r in feedback:
        i = int(r["event_id"])
        assert r["model_version"] == header[i]
        assert r["score"] == expected[header[i]][i]
    quality = quality_by_version(uri)
    per_version = Counter(header.values())
    for v in ("1", "2"):
        windows = quality[v]
        assert sum(w["predictions"] for w in windows.values()) == per_version[v]
        assert sum(w.get("labeled", 0) for w in windows.values()) == per_version[v]
        # Every other version's events' labels are orphans of this one (both versions were waiting).
        assert sum(w.get("orphan_labels", 0) for w in windows.values()) == n - per_version[v]


def checkpoint_row(path: Path) -> tuple[str, str, str] | None:
    """The /2 checkpoint row (model, version, state) a running service saved, read without the store's client."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as c:
            got = c.execute("SELECT model, model_version, state FROM checkpoints WHERE service = 'feedback'").fetchall()
    except sqlite3.OperationalError:  # the table does not exist yet
        return None
    return got[0] if got else None


@pytest.mark.kafka
def test_a_killed_service_restores_every_version_and_counts_each_prediction_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Predictions of versions 1 and 2 (1 on the output and the shadow topic, 2 on the shadow topic);
    the service is killed (SIGKILL) after a checkpoint, mid-way; a restart reads the rest; labels
    produced after it join with both versions: exact counts, nothing twice."""
    n = 3_000
    path = tmp_path / "store.db"
    uri = str(path)
    group = f"fb-{uuid.uuid4().hex[:6]}"
    score = {"1": lambda i: (i % 10) / 10, "2": lambda i: ((i * 7) % 10) / 10}
    with kafka_topics(kafka_bootstrap, ["out", "shadow", "labels"], partitions=2) as (out, shadow, labels_topic):

        def send(topic: str, versions: list[str]) -> None:
            from confluent_kafka import Producer

            p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
            for i in range(n):
                for v in versions:  # as score's shadow topic: each event's versions together
                    value = {"id": i, "event_time": START_MS + 10 * i, "probability": score[v](i)}
                    p.produce(topic, json.dumps(value).encode(), str(i).encode(), headers=HEADERS[v])
            assert p.flush(60) == 0

        send(out, ["1"])
        send(shadow, ["1", "2"])
        kwargs = dict(
            bootstrap_servers=kafka_bootstrap, predictions_topic=[out, shadow], labels_topic=labels_topic,
            store_uri=uri, group_id=group, fields=FIELDS, ttl_ms=TTL, window_ms=WINDOW, model="fraud",
            model_version="0", config={"consumer.session.timeout.ms": "6000"},
        )  # fmt: skip
        code = (
            "import json, sys; from streamml.feedback import Fields; from streamml.feedback_service import run; "
            "kw = json.loads(sys.argv[1]); kw['fields'] = Fields(**kw['fields']); "
            "run(**kw, batch_size=60, checkpoint_s=0.05)"
        )
        spec = dict(kwargs, fields={"id": "id", "event_time": "event_time", "score": "probability"})
        proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(spec)])
        try:

            def mid_way() -> bool:
                row = checkpoint_row(path)
                doc = None if row is None else json.loads(row[2])
                return doc is not None and len(doc["versions"]) == 2 and sum(o for *_, o in doc["offsets"]) > 900

            wait_until(mid_way, 120, "a checkpoint of both versions past 900 messages")
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        model, version, state = checkpoint_row(path)
        assert (model, version) == CHECKPOINT_KEY
        covered = sum(o for *_, o in json.loads(state)["offsets"])
        assert 900 < covered < 3 * n, "killed mid-way"
        joins, _ = decode_checkpoint(state, "killed")
        assert sorted(joins) == [("fraud", "1"), ("fraud", "2")]

        # The killed member holds its partitions until its session (6 s) times out: the restart waits for them.
        second = run(**kwargs, idle_exit_s=15, checkpoint_s=1.0)
        # The rest of the predictions: together with the checkpoint's, each version's once.
        with Store(uri) as store:
            (row,) = store.read("checkpoints").to_pylist()
            joins, offsets = decode_checkpoint(row["state"], "restarted")
        assert {k: j.pending_count for k, j in joins.items()} == {("fraud", "1"): n, ("fraud", "2"): n}
        assert sum(offsets.values()) == 3 * n
        assert second.labels == 0
        assert count(uri, "predictions") == 2 * n
        # Labels after the restart for predictions (many read before the kill): both versions join them.
        labelled = list(range(0, n, 2))
        produce(kafka_bootstrap, labels_topic,
                [json.dumps({"id": i, "label_time": START_MS + 10 * i + 5, "label": i % 3 == 0}).encode()
                 for i in labelled], [None] * len(labelled))  # fmt: skip
        third = run(**kwargs, idle_exit_s=5, checkpoint_s=1.0)
    assert (third.predictions, third.duplicates, third.labels, third.feedback) == (
        0,
        0,
        len(labelled),
        2 * len(labelled),
    )
    with Store(uri) as store:
        feedback = store.read("feedback").to_pylist()
    assert len(feedback) == 2 * len(labelled)
    assert sorted((r["model_version"], int(r["event_id"])) for r in feedback) == sorted(
        (v, i) for v in ("1", "2") for i in labelled
    )
    assert all(r["score"] == score[r["model_version"]](int(r["event_id"])) for r in feedback)
    quality = quality_by_version(uri)
    labels_by_id = {i: float(i % 3 == 0) for i in labelled}
    times = {i: START_MS + 10 * i for i in range(n)}
    for v in ("1", "2"):
        windows = quality[v]
        assert sum(w["predictions"] for w in windows.values()) == n  # the kill double-counted nothing
        assert sum(w.get("duplicates", 0) for w in windows.values()) == 0
        assert_quality_offline(windows, WINDOW, times, {i: score[v](i) for i in range(n)}, labels_by_id)


@pytest.mark.kafka
def test_a_format_1_checkpoint_is_restored_as_the_fallback_version(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A checkpoint of an earlier release (one join, /1, under the fallback's model and version): the
    restarted service restores it, joins labels with its pending predictions, and from then on saves
    /2 under both keys (so the old row never holds an older state)."""
    uri = str(tmp_path / "store.db")
    group = f"fb-{uuid.uuid4().hex[:6]}"
    join = FeedbackJoin(ttl=TTL, window=WINDOW, fields=FIELDS, max_future_skew=None)
    join.add_predictions(pa.table({"id": [str(i) for i in range(20)], "event_time": [1000 + i for i in range(20)],
                                   "probability": [0.9] * 20}))  # fmt: skip
    snap = join.snapshot()
    with kafka_topics(kafka_bootstrap, ["out", "labels"], partitions=1) as (out, labels_topic):
        old = {"format": "streamml.feedback_checkpoint/1", "join_format": snap["format"],
               "fields": list(snap["fields"]), "state": base64.b64encode(snap["state"]).decode(),
               "offsets": []}  # fmt: skip
        with Store(uri) as store:
            store.write("checkpoints", pa.table({
                "service": ["feedback"], "model": ["fraud"], "model_version": ["3"], "shard": [group],
                "saved_at": pa.array([0], pa.int64()), "state": [json.dumps(old)],
            }))  # fmt: skip
        produce(kafka_bootstrap, labels_topic,
                [json.dumps({"id": i, "label_time": 1100 + i, "label": 1}).encode() for i in range(10)],
                [None] * 10)  # fmt: skip
        stats = run(
            kafka_bootstrap, out, labels_topic, uri, group_id=group, fields=FIELDS, ttl_ms=TTL, window_ms=WINDOW,
            model="fraud", model_version="3", idle_exit_s=4, max_future_skew_ms=None,
        )  # fmt: skip
    assert (stats.predictions, stats.labels, stats.feedback) == (0, 10, 10)
    with Store(uri) as store:
        rows = {(r["model"], r["model_version"]): r["state"] for r in store.read("checkpoints").to_pylist()}
        feedback = store.query("SELECT model, model_version, count(*) AS n FROM feedback GROUP BY 1, 2").to_pylist()
    assert feedback == [{"model": "fraud", "model_version": "3", "n": 10}]
    assert sorted(rows) == [CHECKPOINT_KEY, ("fraud", "3")]
    assert rows[CHECKPOINT_KEY] == rows[("fraud", "3")]
    joins, _ = decode_checkpoint(rows[CHECKPOINT_KEY], "saved")
    assert list(joins) == [("fraud", "3")]
    assert (joins[("fraud", "3")].pending_count, joins[("fraud", "3")].labelled_count) == (10, 10)


@pytest.mark.kafka
def test_a_corrupt_checkpoint_stops_the_service_at_start(kafka_bootstrap: str, tmp_path: Path) -> None:
    uri = str(tmp_path / "store.db")
    group = f"fb-{uuid.uuid4().hex[:6]}"
    with Store(uri) as store:
        store.write("checkpoints", pa.table({
            "service": ["feedback"], "model": ["*"], "model_version": ["*"], "shard": [group],
            "saved_at": pa.array([0], pa.int64()),
            "state": [json.dumps({"format": "streamml.feedback_checkpoint/2", "versions": [], "offsets": [["t", 0]]})],
        }))  # fmt: skip
    with pytest.raises(InputError) as e:
        run(kafka_bootstrap, "p", "l", uri, group_id=group, idle_exit_s=1)
    assert str(e.value) == (
        f"feedback service: the checkpoint of service feedback, model * *, group {group} in {uri} cannot be read: "
        "'offsets' is not a list of [topic, partition, offset] with non-negative integers; expected a "
        "streamml.feedback_checkpoint/2 (or streamml.feedback_checkpoint/1) JSON document; delete that row to "
        "start the join afresh (the service then re-reads what the group has not committed)"
    )
    with pytest.raises(InputError) as e:
        run(kafka_bootstrap, ["p", "l"], "l", uri, group_id=group, idle_exit_s=1)
    assert str(e.value) == (
        "feedback service: the labels topic 'l' must not be a predictions topic (['p', 'l']), and at least one "
        "predictions topic is needed"
    )


def test_the_cli_takes_several_predictions_topics_and_the_old_spelling_one(capsys: pytest.CaptureFixture[str]) -> None:
    from streamml.cli import build_parser

    base = ["feedback", "--bootstrap-servers", "b:1", "--labels-topic", "l", "--store", "s.db"]
    args = build_parser().parse_args([*base, "--predictions-topic", "scores", "--predictions-topic", "fraud.shadow"])
    assert args.predictions_topic == ["scores", "fraud.shadow"]
    assert build_parser().parse_args([*base, "--predictions", "scores"]).predictions_topic == ["scores"]
    assert capsys.readouterr().err == (
        "streamml feedback: warning: --predictions is deprecated and will be removed in the next release; "
        "use --predictions-topic\n"
    )
