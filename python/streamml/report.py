"""``streamml report``: one self-contained HTML page drawn from a monitoring store.

The page has no external resources (no CDN, no script from elsewhere): every plot is an
inline SVG built here. Plots: PSI per feature over time (from the ``drift`` and
``drift_reference`` tables), the score distribution of the reference against the recent
windows, and quality over time (AUC for binary models, else MAE; accuracy) with label
coverage (from ``quality``); with several model versions (shadow scoring), their quality
side by side and a table of each window's AUC (or MAE) and log-loss per version. PSI is
computed exactly as :mod:`streamml.drift` does (floor :data:`streamml.drift.EPSILON` for empty
bins).
"""

from __future__ import annotations

import html
import math
import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamml.drift import EPSILON, Thresholds
from streamml.feedback import auc_from_histograms
from streamml.store import Store

W, H, PAD, RIGHT = 780, 260, 44, 150
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def psi(reference: np.ndarray, observed: np.ndarray) -> float:
    """PSI of ``observed`` counts against ``reference`` counts (``streamml.drift``'s formula)."""
    if reference.sum() == 0 or observed.sum() == 0:
        return math.nan
    q = np.maximum(reference / reference.sum(), EPSILON)
    p = np.maximum(observed / observed.sum(), EPSILON)
    return float(((p - q) * np.log(p / q)).sum())


