"""examples/kafka/monitoring/run.sh end to end: generator → streamml score → streamml feedback → PostgreSQL → report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest

from streamml.demo import STEP_MS, T0, stream_items
from streamml.store import Store
from streamml_dev.repo import REPO_ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

EVENTS = 6000  # 120 s of event time: two 1-minute windows, the second one drifted
TTL_MS = 120_000


def timely_labels(n: int) -> int:
    """How many of the generator's labels come within the TTL of their prediction (they must all join)."""
    items, _ = stream_items(n)
    count = 0
    for kind, table in items:
        if kind == "labels":
            ids = table.column("event_id").to_numpy()
            delay = table.column("label_time").to_numpy() - (T0 + ids * STEP_MS)
            count += int(((ids < n) & (delay <= TTL_MS)).sum())
    return count


@pytest.mark.parametrize("store_uri", ["postgresql"], indirect=True)
def test_run_sh_scores_joins_and_reports_into_postgresql(kafka_bootstrap: str, store_uri: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:10]
    env = {
        **os.environ,
        "BOOTSTRAP": kafka_bootstrap,
        "STORE": store_uri,
        "OUT": str(tmp_path),
        "EVENTS": str(EVENTS),
        "RUN": run,
        "IDLE_EXIT": "3",
    }
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "examples/kafka/monitoring/run.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["events"] == EVENTS
    score_log = (tmp_path / "score.log").read_text()
    assert f"stopped after {EVENTS} message(s): {EVENTS} scored, 0 dead letter(s)" in score_log, score_log
    # `streamml feedback` ran for the predictions, then for the labels (again if one run went idle early).
    runs = [tuple(map(int, m)) for m in re.findall(r"predictions (\d+), labels (\d+), feedback (\d+)", done.stdout)]
    assert len(runs) >= 2, done.stdout
    assert sum(r[0] for r in runs) == EVENTS
    assert sum(r[1] for r in runs) == facts["labels"]
    timely = timely_labels(EVENTS)
    assert sum(r[2] for r in runs) == timely

    with Store(store_uri) as store:
        predictions = store.read("predictions").to_pylist()
        labels = store.query("SELECT COUNT(*) AS n FROM labels").to_pylist()[0]["n"]
        feedback = store.read("feedback").to_pylist()
        quality = store.query("SELECT metric, SUM(value) AS v FROM quality GROUP BY metric").to_pylist()
        drift = store.query(
            "SELECT window_start, feature, CAST(SUM(count) AS BIGINT) AS n FROM drift "
            "WHERE model = 'fraud' AND model_version = '1' GROUP BY window_start, feature"
        ).to_pylist()
        reference = store.query("SELECT COUNT(*) AS n FROM drift_reference WHERE model = 'fraud'").to_pylist()[0]["n"]

    # Every event was scored once, and its event time came through the scorer (--carry-field).
    assert len(predictions) == EVENTS
    assert sorted(int(p["event_id"]) for p in predictions) == list(range(EVENTS))
    assert all(p["event_time"] == T0 + int(p["event_id"]) * STEP_MS for p in predictions)
    assert labels == facts["labels"]

    # The labels came after every prediction was read, so each label within the TTL joined.
    q = {r["metric"]: r["v"] for r in quality}
    assert q["predictions"] == EVENTS
    assert q["labeled"] == len(feedback) == timely > 0
    assert q["late_labels"] + q["orphan_labels"] == facts["labels"] - timely
    assert q["orphan_labels"] >= facts["orphans"]
    assert q["tp"] + q["fp"] + q["tn"] + q["fn"] == q["labeled"]
    by_id = {p["event_id"]: p for p in predictions}
    for f in feedback:
        p = by_id[f["event_id"]]
        assert (f["event_time"], f["score"]) == (p["event_time"], p["score"])
        assert 0 <= f["delay_ms"] <= TTL_MS

    # The scorer's drift windows are windows of event time: 3000 events each, for every feature
    # and the score; the second half drifted.
    windows = sorted({d["window_start"] for d in drift})
    assert windows == [T0, T0 + 60_000]
    for d in drift:
        assert d["n"] == EVENTS // 2, d
    assert {d["feature"] for d in drift} >= {"amount", "merchant_risk", "probability"}
    assert reference > 0
    assert np.isfinite(q["logloss_sum"])

    # The report draws drift (from the scorer) and quality (from the feedback service): no empty plot.
    page = (tmp_path / "report.html").read_text()
    assert 'data-title="PSI per feature over time' in page
    assert 'data-title="quality over time with label coverage"' in page
    assert "<td>amount</td>" in page
    assert ">no data</text>" not in page
