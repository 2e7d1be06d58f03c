//! The host against real model binaries written in C: the example
//! `operators/sdk/examples/c/linear_model.c` and the fixtures in
//! `tests/fixtures/c/`, compiled with the system C compiler at test time.
//!
//! Each test loads its own copy of a binary, so tests run in parallel.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    StructArray,
};
use arrow_data::ArrayData;
use arrow_schema::{DataType, Field};
use sha2::{Digest, Sha256};
use streamml_abi::{InfoError, STATUS_INTERNAL, STATUS_INVALID_INPUT, STATUS_UNSUPPORTED_ABI};
use streamml_core::{Error, LoadErrorKind, LoadOptions, Model, PredictError, Task};
use support::{
    assert_formula, batch_of, fixture, linear_model, load, load_error, raw, rows, scores, Row,
    ScratchDir,
};

/// The predict error of a result that must be one.
fn predict_error(result: Result<RecordBatch, Error>) -> PredictError {
    match result {
        Err(Error::Predict(e)) => e,
        other => panic!("expected a predict error, got {other:?}"),
    }
}

/// The model's ABI status: the `status` field, or the `status N:` prefix the
/// loader writes into the reason (see the report on `PredictError::status`).
fn status_of(e: &PredictError) -> Option<i32> {
    e.status.or_else(|| {
        e.reason
            .strip_prefix("status ")?
            .split(':')
            .next()?
            .parse()
            .ok()
    })
}

// ---- the C linear model scores what the formula says ----

#[test]
fn linear_model_describes_itself_in_its_info() {
    let built = linear_model();
    let model = load(&built);
    let info = model.info();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("c_linear", "1.0.0")
    );
    assert_eq!(
        (info.task, info.framework.as_str()),
        (Task::Regression, "c")
    );
    let inputs: Vec<_> = info
        .inputs
        .iter()
        .map(|f| (f.name.as_str(), f.ty.as_str(), f.nullable))
        .collect();
    assert_eq!(
        inputs,
        [
            ("x0", "float64", false),
            ("x1", "float64", false),
            ("x2", "float64", true)
        ]
    );
    assert_eq!(info.outputs.len(), 1);
    assert_eq!(
        (info.outputs[0].name.as_str(), info.outputs[0].nullable),
        ("score", false)
    );
    assert!(info.metadata["description"]
        .as_str()
        .is_some_and(|d| d.contains("0.25*x2")));
    assert!(info.drift_reference.is_none());
    assert!(
        model.origin().contains(&built.path.display().to_string()),
        "{}",
        model.origin()
    );
}

#[test]
fn linear_model_matches_the_formula_and_counts_a_null_x2_as_zero() {
    let model = load(&linear_model());
    let rows = rows(1000, 1, 3);
    assert!(rows.iter().any(|r| r.x2.is_none()));
    assert_formula(&scores(&model.predict(&batch_of(&rows)).unwrap()), &rows);
}

#[test]
fn linear_model_maps_columns_by_name_ignores_extras_and_casts_integers() {
    let model = load(&linear_model());
    let rows: Vec<Row> = (0..50)
        .map(|i| Row {
            x0: i as f64,
            x1: (i * 7 % 11) as f64 - 5.0,
            x2: (i % 4 != 0).then(|| i as f64 / 2.0),
        })
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "comment",
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|_| "ignored"),
            )),
        ),
        (
            "x2",
            Arc::new(
                rows.iter()
                    .map(|r| r.x2.map(|v| v as f32))
                    .collect::<Float32Array>(),
            ),
        ),
        (
            "x1",
            Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.x1 as i32),
            )),
        ),
        (
            "x0",
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.x0 as i64),
            )),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    assert_formula(&scores(&model.predict(&batch).unwrap()), &rows);
}

#[test]
fn linear_model_scores_a_sliced_batch() {
    let model = load(&linear_model());
    let mut rows = rows(64, 2, 3);
    // Outside the slice: an error here would mean rows outside it were read.
    rows[5].x0 = f64::NAN;
    rows[60].x1 = f64::INFINITY;
    let (offset, len) = (13, 40); // not a multiple of 8: the bitmap starts mid-byte
    let sliced = batch_of(&rows).slice(offset, len);
    assert_formula(
        &scores(&model.predict(&sliced).unwrap()),
        &rows[offset..offset + len],
    );
}

