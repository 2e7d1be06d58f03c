"""Fast-and-frugal trees: the estimator, its description, and its compiled binary.

The binary must give the estimator's decisions and probabilities on every row
(NaN cells as nulls in every other row, see ``ir_predict``), and the tree must
be about as good as a depth-limited decision tree while reading at most
``max_levels`` cues. The rules of construction are tested on hand-worked data
in ``operators/train`` (Rust); here the Python side on the same data.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import check_estimator

from streamml import Model
from streamml.compile import compile, to_ir
from streamml.errors import CompileError
from streamml.models import FastFrugalTreeClassifier

# y = (a > 3) or (b > 0); c is constant (the Rust tests work this data by hand).
A = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0]
B = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
C = [0.0] * 8
Y = np.array([0, 0, 0, 1, 1, 1, 1, 1])
HAND = pd.DataFrame({"a": A, "b": B, "c": C})


def datasets():
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    yield "breast_cancer", x, y.to_numpy()
    x, y = load_wine(return_X_y=True, as_frame=True)
    yield "wine", x, (y.to_numpy() == 0).astype(int)  # class_0 against the others
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    yield "diabetes", x, (y.to_numpy() > np.median(y)).astype(int)  # progression above the median


DATASETS = list(datasets())
IDS = [name for name, _, _ in DATASETS]


def split(x, y):
    return train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)


@pytest.mark.parametrize(("name", "x", "y"), DATASETS, ids=IDS)
def test_bundled_data_sets_accuracy_near_a_decision_tree(name, x, y):
    # The default tree (ifan, bacc) against DecisionTreeClassifier(max_depth=max_levels).
    # Figures (docs/performance.md): breast_cancer .888 (2 cues) vs .910; wine .944 (2) vs .931;
    # diabetes .745 (3) vs .668. dfan: .870, .917, .729 (not asserted: 3.9 points under on breast_cancer).
    max_levels = 4
    x_train, x_test, y_train, y_test = split(x, y)
    fft = FastFrugalTreeClassifier(max_levels=max_levels).fit(x_train, y_train)
    tree = DecisionTreeClassifier(max_depth=max_levels, random_state=0).fit(x_train, y_train)
    ours = balanced_accuracy_score(y_test, fft.predict(x_test))
    peer = balanced_accuracy_score(y_test, tree.predict(x_test))
    print(f"{name}: FFT bacc {ours:.4f} ({fft.n_levels_} cues), DecisionTree(max_depth={max_levels}) {peer:.4f}")
    assert fft.n_levels_ <= max_levels
    assert len({level["cue"] for level in fft.describe().levels}) <= max_levels
    assert ours >= peer - 0.03, (ours, peer)


@pytest.mark.parametrize(("name", "x", "y"), DATASETS, ids=IDS)
@pytest.mark.parametrize("algorithm", ["ifan", "dfan", "max", "zigzag"])
def test_bundled_data_sets_binary_equals_the_estimator(name, x, y, algorithm, ir_predict, tmp_path):
    x_train, _, y_train, _ = split(x, y)
    fft = FastFrugalTreeClassifier(max_levels=4, algorithm=algorithm).fit(x_train, y_train)
    # The binary, on every row, with missing cells too.
    ir = to_ir(fft)
    xs = x.copy()
    xs.iloc[::7, :] = np.nan
    got = ir_predict(ir, xs[ir["features"]].to_numpy())
    assert np.array_equal(got["label"], fft.predict(xs))
    assert np.array_equal(got["probability"], fft.predict_proba(xs)[:, 1])
    # compile() with a drift reference, as for every model.
    path = compile(fft, tmp_path / "fft.so", reference=pa.Table.from_pandas(x_train, preserve_index=False))
    model = Model.load(path)
    assert [f["name"] for f in model.info["drift_reference"]["features"]] == ir["features"]
    out = model.predict(pa.Table.from_pandas(x, preserve_index=False))
    assert np.array_equal(out.column("label").to_numpy(), fft.predict(x))
    assert np.array_equal(out.column("probability").to_numpy(), fft.predict_proba(x)[:, 1])


def test_describe_gives_words_and_levels():
    fft = FastFrugalTreeClassifier(max_levels=3).fit(HAND, Y)
    d = fft.describe()
    assert d.text == "If a > 3, decide signal. If b > 0, decide signal, otherwise, decide noise."
    assert d.levels == [
        {
            "level": 1, "cue": "a", "kind": "numeric", "direction": ">", "threshold": 3.0, "exit": "signal",
            "reached": 8, "signal_pos": 3, "signal_neg": 0, "noise_pos": 0, "noise_neg": 0,
            "hi": 3, "fa": 0, "mi": 0, "cr": 0, "sens": 1.0, "spec": float("nan"),
        } | {"spec": d.levels[0]["spec"]},
        {
            "level": 2, "cue": "b", "kind": "numeric", "direction": ">", "threshold": 0.0, "exit": "both",
            "reached": 5, "signal_pos": 2, "signal_neg": 0, "noise_pos": 0, "noise_neg": 3,
            "hi": 5, "fa": 0, "mi": 0, "cr": 3, "sens": 1.0, "spec": 1.0,
        },
    ]  # fmt: skip
    assert np.isnan(d.levels[0]["spec"])  # no negative decided at level 1
    assert fft.feature_names_in_.tolist() == ["a", "b", "c"]
    assert fft.classes_.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("algorithm", "words"),
    [
        ("ifan", "If a > 3, decide signal. If b > 0, decide signal, otherwise, decide noise."),
        ("dfan", "If a > 3, decide signal. If b > 0, decide signal, otherwise, decide noise."),
        ("max", "If a > 3, decide signal. If b > 0, decide signal. If c > 0, decide signal, otherwise, decide noise."),
        (
            "zigzag",
            "If a > 3, decide signal. If b <= 0, decide noise. If c > 0, decide signal, otherwise, decide noise.",
        ),
    ],
)
def test_hand_worked_tree_per_algorithm(algorithm, words, ir_predict):
    fft = FastFrugalTreeClassifier(max_levels=3, algorithm=algorithm).fit(HAND, Y)
    assert fft.describe().text == words
    ir = to_ir(fft)
    got = ir_predict(ir, HAND[ir["features"]].to_numpy())
    assert np.array_equal(got["label"], fft.predict(HAND))


def test_goals_choose_their_thresholds():
    # x = 1..10, positives at 5, 9, 10: bacc, acc and unit costs take x > 8;
    # wacc with sens_w .9 and misses costing 10 take x > 4.
    x = pd.DataFrame({"x": np.arange(1.0, 11.0)})
    y = np.isin(np.arange(1, 11), [5, 9, 10]).astype(int)

    def words(**kw):
        return FastFrugalTreeClassifier(max_levels=1, **kw).fit(x, y).describe().text

    assert words(goal="bacc") == "If x > 8, decide signal, otherwise, decide noise."
    assert words(goal="acc", goal_threshold="acc") == "If x > 8, decide signal, otherwise, decide noise."
    assert words(goal="wacc", sens_w=0.9) == "If x > 4, decide signal, otherwise, decide noise."
    cost = {"mi": 10.0}
    assert words(goal="cost", goal_threshold="cost", cost_outcomes=cost) == (
        "If x > 4, decide signal, otherwise, decide noise."
    )
    assert words(goal="cost", goal_threshold="cost") == "If x > 8, decide signal, otherwise, decide noise."


def test_decision_is_the_exit_not_the_majority_of_the_exit(ir_predict):
    # bacc on imbalanced data: the signal exit x > 4 holds 3 positives of 6
    # rows... probability 0.5 and a signal decision; the binary agrees.
    x = pd.DataFrame({"x": np.arange(1.0, 11.0)})
    y = np.isin(np.arange(1, 11), [5, 9, 10]).astype(int)
    fft = FastFrugalTreeClassifier(max_levels=1, goal="wacc", sens_w=0.9).fit(x, y)
    p = fft.predict_proba(x)[:, 1]
    assert p.tolist() == [0.0] * 4 + [0.5] * 6
    assert fft.predict(x).tolist() == [0] * 4 + [1] * 6
    got = ir_predict(to_ir(fft), x.to_numpy())
    assert got["label"].tolist() == [0] * 4 + [1] * 6
    assert got["probability"].tolist() == p.tolist()


def test_missing_values_pass_on_and_take_the_majority_at_the_last_level(ir_predict):
    fft = FastFrugalTreeClassifier(max_levels=2).fit(HAND, Y)
    rows = pd.DataFrame({"a": [np.nan, np.nan, 5.0], "b": [1.0, np.nan, np.nan], "c": [0.0, 0.0, 0.0]})
    # NaN in a: on to b (1 > 0: signal); NaN in b at the last level: the
    # training majority (5 positives of 8: signal); a > 3 exits first.
    assert fft.predict(rows).tolist() == [1, 1, 1]
    assert fft.tree_["missing_decision"] is True
    ir = to_ir(fft)
    got = ir_predict(ir, rows[ir["features"]].to_numpy())
    assert got["label"].tolist() == [1, 1, 1]
    assert got["probability"].tolist() == fft.predict_proba(rows)[:, 1].tolist()
    # Missing values in fit are left out of the threshold search.
    train = HAND.assign(a=[1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 1.0, np.nan])
    assert FastFrugalTreeClassifier(max_levels=1).fit(train, Y).describe().levels[0]["threshold"] == 2.0


def test_constant_columns_are_never_chosen_and_alone_still_fit():
    fft = FastFrugalTreeClassifier(max_levels=4).fit(HAND, Y)
    assert "c" not in [lv["cue"] for lv in fft.describe().levels]
    only = FastFrugalTreeClassifier().fit(HAND[["c"]], Y)
    assert only.describe().text == "If c > 0, decide signal, otherwise, decide noise."
    assert only.predict(HAND[["c"]]).tolist() == [0] * 8


def test_a_single_class_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"^y has one class only \(1 in all 8 rows\); a fast-and-frugal tree needs two classes$"
    ):
        FastFrugalTreeClassifier().fit(HAND, np.ones(8, dtype=int))
    with pytest.raises(
        ValueError,
        match=r"^Only binary classification is supported\. The type of the target is multiclass: y has 3 classes",
    ):
        FastFrugalTreeClassifier().fit(HAND, np.arange(8) % 3)
    with pytest.raises(ValueError, match="algorithm must be one of ifan, dfan, max, zigzag; got 'fan'"):
        FastFrugalTreeClassifier(algorithm="fan").fit(HAND, Y)
    with pytest.raises(ValueError, match=r"^max_levels must be an integer between 1 and 20 .*; got 0$"):
        FastFrugalTreeClassifier(max_levels=0).fit(HAND, Y)
    with pytest.raises(ValueError, match=r"^cost_cues names \['z'\], which are not columns of X"):
        FastFrugalTreeClassifier(goal="cost", cost_cues={"z": 1.0}).fit(HAND, Y)


def test_categorical_cues_by_sets_of_levels(ir_predict):
    colour = ["red", "blue", "green", "grey", "red", "blue", "green", "grey"] * 3
    y = np.array([c in ("red", "grey") for c in colour], dtype=int)
    frame = pd.DataFrame({"colour": pd.Categorical(colour), "noise": np.linspace(0, 1, 24)})
    fft = FastFrugalTreeClassifier(max_levels=2).fit(frame, y)
    assert fft.describe().text == "If colour = {grey, red}, decide signal, otherwise, decide noise."
    # A level unseen in fit is in no set; a null is missing (the majority: noise).
    rows = pd.DataFrame({"colour": ["grey", "purple", None], "noise": [0.0, 0.0, 0.0]})
    assert fft.predict(rows).tolist() == [1, 0, 0]
    with pytest.raises(CompileError, match="cue 'colour' is categorical with levels \\['grey', 'red'\\]"):
        to_ir(fft)
    # The same data as integer codes compiles (exact category match).
    codes = {"red": 0, "blue": 1, "green": 2, "grey": 3}
    numeric = pd.DataFrame({"colour": [codes[c] for c in colour], "noise": np.linspace(0, 1, 24)})
    fft = FastFrugalTreeClassifier(max_levels=2, categorical_features=["colour"]).fit(numeric, y)
    assert fft.describe().text == "If colour = {0, 3}, decide signal, otherwise, decide noise."
    ir = to_ir(fft)
    assert ir["model"]["trees"][0]["categories"] == [[0, 3]]
    probe = np.array([[0.0], [3.0], [1.0], [2.5], [np.nan], [7.0]])
    got = ir_predict(ir, probe)
    want = fft.predict(pd.DataFrame({"colour": probe[:, 0], "noise": 0.0}))
    assert got["label"].tolist() == want.tolist() == [1, 1, 0, 0, 0, 0]


def test_inputs_from_numpy_pandas_polars_and_pyarrow_agree():
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    fft = FastFrugalTreeClassifier().fit(x, y)
    want = fft.predict_proba(x)
    for data in (pa.Table.from_pandas(x), pl.from_pandas(x), pa.RecordBatch.from_pandas(x)):
        assert np.array_equal(FastFrugalTreeClassifier().fit(data, y).predict_proba(data), want)
    plain = FastFrugalTreeClassifier().fit(x.to_numpy(), y)
    assert np.array_equal(plain.predict_proba(x.to_numpy()), want)
    assert not hasattr(plain, "feature_names_in_")


def test_params_clone_and_pickle():
    fft = FastFrugalTreeClassifier(max_levels=3, algorithm="dfan", cost_cues={"a": 1.0})
    assert fft.get_params()["algorithm"] == "dfan"
    assert clone(fft).set_params(max_levels=2).max_levels == 2
    fitted = fft.fit(HAND, Y)
    again = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(again.predict_proba(HAND), fitted.predict_proba(HAND))
    assert fitted.score(HAND, Y) == 1.0


# The one property of an FFT scikit-learn's checks do not expect.
EXPECTED_FAILED_CHECKS = {
    "check_classifiers_train": (
        "predict is the exit's decision, which is not always the class of highest predict_proba "
        "(a signal exit may hold fewer positives than negatives under bacc)"
    ),
}


# The array API check is skipped (it needs SCIPY_ARRAY_API; an FFT computes in Rust on float64).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_check_estimator_with_documented_exceptions():
    results = check_estimator(FastFrugalTreeClassifier(), expected_failed_checks=EXPECTED_FAILED_CHECKS, on_fail=None)
    status = {}
    for r in results:
        status.setdefault(r["check_name"], set()).add(r["status"])
    failed = {name for name, s in status.items() if "failed" in s}
    assert failed == set()
    assert status["check_classifiers_train"] == {"xfail"}
    assert {name for name, s in status.items() if s == {"skipped"}} == {"check_array_api_input"}
    assert len(status) > 40


def test_streamml_compile_takes_a_pickled_fft(tmp_path, capsys):
    from streamml.cli import main

    fft = FastFrugalTreeClassifier(max_levels=3).fit(HAND, Y)
    (tmp_path / "fft.pkl").write_bytes(pickle.dumps(fft))
    out = tmp_path / "fft.so"
    assert main(["compile", str(tmp_path / "fft.pkl"), "-o", str(out)]) == 0
    assert "(streamml, binary)" in capsys.readouterr().out
    model = Model.load(out)
    assert model.input_schema.names == ["a", "b"]
    assert model.info["metadata"]["in_words"] == fft.describe().text
    got = model.predict(pa.Table.from_pandas(HAND, preserve_index=False))
    assert got.column("label").to_pylist() == fft.predict(HAND).tolist()


def test_fit_releases_the_gil():
    from streamml import _streamml
    from test_gil import ticks_while

    rng = np.random.default_rng(3)
    x = rng.standard_normal((150_000, 8))
    y = pa.array(x[:, 0] + x[:, 1] * x[:, 2] > 0)
    batch = pa.record_batch([pa.array(x[:, j]) for j in range(8)], names=[f"x{j}" for j in range(8)])
    args = (batch, [0] * 8, y, 4, "dfan", "bacc", "bacc", "bacc", 0.5, (0.0, 1.0, 1.0, 0.0), [0.0] * 8, 0.1)
    tree, ticks, elapsed = ticks_while(lambda: _streamml.fft_fit(*args))
    assert '"levels"' in tree
    # Held GIL: the counter thread would not tick while Rust grows the trees.
    assert ticks >= elapsed * 1000 / 20, f"only {ticks} ticks in {elapsed:.3f}s: the GIL was held"


# -- differential: the Rust fit and predict against plain Python on random data ---------------------


def brute_force_test(x: np.ndarray, y: np.ndarray, goal):
    """The first best (direction, threshold) of one numeric cue, trying every candidate in
    FFTrees' order (``>`` over ascending values, then ``<=``), goals as exact fractions."""
    from fractions import Fraction

    keep = ~np.isnan(x)
    x, y = x[keep], y[keep]
    best = None
    for direction in (">", "<="):
        for t in np.unique(x):
            decide = x > t if direction == ">" else x <= t
            hi, fa = int(np.sum(decide & y)), int(np.sum(decide & ~y))
            mi, cr = int(np.sum(~decide & y)), int(np.sum(~decide & ~y))
            value = goal(Fraction(hi), Fraction(fa), Fraction(mi), Fraction(cr))
            if best is None or value > best[0]:
                best = (value, direction, float(t))
    return best


