"""Use an installed streamml wheel as a user would, outside the checkout (run by scripts/check_wheel.sh).

Runs in a virtualenv that has the wheel with ``[all]``, from an empty directory. Each check prints
one line; any failure raises (exit 1).

    python check_wheel.py BOOTSTRAP   # the Kafka broker for `streamml score`
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier

ROWS = 2_000
MESSAGES = 20


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        msg = f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        raise SystemExit(msg)
    return done


def check_installed_outside_the_checkout() -> None:
    import streamml

    where = Path(streamml.__file__).resolve()
    assert "site-packages" in where.parts, f"streamml imported from {where}, not from the installed wheel"
    print(f"ok  streamml {streamml.__version__} imported from {where.parent}")


def check_compile_joblib_random_forest() -> tuple[Path, list[str], np.ndarray]:
    from streamml import Model

    rng = np.random.default_rng(7)
    x = rng.normal(size=(ROWS, 6))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(x, y)
    joblib.dump(forest, "forest.joblib")
    names = [f"f{i}" for i in range(6)]
    run("streamml", "compile", "forest.joblib", "-o", "forest.so", "--name", "forest", "--features", ",".join(names))
    model = Model.load("forest.so")
    got = model.predict_numpy(x)["probability"]
    want = forest.predict_proba(x)[:, 1]
    np.testing.assert_array_equal(got, want, err_msg="the compiled forest differs from predict_proba")
    # For the aarch64 check (check_wheel.sh): the rows, and this machine's scores as C prints them.
    x[:200].astype("<f8").tofile("rows.f64")
    Path("expected.txt").write_text("".join(f"{v:.17g}\n" for v in got[:200]))
    print(f"ok  streamml compile forest.joblib: {ROWS} rows equal to scikit-learn's predict_proba")
    return Path("forest.so").resolve(), names, x


def check_bytewax_imports() -> None:
    import streamml.bytewax

    assert callable(streamml.bytewax.predict)
    print("ok  import streamml.bytewax")


def check_score_on_kafka(bootstrap: str, model_path: Path, names: list[str], x: np.ndarray) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from streamml import Model

    tag = uuid.uuid4().hex[:10]
    topics = {k: f"streamml-wheel-{k}-{tag}" for k in ("in", "out", "dlq")}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
        future.result(30)
    scorer = subprocess.Popen(
        [
            "streamml", "score", "--model", str(model_path), "--bootstrap-servers", bootstrap,
            "--input-topic", topics["in"], "--output-topic", topics["out"], "--dlq-topic", topics["dlq"],
            "--id-field", "id", "--group-id", f"wheel-{tag}", "--max-wait-ms", "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        producer = Producer({"bootstrap.servers": bootstrap})
        rows = [{"id": i, **dict(zip(names, map(float, x[i]), strict=True))} for i in range(MESSAGES)]
        for row in rows:
            producer.produce(topics["in"], json.dumps(row).encode())
        assert producer.flush(30) == 0, "messages not delivered"
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"check-{tag}", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([topics["out"]])
        got: dict[int, dict] = {}
        deadline = time.monotonic() + 120
        while len(got) < MESSAGES and time.monotonic() < deadline and scorer.poll() is None:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                out = json.loads(message.value())
                got[out["id"]] = out
        consumer.close()
        assert len(got) == MESSAGES, f"{len(got)} of {MESSAGES} predictions came back"
        want = Model.load(model_path).predict_numpy(x[:MESSAGES])["probability"]
        assert [got[i]["probability"] for i in range(MESSAGES)] == want.tolist(), "scores differ from predict"
    finally:
        scorer.terminate()
        log, _ = scorer.communicate(timeout=60)
        admin.delete_topics(list(topics.values()))
    assert scorer.returncode == 0, f"streamml score exited {scorer.returncode}:\n{log}"
    print(f"ok  streamml score: {MESSAGES} messages scored through Kafka, equal to Model.predict")


def check_demo_writes_under_cwd() -> None:
    here = Path.cwd() / "demo-cwd"
    here.mkdir()
    run("streamml", "demo", "--events", "3000", cwd=here)
    out = here / "streamml-demo"
    for name in ("fraud/1.so", "fraud/2.so", "fraud/champion", "fraud/challenger", "monitoring.db", "report.html"):
        assert (out / name).is_file(), f"streamml demo did not write {out / name}"
    print(f"ok  streamml demo wrote {sorted(p.name for p in out.iterdir())} under {out}")


def main() -> None:
    assert not any(Path.cwd().iterdir()), "run from an empty directory"
    check_installed_outside_the_checkout()
    path, names, x = check_compile_joblib_random_forest()
    check_bytewax_imports()
    check_score_on_kafka(sys.argv[1], path, names, x)
    check_demo_writes_under_cwd()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