#[test]
fn linear_model_applies_struct_and_child_offsets_of_its_input() {
    // arrow-rs folds a slice into the buffers before the host exports it, so
    // the host path above sends offsets of 0. The ABI allows any offset: here
    // each child starts after its own run of NaN padding, and the struct
    // skips its first rows, so an ignored offset reads a NaN and fails.
    let model = raw::init(&linear_model().path, 1).expect("init v1");
    let rows = rows(40, 3, 4);
    let padded = |pad: usize, values: Vec<Option<f64>>| {
        let column: Float64Array = std::iter::repeat_n(Some(f64::NAN), pad)
            .chain(values)
            .collect();
        offset_by(&column.into_data(), pad)
    };
    let children = vec![
        padded(1, rows.iter().map(|r| Some(r.x0)).collect()),
        padded(2, rows.iter().map(|r| Some(r.x1)).collect()),
        padded(11, rows.iter().map(|r| r.x2).collect()),
    ];
    let fields: Vec<Field> = ["x0", "x1", "x2"]
        .map(|n| Field::new(n, DataType::Float64, true))
        .into();
    let input = ArrayData::builder(DataType::Struct(fields.into()))
        .len(rows.len())
        .child_data(children)
        .build()
        .unwrap();
    let out = StructArray::from(model.predict(&offset_by(&input, 6)).unwrap());
    let score = out
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_formula(score.values(), &rows[6..]);
}

/// `data` from row `k` on, through `ArrayData::offset` (its buffers unsliced).
fn offset_by(data: &ArrayData, k: usize) -> ArrayData {
    assert_eq!(data.offset(), 0);
    ArrayData::builder(data.data_type().clone())
        .len(data.len() - k)
        .offset(k)
        .buffers(data.buffers().to_vec())
        .null_bit_buffer(data.nulls().map(|n| n.buffer().clone()))
        .child_data(data.child_data().to_vec())
        .build()
        .unwrap()
}

#[test]
fn linear_model_refuses_a_non_finite_value_naming_the_first_column_and_row() {
    let model = load(&linear_model());
    // (column, row, value) planted, then the error the model must report:
    // rows are scanned in order, columns x0, x1, x2 within a row.
    type Planted = &'static [(usize, usize, f64)];
    let cases: [(Planted, &str); 3] = [
        (
            &[(1, 7, f64::NAN), (2, 7, f64::INFINITY), (0, 8, f64::NAN)],
            "column 'x1' at row 7",
        ),
        (
            &[(0, 3, f64::NEG_INFINITY), (2, 2, f64::NAN)],
            "column 'x2' at row 2",
        ),
        (&[(0, 0, f64::INFINITY)], "column 'x0' at row 0"),
    ];
    for (planted, expected) in cases {
        let mut rows = rows(10, 4, 0);
        for &(column, row, value) in planted {
            let r = &mut rows[row];
            *[&mut r.x0, &mut r.x1, r.x2.as_mut().unwrap()][column] = value;
        }
        let e = predict_error(model.predict(&batch_of(&rows)));
        assert_eq!(status_of(&e), Some(STATUS_INVALID_INPUT), "{e}");
        assert!(
            e.reason
                .ends_with(&format!("non-finite value in {expected}")),
            "{e}"
        );
        assert_eq!(e.rows, 10);
    }
}

#[test]
fn linear_model_ignores_a_nan_hidden_under_a_null_x2() {
    let model = load(&linear_model());
    let values = Float64Array::from(vec![1.0, f64::NAN, 3.0])
        .values()
        .clone();
    let nulls = Float64Array::from(vec![Some(0.0), None, Some(0.0)])
        .nulls()
        .cloned();
    let x2 = Float64Array::new(values, nulls);
    let batch = RecordBatch::try_from_iter([
        (
            "x0",
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as ArrayRef,
        ),
        ("x1", Arc::new(Float64Array::from(vec![0.0, 0.0, 0.0]))),
        ("x2", Arc::new(x2)),
    ])
    .unwrap();
    let rows =
        [(1.0, Some(1.0)), (2.0, None), (3.0, Some(3.0))].map(|(x0, x2)| Row { x0, x1: 0.0, x2 });
    assert_formula(&scores(&model.predict(&batch).unwrap()), &rows);
}

#[test]
fn an_empty_batch_returns_zero_rows_without_error() {
    let model = load(&linear_model());
    let out = model.predict(&batch_of(&[])).unwrap();
    assert_eq!(out.num_rows(), 0);
    assert_eq!(out.schema().field(0).name(), "score");
}

#[test]
fn linear_model_called_directly_with_zero_rows_returns_a_valid_empty_output() {
    // The host answers empty batches itself; other hosts may call predict.
    let model = raw::init(&linear_model().path, 1).expect("init v1");
    let input = StructArray::from(batch_of(&[])).into_data();
    let out = model.predict(&input).unwrap();
    assert_eq!((out.len(), out.child_data()[0].len()), (0, 0));
}

