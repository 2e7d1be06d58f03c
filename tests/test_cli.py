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
    assert main(["inspect", str(s1_path)]) == 0
    out = capsys.readouterr().out
    assert f"sha256     {s1.sha256}" in out
    assert "model      s1_logistic 1.0.0" in out
    assert "inputs (32)" in out
    assert "  x31                      float64      not null" in out
    assert "  probability              float64      not null" in out


def test_inspect_json_round_trips(s1: Model, s1_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--json", str(s1_path)]) == 0
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
        f"streamml inspect: error: cannot load model binary '{bad}': not a loadable shared library"
    )
