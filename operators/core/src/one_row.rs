//! The one-row path: score a single row with no Arrow builders on the way.
//!
//! [`OneRow`] is one row of a model binary's inputs as a C struct array whose
//! children point into buffers it owns. [`OneRow::fill`] checks a row of
//! [`Cell`]s by the rules every host shares ([`crate::rows::check_row`]) and
//! writes the values in place; the binary reads the array as it is
//! ([`crate::NativeModel::predict_c`]); [`read_row`] hands the output's values
//! back without importing it. [`OneRowScorer`] puts these together, with a
//! one-row batch ([`RowBuilder`]) for models the array does not fit (a
//! host's callable, input types it does not carry), and is what the JNI
//! shim's row scorer and the Python binding's dict and NumPy paths use.
//!
//! ```
//! # use std::sync::Arc;
//! # use arrow_schema::{DataType, Field, Schema};
//! use streamml_core::one_row::OneRow;
//! use streamml_core::rows::Cell;
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("x", DataType::Float64, false),
//!     Field::new("s", DataType::Utf8, true),
//! ]));
//! let mut row = OneRow::new(&schema).unwrap();
//! row.fill(&[Cell::Int(2), Cell::Str("a")]).unwrap();
//! assert_eq!(
//!     row.fill(&[Cell::Null, Cell::Null]).unwrap_err(),
//!     "field 'x' is null but the input is not nullable"
//! );
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_buffer::alloc::Allocation;
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_schema::{DataType, SchemaRef};
use streamml_abi::ffi::RawArrowArray;

use crate::error::{InputError, PredictError};
use crate::error::panic_text;
use crate::model::Model;
use crate::rows::{check_row, Cell, MissingFields, RowBuilder};

/// How a child of the one-row array stores its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F64,
    F32,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    Bool,
    Utf8,
}

impl Kind {
    fn of(t: &DataType) -> Option<Self> {
        use DataType::*;
        Some(match t {
            Float64 => Kind::F64,
            Float32 => Kind::F32,
            Int64 => Kind::I64,
            Int32 => Kind::I32,
            Int16 => Kind::I16,
            Int8 => Kind::I8,
            UInt64 => Kind::U64,
            UInt32 => Kind::U32,
            UInt16 => Kind::U16,
            UInt8 => Kind::U8,
            Boolean => Kind::Bool,
            Utf8 => Kind::Utf8,
            _ => return None,
        })
    }

    /// Bytes of the value buffer (a bool is one byte of bitmap).
    fn width(self) -> usize {
        match self {
            Kind::F64 | Kind::I64 | Kind::U64 => 8,
            Kind::F32 | Kind::I32 | Kind::U32 => 4,
            Kind::I16 | Kind::U16 => 2,
            Kind::I8 | Kind::U8 | Kind::Bool => 1,
            Kind::Utf8 => 8, // the offsets, two i32
        }
    }
}

/// The memory one child points into.
#[derive(Default)]
#[repr(C, align(8))]
struct Slot {
    validity: [u8; 8],
    value: [u8; 8],
    offsets: [i32; 2],
}

/// A reusable one-row input array; see the module docs.
pub struct OneRow {
    // Declared first: released (dropped) before the memory it points into.
    array: FFI_ArrowArray,
    slots: Box<[Slot]>,
    /// The bytes of each utf8 input (empty for the others).
    strings: Box<[Vec<u8>]>,
    kinds: Box<[Kind]>,
    /// Every input is float64 (see [`OneRow::set_f64`]).
    float64: bool,
    schema: SchemaRef,
}

// SAFETY: the array only points into `slots` and `strings`, which move with it.
unsafe impl Send for OneRow {}

/// A buffer over `len` bytes at `ptr`, owned elsewhere (by the `OneRow`).
///
/// # Safety
/// `ptr` must stay valid for `len` bytes as long as the buffer lives.
unsafe fn borrowed(ptr: *mut u8, len: usize, owner: &Arc<dyn Allocation>) -> Buffer {
    Buffer::from_custom_allocation(NonNull::new(ptr).expect("a field's address"), len, owner.clone())
}

