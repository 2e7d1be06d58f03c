//! The event-id column of a batch: `int64` or strings, read straight from Arrow.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int64Array, LargeStringArray, StringArray};
use arrow_buffer::OffsetBuffer;
use arrow_cast::cast::{cast_with_options, CastOptions};
use arrow_schema::DataType;

use super::FeedbackError;

/// An id column the join can key on.
#[derive(Clone, Debug)]
pub enum IdColumn {
    Int(Int64Array),
    Str(StringArray),
    LargeStr(LargeStringArray),
}

impl IdColumn {
    /// Read `array` as ids: integers are cast to `int64`, string views and
    /// dictionaries of strings to strings; nulls and other types are refused,
    /// naming `what` ("predictions" / "labels") and the field.
    pub fn new(array: &ArrayRef, what: &'static str, field: &str) -> Result<Self, FeedbackError> {
        if array.null_count() > 0 {
            return Err(FeedbackError::NullIds { what, field: field.to_owned(), count: array.null_count() });
        }
        let type_err = |got: String| FeedbackError::IdType { what, field: field.to_owned(), got };
        let strict = CastOptions { safe: false, ..Default::default() };
        let cast = |to: &DataType| {
            cast_with_options(array, to, &strict).map_err(|e| type_err(format!("{} ({e})", array.data_type())))
        };
        Ok(match array.data_type() {
            DataType::Int64 => Self::Int(array.as_primitive::<Int64Type>().clone()),
            t if t.is_integer() => Self::Int(cast(&DataType::Int64)?.as_primitive::<Int64Type>().clone()),
            DataType::Utf8 => Self::Str(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Self::LargeStr(array.as_string::<i64>().clone()),
            DataType::Utf8View => Self::Str(cast(&DataType::Utf8)?.as_string::<i32>().clone()),
            DataType::Dictionary(_, v) if matches!(**v, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                Self::Str(cast(&DataType::Utf8)?.as_string::<i32>().clone())
            }
            other => return Err(type_err(other.to_string())),
        })
    }

    /// Rows in the column.
    pub fn len(&self) -> usize {
        match self {
            Self::Int(a) => a.len(),
            Self::Str(a) => a.len(),
            Self::LargeStr(a) => a.len(),
        }
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids of `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> Self {
        match self {
            Self::Int(a) => Self::Int(Int64Array::from_iter_values(rows.iter().map(|&r| a.value(r)))),
            Self::Str(a) => Self::Str(rows.iter().map(|&r| Some(a.value(r))).collect()),
            Self::LargeStr(a) => Self::LargeStr(rows.iter().map(|&r| Some(a.value(r))).collect()),
        }
    }

    /// The ids of `rows` as strings (integers in decimal), as the feedback rows carry them.
    pub fn strings(&self, rows: &[usize]) -> ArrayRef {
        let out: StringArray = match self {
            Self::Int(a) => {
                let values = a.values();
                let mut text: Vec<u8> = Vec::with_capacity(rows.len() * 8);
                let mut offsets = Vec::with_capacity(rows.len() + 1);
                offsets.push(0i32);
                for &r in rows {
                    push_decimal(&mut text, values[r]);
                    offsets.push(i32::try_from(text.len()).expect("the ids of one batch fit in 2 GiB"));
                }
                StringArray::new(OffsetBuffer::new(offsets.into()), text.into(), None)
            }
            Self::Str(a) => rows.iter().map(|&r| Some(a.value(r))).collect(),
            Self::LargeStr(a) => rows.iter().map(|&r| Some(a.value(r))).collect(),
        };
        Arc::new(out)
    }
}

/// `v` in decimal, as Arrow's int64 to string cast writes it.
fn push_decimal(out: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}
