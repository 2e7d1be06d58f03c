"""Hostile model files: each is refused with ``ModelLoadError`` and never crashes or hangs the host.

Every load runs in a child process, so a crash (SIGBUS, SIGSEGV, abort) or a hang is seen as
the child's death or a timeout instead of killing pytest: the tests assert the child exited
normally (return code 0, not a signal) and printed the expected error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from streamml import Model
from streamml.compile import FOOTER_LEN, compile, evaluator_path, write_binary

#: The child: load ``argv[1]`` with the keyword arguments in ``argv[2]`` and report the outcome.
CHILD = """
import json, pathlib, sys
from streamml import Model, ModelLoadError
kwargs = json.loads(sys.argv[2])
if "trust_file" in kwargs:
    kwargs["trusted_sha256"] = pathlib.Path(kwargs.pop("trust_file"))
try:
    model = Model.load(sys.argv[1], **kwargs)
except ModelLoadError as e:
    print(json.dumps({"error": str(e)}))
else:
    print(json.dumps({"loaded": model.name}))
"""


def load_in_child(path: Path | str, env: dict[str, str] | None = None, **kwargs: Any) -> dict[str, str]:
    """Load in a fresh interpreter; fail on a signal, a non-zero exit or a hang (30 s)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert done.returncode == 0, f"the child died (return code {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)


