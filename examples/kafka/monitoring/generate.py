"""Generate the demo's transaction stream onto Kafka: raw events and (later) their labels.

Usage: ``python generate.py --bootstrap B --events-topic T --labels-topic T [--part P] [--events N] [--out DIR]``

It generates the transaction stream with drift halfway and labels after a random delay
(``streamml.demo.stream_items``; the same stream every time) and produces, in time order, one
JSON message per event (``event_id``, ``event_time`` and the model's features) to the events
topic and one per label (``event_id``, ``label_time``, ``label``) to the labels topic. Each
message's Kafka timestamp is its event (or label) time, so the scorer's drift windows are
windows of event time. Scoring is ``streamml score``'s job.

``--part events`` also compiles the demo's fraud model with its drift reference
(``streamml.demo.train_and_compile``: ``streamml compile --reference`` in Python) into
``DIR/fraud.so`` and writes what the stream holds to ``DIR/facts.json``; ``--part labels``
produces the labels only (they arrive later); ``--part both`` (the default) does both at once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from confluent_kafka import Producer

from streamml.demo import stream_items, train_and_compile


def main() -> None:
    """Compile the model, then produce the stream."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--events-topic", required=True)
    parser.add_argument("--labels-topic", required=True)
    parser.add_argument("--part", choices=["events", "labels", "both"], default="both")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--out", default="out/kafka-monitoring")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = train_and_compile(out) if args.part != "labels" else None
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 20, "enable.idempotence": True})
    items, facts = stream_items(args.events)
    for kind, table in items:
        if args.part not in (kind, "both"):
            continue
        topic, time_field = (args.events_topic, "event_time") if kind == "events" else (args.labels_topic, "label_time")
        for row in table.to_pylist():
            value = json.dumps(row, separators=(",", ":"))
            while True:
                try:
                    producer.produce(topic, value, timestamp=row[time_field])
                    break
                except BufferError:
                    producer.poll(0.1)  # the queue is full: let it drain
        producer.poll(0)
    if producer.flush(60):
        raise SystemExit(f"{len(producer)} message(s) not acknowledged after 60 s")
    if model_path is not None:
        (out / "facts.json").write_text(json.dumps({**facts, "model": str(model_path)}, indent=2))
        print(f"compiled {model_path}")
    produced = {"events": f"{facts['events']} events", "labels": f"{facts['labels']} labels"}
    print("produced " + " and ".join(v for k, v in produced.items() if args.part in (k, "both")))


if __name__ == "__main__":
    main()
