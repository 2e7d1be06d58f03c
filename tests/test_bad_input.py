"""Bad input: each gets an exception that names the file or column and the reason; none crashes."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from streamml import InputError, Model, PredictError

#: How every host words an input field absent from an event (the core's rule).
ABSENT = 'is absent; send null for a missing value, or set missing_fields="null" to read absent fields as null'


def good() -> dict[str, pa.Array]:
    return {"x0": pa.array([1.0, 2.0, 3.0]), "x1": pa.array([0.0, 0.0, 0.0]), "x2": pa.array([0.0, 0.0, 0.0])}


def test_missing_column(linear: Model) -> None:
    cols = good()
    del cols["x1"]
    with pytest.raises(InputError) as e:
        linear.predict(pa.record_batch(cols))
    assert str(e.value) == "missing required column 'x1'; the batch has columns [x0, x2]"


def test_wrong_type(linear: Model) -> None:
    cols = good()
    cols["x2"] = pa.array(["a", "b", "c"])
    with pytest.raises(InputError, match=re.escape("column 'x2' has type utf8, expected float64")):
        linear.predict(pa.record_batch(cols))
    cols["x2"] = pa.array([True, False, True])
    with pytest.raises(InputError, match=re.escape("column 'x2' has type bool, expected float64")):
        linear.predict(pa.record_batch(cols))


def test_nulls_in_a_non_nullable_column(linear: Model) -> None:
    cols = good()
    cols["x0"] = pa.array([1.0, None, None])
    with pytest.raises(InputError) as e:
        linear.predict(pa.record_batch(cols))
    assert str(e.value) == (
        "column 'x0' is not nullable but has 2 null(s), the first at row 1; fill or drop them before scoring"
    )


def test_integer_out_of_range_for_a_narrow_input() -> None:
    model = Model.from_callable(
        lambda b: pa.record_batch({"y": b["n"].cast(pa.int64())}),
        pa.schema([pa.field("n", pa.int8(), nullable=False)]),
        pa.schema([pa.field("y", pa.int64(), nullable=False)]),
    )
    with pytest.raises(InputError, match=re.escape("column 'n' cannot be cast to int8")):
        model.predict(pa.record_batch({"n": pa.array([1, 300])}))


def test_model_error_names_the_binary_and_its_message(linear: Model, c_models: dict[str, Path]) -> None:
    cols = good()
    cols["x1"] = pa.array([0.0, float("inf"), 0.0])
    with pytest.raises(PredictError) as e:
        linear.predict(pa.record_batch(cols))
    assert str(e.value) == (
        f"model binary '{c_models['linear_model']}' failed on a batch of 3 row(s): "
        "non-finite value in column 'x1' at row 1"
    )
    # The model stays usable.
    assert linear.predict(pa.record_batch(good())).num_rows == 3


def test_a_panic_in_the_binary_is_an_error_not_a_crash() -> None:
    from streamml_dev.repo import example_model

    model = Model.load(example_model("panicking"))
    assert model.predict(pa.record_batch({"x": [1.0, 2.0]})).column("y").to_pylist() == [1.0, 2.0]
    with pytest.raises(PredictError, match=r"failed on a batch of 3 row\(s\): model panicked: negative x at row 2"):
        model.predict(pa.record_batch({"x": [1.0, 2.0, -1.0]}))
    assert model.predict([{"x": 4.0}]).column("y").to_pylist() == [4.0]


def test_output_with_the_wrong_row_count_is_refused(c_models: dict[str, Path]) -> None:
    model = Model.load(c_models["wrong_rows"])
    with pytest.raises(PredictError, match=re.escape("the output has 4 row(s) for an input of 3")) as e:
        model.predict(pa.record_batch({"x": [1.0, 2.0, 3.0]}))
    assert str(c_models["wrong_rows"]) in str(e.value)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"x0": 1.0, "x2": 1.0}], f"row 0: field 'x1' {ABSENT}"),
        (
            [{"x0": 1.0, "x1": 1.0, "x2": 1.0}, {"x0": "1", "x1": 1.0, "x2": 1.0}],
            "row 1: field 'x0' is a string, expected float64",
        ),
        ([{"x0": None, "x1": 1.0, "x2": 1.0}], "row 0: field 'x0' is null but the input is not nullable"),
        ([{"x0": True, "x1": 1.0, "x2": 1.0}], "row 0: field 'x0' is a bool, expected float64"),
        ([{"x0": 1.0, "x1": 1.0, "x2": 1.0}, [1.0, 2.0, 3.0]], "row 1: expected a dict, got a list"),
    ],
)
def test_bad_rows_name_the_row_and_field(linear: Model, rows: list, message: str) -> None:
    with pytest.raises(InputError) as e:
        linear.predict(rows)
    assert str(e.value) == message


@pytest.mark.parametrize("data", [{"x0": 1.0}, "x0", 3.5, None])
def test_unscorable_objects_are_type_errors(linear: Model, data: object) -> None:
    with pytest.raises(TypeError, match="pass an Arrow batch, table or stream"):
        linear.predict(data)


def test_input_errors_are_value_errors(linear: Model) -> None:
    with pytest.raises(ValueError, match="missing required column"):
        linear.predict(pa.record_batch({"x0": [1.0]}))


#: Run in a child process (a crash would end it, not the test run): build a struct array of the
#: model's inputs (3 rows), export it through the C Data Interface, make it lie, and score it.
LYING_ARRAY = r"""
import ctypes, sys
import pyarrow as pa
from streamml import InputError, Model

