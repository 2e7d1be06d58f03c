//! What the codec fuzz test feeds the codecs: an in-process model, valid seed
//! messages (JSON and Arrow IPC) and deterministic mutations of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, ListBuilder, StringDictionaryBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema};
use streamml_abi::{FieldSpec, ModelInfo, Task};
use streamml_core::codec::{Carry, Format, MessageScorer};
use streamml_core::{Backend, Model, PredictError};

/// y = a + 2 b + len(s) + f, reading every input value (nulls count 0).
struct Reader(ModelInfo);

impl Backend for Reader {
    fn info(&self) -> &ModelInfo {
        &self.0
    }
    fn origin(&self) -> &str {
        "test model 'reader'"
    }
    fn sha256(&self) -> Option<&str> {
        None
    }
    fn score(&self, input: &RecordBatch) -> Result<RecordBatch, PredictError> {
        let a = input.column(0).as_primitive::<Float64Type>();
        let b = input.column(1).as_primitive::<Int64Type>();
        let s = input.column(2).as_string::<i32>();
        let f = input.column(3).as_boolean();
        let y: Float64Array = (0..input.num_rows())
            .map(|r| {
                let b = if b.is_null(r) { 0.0 } else { b.value(r) as f64 };
                let s = if s.is_null(r) {
                    0.0
                } else {
                    s.value(r).len() as f64
                };
                let f = if f.is_null(r) {
                    0.0
                } else {
                    f64::from(u8::from(f.value(r)))
                };
                Some(a.value(r) + 2.0 * b + s + f)
            })
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new("y", DataType::Float64, true)]));
        Ok(RecordBatch::try_new(schema, vec![Arc::new(y)]).expect("one column"))
    }
}

pub fn model() -> Model {
    let info = ModelInfo {
        abi_version: streamml_abi::ABI_VERSION,
        name: "reader".into(),
        version: "1".into(),
        task: Task::Regression,
        framework: "test".into(),
        inputs: vec![
            FieldSpec::new("a", "float64", false),
            FieldSpec::new("b", "int64", true),
            FieldSpec::new("s", "utf8", true),
            FieldSpec::new("f", "bool", true),
        ],
        outputs: vec![FieldSpec::new("y", "float64", true)],
        drift_reference: None,
        metadata: Default::default(),
    };
    Model::from_backend(Arc::new(Reader(info))).expect("a model")
}

pub fn scorer(format: Format) -> MessageScorer {
    let carry = Carry {
        id_field: Some("id".into()),
        fields: vec!["t".into()],
    };
    MessageScorer::new(model(), format, carry).expect("a scorer")
}

/// `operators/core/tests/corpus/<kind>`.
pub fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind)
}

/// The messages saved under `corpus/<kind>`, by file name.
pub fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir(kind))
        .expect("the corpus directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("a corpus file"))
        })
        .collect()
}

pub fn json_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        r#"{"id":"e-1","a":1.5,"b":2,"s":"red","f":true,"t":"2026-12-06"}"#,
        r#"{"a":-0.25,"b":null,"s":null,"f":null,"id":17}"#,
        r#" { "t" : [1, {"k": 2}], "a" : 3e2 , "b" : -9223372036854775808, "s": "caf\u00e9", "f": false } "#,
        r#"{"a":1,"b":1,"s":"x","f":true,"x0":0.5,"x1":-1.25,"x2":1e-300,"unused":{"deep":[[[]]]}}"#,
        r#"{"a":0.1,"b":0,"s":"","f":false,"id":"e\"2"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // R1-like: 32 floats beside the inputs.
    let mut r1 = String::from(r#"{"id":"r1","a":0.5,"b":3,"s":"blue","f":true"#);
    for i in 0..32 {
        r1.push_str(&format!(r#","x{i}":{}"#, (i as f64 * 0.37).sin()));
    }
    r1.push('}');
    seeds.push(r1.into_bytes());
    seeds
}

fn ipc(batches: &[RecordBatch]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, batches[0].schema_ref()).expect("a writer");
    for b in batches {
        w.write(b).expect("written");
    }
    w.finish().expect("finished");
    drop(w);
    buf
}

pub fn ipc_seeds() -> Vec<Vec<u8>> {
    let plain = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(StringArray::from(vec!["e1", "e2", "e3"])) as ArrayRef,
        ),
        ("a", Arc::new(Float64Array::from(vec![1.5, -2.0, 0.0]))),
        (
            "b",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![Some("red"), None, Some("")])),
        ),
        (
            "f",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
    ])
    .unwrap();
    // Casts: float32 into a, dictionary of strings into s; an extra list column.
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for v in ["x", "yy", "x", "zzz"] {
        dict.append_value(v);
    }
    let mut list = ListBuilder::new(Int32Builder::new());
    for r in 0..4 {
        for v in 0..r {
            list.values().append_value(v);
        }
        list.append(true);
    }
    let cast = RecordBatch::try_from_iter(vec![
        ("s", Arc::new(dict.finish()) as ArrayRef),
        ("t", Arc::new(list.finish())),
        ("a", Arc::new(Float32Array::from(vec![0.5, 1.0, 2.0, 4.0]))),
        ("b", Arc::new(Int64Array::from(vec![7, 8, 9, 10]))),
        (
            "f",
            Arc::new(BooleanArray::from(vec![true, true, false, false])),
        ),
    ])
    .unwrap();
    vec![
        ipc(std::slice::from_ref(&plain)),
        ipc(&[plain.clone(), plain.slice(1, 2)]),
        ipc(&[cast]),
    ]
}

