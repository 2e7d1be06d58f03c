"""The example's Kafka chores: create its topics, wait until a consumer group caught up, delete them.

Usage::

    python topics.py create --bootstrap B TOPIC...        # retention off: the events are dated 2026-01-01
    python topics.py wait --bootstrap B --group G [--pid P] TOPIC   # until G committed the end of TOPIC
    python topics.py delete --bootstrap B TOPIC...        # topics that do not exist are skipped

The generator stamps each event with its event time, so the scorer's drift windows are windows
of event time; a broker's default retention (7 days, 24 h on ``scripts/kafka.sh``'s broker)
would delete such old records, hence ``retention.ms=-1`` on the topics created here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create(admin: AdminClient, topics: list[str], partitions: int) -> None:
    """Create ``topics`` (``partitions`` each, retention off) and wait until their metadata shows."""
    new = [NewTopic(t, partitions, 1, config={"retention.ms": "-1"}) for t in topics]
    for topic, future in admin.create_topics(new).items():
        try:
            future.result(30)
        except KafkaException as e:
            msg = f"cannot create topic '{topic}': {e.args[0]}"
            raise SystemExit(msg) from e
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=10).topics
        if all(t in meta and len(meta[t].partitions) == partitions for t in topics):
            return
        time.sleep(0.1)
    msg = f"topics {topics} were created but their metadata did not show within 30 s"
    raise SystemExit(msg)


def behind(bootstrap: str, group: str, topic: str) -> int:
    """How many records of ``topic`` the group has not committed yet (-1 while the broker cannot say)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = c.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in partitions]
        committed = {tp.partition: max(tp.offset, 0) for tp in c.committed(tps, timeout=10)}
        return sum(c.get_watermark_offsets(tp, timeout=10)[1] - committed[tp.partition] for tp in tps)
    except KafkaException:
        return -1
    finally:
        c.close()


def wait(bootstrap: str, group: str, topic: str, timeout: float, pid: int | None = None) -> None:
    """Return once ``group`` has committed every record of ``topic``.

    Exits with an error after ``timeout`` seconds (0: look once), or as soon as process ``pid``
    (the consumer) is gone.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = behind(bootstrap, group, topic)
        if left == 0:
            return
        if time.monotonic() >= deadline:
            break
        if pid is not None and not alive(pid):
            msg = f"process {pid} (group '{group}') exited with {left} record(s) of topic '{topic}' not committed"
            raise SystemExit(msg)
        time.sleep(0.5)
    msg = f"group '{group}' has not committed the end of topic '{topic}' after {timeout:.0f} s ({left} behind)"
    raise SystemExit(msg)


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def main() -> None:
    """Run one chore."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chore", choices=["create", "wait", "delete"])
    parser.add_argument("topics", nargs="+")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--group", help="wait: the consumer group")
    parser.add_argument("--timeout", type=float, default=300.0, help="wait: seconds (default 300)")
    parser.add_argument("--pid", type=int, help="wait: give up as soon as this process (the consumer) is gone")
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    if args.chore == "create":
        create(admin, args.topics, args.partitions)
    elif args.chore == "wait":
        if not args.group or len(args.topics) != 1:
            sys.exit("wait needs --group and one topic")
        wait(args.bootstrap, args.group, args.topics[0], args.timeout, args.pid)
    else:
        existing = admin.list_topics(timeout=10).topics
        gone = [t for t in args.topics if t in existing]
        for future in (admin.delete_topics(gone, operation_timeout=30) if gone else {}).values():
            future.result(30)


if __name__ == "__main__":
    main()
