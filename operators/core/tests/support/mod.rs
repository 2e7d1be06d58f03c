//! Helpers for the loader tests: compile C model binaries at test time, build
//! batches for the C linear model, and compute its formula in Rust.

pub mod raw;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use streamml_core::{LoadError, LoadOptions, Model};

/// The repository root (this crate is `operators/core`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `operators/sdk/examples/c/linear_model.c`.
pub fn linear_model_source() -> PathBuf {
    repo_root().join("operators/sdk/examples/c/linear_model.c")
}

/// `tests/fixtures/c/{name}.c`.
pub fn fixture_source(name: &str) -> PathBuf {
    repo_root()
        .join("tests/fixtures/c")
        .join(format!("{name}.c"))
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct ScratchDir {
    pub path: PathBuf,
}

impl ScratchDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "streamml-core-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // A loaded library stays mapped after its file is gone.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A shared library compiled from C, in its own scratch directory (so no two
/// tests ever dlopen the same path).
pub struct Built {
    pub path: PathBuf,
    _dir: ScratchDir,
}

/// Compile `source` into a shared library with the system C compiler
/// (`$CC`, default `cc`), as docs/abi.md tells model authors to.
pub fn compile(source: &Path) -> Built {
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a C source file name");
    let dir = ScratchDir::new(stem);
    let path = dir.path.join(format!("{stem}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let include = repo_root().join("operators/abi/include");
    let output = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-std=c99", "-Wall", "-Wextra"])
        .arg("-I")
        .arg(&include)
        .arg(source)
        .arg("-o")
        .arg(&path)
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler '{cc}': {e}; set CC"));
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    Built { path, _dir: dir }
}

pub fn linear_model() -> Built {
    compile(&linear_model_source())
}

pub fn fixture(name: &str) -> Built {
    compile(&fixture_source(name))
}

/// Load a binary that must load.
pub fn load(built: &Built) -> Model {
    Model::load(&built.path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("loading {} failed: {e}", built.path.display()))
}

/// Load a binary that must be refused.
pub fn load_error(path: &Path, options: &LoadOptions) -> LoadError {
    match Model::load(path, options) {
        Ok(model) => panic!("{} loaded but should be refused: {model:?}", path.display()),
        Err(e) => e,
    }
}

/// One row of the linear model's input, as the tests generate it.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub x0: f64,
    pub x1: f64,
    pub x2: Option<f64>,
}

/// The linear model's formula, in Rust: a null x2 counts as 0.0.
pub fn formula(row: &Row) -> f64 {
    0.5 + 2.0 * row.x0 - 1.0 * row.x1 + 0.25 * row.x2.unwrap_or(0.0)
}

/// `n` deterministic pseudo-random rows in [-100, 100); every `null_every`-th
/// x2 is null (0: none).
pub fn rows(n: usize, seed: u64, null_every: usize) -> Vec<Row> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 53) as f64 * 200.0 - 100.0
    };
    (0..n)
        .map(|i| Row {
            x0: next(),
            x1: next(),
            x2: Some(next()).filter(|_| null_every == 0 || i % null_every != 0),
        })
        .collect()
}

/// A batch with columns x0, x1, x2 (float64) in declared order.
pub fn batch_of(rows: &[Row]) -> RecordBatch {
    let x0: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.x0)));
    let x1: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.x1)));
    let x2: ArrayRef = Arc::new(rows.iter().map(|r| r.x2).collect::<Float64Array>());
    RecordBatch::try_from_iter([("x0", x0), ("x1", x1), ("x2", x2)]).expect("a valid batch")
}

/// The `score` column of a prediction.
pub fn scores(out: &RecordBatch) -> Vec<f64> {
    assert_eq!(out.schema().field(0).name(), "score");
    let col = out
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("score is float64");
    assert_eq!(col.null_count(), 0, "score is declared non-nullable");
    col.values().to_vec()
}

/// Assert that `got` is the formula over `rows`. The C compiler may fuse a
/// multiply and an add (FMA), so allow for a last-bit difference.
pub fn assert_formula(got: &[f64], rows: &[Row]) {
    assert_eq!(got.len(), rows.len(), "one score per row");
    for (i, (g, row)) in got.iter().zip(rows).enumerate() {
        let want = formula(row);
        let tolerance = 1e-12 * want.abs().max(1.0);
        assert!(
            (g - want).abs() <= tolerance,
            "row {i}: got {g}, the formula gives {want} for {row:?}"
        );
    }
}