/// xorshift64*: the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that make a length field lie.
const INFLATED: [u64; 8] = [
    0x7fff_ffff,
    0xffff_ffff,
    0x8000_0000,
    1 << 40,
    0x0000_0d00_0000_0000, // ~14 TB
    i64::MAX as u64,
    u64::MAX,
    0x0100_0000,
];

/// One mutation of `seed` (`others`: splice partners); `json` adds the
/// JSON-specific ones (deep nesting, huge numbers, bad UTF-8, giant strings).
pub fn mutate(rng: &mut Rng, seed: &[u8], others: &[Vec<u8>], json: bool) -> Vec<u8> {
    let mut m = seed.to_vec();
    let kinds = if json { 9 } else { 5 };
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        if m.is_empty() {
            m.push(rng.next() as u8);
        }
        match rng.below(kinds) {
            // Byte flips.
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(m.len());
                    m[i] ^= 1 << rng.below(8);
                }
            }
            // Random bytes.
            1 => {
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(m.len());
                    m[i] = rng.next() as u8;
                }
            }
            // Truncation.
            2 => m.truncate(rng.below(m.len())),
            // Length-field inflation: a 4- or 8-byte word (aligned) overwritten.
            3 => {
                let width = if rng.below(2) == 0 { 4 } else { 8 };
                if m.len() >= width {
                    let at = rng.below(m.len() / width) * width;
                    let v = INFLATED[rng.below(INFLATED.len())];
                    m[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                }
            }
            // Splice: a prefix of this one, the suffix of another.
            4 => {
                let other = &others[rng.below(others.len())];
                let cut = rng.below(m.len());
                let from = rng.below(other.len());
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
            // JSON: deep nesting in place of a value.
            5 => {
                let depth = [10, 200, 5_000, 100_000][rng.below(4)];
                let mut v = "[".repeat(depth);
                v.push_str(&"]".repeat(depth * rng.below(2)));
                replace_value(rng, &mut m, v.as_bytes());
            }
            // JSON: huge numbers.
            6 => {
                let v: &[u8] = [
                    &b"1e999999999"[..],
                    b"-1e-99999999",
                    b"123456789012345678901234567890123456789012345678901234567890",
                    b"18446744073709551616",
                    b"-9223372036854775809",
                    b"0.000000000000000000000000000000000000000000000000000000000000001e-400",
                ][rng.below(6)];
                replace_value(rng, &mut m, v);
            }
            // JSON: invalid UTF-8 and control bytes.
            7 => {
                let i = rng.below(m.len());
                let bad: &[u8] = [
                    &b"\xff"[..],
                    b"\xc3",
                    b"\xed\xa0\x80",
                    b"\x00",
                    b"\\ud800",
                    b"\\",
                ][rng.below(6)];
                m.splice(i..i, bad.iter().copied());
            }
            // JSON: a giant string.
            _ => {
                let mut v = vec![b'"'];
                v.extend(std::iter::repeat_n(
                    b'z',
                    [1 << 10, 1 << 14, 1 << 17][rng.below(3)],
                ));
                v.push(b'"');
                replace_value(rng, &mut m, &v);
            }
        }
    }
    m
}

/// Put `v` after a random ':' (a value's place), or append it.
fn replace_value(rng: &mut Rng, m: &mut Vec<u8>, v: &[u8]) {
    let colons: Vec<usize> = m
        .iter()
        .enumerate()
        .filter(|(_, &c)| c == b':')
        .map(|(i, _)| i)
        .collect();
    if colons.is_empty() {
        m.extend_from_slice(v);
        return;
    }
    let at = colons[rng.below(colons.len())] + 1;
    let end = m[at..]
        .iter()
        .position(|&c| c == b',' || c == b'}')
        .map_or(m.len(), |p| at + p);
    m.splice(at..end, v.iter().copied());
}

/// Is this a message the scorer reads (used to build the mix of a batch)?
pub fn format_of(json: bool) -> Format {
    if json {
        Format::Json
    } else {
        Format::Arrow
    }
}
