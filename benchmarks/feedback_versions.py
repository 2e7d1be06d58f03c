"""``streamml feedback`` with one model version vs two: what the per-version joins cost.

The same events in every case (``--events`` of them, each labelled), read from a loopback broker by
the service in process (:func:`streamml.feedback_service.run`, SQLite store), rounds in rotated
order, median per case:

* ``1 version``: one prediction per event (version 1's headers) on one topic — the peer.
* ``1 version, 2x predictions``: twice the events' predictions (ids ``0..2n-1``) of one version,
  the same ``n`` labels: the second version's messages without its join (reading and storing
  twice the predictions).
* ``2 versions``: two predictions per event (versions 1 and 2) on one topic.
* ``2 versions, output + shadow``: what ``streamml score --challenger --shadow-topic`` writes —
  version 1 on the output topic, versions 1 and 2 on the shadow topic; the service reads both,
  and version 1's copies on the shadow topic are dropped as duplicates.

Measured: the CPU time of the process (all threads: the consumer, the join, the store writes) per
event, since wall time on the shared machine swings between rounds. Beside them, in process and
without a broker, the cost of one join alone (``FeedbackJoin.add_predictions`` and ``add_labels``
over the same events in the service's batches) and of the router's per-message work (the version
headers and the seen-id check): the second version should cost about one join plus its rows'
reading and storing, and the router little.

Run: ``.venv/bin/python benchmarks/feedback_versions.py [--quick]``. The broker:
``$STREAMML_KAFKA_BOOTSTRAP``, else ``scripts/kafka.sh start`` (``$STREAMML_KAFKA_PORT``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pyarrow as pa
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from harness import base_machine_info, format_value
from streamml.feedback import FeedbackJoin, Fields
from streamml.feedback_service import run
from streamml.feedback_versions import version_of
from streamml.kafka.dlq import model_headers
from streamml_dev.repo import kafka_bootstrap

PARTITIONS = 2
BATCH = 10_000
START_MS = 1_767_225_600_000  # 2026-01-01
TTL, WINDOW = 3_600_000, 300_000
FIELDS = Fields(id="id")
HEADERS = {"1": model_headers("fraud", "1"), "2": model_headers("fraud", "2")}


def score(version: str, i: int) -> float:
    return ((i * (3 if version == "1" else 7)) % 100) / 100


def prediction(version: str, i: int) -> bytes:
    return json.dumps({"id": i, "event_time": START_MS + i, "probability": score(version, i)}).encode()


def label(i: int) -> bytes:
    return json.dumps({"id": i, "label_time": START_MS + i + 1000, "label": i % 2}).encode()


def topic(admin: AdminClient, name: str) -> str:
    t = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(t, PARTITIONS, 1)]).values():
        f.result(30)
    return t


def fill(bootstrap: str, t: str, messages: list[tuple[bytes, list]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for value, headers in messages:
        while True:
            try:
                p.produce(t, value, headers=headers)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0


def topics(bootstrap: str, admin: AdminClient, n: int) -> dict[str, tuple[list[str], str]]:
    """Each case's predictions topics and the labels topic (shared: the same labels)."""
    one, double, two, out, shadow, labels = (
        topic(admin, k) for k in ("one", "double", "two", "out", "shadow", "labels")
    )
    fill(bootstrap, one, [(prediction("1", i), HEADERS["1"]) for i in range(n)])
    fill(bootstrap, double, [(prediction("1", i), HEADERS["1"]) for i in range(2 * n)])
    both = [(prediction(v, i), HEADERS[v]) for i in range(n) for v in ("1", "2")]
    fill(bootstrap, two, both)
    fill(bootstrap, out, [(prediction("1", i), HEADERS["1"]) for i in range(n)])
    fill(bootstrap, shadow, both)
    fill(bootstrap, labels, [(label(i), []) for i in range(n)])
    return {
        "1 version": ([one], labels),
        "1 version, 2x predictions": ([double], labels),
        "2 versions": ([two], labels),
        "2 versions, output + shadow": ([out, shadow], labels),
    }