def _where(model: str | None, since: int | None, has_window: bool = True) -> str:
    clauses = []
    if model is not None:
        clauses.append("model = '" + model.replace("'", "''") + "'")
    if since is not None and has_window:
        clauses.append(f"window_start >= {int(since)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else ""


def gather(store: Store, *, model: str | None = None, since: int | None = None) -> dict[str, Any]:
    """What the page shows, read from ``store`` (sums over shards per window)."""
    ref_rows = store.query(
        f'SELECT feature, role, bin, "count" FROM drift_reference{_where(model, None, False)}'
    ).to_pylist()
    reference: dict[str, dict[int, int]] = defaultdict(dict)
    roles: dict[str, str] = {}
    for r in ref_rows:
        reference[r["feature"]][r["bin"]] = reference[r["feature"]].get(r["bin"], 0) + r["count"]
        roles[r["feature"]] = r["role"]
    drift_rows = store.query(
        f'SELECT window_start, feature, bin, SUM("count") AS n FROM drift{_where(model, since)} GROUP BY window_start, feature, bin'  # noqa: E501
    ).to_pylist()
    observed: dict[tuple[int, str], dict[int, int]] = defaultdict(dict)
    for r in drift_rows:
        observed[(r["window_start"], r["feature"])][r["bin"]] = int(r["n"])

    def vec(counts: dict[int, int], size: int) -> np.ndarray:
        v = np.zeros(size)
        for b, n in counts.items():
            if b < size:
                v[b] = n
        return v

    psi_series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for (w, feature), counts in sorted(observed.items()):
        if feature in reference:
            size = max(reference[feature]) + 1
            psi_series[feature].append((w, psi(vec(reference[feature], size), vec(counts, size))))
    windows = sorted({w for w, _ in observed})
    recent = windows[-max(1, len(windows) // 4) :] if windows else []
    score_dist = {}
    for feature, role in roles.items():
        if role == "score":
            size = max(reference[feature]) + 1
            now = sum((vec(observed.get((w, feature), {}), size) for w in recent), np.zeros(size))
            score_dist[feature] = (vec(reference[feature], size), now)
    q_rows = store.query(
        "SELECT model_version, window_start, metric, SUM(value) AS v "
        f"FROM quality{_where(model, since)} GROUP BY model_version, window_start, metric"
    ).to_pylist()
    # Per version: shadow scoring gives every version a quality row for the same window, which
    # must be compared side by side, never summed.
    by_version: dict[str, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in q_rows:
        by_version[str(r["model_version"])][r["window_start"]][r["metric"]] = r["v"]
    versions = {v: dict(sorted(q.items())) for v, q in sorted(by_version.items())}
    quality = next(iter(versions.values())) if len(versions) == 1 else {}
    return {
        "psi": dict(psi_series),
        "scores": score_dist,
        "quality": quality,
        "quality_by_version": versions,
        "recent": recent,
    }


def quality_series(quality: dict[int, dict[str, float]]) -> dict[str, list[tuple[int, float]]]:
    """AUC or MAE, accuracy and label coverage per window (and the share of non-finite scores, if any)."""
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    any_non_finite = any(m.get("non_finite_scores") for m in quality.values())
    for w, m in quality.items():
        labeled, predictions = m.get("labeled", 0.0), m.get("predictions", 0.0)
        if predictions:
            out["label coverage"].append((w, labeled / predictions))
        # The sums leave out pairs with a non-finite score or label (streamml.feedback).
        finite = labeled - m.get("non_finite_scores", 0.0) - m.get("non_finite_labels", 0.0)
        if any_non_finite:
            out["non-finite scores"].append((w, m.get("non_finite_scores", 0.0) / labeled if labeled else 0.0))
        if not finite:
            continue
        labeled = finite
        if "tp" in m:
            size = 1 + max((int(k[9:]) for k in m if k.startswith("hist_")), default=0)
            neg = np.array([m.get(f"hist_neg_{i:03d}", 0.0) for i in range(size)])
            pos = np.array([m.get(f"hist_pos_{i:03d}", 0.0) for i in range(size)])
            out["AUC"].append((w, auc_from_histograms(neg, pos)))
            out["accuracy"].append((w, (m["tp"] + m["tn"]) / labeled))
        elif "abs_err_sum" in m:
            out["MAE"].append((w, m["abs_err_sum"] / labeled))
    return dict(out)


def version_table(by_version: dict[str, dict[int, dict[str, float]]]) -> str:
    """A table of each window's AUC (or MAE) and log-loss per model version, to compare them row by row."""
    series = {v: quality_series(q) for v, q in by_version.items()}
    main = "MAE" if any("MAE" in s for s in series.values()) else "AUC"
    columns = [(v, main, dict(s.get(main, []))) for v, s in series.items()]
    if main == "AUC":
        for v, q in by_version.items():
            finite = {
                w: m.get("labeled", 0.0) - m.get("non_finite_scores", 0.0) - m.get("non_finite_labels", 0.0)
                for w, m in q.items()
            }
            losses = {w: m["logloss_sum"] / finite[w] for w, m in q.items() if finite[w] and "logloss_sum" in m}
            columns.append((v, "log-loss", losses))
    head = "".join(f"<th>v{html.escape(v)} {name}</th>" for v, name, _ in columns)
    rows = []
    for w in sorted({w for _, _, c in columns for w in c}):  # windows with a figure (not those of late labels only)
        cells = "".join(f"<td>{c[w]:.4f}</td>" if w in c else "<td>&ndash;</td>" for _, _, c in columns)
        rows.append(f"<tr><td>{_fmt_time(w)}</td>{cells}</tr>")
    return (
        f'<h2>quality per model version and window</h2><table class="versions"><tr><th>window</th>{head}</tr>'
        f"{''.join(rows)}</table>"
    )


def _line_chart(
    title: str, series: dict[str, list[tuple[int, float]]], *, y_max: float | None = None, bands: list[float] = ()
) -> str:
    points = [(x, y) for s in series.values() for x, y in s if not math.isnan(y)]
    if not points:
        return f'<svg class="plot" data-title="{html.escape(title)}" width="{W}" height="{H}"><text x="{PAD}" y="40">no data</text></svg>'  # noqa: E501
    xs = [p[0] for p in points]
    x0, x1 = min(xs), max(xs)
    top = y_max if y_max is not None else max(max(p[1] for p in points) * 1.1, max(bands, default=0) * 1.2, 1e-9)

    def sx(x: float) -> float:
        return PAD + (W - PAD - RIGHT) * ((x - x0) / (x1 - x0) if x1 > x0 else 0.5)

    def sy(y: float) -> float:
        return H - PAD - (H - 2 * PAD) * min(max(y, 0.0), top) / top

    parts = [
        f'<svg class="plot" data-title="{html.escape(title)}" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img">',  # noqa: E501
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - RIGHT}" y2="{H - PAD}" stroke="#444"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>',
        f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end" font-size="10">{top:.3g}</text>',
        f'<text x="{PAD - 4}" y="{H - PAD}" text-anchor="end" font-size="10">0</text>',
        f'<text x="{PAD}" y="{H - PAD + 14}" font-size="10">{_fmt_time(x0)}</text>',
        f'<text x="{W - RIGHT}" y="{H - PAD + 14}" text-anchor="end" font-size="10">{_fmt_time(x1)}</text>',
    ]
    for b in bands:
        parts.append(
            f'<line x1="{PAD}" y1="{sy(b):.1f}" x2="{W - RIGHT}" y2="{sy(b):.1f}" stroke="#999" stroke-dasharray="4 3"/>'  # noqa: E501
        )
    for k, (name, s) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s if not math.isnan(y))
        parts.append(
            f'<polyline class="series" data-name="{html.escape(name)}" fill="none" stroke="{color}" stroke-width="1.5" points="{pts}"/>'  # noqa: E501
        )
        parts.append(
            f'<text x="{W - RIGHT + 6}" y="{PAD + 12 * k}" font-size="10" fill="{color}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bar_chart(title: str, reference: np.ndarray, now: np.ndarray) -> str:
    q = reference / reference.sum() if reference.sum() else reference
    p = now / now.sum() if now.sum() else now
    top = max(float(q.max(initial=0)), float(p.max(initial=0)), 1e-9) * 1.1
    n = q.size
    bw = (W - PAD - RIGHT) / max(n, 1)
    parts = [
        f'<svg class="plot" data-title="{html.escape(title)}" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img">',  # noqa: E501
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - RIGHT}" y2="{H - PAD}" stroke="#444"/>',
    ]
    for i in range(n):
        for j, (v, color) in enumerate(((q[i], "#1f77b4"), (p[i], "#d62728"))):
            h = (H - 2 * PAD) * v / top
            x = PAD + i * bw + j * bw / 2
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{H - PAD - h:.1f}" width="{bw / 2 - 1:.1f}" height="{h:.1f}" fill="{color}"/>'  # noqa: E501
            )
    parts.append(f'<text x="{W - RIGHT}" y="{PAD}" text-anchor="end" font-size="10" fill="#1f77b4">reference</text>')
    parts.append(
        f'<text x="{W - RIGHT}" y="{PAD + 12}" text-anchor="end" font-size="10" fill="#d62728">recent windows</text>'
    )
    parts.append(
        f'<text x="{PAD}" y="{H - PAD + 14}" font-size="10">bins: underflow, quantile bins, overflow, missing</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _fmt_time(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def render(
    data: dict[str, Any], *, title: str = "streamml monitoring report", thresholds: Thresholds | None = None
) -> str:
    """The HTML page for what :func:`gather` read."""
    t = thresholds or Thresholds()
    psi_series = data["psi"]
    features = {k: v for k, v in psi_series.items() if k not in data["scores"]}
    worst = sorted(features, key=lambda f: -max((y for _, y in features[f] if not math.isnan(y)), default=0))[:10]
    rows = []
    for f in sorted(features):
        last = features[f][-1][1] if features[f] else math.nan
        rows.append(f"<tr><td>{html.escape(f)}</td><td>{last:.4f}</td><td>{t.status(last)}</td></tr>")
    plots = [
        _line_chart(
            "PSI per feature over time (10 most drifted)",
            {f: features[f] for f in worst},
            bands=[t.moderate, t.significant],
        )
    ]
    for name, (ref, now) in data["scores"].items():
        plots.append(_bar_chart(f"score distribution: {name}, reference vs recent", ref, now))
    by_version = data.get("quality_by_version", {})
    if len(by_version) > 1:
        qs = {f"v{v} {name}": s for v, q in by_version.items() for name, s in quality_series(q).items()}
        q_title = "quality per model version, side by side, with label coverage"
    else:
        qs, q_title = quality_series(data["quality"]), "quality over time with label coverage"
    plots.append(_line_chart(q_title, qs, y_max=None if any("MAE" in k for k in qs) else 1.0))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;}} svg{{display:block;margin:1em 0;border:1px solid #ddd;}}
table{{border-collapse:collapse;}} td,th{{border:1px solid #ccc;padding:2px 8px;}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>windows: {len(data["quality"]) or len({w for s in psi_series.values() for w, _ in s})};
model versions: {", ".join(html.escape(v) for v in by_version) or "&ndash;"};
PSI status: &lt; {t.moderate} stable, {t.moderate}&ndash;{t.significant} moderate, &gt; {t.significant} significant.</p>
{"".join(plots)}
{version_table(by_version) if len(by_version) > 1 else ""}
<h2>latest PSI per feature</h2><table><tr><th>feature</th><th>PSI</th><th>status</th></tr>{"".join(rows)}</table>
<script>document.body.dataset.plots = String(document.querySelectorAll("svg.plot").length);</script>
</body></html>
"""


def write_report(
    store_uri: str, output: str | os.PathLike[str], *, model: str | None = None, since: int | None = None
) -> Path:
    """Read ``store_uri`` and write the report page to ``output``; returns its path."""
    with Store(store_uri) as store:
        data = gather(store, model=model, since=since)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data, title=f"streamml monitoring report{f': {model}' if model else ''}"))
    return out
