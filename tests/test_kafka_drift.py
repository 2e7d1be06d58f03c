"""Drift counters in the Kafka scorer, on a real broker: per window of message timestamps,
into the store and Prometheus, equal to a DriftMonitor over the same rows."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kafka_support import FEATURES, feature_rows, json_values, kafka_topics, logistic_model, produce, wait_until
from streamml import Model
from streamml.drift import DriftMonitor
from streamml.kafka import KafkaScorerError, ScoringLoop
from streamml.store import Store
from test_kafka_roundtrip import free_port, run_in_thread

pytestmark = pytest.mark.kafka

WINDOW_S = 60


@pytest.fixture(scope="module")
def referenced(tmp_path_factory: pytest.TempPathFactory) -> Model:
    return logistic_model(tmp_path_factory.mktemp("kafka-drift"), 4000, seed=3, label=lambda x: x[:, 0] - x[:, 1])


def batch(x: np.ndarray) -> pa.RecordBatch:
    return pa.record_batch([pa.array(x[:, j]) for j in range(32)], names=FEATURES)


def test_drift_windows_reach_the_store_and_prometheus(kafka_bootstrap: str, referenced: Model, tmp_path: Path) -> None:
    # Window A: the reference's distribution; window B: x0 shifted by 1.5. Bad messages in both.
    a, b = feature_rows(1300, seed=11), feature_rows(900, seed=12)
    b[:, 0] += 1.5
    bad = [b"{not json", b'{"id": 1, "x0": "high"}']
    values = json_values(a) + bad * 20 + json_values(b, start=len(a))
    window = WINDOW_S * 1000
    t_a = (int(time.time() * 1000) // window - 3) * window  # two whole windows in the past
    t_b = t_a + window
    stamps = [t_a + 10 + i for i in range(len(a) + 20)] + [t_b + 5] * (20 + len(b))
    store_uri = f"sqlite:///{tmp_path / 'store.db'}"
    port = free_port()
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=1) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values, [None] * len(values), stamps)
        scorer = ScoringLoop(
            referenced,
            kafka_bootstrap,
            inp,
            out,
            group_id=f"g-{inp}",
            dlq_topic=dlq,
            max_batch_rows=300,
            max_wait_ms=20,
            metrics_port=port,
            drift_window_s=WINDOW_S,
            store=store_uri,
        )
        thread = threading.Thread(target=scorer.run)
        thread.start()
        try:
            wait_until(lambda: scorer.stats["in"] >= len(values), 60, "every message consumed")
            text = ""

            def scraped() -> bool:
                nonlocal text
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                return f'streamml_drift_rows{{feature="x0",role="feature"}} {float(len(b))}' in text

            wait_until(scraped, 30, "the drift gauges of window B")
        finally:
            scorer.stop()
            thread.join(30)
        assert not thread.is_alive()
    assert scorer.stats["dlq"] == 40

    want = {}
    for start, x in ((t_a, a), (t_b, b)):
        m = DriftMonitor.from_model(referenced)
        inputs = batch(x)
        m.observe(inputs, referenced.predict(inputs))
        want[start] = m
    with Store(store_uri) as store:
        rows = store.query("SELECT window_start, shard, feature, bin, count FROM drift").to_pylist()
        reference_rows = store.query("SELECT count(*) AS n FROM drift_reference").column("n")[0].as_py()
    assert {r["shard"] for r in rows} == {scorer.shard}
    assert {r["window_start"] for r in rows} == {t_a, t_b}
    for start, monitor in want.items():
        got = {(r["feature"], r["bin"]): r["count"] for r in rows if r["window_start"] == start}
        assert got == {(f, i): n for f, i, n in monitor.bins()}, f"window {start}"
    assert reference_rows == sum(len(c) for c in want[t_a].counts().values())

    # The gauges show the open window (B): x0 drifted, x1 did not.
    psi = {s["feature"]: s["psi"] for s in want[t_b].stats()}
    assert psi["x0"] > 0.25 > psi["x1"]
    for feature in ("x0", "x1"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f'streamml_drift_psi{{feature="{feature}"'))
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(psi[feature], rel=1e-12)


def test_a_store_that_cannot_be_written_does_not_stop_scoring(
    kafka_bootstrap: str, referenced: Model, caplog: pytest.LogCaptureFixture
) -> None:
    values = json_values(feature_rows(500, seed=5))
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"], partitions=1) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values, [None] * len(values))
        scorer = ScoringLoop(
            referenced, kafka_bootstrap, inp, out, group_id=f"g-{inp}", dlq_topic=dlq, max_wait_ms=20,
            store="sqlite:////proc/no-such-dir/store.db",
        )  # fmt: skip
        run_in_thread(scorer, len(values))
    assert scorer.stats["out"] == len(values)
    assert "drift: could not write to the store sqlite:////proc/no-such-dir/store.db (will retry)" in caplog.text
    # The unwritten windows are kept for the next attempt.
    assert sum(sum(m.counts()["x0"]) for _, m in scorer._drift.take()) == len(values)


def test_a_store_without_a_reference_is_refused(s1: Model) -> None:
    with pytest.raises(KafkaScorerError, match=r"--store sqlite:///x.db: .* 's1_logistic' has no drift reference"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", store="sqlite:///x.db")