impl OneRow {
    /// A one-row array for `schema` (a model's inputs), or `None` when an
    /// input's type is not one the array carries (fixed-width numbers,
    /// bools, utf8).
    pub fn new(schema: &SchemaRef) -> Option<Self> {
        let fields = schema.fields();
        let kinds = fields
            .iter()
            .map(|f| Kind::of(f.data_type()))
            .collect::<Option<Box<[Kind]>>>()?;
        if kinds.is_empty() {
            return None;
        }
        let mut slots: Box<[Slot]> = kinds.iter().map(|_| Slot::default()).collect();
        let mut strings: Box<[Vec<u8>]> = kinds
            .iter()
            .map(|k| Vec::with_capacity(if *k == Kind::Utf8 { 64 } else { 0 }))
            .collect();
        let owner: Arc<dyn Allocation> = Arc::new(());
        let children = fields
            .iter()
            .zip(kinds.iter())
            .zip(slots.iter_mut().zip(strings.iter_mut()))
            .map(|((field, kind), (slot, string))| {
                // SAFETY: the buffers point into `slots` and `strings`, boxed
                // memory that outlives the array (field order above). The
                // validity bit starts cleared (a null), so that arrow keeps
                // the bitmap and `fill` only flips its bit.
                unsafe {
                    let validity = borrowed(slot.validity.as_mut_ptr(), 1, &owner);
                    let builder = ArrayData::builder(field.data_type().clone())
                        .len(1)
                        .null_bit_buffer(Some(validity))
                        .null_count(1);
                    let builder = if *kind == Kind::Utf8 {
                        builder
                            .add_buffer(borrowed(slot.offsets.as_mut_ptr().cast(), 8, &owner))
                            .add_buffer(borrowed(string.as_mut_ptr(), 0, &owner))
                    } else {
                        builder.add_buffer(borrowed(slot.value.as_mut_ptr(), kind.width(), &owner))
                    };
                    builder.build_unchecked()
                }
            })
            .collect();
        // SAFETY: one row, children of the declared types and length.
        let data = unsafe {
            ArrayData::builder(DataType::Struct(fields.clone()))
                .len(1)
                .child_data(children)
                .build_unchecked()
        };
        Some(Self {
            array: FFI_ArrowArray::new(&data),
            slots,
            strings,
            float64: kinds.iter().all(|k| *k == Kind::F64),
            kinds,
            schema: schema.clone(),
        })
    }

    /// The declared inputs, in the order `fill` wants cells.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether every input is float64 (then [`OneRow::fill_f64`] and
    /// [`OneRow::set_f64`] apply).
    pub fn all_float64(&self) -> bool {
        self.float64
    }

    /// Write input `i`'s value (not null) into an array whose inputs are all
    /// float64: a host's float fast path, which falls back to
    /// [`OneRow::fill`] (every cell written again) for a value it cannot
    /// take as a float.
    ///
    /// # Panics
    /// If the inputs are not all float64 or `i` is out of range (a bug of
    /// the host).
    #[inline]
    pub fn set_f64(&mut self, i: usize, value: f64) {
        assert!(self.float64, "set_f64 on inputs that are not all float64");
        self.set_valid(i, true);
        self.slots[i].value = value.to_ne_bytes();
    }

    fn child(&mut self, i: usize) -> &mut RawArrowArray {
        let raw = (&mut self.array as *mut FFI_ArrowArray).cast::<RawArrowArray>();
        // SAFETY: FFI_ArrowArray is the C struct RawArrowArray mirrors; its
        // children are the `kinds.len()` arrays built in `new`, owned by it.
        unsafe { &mut **(*raw).children.add(i) }
    }

    fn set_valid(&mut self, i: usize, valid: bool) {
        // Most rows change no validity: touch the child array only when it changes.
        if self.slots[i].validity[0] != u8::from(valid) {
            self.slots[i].validity[0] = u8::from(valid);
            self.child(i).null_count = i64::from(!valid);
        }
    }

