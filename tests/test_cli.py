"""The command line: `streamml inspect` (`streamml demo` and `report`: tests/test_report.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamml import Model
from streamml.cli import main


def test_inspect_prints_info_schemas_and_sha(s1: Model, s1_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--run", str(s1_path)]) == 0
    out = capsys.readouterr().out
    assert f"sha256     {s1.sha256}" in out
    assert "model      s1_logistic 1.0.0" in out
    assert "inputs (32)" in out
    assert "  x31                      float64      not null" in out
    assert "  probability              float64      not null" in out
    assert "info       from the loaded binary's code" in out


def test_inspect_json_round_trips(s1: Model, s1_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--run", "--json", str(s1_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["sha256"] == s1.sha256
    assert {k: doc[k] for k in s1.info} == s1.info


def test_inspect_bad_file_exits_2_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.so"
    bad.write_text("nope")
    done = subprocess.run(
        [sys.executable, "-m", "streamml.cli", "inspect", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.startswith(
        f"streamml inspect: error: cannot load model binary '{bad}': not a well-formed shared library for this "
        "machine: it does not start with an ELF header"
    )


def test_inspect_of_a_hand_written_binary_needs_run(s1_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamml.cli", "inspect", str(s1_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"streamml inspect: error: cannot inspect model binary '{s1_path}' without running it: it is not a compiled "
        "binary (no streamml footer), so only its own code can give its info; pass --run to load it (this runs "
        "its native code; add --trusted-models FILE to restrict which)\n"
    )


def test_inspect_of_a_compiled_binary_reads_the_footer_without_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    path = _lin_binary(tmp_path)
    assert main(["inspect", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    loaded = Model.load(path)
    assert doc["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == loaded.sha256
    assert {k: doc[k] for k in loaded.info} == loaded.info
    assert main(["inspect", str(path)]) == 0
    assert "info       read from the compiled footer; no code ran" in capsys.readouterr().out


def _lin_binary(tmp_path: Path) -> Path:
    from streamml.compile import write_binary

    ir = {
        "format": "streamml-ir", "version": 1, "name": "lin", "model_version": "3", "framework": "test",
        "task": "regression", "features": ["a", "b"], "classes": None, "link": "identity",
        "model": {"type": "linear", "n_outputs": 1, "coef": [[1.0, 2.0]], "intercept": [0.5]},
    }  # fmt: skip
    return write_binary(ir, tmp_path / "lin.so")


FEEDBACK_NEW = [
    "feedback", "--bootstrap-servers", "b:1", "--predictions-topic", "p", "--labels-topic", "l", "--store", "s.db",
    "--group-id", "g", "--dlq-topic", "d", "--ttl-s", "120", "--window-s", "60", "--idle-exit-s", "5",
    "--max-future-skew-s", "-1", "--max-watermark-jump-s", "30", "-X", "security.protocol=SSL",
]  # fmt: skip
FEEDBACK_OLD = [
    "feedback", "--bootstrap", "b:1", "--predictions", "p", "--labels", "l", "--store", "s.db",
    "--group", "g", "--dead-letter", "d", "--ttl", "120", "--window", "60", "--idle-exit", "5",
    "--max-future-skew", "-1", "--max-watermark-jump", "30", "-X", "security.protocol=SSL",
]  # fmt: skip


def test_feedback_takes_scores_flag_names_and_the_old_spellings_with_a_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streamml.cli import build_parser

    new = vars(build_parser().parse_args(FEEDBACK_NEW))
    assert capsys.readouterr().err == ""
    assert {k: new[k] for k in ("bootstrap_servers", "group_id", "dlq_topic", "window_s", "ttl_s", "X")} == {
        "bootstrap_servers": "b:1", "group_id": "g", "dlq_topic": "d", "window_s": 60.0, "ttl_s": 120.0,
        "X": ["security.protocol=SSL"],
    }  # fmt: skip
    old = vars(build_parser().parse_args(FEEDBACK_OLD))
    assert old == new
    warned = capsys.readouterr().err.splitlines()
    assert len(warned) == 10
    assert warned[0] == (
        "streamml feedback: warning: --bootstrap is deprecated and will be removed in the next release; "
        "use --bootstrap-servers"
    )
    assert warned[4] == (
        "streamml feedback: warning: --dead-letter is deprecated and will be removed in the next release; "
        "use --dlq-topic"
    )
    # The same idea has the same name in score: the store's window, and -X.
    score_args = ["score", "--model", "m", "--bootstrap-servers", "b:1", "--input-topic", "i", "--output-topic", "o"]
    score = build_parser().parse_args([*score_args, "--drift-window-s", "30", "-X", "a=b"])
    assert (score.window_s, score.X) == (30.0, ["a=b"])
    assert capsys.readouterr().err == (
        "streamml score: warning: --drift-window-s is deprecated and will be removed in the next release; "
        "use --window-s\n"
    )


def test_feedback_without_bootstrap_servers_exits_2_naming_the_flag() -> None:
    args = ["feedback", "--predictions-topic", "p", "--labels-topic", "l", "--store", "s.db"]
    done = subprocess.run([sys.executable, "-m", "streamml.cli", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.endswith("streamml: error: the following arguments are required: --bootstrap-servers\n")


def test_feedback_model_is_a_binary_whose_footer_names_the_rows(
    tmp_path: Path, s1_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamml.cli import _feedback_model, build_parser
    from streamml.errors import ModelLoadError

    def named(*extra: str) -> tuple[str, str]:
        return _feedback_model(build_parser().parse_args([*FEEDBACK_NEW, *extra]))

    lin = _lin_binary(tmp_path)
    assert named("--model", str(lin)) == ("lin", "3")
    assert named("--model", str(lin), "--model-version", "4") == ("lin", "4")
    assert named("--model-name", "fraud", "--model-version", "1") == ("fraud", "1")
    assert named() == ("model", "0")
    assert capsys.readouterr().err == ""
    # The old meaning: --model NAME (not a file), for one release.
    assert named("--model", "fraud", "--model-version", "1") == ("fraud", "1")
    assert capsys.readouterr().err == (
        "streamml feedback: warning: --model fraud: no such file, read as a model name; --model NAME is "
        "deprecated and will be removed in the next release; use --model-name\n"
    )
    # A hand-written binary would have to run to tell its name: refused, nothing runs.
    with pytest.raises(
        ModelLoadError, match=rf"^--model {s1_path}: not a compiled model binary \(no streamml footer\)"
    ):
        named("--model", str(s1_path))