#[test]
fn a_million_row_batch_is_scored_in_one_call() {
    let model = load(&linear_model());
    let rows = rows(1_000_000, 5, 7);
    assert_formula(&scores(&model.predict(&batch_of(&rows)).unwrap()), &rows);
}

#[test]
fn four_threads_predicting_on_one_model_get_the_single_threaded_result() {
    let model = load(&linear_model());
    let batch = batch_of(&rows(10_000, 6, 5));
    let expected = scores(&model.predict(&batch).unwrap());
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..25)
                        .map(|_| scores(&model.predict(&batch).unwrap()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for thread in threads {
            for got in thread.join().expect("no thread panicked") {
                assert!(got
                    .iter()
                    .zip(&expected)
                    .all(|(g, e)| g.to_bits() == e.to_bits()));
            }
        }
    });
}

#[test]
fn predict_calls_on_one_model_run_at_the_same_time() {
    let model = load(&fixture("sleepy"));
    let sleep_ms = 400.0;
    let batch = RecordBatch::try_from_iter([(
        "x",
        Arc::new(Float64Array::from(vec![sleep_ms, 1.0, 2.0])) as ArrayRef,
    )])
    .unwrap();
    let start = Instant::now();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| s.spawn(|| model.predict(&batch).unwrap()))
            .collect();
        for thread in threads {
            let out = thread.join().expect("no thread panicked");
            assert_eq!(
                out.column(0).as_ref(),
                batch.column(0).as_ref(),
                "sleepy returns y = x"
            );
        }
    });
    let elapsed = start.elapsed();
    // One after another would take 1600 ms; at the same time, about 400 ms.
    assert!(
        elapsed >= Duration::from_millis(400),
        "sleepy did not sleep: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1200),
        "4 calls took {elapsed:?}: they were serialised"
    );
}

#[test]
fn linear_model_refuses_abi_versions_other_than_1() {
    let built = linear_model();
    for version in [0, 2, 7] {
        let (status, message) = raw::init(&built.path, version).err().expect("refused");
        assert_eq!(status, STATUS_UNSUPPORTED_ABI);
        assert!(
            message.contains("ABI v1") && message.contains(&format!("v{version}")),
            "{message}"
        );
    }
}

#[test]
fn linear_model_refuses_an_input_that_is_not_its_declared_struct() {
    let model = raw::init(&linear_model().path, 1).expect("init v1");
    let column = |name: &str, values: ArrayRef| {
        (
            Arc::new(Field::new(name, values.data_type().clone(), true)),
            values,
        )
    };
    let f64s = || Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef;
    let cases = [
        (
            vec![column("x0", f64s()), column("x1", f64s())],
            "the input has 2 fields, expected 3 (x0, x1, x2)",
        ),
        (
            vec![
                column("x0", f64s()),
                column("x1", f64s()),
                column("x2", Arc::new(Int64Array::from(vec![1, 2]))),
            ],
            "input field 'x2' has format 'l', expected float64 ('g')",
        ),
        (
            vec![
                column("x0", f64s()),
                column("b", f64s()),
                column("x2", f64s()),
            ],
            "input field 1 is named 'b', expected 'x1'",
        ),
    ];
    for (columns, expected) in cases {
        let input = StructArray::from(columns).into_data();
        assert_eq!(
            model.predict(&input).unwrap_err(),
            (STATUS_INVALID_INPUT, expected.to_string())
        );
    }
    let not_a_struct = Float64Array::from(vec![1.0]).into_data();
    let (status, message) = model.predict(&not_a_struct).unwrap_err();
    assert_eq!(status, STATUS_INVALID_INPUT);
    assert!(
        message.contains("format 'g', expected a struct ('+s')"),
        "{message}"
    );
}

// ---- the host verifies a binary before it runs it ----

