//! Rows of Java values for `dev.streamml.flink.RowScorer`: one row at a
//! time through the core's one-row path ([`OneRowScorer`], a handle per
//! thread), rows that Java encodes into a direct `ByteBuffer` it reuses (or,
//! for a row of doubles none null, passes as a `double[]`) and outputs
//! written into another; or many rows as one batch
//! ([`score_rows`], the core's [`RowBuilder`]).
//!
//! A row is an `i32` count of values, then per value a tag byte and its
//! payload, in native byte order: `A` absent, `N` null, `d` f64, `j` i64,
//! `z` one byte (0 or 1), `s` an `i32` length and UTF-8 bytes, `o` the same
//! for the description of a value of a Java type rows do not carry (`a
//! LocalDate`). The outputs are, per declared output, a tag and a payload:
//! `N` null, or the Arrow C format of the value (`g` f64, `f` f32, `l` i64,
//! `i` i32, `s` i16, `c` i8, `L` u64, `I` u32, `S` u16, `C` u8 as their
//! bytes, `b` one byte, `u` an `i32` length and UTF-8 bytes).
//!
//! The checks (arity, absent, null, kinds, ranges) and their messages are the
//! core's ([`streamml_core::rows::check_row`]); this module only decodes.

use jni::objects::{JByteBuffer, JDoubleArray};
use jni::sys::{jint, jlong};
use jni::JNIEnv;
use arrow_schema::Schema;
use streamml_core::one_row::{column_value, OneRowScorer, OutValue, RowFailure, ScoredRow};
use streamml_core::rows::{float64_rows, wrong_kind, Cell, MissingFields, RowBuilder};
use streamml_core::Model;

use crate::guard::{ShimError, ShimResult};

/// What a row handle owns: the scorer and the reason of the last refusal.
pub struct RowHandle {
    scorer: OneRowScorer,
    error: String,
    /// The outputs of the last row, before they are copied to Java's buffer.
    written: Vec<u8>,
    /// The last row of doubles, copied from Java's array.
    doubles: Vec<f64>,
}

/// `rowScore`'s answer for a refused row (its reason: `rowError`).
pub const REFUSED: jint = -1;

/// The rule for absent fields Java asks for.
pub fn missing(absent_is_null: bool) -> MissingFields {
    if absent_is_null {
        MissingFields::Null
    } else {
        MissingFields::Error
    }
}

pub fn open(model: &Model, absent_is_null: bool) -> ShimResult<jlong> {
    let scorer = OneRowScorer::new(model.clone(), missing(absent_is_null))?;
    let handle = RowHandle {
        scorer,
        error: String::new(),
        written: Vec::new(),
        doubles: Vec::new(),
    };
    Ok(Box::into_raw(Box::new(handle)) as jlong)
}

impl RowHandle {
    /// Why the last refused row was refused.
    pub fn error(&self) -> &str {
        &self.error
    }
}

pub fn handle<'a>(handle: jlong) -> ShimResult<&'a mut RowHandle> {
    if handle == 0 {
        return Err(ShimError("the row scorer is closed (handle 0)".into()));
    }
    // SAFETY: a non-zero handle is a live `Box<RowHandle>` from `open`; Java
    // uses it from one thread at a time and never after `release`.
    Ok(unsafe { &mut *(handle as *mut RowHandle) })
}

pub fn release(handle: jlong) {
    if handle != 0 {
        // SAFETY: the handle came from `open` and Java releases it once.
        drop(unsafe { Box::from_raw(handle as *mut RowHandle) });
    }
}

/// A direct buffer's memory, checked against the length Java says it filled.
fn direct<'a>(env: &JNIEnv<'_>, buf: &JByteBuffer<'_>, what: &str) -> ShimResult<&'a mut [u8]> {
    let ptr = env
        .get_direct_buffer_address(buf)
        .map_err(|e| ShimError(format!("the {what} buffer is not a direct ByteBuffer: {e}")))?;
    let capacity = env.get_direct_buffer_capacity(buf)?;
    // SAFETY: a direct buffer's memory, `capacity` bytes, which Java keeps
    // alive and does not touch during the call.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, capacity) })
}