    /// Check a row (one cell per input, in order) by the rules of every host
    /// and write it into the array; on `Err`, the reason naming the field
    /// (and the array must be filled again before it is scored).
    pub fn fill(&mut self, cells: &[Cell]) -> Result<(), String> {
        check_row(&self.schema, cells)?;
        for (i, cell) in cells.iter().enumerate() {
            let kind = self.kinds[i];
            if let Cell::Str(s) = cell {
                if s.len() > i32::MAX as usize {
                    return Err(format!(
                        "field '{}' is a string of {} bytes, over the 2 GiB a utf8 input holds",
                        self.schema.field(i).name(),
                        s.len()
                    ));
                }
            }
            self.set_valid(i, !matches!(cell, Cell::Null));
            let value = &mut self.slots[i].value;
            match (kind, *cell) {
                (_, Cell::Null) => {}
                (Kind::F64, c) => value.copy_from_slice(&as_f64(c).to_ne_bytes()),
                (Kind::F32, c) => value[..4].copy_from_slice(&(as_f64(c) as f32).to_ne_bytes()),
                (Kind::Bool, Cell::Bool(b)) => value[0] = u8::from(b),
                (Kind::Utf8, Cell::Str(s)) => {
                    let bytes = &mut self.strings[i];
                    bytes.clear();
                    bytes.extend_from_slice(s.as_bytes());
                    let data = bytes.as_ptr();
                    self.slots[i].offsets = [0, s.len() as i32];
                    // SAFETY: buffer 2 of a utf8 child is its data; the pointer
                    // array belongs to the child, and the bytes to `self`.
                    unsafe { *self.child(i).buffers.add(2) = data.cast() };
                }
                (k, c) => {
                    // An integer, range-checked by `check_row`.
                    let v = match c {
                        Cell::Int(v) => i128::from(v),
                        Cell::UInt(v) => i128::from(v),
                        _ => unreachable!("check_row accepted the cell"),
                    };
                    *value = v.to_ne_bytes_narrowed(k.width());
                }
            }
        }
        Ok(())
    }

    /// Write a row of float64 values, none null, into an array whose inputs
    /// are all float64 ([`OneRow::all_float64`]; otherwise this is a bug of
    /// the host and panics).
    pub fn fill_f64(&mut self, values: impl IntoIterator<Item = f64>) {
        let mut n = 0;
        for (i, v) in values.into_iter().take(self.kinds.len()).enumerate() {
            self.set_f64(i, v);
            n += 1;
        }
        assert_eq!(n, self.kinds.len(), "fill_f64 needs one value per input");
    }

    /// The filled row as a C array (borrowed by the binary).
    pub fn array(&self) -> &FFI_ArrowArray {
        &self.array
    }
}

fn as_f64(cell: Cell) -> f64 {
    match cell {
        Cell::Float(v) => v,
        Cell::Int(v) => v as f64,
        Cell::UInt(v) => v as f64,
        _ => unreachable!("check_row accepted the cell"),
    }
}

/// The low `width` bytes of an integer, in native order.
trait Narrow {
    fn to_ne_bytes_narrowed(self, width: usize) -> [u8; 8];
}

impl Narrow for i128 {
    fn to_ne_bytes_narrowed(self, width: usize) -> [u8; 8] {
        let mut out = [0u8; 8];
        match width {
            8 => out.copy_from_slice(&(self as i64).to_ne_bytes()),
            4 => out[..4].copy_from_slice(&(self as i32).to_ne_bytes()),
            2 => out[..2].copy_from_slice(&(self as i16).to_ne_bytes()),
            _ => out[0] = self as i8 as u8,
        }
        out
    }
}

/// One value of an output row, read in place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutValue<'a> {
    Null,
    F64(f64),
    F32(f32),
    I64(i64),
    I32(i32),
    I16(i16),
    I8(i8),
    U64(u64),
    U32(u32),
    U16(u16),
    U8(u8),
    Bool(bool),
    Str(&'a str),
}

/// Whether the C format `f` is one [`read_row`] reads.
fn readable(format: u8) -> bool {
    matches!(format, b'g' | b'f' | b'l' | b'i' | b's' | b'c' | b'L' | b'I' | b'S' | b'C' | b'b' | b'u')
}