#[test]
fn the_reported_sha256_is_the_sha256_of_the_file() {
    let built = linear_model();
    let model = load(&built);
    let independent: String = Sha256::digest(std::fs::read(&built.path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(model.sha256(), Some(independent.as_str()));
    // The expected hash is compared case-insensitively.
    let options = LoadOptions {
        expected_sha256: Some(independent.to_uppercase()),
        ..LoadOptions::default()
    };
    Model::load(&built.path, &options).expect("the right hash loads");
}

#[test]
fn a_wrong_expected_sha256_is_refused_naming_both_hashes_and_the_file() {
    let built = linear_model();
    let wrong = "0".repeat(64);
    let options = LoadOptions {
        expected_sha256: Some(wrong.clone()),
        ..LoadOptions::default()
    };
    let err = load_error(&built.path, &options);
    let LoadErrorKind::ShaMismatch { expected, got } = &err.kind else {
        panic!("{err}")
    };
    assert_eq!(expected, &wrong);
    assert_eq!(Some(got.as_str()), load(&built).sha256());
    let text = err.to_string();
    assert!(
        text.contains(&built.path.display().to_string()) && text.contains(got),
        "{text}"
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_the_path() {
    let dir = ScratchDir::new("missing");
    let path = dir.path.join("no_such_model.so");
    let err = load_error(&path, &LoadOptions::default());
    assert!(
        matches!(&err.kind, LoadErrorKind::Io(e) if e.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_text_file_is_refused_as_not_a_library() {
    let dir = ScratchDir::new("text");
    let path = dir.path.join("model.so");
    std::fs::write(&path, "this is a README, not a model binary\n").unwrap();
    let err = load_error(&path, &LoadOptions::default());
    assert!(
        matches!(&err.kind, LoadErrorKind::BadElf(m) if m == "it does not start with an ELF header"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_library_without_the_entry_point_is_refused() {
    let built = fixture("no_entry_point");
    let err = load_error(&built.path, &LoadOptions::default());
    assert!(matches!(err.kind, LoadErrorKind::NoEntryPoint), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&built.path.display().to_string()) && text.contains("streamml_model_init"),
        "{text}"
    );
}

#[test]
fn a_binary_that_speaks_only_abi_v2_is_refused_with_its_message() {
    let built = fixture("abi_v2_only");
    let err = load_error(&built.path, &LoadOptions::default());
    let LoadErrorKind::UnsupportedAbi { host, message } = &err.kind else {
        panic!("{err}")
    };
    assert_eq!(
        (*host, message.as_str()),
        (1, "this binary speaks streamml ABI v2 only")
    );
    assert!(
        err.to_string().contains(&built.path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_failing_init_is_reported_with_its_status_and_message() {
    let built = fixture("init_fails");
    let err = load_error(&built.path, &LoadOptions::default());
    let LoadErrorKind::InitFailed { status, message } = &err.kind else {
        panic!("{err}")
    };
    assert_eq!(
        (*status, message.as_str()),
        (STATUS_INTERNAL, "license file /etc/model.lic not found")
    );
    let text = err.to_string();
    assert!(
        text.contains(&built.path.display().to_string()) && text.contains(message),
        "{text}"
    );
}

#[test]
fn a_truncated_info_document_is_refused_as_bad_info() {
    let built = fixture("bad_info");
    let err = load_error(&built.path, &LoadOptions::default());
    assert!(
        matches!(err.kind, LoadErrorKind::BadInfo(InfoError::Json(_))),
        "{err}"
    );
    assert!(
        err.to_string().contains(&built.path.display().to_string()),
        "{err}"
    );
}

// ---- the host checks what a binary returns ----

#[test]
fn an_output_with_the_wrong_row_count_is_refused_naming_both_counts() {
    let built = fixture("wrong_rows");
    let model = load(&built);
    let batch = RecordBatch::try_from_iter([(
        "x",
        Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as ArrayRef,
    )])
    .unwrap();
    let e = predict_error(model.predict(&batch));
    assert_eq!(e.rows, 3);
    assert!(
        e.reason.contains("4 row(s)") && e.reason.contains("input of 3"),
        "{e}"
    );
    assert!(
        e.to_string().contains(&built.path.display().to_string()),
        "{e}"
    );
}

// ---- the status a model returns, and what runs after a file is replaced ----

#[test]
fn a_model_status_is_kept_in_the_predict_error() {
    let model = load(&linear_model());
    let e = predict_error(model.predict(&batch_of(&[Row {
        x0: f64::NAN,
        x1: 0.0,
        x2: None,
    }])));
    assert_eq!(e.status, Some(STATUS_INVALID_INPUT), "{e}");
}

#[test]
fn a_binary_replaced_at_the_same_path_is_loaded_anew() {
    let dir = ScratchDir::new("replaced");
    let path = dir.path.join("model.so");
    let (first, second) = (linear_model(), fixture("sleepy"));
    std::fs::copy(&first.path, &path).unwrap();
    assert_eq!(
        Model::load(&path, &LoadOptions::default())
            .unwrap()
            .info()
            .name,
        "c_linear"
    );
    std::fs::remove_file(&path).unwrap();
    std::fs::copy(&second.path, &path).unwrap();
    let reloaded = Model::load(&path, &LoadOptions::default()).unwrap();
    // The reported hash is the new file's; the code that runs must be too.
    assert_eq!(reloaded.info().name, "sleepy");
}
