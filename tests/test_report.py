"""The main job (`streamml demo`) end to end, and its report rendered in headless Chromium."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

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
        rows = store.query("SELECT metric, SUM(value) AS v FROM quality GROUP BY metric").to_pylist()
        q = {r["metric"]: r["v"] for r in rows}
        psi_rows = store.query("SELECT DISTINCT feature FROM drift").column("feature").to_pylist()
    assert n["predictions"] == 9000
    assert n["feedback"] == q["labeled"]
    assert q["predictions"] == 9000
    assert q["labeled"] + q["expired"] == 9000
    # 45 labels belong to no prediction; a few more come after ttl + late horizon (forgotten).
    assert 45 <= q["orphan_labels"] < 45 + 0.01 * n["labels"]
    assert n["labels"] == q["labeled"] + q["late_labels"] + q["orphan_labels"]  # every label counted once
    assert {"amount", "distance_km", "probability"} <= set(psi_rows)
    before, after = (float(x) for x in re.findall(r"accuracy (\d\.\d+)", printed))
    assert after < before  # the concept drift halfway hurts the model


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
        "quality over time with label coverage",
    ]
    names = re.findall(r'<polyline class="series" data-name="([^"]+)"', dom)
    assert {"amount", "AUC", "accuracy", "label coverage"} <= set(names)
    assert dom.count('class="bar"') >= 20