GOALS = {
    "acc": (dict(goal="acc", goal_threshold="acc"), lambda hi, fa, mi, cr: (hi + cr) / (hi + fa + mi + cr)),
    "bacc": (dict(goal="bacc"), lambda hi, fa, mi, cr: (hi / (hi + mi) + cr / (cr + fa)) / 2),
    "wacc": (
        dict(goal="wacc", sens_w=0.75),
        lambda hi, fa, mi, cr: hi / (hi + mi) * 3 / 4 + cr / (cr + fa) / 4,
    ),
    "cost": (
        dict(goal="cost", goal_threshold="cost", cost_outcomes={"hi": 0, "fa": 3, "mi": 5, "cr": 1}),
        lambda hi, fa, mi, cr: -(3 * fa + 5 * mi + cr) / (hi + fa + mi + cr),
    ),
}


@pytest.mark.parametrize("goal", list(GOALS))
@pytest.mark.parametrize("seed", range(5))
def test_single_level_fit_equals_a_brute_force_search(goal, seed):
    kw, value = GOALS[goal]
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 12, size=(300, 4)).astype(float)  # many ties between rows
    x[rng.random(x.shape) < 0.05] = np.nan
    y = (x[:, 0] + 2 * np.nan_to_num(x[:, 1]) + rng.normal(0, 6, 300) > 16).astype(bool)
    fft = FastFrugalTreeClassifier(max_levels=1, **kw).fit(x, y)
    tests = [brute_force_test(x[:, j], y, value) for j in range(x.shape[1])]
    best = max(range(len(tests)), key=lambda j: (tests[j][0], -j))  # first cue of the best value
    (level,) = fft.describe().levels
    assert (level["cue"], level["direction"], level["threshold"]) == (f"x{best}", tests[best][1], tests[best][2])


