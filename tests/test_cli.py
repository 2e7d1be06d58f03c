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

    from streamml.compile import write_binary

    ir = {
        "format": "streamml-ir", "version": 1, "name": "lin", "model_version": "3", "framework": "test",
        "task": "regression", "features": ["a", "b"], "classes": None, "link": "identity",
        "model": {"type": "linear", "n_outputs": 1, "coef": [[1.0, 2.0]], "intercept": [0.5]},
    }  # fmt: skip
    path = write_binary(ir, tmp_path / "lin.so")
    assert main(["inspect", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    loaded = Model.load(path)
    assert doc["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == loaded.sha256
    assert {k: doc[k] for k in loaded.info} == loaded.info
    assert main(["inspect", str(path)]) == 0
    assert "info       read from the compiled footer; no code ran" in capsys.readouterr().out
