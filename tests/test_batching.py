"""The micro-batching rule: the shared table of cases (JUnit's MicroBatcherTest runs the same file)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from streamml.batching import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_WAIT, BatchPolicy, MicroBatcher
from streamml_dev.repo import REPO_ROOT

TABLE = json.loads((REPO_ROOT / "tests" / "fixtures" / "batching.json").read_text())


def ns(ms: float) -> int:
    """Milliseconds of the table in nanoseconds (as the JUnit test converts them)."""
    return round(ms * 1_000_000)


def test_the_defaults_are_the_table_s() -> None:
    assert TABLE["defaults"]["max_batch_rows"] == DEFAULT_MAX_BATCH_ROWS
    assert timedelta(milliseconds=TABLE["defaults"]["max_wait_ms"]) == DEFAULT_MAX_WAIT
    assert BatchPolicy() == BatchPolicy(DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_WAIT)


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["name"] for c in TABLE["cases"]])
def test_case(case: dict[str, Any]) -> None:
    policy = BatchPolicy(case["max_batch_rows"], timedelta(milliseconds=case["max_wait_ms"]))
    resume = case.get("resume")
    b = MicroBatcher(policy, resume["pending"], ns(resume["first_ms"])) if resume is not None else MicroBatcher(policy)
    for i, event in enumerate(case["events"]):
        where = f"event {i} {event}"
        now = ns(event.get("at_ms", 0))
        op = event["op"]
        if op == "add":
            got: Any = b.add(event["rows"], now)
        elif op == "poll":
            got = b.poll(now)
        elif op == "flush":
            got = b.flush()
        elif op == "due_in":
            due = b.due_in(now)
            got = None if due is None else due / 1_000_000
        elif op == "is_due":
            got = b.is_due(now)
        else:
            pytest.fail(f"{where}: unknown op {op!r}; expected add, poll, flush, due_in or is_due")
        assert got == event["expect"], where
        if "pending" in event:
            assert b.pending == event["pending"], where
        if "deadline_ms" in event:
            deadline = b.deadline()
            assert (None if deadline is None else deadline / 1_000_000) == event["deadline_ms"], where


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^max_batch_rows must be an integer of at least 1, got 0$"):
        BatchPolicy(max_batch_rows=0)
    with pytest.raises(ValueError, match=r"^max_batch_rows must be an integer of at least 1, got True$"):
        BatchPolicy(max_batch_rows=True)
    with pytest.raises(TypeError, match=r"^max_wait must be a datetime\.timedelta, got a float$"):
        BatchPolicy(max_wait=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^max_wait must not be negative, got -1 day, 23:59:59\.999000$"):
        BatchPolicy(max_wait=timedelta(milliseconds=-1))
    with pytest.raises(ValueError, match=r"^resuming 2 pending row\(s\) needs the oldest's arrival"):
        MicroBatcher(BatchPolicy(), pending=2)
