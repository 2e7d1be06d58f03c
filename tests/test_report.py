"""The main job (`streamml demo`) end to end, and its report rendered in headless Chromium."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from streamml.cli import main
from streamml.store import Store
from streamml_dev.repo import REPO_ROOT, run_script

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--events", "9000", "--out", str(out)]) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def chromium() -> str:
    return run_script(REPO_ROOT / "scripts" / "chromium.sh")


@pytest.mark.slow
def test_the_main_job_fills_the_store_and_sees_the_drift(demo_run: tuple[Path, str]) -> None:
    out, printed = demo_run
    assert f"report   {out / 'report.html'}" in printed
    with Store(str(out / "monitoring.db")) as store:
        n = {
            t: store.query(f"SELECT count(*) AS n FROM {t}").column("n")[0].as_py()
            for t in ("predictions", "labels", "feedback")
        }
        rows = store.query(
            "SELECT model_version, metric, SUM(value) AS v FROM quality GROUP BY model_version, metric"
        ).to_pylist()
        psi_rows = store.query("SELECT DISTINCT feature, model_version FROM drift").to_pylist()
    q = {(r["model_version"], r["metric"]): r["v"] for r in rows}
    assert n["predictions"] == 2 * 9000  # champion and challenger, every event
    assert n["feedback"] == q[("1", "labeled")] + q[("2", "labeled")]
    assert q[("1", "labeled")] == q[("2", "labeled")]  # every label paired with both versions' predictions
    for v in ("1", "2"):
        assert q[(v, "predictions")] == 9000
        assert q[(v, "labeled")] + q[(v, "expired")] == 9000
        # 45 labels belong to no prediction; a few more come after ttl + late horizon (forgotten).
        assert 45 <= q[(v, "orphan_labels")] < 45 + 0.01 * n["labels"]
        assert n["labels"] == q[(v, "labeled")] + q[(v, "late_labels")] + q[(v, "orphan_labels")]
    # Drift is the champion's (the served version), against its own frozen reference.
    assert {"amount", "distance_km", "probability"} <= {r["feature"] for r in psi_rows}
    assert {r["model_version"] for r in psi_rows} == {"1"}
    champion = [float(x) for x in re.findall(r"v1 champion  : .*accuracy (\d\.\d+)", printed)]
    assert len(champion) == 2
    assert champion[1] < champion[0]  # the concept drift halfway hurts the champion


def offline_quality(out: Path, window: tuple[int, int]) -> dict[str, tuple[float, float]]:
    """AUC and log-loss per version from the store's predictions and labels (rows in ``window``), by sklearn."""
    from sklearn.metrics import log_loss, roc_auc_score

    with Store(str(out / "monitoring.db")) as store:
        rows = store.query(
            "SELECT p.model_version AS v, p.score AS score, l.label AS label FROM predictions p "
            "JOIN labels l ON l.event_id = p.event_id "
            f"WHERE p.window_start >= {window[0]} AND p.window_start < {window[1]}"
        ).to_pylist()
    got = {}
    for v in ("1", "2"):
        mine = [r for r in rows if r["v"] == v]
        y, p = [r["label"] for r in mine], [r["score"] for r in mine]
        got[v] = (roc_auc_score(y, p), log_loss(y, p, labels=[0.0, 1.0]))
    return got