def refused(path: Path | str, fragment: str, **kwargs: Any) -> str:
    out = load_in_child(path, **kwargs)
    assert "error" in out, f"{path} loaded: {out}"
    assert out["error"].startswith(f"cannot load model binary '{path}': "), out["error"]
    assert fragment in out["error"], out["error"]
    return out["error"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small gradient-boosted classifier compiled with a drift reference."""
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    gb = GradientBoostingClassifier(n_estimators=5, max_depth=3, random_state=0).fit(x, y)
    reference = pa.table({f"f{j}": x[:, j] for j in range(4)})
    out = tmp_path_factory.mktemp("hostile") / "gb.so"
    return compile(gb, out, name="gb", features=[f"f{j}" for j in range(4)], reference=reference)


def ir_of(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    size = struct.unpack("<Q", data[-16:-8])[0]
    return json.loads(data[-FOOTER_LEN - size : -FOOTER_LEN])


def tampered(compiled: Path, tmp_path: Path, edit: Any) -> Path:
    """The compiled model with its IR edited by ``edit(ir)`` and a correct checksum."""
    ir = copy.deepcopy(ir_of(compiled))
    edit(ir)
    return write_binary(ir, tmp_path / "tampered.so")


def test_the_compiled_model_loads_in_a_child(compiled: Path) -> None:
    assert load_in_child(compiled) == {"loaded": "gb"}


def test_truncations_at_every_5_percent_are_refused(compiled: Path, tmp_path: Path) -> None:
    data = compiled.read_bytes()
    for pct in range(5, 100, 5):
        cut = tmp_path / f"cut{pct}.so"
        cut.write_bytes(data[: len(data) * pct // 100])
        refused(cut, "the file is truncated")


def test_a_cut_footer_is_refused(compiled: Path, tmp_path: Path) -> None:
    cut = tmp_path / "nofooter.so"
    cut.write_bytes(compiled.read_bytes()[:-5])
    refused(cut, "this evaluator carries no model: compile one with `streamml compile`")


def tree_of(left: list[int], right: list[int]) -> dict[str, Any]:
    n = len(left)
    return {
        "output": 0,
        "split_feature": [0] * n,
        "threshold": [0.5] * n,
        "left": left,
        "right": right,
        "default_left": [True] * n,
        "missing": ["nan"] * n,
        "leaf_value": [0.25] * (n + 1),
    }


def set_tree(tree: dict[str, Any]) -> Any:
    def edit(ir: dict[str, Any]) -> None:
        ir["model"]["trees"][0] = tree

    return edit


def test_a_cycle_is_refused(compiled: Path, tmp_path: Path) -> None:
    path = tampered(compiled, tmp_path, set_tree(tree_of([1, 0], [-1, -2])))
    refused(path, "tree 0: node 0 is reached twice (from node 1); a tree has no cycles or shared children")


def test_48_nodes_sharing_children_are_refused_at_once(compiled: Path, tmp_path: Path) -> None:
    n = 48
    chain = [*range(1, n), -1]
    path = tampered(compiled, tmp_path, set_tree(tree_of(chain, [*range(1, n), -2])))
    refused(path, "tree 0: node 1 is reached twice (from node 0)")


def test_a_200k_node_chain_is_refused(compiled: Path, tmp_path: Path) -> None:
    n = 200_000
    left = [*range(1, n), -1]
    right = [-(i + 2) for i in range(n)]
    path = tampered(compiled, tmp_path, set_tree(tree_of(left, right)))
    refused(path, "tree 0: node 4096 is at depth 4096; trees deeper than 4096 are refused")


def test_a_category_of_2_pow_62_is_refused(compiled: Path, tmp_path: Path) -> None:
    tree = tree_of([-1], [-2])
    tree["categories"] = [[1, 2**62]]
    path = tampered(compiled, tmp_path, set_tree(tree))
    refused(path, f"tree 0: node 0: category {2**62} is outside 0..=16777215")


def test_a_zero_scale_and_a_mismatched_output_are_refused(compiled: Path, tmp_path: Path) -> None:
    def scaler(ir: dict[str, Any]) -> None:
        ir["preprocess"] = {"type": "standard_scaler", "mean": [0.0] * 4, "scale": [1.0, 1.0, 0.0, 1.0]}

    refused(tampered(compiled, tmp_path, scaler), "standard_scaler for feature 'f2': mean 0 and scale 0")

    def softmax(ir: dict[str, Any]) -> None:
        ir["link"] = "softmax"

    refused(tampered(compiled, tmp_path, softmax), "link softmax with 1 output(s); expected at least 2")


def test_an_ir_edit_without_its_checksum_is_refused(compiled: Path, tmp_path: Path) -> None:
    data = bytearray(compiled.read_bytes())
    size = struct.unpack("<Q", data[-16:-8])[0]
    start = len(data) - FOOTER_LEN - size
    at = data.index(b'"threshold":[', start) + len(b'"threshold":[')
    while not chr(data[at]).isdigit():
        at += 1
    data[at] = ord("7") if data[at] != ord("7") else ord("3")
    edited = tmp_path / "edited.so"
    edited.write_bytes(bytes(data))
    refused(edited, "the IR was edited or damaged after `streamml compile`: re-compile the model")


def test_a_v1_footer_is_refused_asking_to_recompile(compiled: Path, tmp_path: Path) -> None:
    payload = json.dumps(ir_of(compiled)).encode()
    old = tmp_path / "v1.so"
    old.write_bytes(evaluator_path().read_bytes() + payload + struct.pack("<Q", len(payload)) + b"SMLIR\0v1")
    refused(old, "compiled by an older streamml (footer v1, no IR checksum); re-compile the model")


def test_a_malformed_drift_reference_is_refused_at_load(compiled: Path, tmp_path: Path) -> None:
    def short_counts(ir: dict[str, Any]) -> None:
        ir["drift_reference"]["features"][0]["counts"].pop()

    refused(tampered(compiled, tmp_path, short_counts), "the binary's drift_reference is invalid: reference of 'f0'")

    def unsorted(ir: dict[str, Any]) -> None:
        edges = ir["drift_reference"]["features"][1]["edges"]
        edges[0], edges[1] = edges[1], edges[0]

    refused(tampered(compiled, tmp_path, unsorted), "reference of 'f1': edges must be strictly increasing")

    def unknown_column(ir: dict[str, Any]) -> None:
        ir["drift_reference"]["features"][0]["name"] = "nope"

    refused(
        tampered(compiled, tmp_path, unknown_column),
        "counter 'nope' names column 'nope', which is not among the model's inputs",
    )


def test_a_fifo_dev_zero_and_a_directory_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "model.so"
    os.mkfifo(fifo)  # no writer ever opens it: a blocking open would hang the child
    refused(fifo, "it is a FIFO; a model binary must be a regular file")
    refused("/dev/zero", "it is a character device; a model binary must be a regular file")
    refused(tmp_path, "it is a directory; a model binary must be a regular file")


def test_a_file_over_the_cap_is_refused(compiled: Path) -> None:
    size = compiled.stat().st_size
    refused(compiled, f"the file has {size} bytes, over the cap of {size - 1}", max_bytes=size - 1)
    out = load_in_child(compiled, env={"STREAMML_MAX_MODEL_BYTES": str(size - 1)})
    assert f"over the cap of {size - 1}" in out["error"]
    assert load_in_child(compiled, max_bytes=size) == {"loaded": "gb"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_trust_list_allows_listed_binaries(compiled: Path, tmp_path: Path) -> None:
    digest = sha(compiled)
    assert load_in_child(compiled, trusted_sha256=digest.upper()) == {"loaded": "gb"}
    trust = tmp_path / "trusted.txt"
    trust.write_text(f"# production models\n\n{digest}  # gb\n")
    assert load_in_child(compiled, trust_file=str(trust)) == {"loaded": "gb"}
    assert load_in_child(compiled, env={"STREAMML_TRUSTED_MODELS": str(trust)}) == {"loaded": "gb"}


def test_an_unlisted_binary_is_refused_before_its_code_runs(
    compiled: Path, c_models: dict[str, Path], tmp_path: Path
) -> None:
    aborts = c_models["constructor_aborts"]
    # Loading it runs its constructor, which aborts: the child dies by SIGABRT.
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(aborts), "{}"], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == -6
    trust = tmp_path / "trusted.txt"
    trust.write_text(sha(compiled) + "\n")
    digest = sha(aborts)
    message = (
        f"cannot load model binary '{aborts}': its sha256 {digest} is not in the trust file '{trust}' (1 digest(s)); "
        "loading a binary runs its code, so only listed binaries load: add the digest there if you trust this file"
    )
    assert load_in_child(aborts, trust_file=str(trust)) == {"error": message}
    assert load_in_child(aborts, env={"STREAMML_TRUSTED_MODELS": str(trust)}) == {"error": message}
    listed = f"its sha256 {digest} is not in the trusted_sha256 list (1 digest(s))"
    refused(aborts, listed, trusted_sha256=[sha(compiled)])


def test_a_bad_trust_file_is_refused_naming_its_line(compiled: Path, tmp_path: Path) -> None:
    trust = tmp_path / "trusted.txt"
    trust.write_text(f"{sha(compiled)}\nnot-a-digest\n")
    refused(
        compiled, f"trust file '{trust}' line 2: 'not-a-digest' is not a SHA-256 (64 hex digits)", trust_file=str(trust)
    )


def test_the_private_cache_is_owner_only_bounded_and_keeps_no_failed_copy(compiled: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {"STREAMML_CACHE_DIR": str(cache)}
    assert load_in_child(compiled, env=env) == {"loaded": "gb"}
    (copy_path,) = cache.iterdir()
    assert copy_path.name == f"{sha(compiled)}.so"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(copy_path.stat().st_mode) == 0o600
    # A binary that fails its init leaves nothing behind.
    bad = tampered(compiled, tmp_path, lambda ir: ir.update(link="softmax"))
    refused(bad, "link softmax", env=env)
    assert [p.name for p in cache.iterdir()] == [copy_path.name]
    # At most 32 binaries are kept: 40 distinct ones leave the 32 newest.
    script = (
        "import sys, json\n"
        "from streamml import Model\n"
        "from streamml.compile import write_binary\n"
        "ir = json.loads(open(sys.argv[1]).read())\n"
        "for i in range(40):\n"
        "    ir['model_version'] = str(i)\n"
        "    Model.load(write_binary(ir, sys.argv[2] + f'/m{i}.so'))\n"
    )
    (tmp_path / "ir.json").write_text(json.dumps(ir_of(compiled)))
    (tmp_path / "many").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "ir.json"), str(tmp_path / "many")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    kept = {p.name for p in cache.iterdir()}
    assert len(kept) == 32
    newest = {f"{sha(tmp_path / 'many' / f'm{i}.so')}.so" for i in range(8, 40)}
    assert kept == newest


def test_model_load_in_process_refuses_a_truncated_binary(compiled: Path, tmp_path: Path) -> None:
    """The same refusal without a child: the check runs before dlopen, so this process is safe."""
    from streamml import ModelLoadError

    cut = tmp_path / "half.so"
    cut.write_bytes(compiled.read_bytes()[: compiled.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="the file is truncated"):
        Model.load(cut)


def test_the_bytewax_operators_pass_a_trust_list_for_a_path(compiled: Path, s1_path: Path) -> None:
    from streamml import ModelLoadError
    from streamml.bytewax import predict_op

    with pytest.raises(ModelLoadError, match=f"its sha256 {sha(s1_path)} is not in the trusted_sha256 list"):
        predict_op(s1_path, trusted_sha256=[sha(compiled)])
    score = predict_op(compiled, trusted_sha256=sha(compiled))
    assert set(score({f"f{j}": 0.5 for j in range(4)})) == {"f0", "f1", "f2", "f3", "probability", "label"}