def route(tree: dict, cues: np.ndarray) -> tuple[int, float]:
    """Plain-Python routing of one row through a fitted tree (``tree_``): (decision, probability)."""
    levels = tree["levels"]
    for k, level in enumerate(levels):
        v, test = cues[level["cue"]], level["test"]
        if np.isnan(v):
            t = None
        elif test["kind"] == "greater":
            t = bool(v > test["threshold"])
        elif test["kind"] == "lessequal":
            t = bool(v <= test["threshold"])
        else:
            t = bool(v in test["codes"])
        last = k == len(levels) - 1
        if last and t is None:
            t = tree["missing_decision"]
        if t is True and level["exit"] in ("signal", "both"):
            return 1, tree["p_signal"][k]
        if t is False and level["exit"] in ("noise", "both"):
            return 0, tree["p_noise"][k]
    raise AssertionError("the last level decides every row")


@pytest.mark.parametrize("algorithm", ["ifan", "dfan", "max", "zigzag"])
def test_predict_equals_plain_python_routing(algorithm):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2000, 6))
    y = (x[:, 0] - x[:, 1] + x[:, 2] * x[:, 3] > 0).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan
    fft = FastFrugalTreeClassifier(max_levels=4, algorithm=algorithm).fit(x, y)
    want = [route(fft.tree_, row) for row in x]
    assert fft.predict(x).tolist() == [d for d, _ in want]
    assert fft.predict_proba(x)[:, 1].tolist() == [p for _, p in want]


def test_a_tampered_tree_is_an_error_not_a_crash():
    from streamml import _streamml

    fft = FastFrugalTreeClassifier(max_levels=2).fit(HAND, Y)
    batch = fft._encode(HAND, reset=False)[0]
    bad = {**fft.tree_, "levels": []}
    with pytest.raises(ValueError, match=r"^the fitted tree has no levels or no exit frequencies per level"):
        _streamml.fft_predict(json.dumps(bad), batch)
    bad = {**fft.tree_, "levels": [{**fft.tree_["levels"][0], "cue": 7}, fft.tree_["levels"][1]]}
    with pytest.raises(ValueError, match=r"^the tree reads 8 cues but the batch has 3 columns"):
        _streamml.fft_predict(json.dumps(bad), batch)
    with pytest.raises(ValueError, match=r"^the fitted tree does not parse"):
        _streamml.fft_predict("{", batch)