/// Score the row in `input[..length]`, write the outputs into `output`;
/// returns the bytes written, [`REFUSED`], or `-n` (n > 1) when `output`
/// must hold `n` bytes (Java grows it and asks again).
pub fn score(
    env: &JNIEnv<'_>,
    row: &mut RowHandle,
    input: &JByteBuffer<'_>,
    length: jint,
    output: &JByteBuffer<'_>,
) -> ShimResult<jint> {
    let bytes = direct(env, input, "input")?;
    let length = checked_length(length, bytes.len())?;
    let mut r = Reader {
        bytes: &bytes[..length],
        at: 0,
    };
    let schema = row.scorer.model().input_schema().clone();
    // One allocation per row, not a growing vector.
    let mut cells = Vec::with_capacity(schema.fields().len());
    let decoded = decode_row(&mut r, &schema, row.scorer.missing(), &mut cells)?;
    r.end()?;
    if let Err(reason) = decoded {
        row.error = reason;
        return Ok(REFUSED);
    }
    let scored = row.scorer.score(&cells);
    write_outputs(env, row, scored, output)
}

/// Score the row of `length` doubles at the start of `values` (none null;
/// the core's [`OneRowScorer::score_f64`]) and write its outputs as
/// [`score`] does.
pub fn score_doubles(
    env: &JNIEnv<'_>,
    row: &mut RowHandle,
    values: &JDoubleArray<'_>,
    length: jint,
    output: &JByteBuffer<'_>,
) -> ShimResult<jint> {
    let held = env.get_array_length(values)?;
    let n = usize::try_from(length)
        .ok()
        .filter(|_| length <= held)
        .ok_or_else(|| ShimError(format!("the row has {length} values, outside its array of {held}")))?;
    row.doubles.resize(n, 0.0);
    env.get_double_array_region(values, 0, &mut row.doubles)?;
    let scored = row.scorer.score_f64(&row.doubles);
    write_outputs(env, row, scored, output)
}

/// Write a scored row's outputs into `output` (see [`score`]'s answer), or
/// keep the reason of a refused row.
fn write_outputs(
    env: &JNIEnv<'_>,
    row: &mut RowHandle,
    scored: Result<ScoredRow, RowFailure>,
    output: &JByteBuffer<'_>,
) -> ShimResult<jint> {
    let scored = match scored {
        Ok(scored) => scored,
        Err(RowFailure::Refused(reason)) => {
            row.error = reason;
            return Ok(REFUSED);
        }
        Err(RowFailure::Failed(e)) => return Err(ShimError(e.to_string())),
    };
    let written = &mut row.written;
    written.clear();
    let read = scored.read(|_, v| {
        put_value(written, v);
        Ok::<(), ShimError>(())
    })?;
    if !read {
        return Err(unreadable(row.scorer.model()));
    }
    let out = direct(env, output, "output")?;
    if written.len() > out.len() {
        let needed = jint::try_from(written.len())
            .map_err(|_| ShimError("the outputs are over 2 GiB".into()))?;
        return Ok(-needed.max(2));
    }
    out[..written.len()].copy_from_slice(written);
    Ok(written.len() as jint)
}

fn unreadable(model: &Model) -> ShimError {
    ShimError(format!(
        "{} has an output of a type rows cannot carry; score it with NativeModel.predict",
        model.origin()
    ))
}