model = Model.load(sys.argv[1])
lie = sys.argv[2]
names = list(model.input_schema.names)
columns = [pa.array([1.0, 2.0, 3.0]) for _ in names]
if lie.startswith("extra-column"):  # not the binary's layout: the general (importing) path
    names.append("note")
    columns.append(pa.array(["a", "b", "c"]))
array = (ctypes.c_int64 * 10)()  # struct ArrowArray: length, null_count, offset, ... (80 bytes)
schema = (ctypes.c_int64 * 9)()  # struct ArrowSchema (72 bytes)
pa.StructArray.from_arrays(columns, names)._export_to_c(ctypes.addressof(array), ctypes.addressof(schema))
children = ctypes.cast(array[6], ctypes.POINTER(ctypes.c_void_p))
first = (ctypes.c_int64 * 10).from_address(children[0])
if lie.endswith("struct-length"):
    array[0] = 1_000_000  # the struct claims a million rows; its children hold 3
elif lie.endswith("child-length"):
    first[0] = 2  # the first child holds 2 values for a struct of 3 rows
elif lie.endswith("negative-offset"):
    array[2] = -5
new_capsule = ctypes.pythonapi.PyCapsule_New
new_capsule.restype = ctypes.py_object
new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
NAMES = (b"arrow_schema", b"arrow_array")


class Lying:
    def __arrow_c_array__(self, requested_schema=None):
        return (
            new_capsule(ctypes.addressof(schema), NAMES[0], None),
            new_capsule(ctypes.addressof(array), NAMES[1], None),
        )


try:
    model.predict(Lying())
except InputError as e:
    print(e)
    sys.exit(0)
print("scored")
sys.exit(1)
"""


@pytest.mark.parametrize(
    ("lie", "message"),
    [
        ("struct-length", "child 'x0' has 3 value(s) (from offset 0) but its parent needs 1000000"),
        ("child-length", "child 'x0' has 2 value(s) (from offset 0) but its parent needs 3"),
        ("negative-offset", "the input has a negative length or offset"),
        ("extra-column-struct-length", "child 'x0' has 3 value(s) (from offset 0) but its parent needs 1000000"),
        ("extra-column-child-length", "child 'x0' has 2 value(s) (from offset 0) but its parent needs 3"),
    ],
)
def test_a_lying_c_array_is_an_input_error_not_a_crash(s1_path: Path, lie: str, message: str) -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", LYING_ARRAY, str(s1_path), lie], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, (run.returncode, run.stdout, run.stderr[-2000:])
    assert run.stdout.strip() == f"the input is not a valid Arrow array: {message}; fix its producer"