def service_cpu(bootstrap: str, predictions: list[str], labels: str, n: int, rows: int) -> float:
    """CPU seconds of one run of the service over the topics, from a fresh group and store."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.process_time()
        stats = run(
            bootstrap, predictions, labels, str(Path(tmp) / "store.db"), group_id=f"bench-{uuid.uuid4().hex[:8]}",
            fields=FIELDS, ttl_ms=TTL, window_ms=WINDOW, batch_size=BATCH, idle_exit_s=1.0, checkpoint_s=5.0,
        )  # fmt: skip
        cpu = time.process_time() - t0
    assert (stats.predictions, stats.labels) == (rows * n, n), stats
    return cpu


def join_cpu(n: int) -> float:
    """CPU seconds of one join over n predictions and n labels, in the service's batches (no broker, no store)."""
    join = FeedbackJoin(ttl=TTL, window=WINDOW, fields=FIELDS, max_future_skew=None)
    ids = [str(i) for i in range(n)]
    t0 = time.process_time()
    for s in range(0, n, BATCH):
        rows = range(s, min(n, s + BATCH))
        join.add_predictions(pa.table({"id": ids[s : s + BATCH], "event_time": [START_MS + i for i in rows],
                                       "probability": [score("1", i) for i in rows]}))  # fmt: skip
    for s in range(0, n, BATCH):
        rows = range(s, min(n, s + BATCH))
        fb = join.add_labels(pa.table({"id": ids[s : s + BATCH], "label_time": [START_MS + i + 1000 for i in rows],
                                       "label": [float(i % 2) for i in rows]}))  # fmt: skip
        assert fb.num_rows == len(rows)
        join.quality_rows(join.take_touched())
    return time.process_time() - t0


def router_cpu(n: int) -> float:
    """CPU seconds of the router's per-message work for n messages: the version headers and the seen-id check."""
    headers = HEADERS["2"]
    ids = [str(i) for i in range(n)]
    join = FeedbackJoin(ttl=TTL, window=WINDOW)
    half = n // 2
    join.add_predictions({"event_id": ids[:half], "event_time": [START_MS] * half, "probability": [0.5] * half},
                         now=START_MS)  # fmt: skip
    t0 = time.process_time()
    for _ in range(n):
        version_of(headers, ("model", "0"))
    join.unseen(ids)
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10,000 events, 3 rounds")
    args = parser.parse_args()
    n, rounds = (10_000, 3) if args.quick else (args.events, args.rounds)
    bootstrap = kafka_bootstrap()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    cases = topics(bootstrap, admin, n)
    versions = {"1 version": 1, "1 version, 2x predictions": 2, "2 versions": 2, "2 versions, output + shadow": 2}
    names = list(cases)
    cpu: dict[str, list[float]] = {k: [] for k in names}
    joins, routers = [], []
    for r in range(rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            preds, labels = cases[k]
            cpu[k].append(service_cpu(bootstrap, preds, labels, n, versions[k]))
        joins.append(join_cpu(n))
        routers.append(router_cpu(n))
    for f in admin.delete_topics([t for preds, _ in cases.values() for t in preds] + [cases[names[0]][1]]).values():
        f.result(30)
    print(json.dumps(base_machine_info()))
    print(f"{n:,} events, each labelled; {rounds} rounds; median CPU seconds of the process per case\n")
    peer = statistics.median(cpu["1 version"])
    print("| case | CPU s | µs CPU per event | events per CPU s | vs 1 version |")
    print("|---|---:|---:|---:|---:|")
    for k in names:
        m = statistics.median(cpu[k])
        print(f"| {k} | {format_value(m)} | {format_value(m / n * 1e6)} | {format_value(n / m)} | "
              f"{m / peer:.2f}x |")  # fmt: skip
    one_join, router = statistics.median(joins), statistics.median(routers)
    extra = statistics.median(cpu["2 versions"]) - peer
    rows = statistics.median(cpu["1 version, 2x predictions"]) - peer
    print(f"\nthe second version's extra CPU: {format_value(extra)} s ({format_value(extra / n * 1e6)} µs per event); "
          f"of it, reading and storing its predictions (the 2x case): {format_value(rows)} s")  # fmt: skip
    print(f"one join alone (add_predictions + add_labels + quality rows, no broker/store): "
          f"{format_value(one_join)} s ({format_value(one_join / n * 1e6)} µs per event)")  # fmt: skip
    print(f"the router's per-message work (headers + seen ids) for {n:,} messages: {format_value(router)} s "
          f"({format_value(router / n * 1e6)} µs per message)")  # fmt: skip


if __name__ == "__main__":
    main()