/// Score `rows` rows encoded one after the other in `input[..length]` as
/// one batch: the good rows together, each refused row alone with its
/// reason. Returns a byte 1 if the model ran (0: every row was refused),
/// then per row `O` and its outputs, or `E`, an `i32` length and the reason.
pub fn score_rows(
    env: &JNIEnv<'_>,
    model: &Model,
    input: &JByteBuffer<'_>,
    length: jint,
    rows: jint,
    missing: MissingFields,
) -> ShimResult<Vec<u8>> {
    let bytes = direct(env, input, "input")?;
    let length = checked_length(length, bytes.len())?;
    let rows = usize::try_from(rows).map_err(|_| ShimError(format!("the row count is {rows}")))?;
    let schema = model.input_schema().clone();
    let mut builder = RowBuilder::new(schema.clone())?;
    let mut r = Reader {
        bytes: &bytes[..length],
        at: 0,
    };
    let mut refused: Vec<Option<String>> = Vec::with_capacity(rows.min(length));
    let mut cells = Vec::with_capacity(schema.fields().len());
    for _ in 0..rows {
        cells.clear();
        let reason = match decode_row(&mut r, &schema, missing, &mut cells)? {
            Ok(()) => builder.append_row(&cells).err(),
            Err(reason) => Some(reason),
        };
        refused.push(reason);
    }
    r.end()?;
    answer(model, refused, &mut builder)
}

/// Score `rows` rows of `width` doubles each (none null), one row after the
/// other at the start of `values`, as [`score_rows`] scores the same rows
/// encoded, with the same answer. Rows of every input when all are float64
/// become the batch's columns as they are ([`float64_rows`]); other rows are
/// checked cell by cell.
pub fn score_rows_doubles(
    env: &JNIEnv<'_>,
    model: &Model,
    values: &JDoubleArray<'_>,
    rows: jint,
    width: jint,
) -> ShimResult<Vec<u8>> {
    let held = env.get_array_length(values)?;
    let (rows, width) = match (usize::try_from(rows), usize::try_from(width)) {
        (Ok(r), Ok(w)) if w > 0 && r.checked_mul(w).is_some_and(|n| n <= held as usize) => (r, w),
        _ => {
            return Err(ShimError(format!(
                "{rows} rows of {width} doubles do not fit the array of {held}"
            )))
        }
    };
    let mut buf = vec![0f64; rows * width];
    env.get_double_array_region(values, 0, &mut buf)?;
    let schema = model.input_schema();
    let mut builder = RowBuilder::new(schema.clone())?;
    if rows > 0 && width == schema.fields().len() {
        if let Some(batch) = float64_rows(schema, &buf) {
            let scored = model.score_prepared(&batch)?;
            return answer_scored(model, vec![None; rows], Some(scored));
        }
    }
    let mut cells = Vec::with_capacity(width);
    let refused = buf
        .chunks(width)
        .map(|row| {
            cells.clear();
            cells.extend(row.iter().map(|v| Cell::Float(*v)));
            builder.append_row(&cells).err()
        })
        .collect();
    answer(model, refused, &mut builder)
}

/// Score the rows `builder` holds and answer for every row (see
/// [`score_rows`]): `refused` names each row's reason, or `None` for the
/// rows the builder took, in order.
fn answer(model: &Model, refused: Vec<Option<String>>, builder: &mut RowBuilder) -> ShimResult<Vec<u8>> {
    let scored = if builder.is_empty() {
        None
    } else {
        let batch = builder.finish()?;
        Some(model.score_prepared(&batch)?)
    };
    answer_scored(model, refused, scored)
}

fn answer_scored(
    model: &Model,
    refused: Vec<Option<String>>,
    scored: Option<arrow_array::RecordBatch>,
) -> ShimResult<Vec<u8>> {
    let rows = refused.len();
    let mut out = Vec::with_capacity(1 + rows * 16);
    out.push(u8::from(scored.is_some()));
    let mut k = 0;
    for reason in refused {
        if let Some(reason) = reason {
            out.push(b'E');
            put_bytes(&mut out, reason.as_bytes());
            continue;
        }
        let batch = scored.as_ref().expect("a row was accepted");
        out.push(b'O');
        for column in batch.columns() {
            let v = column_value(column.as_ref(), k).ok_or_else(|| unreadable(model))?;
            put_value(&mut out, v);
        }
        k += 1;
    }
    Ok(out)
}