/// Call `f(i, value)` for row `row` of each child `i` of an output struct
/// array, reading the C buffers in place. `Ok(false)`, with nothing called,
/// when a child's type is not one this reads (then import the output).
///
/// # Safety
/// `array` and `schema` must be a model's output as the core checked it
/// ([`crate::NativeModel::predict_c`]) and `row` one of its rows.
pub unsafe fn read_row<E>(
    array: &FFI_ArrowArray,
    schema: &FFI_ArrowSchema,
    row: usize,
    mut f: impl FnMut(usize, OutValue<'_>) -> Result<(), E>,
) -> Result<bool, E> {
    let n = array.num_children();
    if n != schema.children().count() {
        return Ok(false);
    }
    // Each child's format once (a format is one byte for the types read here).
    let format = |i: usize| -> u8 {
        let f = schema.child(i).format().as_bytes();
        if f.len() == 1 && readable(f[0]) { f[0] } else { 0 }
    };
    let mut strings = false;
    for i in 0..n {
        match format(i) {
            0 => return Ok(false),
            b'u' => strings = true,
            _ => {}
        }
    }
    // Strings first: a value that is not UTF-8 sends the output the general way.
    let mut texts: Vec<Option<&str>> = if strings { vec![None; n] } else { Vec::new() };
    for (i, text) in texts.iter_mut().enumerate() {
        if format(i) == b'u' {
            let child = array.child(i);
            let at = array.offset() + child.offset() + row;
            let offsets = child.buffer(1).cast::<i32>();
            let (start, end) = (*offsets.add(at), *offsets.add(at + 1));
            let bytes = if end > start {
                std::slice::from_raw_parts(child.buffer(2).add(start as usize), (end - start) as usize)
            } else {
                &[]
            };
            let Ok(s) = std::str::from_utf8(bytes) else {
                return Ok(false);
            };
            *text = Some(s);
        }
    }
    for i in 0..n {
        let child = array.child(i);
        let at = array.offset() + child.offset() + row;
        let validity = child.buffer(0);
        if child.null_count_opt() != Some(0)
            && !validity.is_null()
            && (*validity.add(at / 8) >> (at % 8)) & 1 == 0
        {
            f(i, OutValue::Null)?;
            continue;
        }
        let data = child.buffer(1);
        let value = match format(i) {
            b'g' => OutValue::F64(*data.cast::<f64>().add(at)),
            b'f' => OutValue::F32(*data.cast::<f32>().add(at)),
            b'l' => OutValue::I64(*data.cast::<i64>().add(at)),
            b'i' => OutValue::I32(*data.cast::<i32>().add(at)),
            b's' => OutValue::I16(*data.cast::<i16>().add(at)),
            b'c' => OutValue::I8(*data.cast::<i8>().add(at)),
            b'L' => OutValue::U64(*data.cast::<u64>().add(at)),
            b'I' => OutValue::U32(*data.cast::<u32>().add(at)),
            b'S' => OutValue::U16(*data.cast::<u16>().add(at)),
            b'C' => OutValue::U8(*data.add(at)),
            b'b' => OutValue::Bool((*data.add(at / 8) >> (at % 8)) & 1 == 1),
            _ => OutValue::Str(texts.get(i).copied().flatten().unwrap_or_default()),
        };
        f(i, value)?;
    }
    Ok(true)
}

/// Row `row` of an imported column, or `None` for a type [`OutValue`] has not.
pub fn column_value(column: &dyn Array, row: usize) -> Option<OutValue<'_>> {
    if column.is_null(row) {
        return Some(OutValue::Null);
    }
    use DataType::*;
    Some(match column.data_type() {
        Float64 => OutValue::F64(column.as_primitive::<Float64Type>().value(row)),
        Float32 => OutValue::F32(column.as_primitive::<Float32Type>().value(row)),
        Int64 => OutValue::I64(column.as_primitive::<Int64Type>().value(row)),
        Int32 => OutValue::I32(column.as_primitive::<Int32Type>().value(row)),
        Int16 => OutValue::I16(column.as_primitive::<Int16Type>().value(row)),
        Int8 => OutValue::I8(column.as_primitive::<Int8Type>().value(row)),
        UInt64 => OutValue::U64(column.as_primitive::<UInt64Type>().value(row)),
        UInt32 => OutValue::U32(column.as_primitive::<UInt32Type>().value(row)),
        UInt16 => OutValue::U16(column.as_primitive::<UInt16Type>().value(row)),
        UInt8 => OutValue::U8(column.as_primitive::<UInt8Type>().value(row)),
        Boolean => OutValue::Bool(column.as_boolean().value(row)),
        Utf8 => OutValue::Str(column.as_string::<i32>().value(row)),
        LargeUtf8 => OutValue::Str(column.as_string::<i64>().value(row)),
        _ => return None,
    })
}

/// A scored row: the binary's C output, or a batch (the general path).
pub enum ScoredRow {
    C(FFI_ArrowArray, FFI_ArrowSchema),
    Batch(RecordBatch),
}