@pytest.mark.slow
def test_the_challenger_trained_after_the_drift_beats_the_champion_after_it(demo_run: tuple[Path, str]) -> None:
    from streamml import Model
    from streamml.demo import FEATURES, WINDOW, quality_before_after, stream_items

    out, printed = demo_run
    models = out / "fraud"
    assert (models / "champion").read_text() == "1\n"
    assert (models / "challenger").read_text() == "2\n"
    items, facts = stream_items(9000)
    events = pa.concat_tables([t for kind, t in items if kind == "events"])
    with Store(str(out / "monitoring.db")) as store:
        preds = store.query("SELECT event_id, model_version, score FROM predictions ORDER BY event_id").to_pylist()
        halves = quality_before_after(store, facts["drift_at"])
    # The store holds both versions' prediction of every event, each equal to that version's Model.predict.
    for v in ("1", "2"):
        mine = {int(r["event_id"]): r["score"] for r in preds if r["model_version"] == v}
        assert sorted(mine) == events["event_id"].to_pylist()
        want = Model.load(models / f"{v}.so").predict(events.select(FEATURES)).column("probability").to_pylist()
        assert [mine[i] for i in events["event_id"].to_pylist()] == want
    # 9000 events at 20 ms: windows of 1 min at 0, 60 and 120 s; the drift (90 s) falls inside the second.
    w = int(WINDOW.total_seconds() * 1000)
    t0 = facts["drift_at"] - facts["drift_at"] % w - w
    assert t0 + w < facts["drift_at"] < t0 + 2 * w
    assert sorted(halves) == [("1", "after"), ("1", "before"), ("2", "after"), ("2", "before")]
    before = {v: halves[(v, "before")] for v in ("1", "2")}
    after = {v: halves[(v, "after")] for v in ("1", "2")}
    for v in ("1", "2"):
        assert before[v]["predictions"] == after[v]["predictions"] == 3000
    # After the drift the challenger beats the champion on AUC, log-loss and accuracy...
    assert after["2"]["auc"] > after["1"]["auc"] + 0.03
    assert after["2"]["logloss"] < after["1"]["logloss"] - 0.03
    assert after["2"]["accuracy"] > after["1"]["accuracy"]
    # ...and before it the champion, trained on pre-drift data, is the better one.
    assert before["1"]["auc"] > before["2"]["auc"] + 0.03
    assert before["1"]["logloss"] < before["2"]["logloss"]
    # The store's quality rows agree with sklearn over the stored predictions and labels
    # (AUC from 200-bin histograms: within a bin's ties; only labels that came within the ttl count there).
    offline = offline_quality(out, (t0 + 2 * w, t0 + 3 * w))
    for v in ("1", "2"):
        assert after[v]["auc"] == pytest.approx(offline[v][0], abs=0.01)
        assert after[v]["logloss"] == pytest.approx(offline[v][1], abs=0.02)
    # The report's table of windows per version shows the same: one row per window, v1 and v2 side by side.
    page = (out / "report.html").read_text()
    assert "<th>window</th><th>v1 AUC</th><th>v2 AUC</th><th>v1 log-loss</th><th>v2 log-loss</th>" in page
    table = page[page.index('<table class="versions">') :]
    cells = dict(re.findall(r"<tr><td>([^<]+)</td>((?:<td>[^<]+</td>){4})</tr>", table[: table.index("</table>")]))
    assert len(cells) == 3
    last = [float(x) for x in re.findall(r"<td>([^<]+)</td>", cells[max(cells)])]
    figures = [after["1"]["auc"], after["2"]["auc"], after["1"]["logloss"], after["2"]["logloss"]]
    assert last == [round(x, 4) for x in figures]
    first = [float(x) for x in re.findall(r"<td>([^<]+)</td>", cells[min(cells)])]
    assert first == [round(x, 4) for x in (before["1"]["auc"], before["2"]["auc"])] + [
        round(x, 4) for x in (before["1"]["logloss"], before["2"]["logloss"])
    ]
    # What the demo printed last says so, with these figures.
    assert printed.splitlines()[-1] == (
        f"summary  after the drift the challenger (v2) beats the champion (v1): AUC {after['2']['auc']:.4f} vs "
        f"{after['1']['auc']:.4f}, log-loss {after['2']['logloss']:.4f} vs {after['1']['logloss']:.4f}"
    )


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium_with_its_plots(
    demo_run: tuple[Path, str], chromium: str, tmp_path: Path
) -> None:
    out, _ = demo_run
    page = tmp_path / "r.html"
    assert main(["report", "--store", str(out / "monitoring.db"), "--model", "fraud", "-o", str(page)]) == 0
    text = page.read_text()
    assert "http://" not in text  # self-contained: nothing to fetch
    assert "https://" not in text
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    dom = done.stdout
    assert 'data-plots="3"' in dom  # the page's script ran and counted its plots
    titles = re.findall(r'<svg class="plot" data-title="([^"]+)"', dom)
    assert titles == [
        "PSI per feature over time (10 most drifted)",
        "score distribution: probability, reference vs recent",
        "quality per model version, side by side, with label coverage",
    ]
    names = re.findall(r'<polyline class="series" data-name="([^"]+)"', dom)
    assert {"amount", "v1 AUC", "v2 AUC", "v1 accuracy", "v2 accuracy", "v1 label coverage"} <= set(names)
    assert "model versions: 1, 2;" in dom
    assert "<title>streamml monitoring report: fraud</title>" in dom
    assert dom.count('class="bar"') >= 20