fn checked_length(length: jint, capacity: usize) -> ShimResult<usize> {
    usize::try_from(length)
        .ok()
        .filter(|n| *n <= capacity)
        .ok_or_else(|| {
            ShimError(format!(
                "the rows' length is {length}, outside the input buffer's {capacity} bytes"
            ))
        })
}

/// An `i32` length and the bytes (outputs and reasons are checked Arrow or
/// messages: under 2 GiB).
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_ne_bytes());
    out.extend_from_slice(bytes);
}

/// One output value: its tag and payload (see the module docs).
fn put_value(out: &mut Vec<u8>, v: OutValue<'_>) {
    let mut tagged = |tag: u8, bytes: &[u8]| {
        out.push(tag);
        out.extend_from_slice(bytes);
    };
    match v {
        OutValue::Null => tagged(b'N', &[]),
        OutValue::F64(x) => tagged(b'g', &x.to_ne_bytes()),
        OutValue::F32(x) => tagged(b'f', &x.to_ne_bytes()),
        OutValue::I64(x) => tagged(b'l', &x.to_ne_bytes()),
        OutValue::I32(x) => tagged(b'i', &x.to_ne_bytes()),
        OutValue::I16(x) => tagged(b's', &x.to_ne_bytes()),
        OutValue::I8(x) => tagged(b'c', &x.to_ne_bytes()),
        OutValue::U64(x) => tagged(b'L', &x.to_ne_bytes()),
        OutValue::U32(x) => tagged(b'I', &x.to_ne_bytes()),
        OutValue::U16(x) => tagged(b'S', &x.to_ne_bytes()),
        OutValue::U8(x) => tagged(b'C', &x.to_ne_bytes()),
        OutValue::Bool(x) => tagged(b'b', &[u8::from(x)]),
        OutValue::Str(s) => {
            out.push(b'u');
            put_bytes(out, s.as_bytes());
        }
    }
}

