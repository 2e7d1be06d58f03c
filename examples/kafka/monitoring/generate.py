"""Generate the demo's transaction stream onto Kafka: predictions and (later) labels topics.

Usage: ``python generate.py --bootstrap HOST:PORT [--events N] [--out DIR]``

It compiles the demo's fraud model (``streamml.demo.train_and_compile``), generates the
transaction stream with drift halfway (``streamml.demo.stream_items``), scores every batch
with the model binary and produces one JSON message per prediction to
``streamml-predictions`` and one per label to ``streamml-labels``, in event-time order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from confluent_kafka import Producer

from streamml import Model
from streamml.demo import FEATURES, stream_items, train_and_compile


def main() -> None:
    """Produce the stream."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--out", default="out/kafka-monitoring")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = Model.load(train_and_compile(out))
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 20})
    items, facts = stream_items(args.events)
    for kind, table in items:
        if kind == "events":
            # Scored here rather than by `streamml score`: the feedback service needs each
            # prediction's event time, and the scorer's JSON output carries only the id field
            # and the model's outputs (carrying more input fields through is open work).
            scores = model.predict(table.select(FEATURES)).column("probability").to_pylist()
            for i, t, p in zip(table["event_id"].to_pylist(), table["event_time"].to_pylist(), scores, strict=True):
                producer.produce("streamml-predictions", json.dumps({"event_id": i, "event_time": t, "probability": p}))
        else:
            for row in table.to_pylist():
                producer.produce("streamml-labels", json.dumps(row))
        producer.poll(0)
    producer.flush(60)
    print(f"produced {facts['events']} predictions and {facts['labels']} labels")


if __name__ == "__main__":
    main()
