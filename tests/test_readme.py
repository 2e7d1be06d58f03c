"""The READMEs' Python examples run as written, from the repository root (after ``make setup``)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from streamml import Model
from streamml_dev.repo import REPO_ROOT, example_model


def python_blocks(path: Path) -> list[str]:
    """The fenced ```python blocks of a Markdown file, in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in path.read_text().splitlines():
        if current is None and line.strip() == "```python":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, f"{path}: a ```python block is not closed"
    return blocks


def test_every_readme_python_block_is_run_by_a_test() -> None:
    # A new example must be run below (or by the Kafka test that runs examples/kafka's).
    found = {
        str(p.relative_to(REPO_ROOT)): len(python_blocks(p))
        for p in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "examples").rglob("README.md"))]
    }
    assert {k: v for k, v in found.items() if v} == {"README.md": 3, "examples/kafka/README.md": 1}


def test_the_readme_examples_run_in_order(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Use it → NumPy in, NumPy out → Bytewax: one session, as a reader would paste them."""
    blocks = python_blocks(REPO_ROOT / "README.md")
    monkeypatch.chdir(REPO_ROOT)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
    s1 = Model.load(example_model("s1_logistic"))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"{s1.info['name']} {s1.sha256}"
    assert printed[1:3] == ["x0: double not null", "x1: double not null"]
    assert printed[-1] == "3 0 True"

    batch = namespace["batch"]
    assert namespace["table"].equals(pa.Table.from_batches([s1.predict(batch)]))
    assert namespace["rows"].to_pylist() == s1.predict(pa.record_batch({f"x{i}": [0.0] for i in range(32)})).to_pylist()
    zeros = s1.predict(pa.record_batch({f"x{i}": [0.0, 0.0] for i in range(32)}))
    out = namespace["out"]  # the NumPy block's (it follows the RecordBatch one)
    assert (out["probability"].tolist(), out["label"].tolist()) == (
        zeros.column("probability").to_pylist(),
        zeros.column("label").to_pylist(),
    )
    assert namespace["one"]["probability"].tolist() == zeros.column("probability").to_pylist()[:1]
    event = {f"x{i}": 0.1 * i for i in range(32)}
    want = {**event, **s1.predict([event]).to_pylist()[0]}
    assert namespace["oks"] == namespace["mapped"] == [want] * 3
    assert namespace["errs"] == []


@pytest.mark.kafka
def test_the_kafka_readme_example_scores_a_topic_until_sigterm(kafka_bootstrap: str, tmp_path: Path) -> None:
    """examples/kafka/README.md's "From Python", with the test's broker and uuid topics put in."""
    from kafka_support import consume, feature_rows, json_values, kafka_topics, produce

    (block,) = python_blocks(REPO_ROOT / "examples" / "kafka" / "README.md")
    placeholders = ('"127.0.0.1:19092"', '"events"', '"predictions"')
    assert all(p in block for p in placeholders), block
    x = feature_rows(40, seed=11)
    s1 = Model.load(example_model("s1_logistic"))
    want = s1.predict(pa.record_batch({f"x{i}": x[:, i] for i in range(32)})).column("probability").to_pylist()
    log = tmp_path / "scorer.log"
    with kafka_topics(kafka_bootstrap, ["events", "predictions"]) as (events, predictions):
        code = block
        for placeholder, value in zip(placeholders, (kafka_bootstrap, events, predictions), strict=True):
            code = code.replace(placeholder, repr(value))
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            produce(kafka_bootstrap, events, json_values(x), [None] * len(x))
            records = consume(kafka_bootstrap, predictions, at_least=len(x))
            assert proc.poll() is None, log.read_text()
            proc.send_signal(signal.SIGTERM)
            code_at_exit = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code_at_exit == 0, log.read_text()
    got = {json.loads(r.value)["id"]: json.loads(r.value)["probability"] for r in records}
    assert got == dict(enumerate(want))
    assert len(records) == len(x), "exactly once"