/// Read one row's cells from `r`. The outer error is a malformed buffer (a
/// bug of the Java side); the inner one a row refused before the core's
/// checks: an absent field, or a value of a type rows do not carry.
fn decode_row<'a>(
    r: &mut Reader<'a>,
    schema: &Schema,
    missing: MissingFields,
    cells: &mut Vec<Cell<'a>>,
) -> ShimResult<Result<(), String>> {
    let count = usize::try_from(r.i32()?)
        .map_err(|_| ShimError("the row's value count is negative".into()))?;
    let field = |i: usize| schema.fields().get(i);
    let mut refusal = None;
    for i in 0..count {
        let tag = r.take(1)?[0];
        let cell = match tag {
            b'N' => Cell::Null,
            b'A' => match field(i).map(|f| missing.absent(f.name())) {
                Some(Ok(c)) => c,
                Some(Err(reason)) => {
                    refusal.get_or_insert(reason);
                    Cell::Null
                }
                None => Cell::Null,
            },
            b'd' => Cell::Float(f64::from_ne_bytes(r.array()?)),
            b'j' => Cell::Int(i64::from_ne_bytes(r.array()?)),
            b'z' => Cell::Bool(r.take(1)?[0] != 0),
            b's' | b'o' => {
                let n = usize::try_from(r.i32()?)
                    .map_err(|_| ShimError("a string's length is negative".into()))?;
                let raw = r.take(n)?;
                match (tag, std::str::from_utf8(raw), field(i)) {
                    (b's', Ok(s), _) => Cell::Str(s),
                    (b's', Err(_), Some(f)) => {
                        refusal.get_or_insert_with(|| wrong_kind(f, "a string that is not UTF-8"));
                        Cell::Null
                    }
                    (b'o', Ok(what), Some(f)) => {
                        refusal.get_or_insert_with(|| wrong_kind(f, what));
                        Cell::Null
                    }
                    _ => Cell::Null, // past the declared inputs: the arity check names it
                }
            }
            other => {
                return Err(ShimError(format!(
                    "the row buffer has tag {other} at byte {}, expected one of A N d j z s o",
                    r.at - 1
                )))
            }
        };
        cells.push(cell);
    }
    // The whole row is read (the next one starts after it) before a refusal.
    Ok(refusal.map_or(Ok(()), Err))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> ShimResult<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or_else(|| {
            ShimError(format!(
                "the row buffer ends at byte {}; a value at byte {} needs {n} more",
                self.bytes.len(),
                self.at
            ))
        })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> ShimResult<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn i32(&mut self) -> ShimResult<i32> {
        Ok(i32::from_ne_bytes(self.array()?))
    }

    /// Refuse bytes after the last row.
    fn end(&self) -> ShimResult<()> {
        if self.at != self.bytes.len() {
            return Err(ShimError(format!(
                "the row buffer has {} bytes after its rows",
                self.bytes.len() - self.at
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("x", DataType::Float64, false),
            Field::new("s", DataType::Utf8, true),
        ])
    }

    fn decode(bytes: &[u8], missing: MissingFields) -> ShimResult<Result<Vec<String>, String>> {
        let mut r = Reader { bytes, at: 0 };
        let mut cells = Vec::new();
        let decoded = decode_row(&mut r, &schema(), missing, &mut cells)?;
        r.end()?;
        Ok(decoded.map(|()| cells.iter().map(|c| format!("{c:?}")).collect()))
    }

    fn row(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn rows_decode_into_cells_and_refusals_name_the_field() {
        let two = 2i32.to_ne_bytes();
        let ok = row(&[&two, b"d", &1.5f64.to_ne_bytes(), b"s", &3i32.to_ne_bytes(), b"abc"]);
        assert_eq!(decode(&ok, MissingFields::Error).unwrap().unwrap(), ["Float(1.5)", "Str(\"abc\")"]);
        let absent = row(&[&two, b"j", &7i64.to_ne_bytes(), b"A"]);
        assert_eq!(
            decode(&absent, MissingFields::Error).unwrap().unwrap_err(),
            streamml_core::rows::absent_field("s")
        );
        assert_eq!(decode(&absent, MissingFields::Null).unwrap().unwrap(), ["Int(7)", "Null"]);
        let other = row(&[&two, b"o", &11i32.to_ne_bytes(), b"a LocalDate", b"N"]);
        assert_eq!(
            decode(&other, MissingFields::Error).unwrap().unwrap_err(),
            "field 'x' is a LocalDate, expected float64"
        );
        let not_utf8 = row(&[&two, b"z", &[1], b"s", &2i32.to_ne_bytes(), &[0xff, 0xfe]]);
        assert_eq!(
            decode(&not_utf8, MissingFields::Error).unwrap().unwrap_err(),
            "field 's' is a string that is not UTF-8, expected utf8"
        );
    }

    #[test]
    fn a_malformed_buffer_is_an_error_not_a_crash() {
        let two = 2i32.to_ne_bytes();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 0], "the row buffer ends at byte 2; a value at byte 0 needs 4 more"),
            (row(&[&two, b"d", &[0, 0]]), "the row buffer ends at byte 7; a value at byte 5 needs 8 more"),
            (row(&[&two, b"?"]), "the row buffer has tag 63 at byte 4, expected one of A N d j z s o"),
            (row(&[&(-1i32).to_ne_bytes()]), "the row's value count is negative"),
            (row(&[&two, b"s", &(-5i32).to_ne_bytes()]), "a string's length is negative"),
            (row(&[&two, b"s", &i32::MAX.to_ne_bytes(), b"ab"]), "the row buffer ends at byte 11; a value at byte 9 needs 2147483647 more"),
            (row(&[&two, b"N", b"N", b"extra"]), "the row buffer has 5 bytes after its rows"),
            // A count far past the bytes: read until they run out, no allocation by the count.
            (row(&[&i32::MAX.to_ne_bytes(), b"N"]), "the row buffer ends at byte 5; a value at byte 5 needs 1 more"),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode(&bytes, MissingFields::Error).unwrap_err().0, want);
        }
    }
}
