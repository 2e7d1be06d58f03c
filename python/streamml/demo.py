"""The main job on embedded defaults: score the bundled sample with the example binary.

Later issues grow this into the full streaming loop (Bytewax, drift, feedback,
store, report); for now it loads the S1 model binary, scores
``examples/data/r1_sample.csv`` in micro-batches and prints a summary.
"""

from __future__ import annotations

import time
from pathlib import Path

from streamml.model import Model
from streamml.testing import REPO_ROOT, example_model

DEFAULT_DATA = REPO_ROOT / "examples" / "data" / "r1_sample.csv"
OUT_DIR = REPO_ROOT / "out"


def run(model_path: str | None = None, data_path: str | None = None, batch_rows: int = 256) -> int:
    """Score a CSV file in micro-batches, write the predictions, print a summary."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as csv

    model = Model.load(model_path or example_model("s1_logistic"))
    data = Path(data_path) if data_path else DEFAULT_DATA
    table = csv.read_csv(data)
    print(f"model    {model.name} {model.version} ({model.info['framework']}), sha256 {model.sha256[:16]}…")
    print(f"data     {data} ({table.num_rows} rows, {table.num_columns} columns)")

    started = time.perf_counter()
    outputs = [model.predict(batch) for batch in table.to_batches(max_chunksize=batch_rows)]
    elapsed = time.perf_counter() - started
    predictions = pa.Table.from_batches(outputs, schema=model.output_schema)

    result = predictions
    if "event_id" in table.column_names:
        result = result.add_column(0, "event_id", table.column("event_id"))
    OUT_DIR.mkdir(exist_ok=True)
    out_path = OUT_DIR / "predictions.csv"
    csv.write_csv(result, out_path)

    print(
        f"scored   {predictions.num_rows} rows in {len(outputs)} batches of ≤{batch_rows} "
        f"in {elapsed * 1e3:.1f} ms ({predictions.num_rows / elapsed:,.0f} rows/s)"
    )
    if "probability" in predictions.column_names:
        prob = predictions.column("probability")
        print(
            f"score    mean {pc.mean(prob).as_py():.4f}, min {pc.min(prob).as_py():.4f}, max {pc.max(prob).as_py():.4f}"
        )
    if "label" in table.column_names and "label" in predictions.column_names:
        truth = table.column("label").cast(pa.int64())
        correct = pc.sum(pc.equal(truth, predictions.column("label"))).as_py()
        print(f"quality  accuracy {correct / predictions.num_rows:.4f} against the sample's labels")
    print(f"wrote    {out_path}")
    return 0