impl ScoredRow {
    /// Call `f(i, value)` for each output of the row, in declared order;
    /// `Ok(false)` when an output's type is not one [`OutValue`] has.
    pub fn read<E>(&self, mut f: impl FnMut(usize, OutValue<'_>) -> Result<(), E>) -> Result<bool, E> {
        match self {
            // SAFETY: the core checked the binary's output (`predict_c`).
            ScoredRow::C(array, schema) => unsafe { read_row(array, schema, 0, f) },
            ScoredRow::Batch(batch) => {
                let Some(values) = batch
                    .columns()
                    .iter()
                    .map(|c| column_value(c.as_ref(), 0))
                    .collect::<Option<Vec<_>>>()
                else {
                    return Ok(false);
                };
                for (i, v) in values.into_iter().enumerate() {
                    f(i, v)?;
                }
                Ok(true)
            }
        }
    }
}

/// Why a row was not scored.
#[derive(Debug)]
pub enum RowFailure {
    /// The row breaks a row check (or lacks a field): the reason, naming the field.
    Refused(String),
    /// The model failed on it.
    Failed(PredictError),
}

/// Scores one row at a time (see the module docs). Not shared between
/// threads: each thread that scores rows keeps its own.
pub struct OneRowScorer {
    model: Model,
    one: Option<OneRow>,
    /// Whether every input is float64 (rows of doubles then skip the checks).
    all_f64: bool,
    builder: RowBuilder,
    missing: MissingFields,
}

impl OneRowScorer {
    /// A scorer of `model`'s rows; an input absent from a row is as `missing` says.
    pub fn new(model: Model, missing: MissingFields) -> Result<Self, InputError> {
        let builder = RowBuilder::new(model.input_schema().clone())?;
        let one = model.native().and_then(|_| OneRow::new(model.input_schema()));
        let all_f64 = one.as_ref().is_some_and(OneRow::all_float64);
        Ok(Self {
            model,
            one,
            all_f64,
            builder,
            missing,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// What an input absent from a row is.
    pub fn missing(&self) -> MissingFields {
        self.missing
    }

    /// Whether rows go through the binary's one-row array (else a one-row batch).
    pub fn is_one_row(&self) -> bool {
        self.one.is_some()
    }

    /// Check and score one row (one cell per input, in declared order).
    pub fn score(&mut self, cells: &[Cell]) -> Result<ScoredRow, RowFailure> {
        if let Some(one) = &mut self.one {
            one.fill(cells).map_err(RowFailure::Refused)?;
            return self.predict_one();
        }
        self.builder.append_row(cells).map_err(RowFailure::Refused)?;
        let batch = match self.builder.finish() {
            Ok(batch) => batch,
            Err(e) => {
                // A builder whose finish failed may hold half-finished columns.
                self.builder = RowBuilder::new(self.model.input_schema().clone())
                    .expect("built once already");
                return Err(RowFailure::Refused(e.to_string()));
            }
        };
        self.model
            .score_prepared(&batch)
            .map(ScoredRow::Batch)
            .map_err(RowFailure::Failed)
    }

    /// Check and score one row of float64 values, none null (a host's rows
    /// of doubles): the outcome of [`OneRowScorer::score`] on the same values
    /// as [`Cell::Float`]s, which rows of the declared arity whose inputs are
    /// all float64 pass without being checked one by one.
    pub fn score_f64(&mut self, values: &[f64]) -> Result<ScoredRow, RowFailure> {
        if let Some(one) = self.one.as_mut().filter(|_| self.all_f64) {
            if values.len() == self.model.input_schema().fields().len() {
                one.fill_f64(values.iter().copied());
                return self.predict_one();
            }
        }
        let cells: Vec<Cell> = values.iter().map(|v| Cell::Float(*v)).collect();
        self.score(&cells)
    }

    /// Score the filled one-row array through the binary.
    fn predict_one(&self) -> Result<ScoredRow, RowFailure> {
        let (Some(one), Some(native)) = (&self.one, self.model.native()) else {
            unreachable!("a one-row array is made for binaries only")
        };
        let array = one.array();
        // SAFETY: the array is one row of the binary's declared input
        // layout, checked when it was filled, borrowed for the call.
        let scored = catch_unwind(AssertUnwindSafe(|| unsafe { native.predict_c(array) }))
            .unwrap_or_else(|p| {
                Err(PredictError {
                    origin: self.model.origin().to_string(),
                    rows: 1,
                    reason: format!("panicked: {}", panic_text(&*p)),
                    status: None,
                })
            });
        scored
            .map(|(a, s)| ScoredRow::C(a, s))
            .map_err(RowFailure::Failed)
    }
}

#[cfg(test)]
mod tests;
