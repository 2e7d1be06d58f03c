"""The ``streamml`` command line.

``streamml inspect MODEL``  show a model binary's info, schemas and SHA-256.
``streamml compile MODEL -o OUT``  compile a trained model into a model binary.
``streamml demo``           the main job on embedded defaults (see README).
``streamml score --model M --bootstrap-servers B --input-topic IN --output-topic OUT``
                           score a Kafka topic into another (see examples/kafka/README.md).
``streamml report --store URI -o report.html``  the monitoring report of a store.
``streamml feedback --bootstrap-servers B --predictions-topic T --labels-topic T --store URI``
                           join labels with every model version's predictions into the store (the same
                           client, DLQ and store options as score).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from streamml._extras import missing_extra, require
from streamml.batching import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_WAIT
from streamml.compile import TARGETS
from streamml.errors import StreammlError
from streamml.model import Model


def _trust(path: str | None) -> Path | None:
    return Path(path) if path else None


def _inspect(args: argparse.Namespace) -> int:
    from streamml import _streamml
    from streamml.errors import ModelLoadError

    # A compiled binary's info is read from its footer: none of its code runs.
    found = _streamml.Model.inspect_compiled(args.model, args.sha256)
    if found is not None:
        info_json, sha256 = found
        info, path, how = json.loads(info_json), args.model, "read from the compiled footer; no code ran"
    elif not args.run_binary:
        msg = (
            f"cannot inspect model binary '{args.model}' without running it: it is not a compiled "
            "binary (no streamml footer), so only its own code can give its info; "
            "pass --run to load it (this runs its native code; add --trusted-models FILE to restrict which)"
        )
        raise ModelLoadError(msg)
    else:
        model = Model.load(args.model, sha256=args.sha256, trusted_sha256=_trust(args.trusted_models))
        info, path, sha256, how = model.info, model.path, model.sha256, "from the loaded binary's code"
    if args.json:
        print(json.dumps({**info, "sha256": sha256, "path": path}, indent=2))
        return 0
    print(f"model      {info['name']} {info['version']}")
    print(f"file       {path}")
    print(f"sha256     {sha256}")
    print(f"info       {how}")
    print(f"task       {info['task']}")
    print(f"framework  {info['framework']}")
    print(f"abi        v{info['abi_version']}")
    for title, fields in (("inputs", info["inputs"]), ("outputs", info["outputs"])):
        print(f"{title} ({len(fields)})")
        for f in fields:
            null = "nullable" if f.get("nullable") else "not null"
            print(f"  {f['name']:<24} {f['type']:<12} {null}")
    drift = "yes" if info.get("drift_reference") else "none"
    print(f"drift reference  {drift}")
    for key, value in sorted(info.get("metadata", {}).items()):
        if key == "preprocess" and isinstance(value, list):  # one line per step: path: type (in -> out columns)
            print(f"preprocess ({len(value)} steps)")
            for step in value:
                print(f"  {step}")
            continue
        print(f"meta {key}: {value}")
    return 0


def _load_trusted(path: str) -> Any:
    """A model object from a pickle or joblib file (both run code while loading)."""
    if path.endswith(".joblib"):
        joblib = require("joblib", f"streamml compile {path}")
        return joblib.load(path)
    with open(path, "rb") as f:
        return pickle.load(f)


def _compile(args: argparse.Namespace) -> int:
    import time

    from streamml.compile import compile as compile_model
    from streamml.compile import host_target, sha256

    model: Any = args.model
    if args.model.endswith((".pkl", ".pickle", ".joblib")):
        model = _load_trusted(args.model)
    features = [f.strip() for f in args.features.split(",")] if args.features else None
    started = time.perf_counter()
    path = compile_model(
        model,
        args.output,
        name=args.name,
        version=args.version,
        features=features,
        reference=args.reference,
        target=args.target,
    )
    print(f"compiled {args.model} -> {path} in {time.perf_counter() - started:.2f} s")
    if args.target not in (None, host_target()):
        print(f"target   {args.target} (not loaded here: this machine is {host_target()})")
        print(f"sha256   {sha256(path)}")
        return 0
    loaded = Model.load(path)
    meta = loaded.info.get("metadata", {})
    print(
        f"model    {loaded.name} {loaded.version} ({loaded.info['framework']}, {loaded.info['task']}), "
        f"{len(loaded.input_schema)} features, {meta.get('trees', 0)} trees, max depth {meta.get('max_depth', 0)}"
    )
    print(f"sha256   {loaded.sha256}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from streamml.demo import run

    return run(events=args.events, out_dir=args.out, store_uri=args.store)


def _report(args: argparse.Namespace) -> int:
    from streamml.report import write_report

    since = None
    if args.since:
        from datetime import UTC, datetime

        when = datetime.fromisoformat(args.since)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        since = int(when.timestamp() * 1000)
    path = write_report(args.store, args.output, model=args.model, since=since)
    print(f"wrote {path}")
    return 0


def _score(args: argparse.Namespace) -> int:
    import faulthandler
    import gc
    import logging
    import signal

    require("confluent_kafka", "streamml score")
    if args.metrics_port is not None:
        require("prometheus_client", "streamml score --metrics-port")
    from streamml.kafka import KafkaScorerError, ScoringLoop, parse_properties

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints every thread's stack

    from streamml.lifecycle import loaded_once

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    trusted = _trust(args.trusted_models)
    fixed = loaded_once(args.model, args.reload_interval)
    # A binary's path is loaded once, as before; a reference is held in a slot that re-resolves it.
    model = Model.load(args.model, sha256=args.sha256, trusted_sha256=trusted) if fixed else args.model
    scorer = ScoringLoop(
        model,
        args.bootstrap_servers,
        args.input_topic,
        args.output_topic,
        group_id=args.group_id,
        format=args.format,
        id_field=args.id_field,
        carry_fields=args.carry_field,
        max_batch_rows=args.max_batch_rows,
        max_wait_ms=args.max_wait_ms,
        guarantee=args.guarantee,
        dlq_topic=args.dlq_topic,
        metrics_port=args.metrics_port,
        transactional_id=args.transactional_id,
        config=parse_properties(args.X),
        drift=not args.no_drift,
        drift_window_s=args.window_s,
        store=args.store,
        store_predictions=args.store_predictions,
        score_field=args.score_field,
        watchdog=True,
        store_retry_s=args.store_retry_s,
        missing_fields=args.missing_fields,
        commit_interval_ms=args.commit_interval_ms,
        max_in_flight_rows=args.max_in_flight_rows,
        reload_interval=args.reload_interval,
        challengers=args.challenger,
        canary=args.canary,
        shadow_topic=args.shadow_topic,
        trusted_sha256=trusted,
        sha256=None if fixed else args.sha256,
    )
    scorer.install_signal_handlers()
    # Never rescan what start-up made (docs/performance.md, issue 29). Raising the collection
    # thresholds as well saved 0.1 us an event but let RSS climb 76 MB over 10M messages.
    gc.freeze()
    try:
        scorer.run()
    except KafkaScorerError as e:  # stopped without committing the unfinished work (logged)
        print(f"streamml score: error: {e}", file=sys.stderr)
        return 1
    return 0


def _add_score_parser(sub: Any) -> None:
    from streamml.kafka.delivery import DEFAULT_COMMIT_INTERVAL_MS, DEFAULT_MAX_IN_FLIGHT_ROWS

    score = sub.add_parser("score", help="score a Kafka topic into another (micro-batches, exactly-once, DLQ)")
    score.add_argument(
        "--model",
        required=True,
        help="the model: a binary's path, a model directory (its champion alias), DIR@ALIAS, models:/NAME@ALIAS "
        "or models:/NAME/VERSION; a reference is re-resolved and a new version swapped in between batches "
        "(docs/lifecycle.md)",
    )
    score.add_argument(
        "--reload-interval",
        type=float,
        metavar="SECONDS",
        help="re-resolve the model references this often (default 30 for a directory or models:/ reference; "
        "a binary's path stays fixed unless this is given)",
    )
    score.add_argument(
        "--challenger",
        action="append",
        default=[],
        metavar="REF",
        help="also score every batch with this model reference (shadow; repeatable): only --model's outputs are "
        "published; every version's predictions go to --store and --shadow-topic",
    )
    score.add_argument(
        "--canary",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="serve this fraction of events (by a hash of --id-field) from the first challenger; each output's "
        "header streamml.served_by says canary or champion",
    )
    score.add_argument("--shadow-topic", help="with --challenger: every version's outputs also go to this topic")
    score.add_argument(
        "--sha256", help="refuse the model unless its SHA-256 is this (a reference: every version it resolves to)"
    )
    score.add_argument(
        "--trusted-models", metavar="FILE", help="load only binaries whose SHA-256 is listed in FILE (one per line)"
    )
    score.add_argument("--bootstrap-servers", required=True, help="Kafka brokers, host:port[,host:port...]")
    score.add_argument("--input-topic", required=True, help="the topic to score")
    score.add_argument("--output-topic", required=True, help="where the predictions go")
    score.add_argument("--group-id", default="streamml-score", help="consumer group (default streamml-score)")
    score.add_argument("--format", choices=["json", "arrow"], default="json", help="message format (default json)")
    score.add_argument("--id-field", help="input field copied into each output (e.g. an event id)")
    score.add_argument(
        "--carry-field",
        action="append",
        default=[],
        metavar="NAME",
        help="another input field copied into each output, after the id (null where missing; repeatable)",
    )
    score.add_argument(
        "--missing-fields",
        choices=["error", "null"],
        default="error",
        help="an input field absent from a message: dead-letter it (error, default) or read it as null",
    )
    score.add_argument(
        "--max-batch-rows",
        type=int,
        default=DEFAULT_MAX_BATCH_ROWS,
        help=f"score a batch at this size (default {DEFAULT_MAX_BATCH_ROWS}, as every host)",
    )
    score.add_argument(
        "--max-wait-ms",
        type=float,
        default=DEFAULT_MAX_WAIT / timedelta(milliseconds=1),
        help="score a batch when its oldest message waited this long; 0: each poll's messages at once "
        f"(default {DEFAULT_MAX_WAIT / timedelta(milliseconds=1):g}, as every host)",
    )
    score.add_argument(
        "--guarantee", choices=["at-least-once", "exactly-once"], default="at-least-once", help="delivery guarantee"
    )
    score.add_argument("--dlq-topic", help="dead-letter topic (default <input-topic>.dlq)")
    score.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    score.add_argument("--transactional-id", help="exactly-once: the producer's transactional id (stable per scorer)")
    score.add_argument(
        "--commit-interval-ms",
        type=float,
        default=DEFAULT_COMMIT_INTERVAL_MS,
        help="commit acknowledged offsets (at-least-once) or the transaction spanning batches (exactly-once) "
        f"this often (default {DEFAULT_COMMIT_INTERVAL_MS:g}, as Kafka Streams' commit.interval.ms)",
    )
    score.add_argument(
        "--max-in-flight-rows",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT_ROWS,
        help="at-least-once: consumed rows produced but not committed yet, at most; what a crash may score "
        f"again; exactly-once: a transaction holding this many commits early (default {DEFAULT_MAX_IN_FLIGHT_ROWS})",
    )
    score.add_argument(
        "--store",
        help="store URI for drift counts per window (sqlite:///f.db, postgresql://..., duckdb:...); with "
        "--challenger, every version's predictions too",
    )
    score.add_argument(
        "--store-predictions",
        action="store_true",
        help="also write each prediction to the store's predictions table (needs --store and --id-field)",
    )
    score.add_argument("--score-field", help="the output stored as the prediction's score (default: the first)")
    score.add_argument(
        "--store-retry-s",
        type=float,
        default=30.0,
        help="with --store-predictions, retry a store that fails this long, then stop without committing (default 30)",
    )
    score.add_argument(
        "--window-s",
        type=float,
        default=60.0,
        help="the store's window in seconds: drift counts and predictions' window_start (default 60)",
    )
    _renamed(score, "--drift-window-s", "--window-s", type=float)
    score.add_argument(
        "--no-drift", action="store_true", help="keep no drift counters (default: on if the model has a reference)"
    )
    _add_client_properties(score)
    score.set_defaults(run=_score)


def _add_client_properties(parser: argparse.ArgumentParser) -> None:
    """``-X``: librdkafka properties of every client of a Kafka command (TLS, SASL, tuning)."""
    parser.add_argument(
        "-X",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka property for both clients; prefix consumer. or producer. for one (repeatable)",
    )


class _OldSpelling(argparse.Action):
    """An option's old spelling, kept for one release: it sets the new option and says so on stderr."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the next release; "
            f"use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _renamed(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """Accept ``old`` (hidden from the help) as a deprecated spelling of ``new``."""
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(old, dest=dest, action=_OldSpelling, new=new, help=argparse.SUPPRESS, **kwargs)


def _one_topic(value: str) -> list[str]:
    """The old ``--predictions T`` as the list the repeatable ``--predictions-topic`` makes."""
    return [value]


def _require(parser: argparse.ArgumentParser, args: argparse.Namespace, *flags: str) -> None:
    """``flags`` are required (checked after parsing, so that their old spellings count)."""
    missing = [f for f in flags if getattr(args, f.lstrip("-").replace("-", "_")) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


def _feedback(args: argparse.Namespace) -> int:
    require("confluent_kafka", "streamml feedback")
    from streamml.feedback import Fields
    from streamml.feedback_service import run
    from streamml.kafka import parse_properties

    name, version = _feedback_model(args)
    fields = Fields(id=args.id_field, event_time=args.time_field, score=args.score_field)
    skew, jump = args.max_future_skew_s, args.max_watermark_jump_s
    stats = run(
        args.bootstrap_servers, args.predictions_topic, args.labels_topic, args.store, group_id=args.group_id,
        fields=fields, ttl_ms=int(args.ttl_s * 1000), window_ms=int(args.window_s * 1000), model=name,
        model_version=version, dlq_topic=args.dlq_topic, config=parse_properties(args.X), idle_exit_s=args.idle_exit_s,
        max_future_skew_ms=None if skew < 0 else int(skew * 1000),
        max_watermark_jump_ms=None if jump is None else int(jump * 1000),
        store_retry_s=args.store_retry_s,
    )  # fmt: skip
    print(f"predictions {stats.predictions}, labels {stats.labels}, feedback {stats.feedback}, "
          f"duplicate predictions {stats.duplicates}, "
          f"dead letters {stats.dead_letters} (future-stamped {stats.refused})")  # fmt: skip
    return 0


def _feedback_model(args: argparse.Namespace) -> tuple[str, str]:
    """The model name and version written with every row: ``--model-name``/``--model-version``, else the binary's."""
    name, version = args.model_name, args.model_version
    if args.model is not None and not Path(args.model).is_file() and name is None:
        # The old meaning of --model (a name), kept for one release.
        print(
            f"streamml feedback: warning: --model {args.model}: no such file, read as a model name; "
            "--model NAME is deprecated and will be removed in the next release; use --model-name",
            file=sys.stderr,
        )
        name = args.model
    elif args.model is not None:
        from streamml import _streamml
        from streamml.errors import ModelLoadError

        found = _streamml.Model.inspect_compiled(args.model, None)
        if found is None:
            msg = (
                f"--model {args.model}: not a compiled model binary (no streamml footer), so its name and version "
                "cannot be read without running it; give them with --model-name and --model-version"
            )
            raise ModelLoadError(msg)
        info = json.loads(found[0])
        name, version = name or info["name"], version or info["version"]
    return name or "model", version or "0"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``streamml``."""
    parser = argparse.ArgumentParser(prog="streamml", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    inspect = sub.add_parser("inspect", help="show a model binary's info, schemas and sha256")
    inspect.add_argument("model", help="path to the model binary")
    inspect.add_argument("--json", action="store_true", help="print the info document as JSON")
    inspect.add_argument("--sha256", help="refuse the file unless its SHA-256 is this")
    inspect.add_argument(
        "--run",
        dest="run_binary",
        action="store_true",
        help="for a binary that is not compiled by streamml: load it (runs its code) to read its info",
    )
    inspect.add_argument(
        "--trusted-models", metavar="FILE", help="with --run: load only binaries whose SHA-256 is listed in FILE"
    )
    inspect.set_defaults(run=_inspect)

    comp = sub.add_parser(
        "compile",
        help="compile a trained model into a model binary",
        description="Compile a trained model into a model binary. Pickle (.pkl, .pickle) and joblib (.joblib) "
        "files run code when they are loaded: compile only files you trust.",
    )
    comp.add_argument(
        "model",
        help="LightGBM text/JSON, XGBoost .json/.ubj, or a model saved with pickle (.pkl) or joblib.dump (.joblib); "
        "pickle and joblib files RUN CODE when loaded: only files you trust",
    )
    comp.add_argument("-o", "--output", required=True, help="the model binary to write")
    comp.add_argument("--name", help="the model's name")
    comp.add_argument("--version", help="the model's version")
    comp.add_argument("--features", help="comma-separated input names, in the model's feature order")
    comp.add_argument("--reference", help="Parquet/CSV/Arrow file whose distribution is frozen as the drift reference")
    comp.add_argument(
        "--target",
        choices=TARGETS,
        help="the platform the binary runs on (default: this machine); a wheel carries linux-x86_64 and linux-aarch64",
    )
    comp.set_defaults(run=_compile)

    demo = sub.add_parser("demo", help="the main job: the embedded monitoring loop, ending with the report")
    demo.add_argument("--events", type=int, default=30_000, help="events to generate (default 30000)")
    demo.add_argument("--out", help="output directory (default: ./streamml-demo under the current directory)")
    demo.add_argument("--store", help="store URI (default: OUT/monitoring.db, SQLite)")
    demo.set_defaults(run=_demo)
    _add_score_parser(sub)

    report = sub.add_parser("report", help="write the monitoring report (one self-contained HTML page)")
    report.add_argument("--store", required=True, help="store URI: a SQLite path, postgresql://..., duckdb:///...")
    report.add_argument("--model", help="only this model")
    report.add_argument("--since", help="only windows from this ISO time on (UTC unless it says)")
    report.add_argument("-o", "--output", default="report.html", help="the page to write (default report.html)")
    report.set_defaults(run=_report)

    fb = sub.add_parser(
        "feedback",
        help="join predictions topics with a labels topic into the store, per model version",
        description="Join the predictions of every model version with the labels into the store. A prediction's "
        "version is the one its headers name (streamml.model, streamml.model.version: what streamml score "
        "writes); one without them is --model's (or --model-name/--model-version). Each version has its own "
        "join; every label goes to every version that still waits for labels. Give --predictions-topic twice "
        "to read score's output topic and its --shadow-topic: a (version, event) prediction read twice "
        "counts once.",
    )
    fb.add_argument("--bootstrap-servers", help="Kafka brokers, host:port[,host:port...] (required)")
    fb.add_argument(
        "--predictions-topic", action="append",
        help="a predictions topic (JSON: id, event time, score; version headers), repeatable, e.g. score's "
        "output topic and its shadow topic (required)",
    )  # fmt: skip
    fb.add_argument("--labels-topic", help="the labels topic (JSON: id, label_time, label) (required)")
    fb.add_argument("--store", required=True, help="store URI: a SQLite path, postgresql://..., duckdb:///...")
    fb.add_argument("--group-id", default="streamml-feedback", help="consumer group (default streamml-feedback)")
    fb.add_argument("--id-field", default="event_id", help="the event id field (default event_id)")
    fb.add_argument("--time-field", default="event_time", help="the prediction's event time, ms (default event_time)")
    fb.add_argument("--score-field", default="probability", help="the score field (default probability)")
    fb.add_argument("--ttl-s", type=float, default=3600.0, help="seconds a prediction waits for its label (3600)")
    fb.add_argument(
        "--window-s", type=float, default=300.0,
        help="the store's window in seconds: quality and predictions' window_start (default 300)",
    )  # fmt: skip
    fb.add_argument("--model", help="the model binary whose name and version a prediction without version headers has")
    fb.add_argument(
        "--model-name", help="the model name of a prediction without version headers (default: --model's, else model)"
    )
    fb.add_argument(
        "--model-version", help="the version of a prediction without version headers (default: --model's, else 0)"
    )
    fb.add_argument("--dlq-topic", help="dead-letter topic for messages that cannot be read (default: none, counted)")
    fb.add_argument("--idle-exit-s", type=float, help="stop after this many idle seconds (default: run until ^C)")
    fb.add_argument(
        "--max-future-skew-s", type=float, default=3600.0,
        help="seconds an event time may be ahead of the wall clock; later ones are dead-lettered (default 3600; "
        "-1: no cap, for times that are not ms since the epoch)",
    )  # fmt: skip
    fb.add_argument(
        "--max-watermark-jump-s", type=float,
        help="seconds one label may be ahead of the join's watermark; later ones are dead-lettered (default: no cap)",
    )  # fmt: skip
    fb.add_argument(
        "--store-retry-s", type=float, default=30.0,
        help="seconds a failing store write is retried before the service stops without committing (default 30)",
    )  # fmt: skip
    _add_client_properties(fb)
    # The earlier spellings (deprecated: removed in the next release).
    for old, new, kind in (
        ("--bootstrap", "--bootstrap-servers", str), ("--predictions", "--predictions-topic", _one_topic),
        ("--labels", "--labels-topic", str), ("--group", "--group-id", str), ("--dead-letter", "--dlq-topic", str),
        ("--ttl", "--ttl-s", float), ("--window", "--window-s", float), ("--idle-exit", "--idle-exit-s", float),
        ("--max-future-skew", "--max-future-skew-s", float), ("--max-watermark-jump", "--max-watermark-jump-s", float),
    ):  # fmt: skip
        _renamed(fb, old, new, type=kind)
    fb.set_defaults(run=_feedback, required=("--bootstrap-servers", "--predictions-topic", "--labels-topic"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (2 for a streamml error)."""
    parser = build_parser()
    args: Any = parser.parse_args(argv)
    if getattr(args, "required", None):
        _require(parser, args, *args.required)
    try:
        return args.run(args)
    except ImportError as e:
        # A feature whose extra is not installed: name the extra, no traceback.
        missing = missing_extra(e, f"streamml {args.command}")
        if missing is None:
            raise
        own = missing.feature.startswith("streamml ")
        print(missing if own else f"streamml {args.command}: error: {missing}", file=sys.stderr)
        return 2
    except (StreammlError, FileNotFoundError, pickle.UnpicklingError) as e:
        print(f"streamml {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
