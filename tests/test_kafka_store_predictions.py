"""``streamml score --store-predictions``: every prediction lands once in the store's ``predictions`` table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kafka_support import FEATURES, feature_rows, json_values, kafka_topics, produce
from streamml import Model
from streamml.kafka import KafkaScorerError, ScoringLoop
from streamml.store import Store
from test_kafka_roundtrip import run_in_thread

pytestmark = pytest.mark.kafka

START_MS = 1_767_225_600_000  # 2026-01-01


def scorer_for(bootstrap: str, model: Model, inp: str, out: str, dlq: str, store: str, group: str) -> ScoringLoop:
    return ScoringLoop(
        model,
        bootstrap,
        inp,
        out,
        group_id=group,
        dlq_topic=dlq,
        id_field="id",
        max_batch_rows=128,
        max_wait_ms=20,
        drift_window_s=60,
        store=store,
        store_predictions=True,
    )


def test_predictions_reach_the_store_once_even_when_scored_twice(
    kafka_bootstrap: str, s1: Model, tmp_path: Path
) -> None:
    n = 600
    x = feature_rows(n, seed=21)
    values = json_values(x)
    # 20 poison messages among them: dead letters, no predictions row.
    poison = [b'{"id": "bad-%d", "x0": "nope"}' % i for i in range(20)]
    stamps = [START_MS + 250 * i for i in range(n)]
    store = f"sqlite:///{tmp_path / 'store.db'}"
    with kafka_topics(kafka_bootstrap, ["in", "out", "dlq"]) as (inp, out, dlq):
        produce(kafka_bootstrap, inp, values + poison, [None] * (n + 20), stamps + [START_MS] * 20)
        for group in ("first", "again"):  # the second group scores everything again
            scorer = scorer_for(kafka_bootstrap, s1, inp, out, dlq, store, f"{group}-{inp}")
            run_in_thread(scorer, n + 20)
            assert scorer.stats["dlq"] == 20
    expected = s1.predict(pa.record_batch([pa.array(x[:, j]) for j in range(32)], names=FEATURES))
    with Store(store) as s:
        rows = s.query("SELECT event_id, model, model_version, event_time, window_start, score, prediction "
                       "FROM predictions").to_pylist()  # fmt: skip
    assert len(rows) == n
    by_id = {r["event_id"]: r for r in rows}
    assert sorted(by_id) == sorted(str(i) for i in range(n))
    score_field = s1.output_schema.names[0]
    scores = expected.column(score_field).to_numpy()
    for i in range(n):
        r = by_id[str(i)]
        assert (r["model"], r["model_version"]) == (s1.name, s1.version)
        assert r["event_time"] == stamps[i]
        assert r["window_start"] == stamps[i] - stamps[i] % 60_000
        assert r["score"] == scores[i]
    if "label" in expected.column_names:
        labels = expected.column("label").to_numpy().astype(np.float64)
        assert [by_id[str(i)]["prediction"] for i in range(n)] == labels.tolist()


def test_store_predictions_is_refused_without_what_it_needs(s1: Model) -> None:
    with pytest.raises(KafkaScorerError, match=r"--store-predictions needs a store URI"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", id_field="id", store_predictions=True)
    with pytest.raises(KafkaScorerError, match=r"--store-predictions needs --id-field"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", store="sqlite:///x.db", store_predictions=True)
    with pytest.raises(KafkaScorerError, match=r"score field 'nope' is not an output of the model; the outputs are"):
        ScoringLoop(s1, "127.0.0.1:1", "a", "b", id_field="id", store="sqlite:///x.db", store_predictions=True,
               score_field="nope")  # fmt: skip
