//! Arrow IPC messages to and from Arrow.
//!
//! Each message value is one Arrow IPC stream (a schema and any number of
//! batches). [`decode`] reads each one alone and maps its columns onto the
//! model's inputs ([`crate::input::prepare`]: by name, with the documented
//! casts), so a message that is not IPC, or lacks an input, or has one of a
//! type that cannot be cast, is refused alone with the reason. The copied
//! columns ([`Carry`]) are kept for the output as they are: the id column
//! when present, each carried column, or a column of nulls (type null) for a
//! carried column the message lacks.
//!
//! Hostile bytes are refused, never a crash: the reader allocates nothing a
//! message's bytes do not hold, arrays are validated in full, a dictionary
//! column that a cast would blow up is refused, and a panic left in the
//! reader becomes the message's error ([`decode`]).
//!
//! [`encode`] writes each message's output rows as one IPC stream: the
//! copied columns first, then the prediction columns.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::concat::concat_batches;

use crate::codec::{guarded, Carry, MessageError};
use crate::input::prepare_event;
use crate::rows::MissingFields;

/// A column copied from a message to its output: its field and values.
pub type CarriedColumn = (Arc<Field>, ArrayRef);

/// One message read: its inputs and the columns copied to its output.
pub struct DecodedMessage {
    pub index: usize,
    pub inputs: RecordBatch,
    pub carried: Vec<CarriedColumn>,
}

/// The most bytes a message's dictionary-encoded string column may expand
/// to when it is cast to the declared string type: a few bytes of indices
/// into one long value would otherwise ask for terabytes.
const MAX_EXPANDED_BYTES: usize = 1 << 30;

/// Read each value as an IPC stream of the inputs; a value that is not one,
/// or lacks an input ([`MissingFields`]), is refused alone with the reason.
pub fn decode(
    values: &[&[u8]],
    inputs: &SchemaRef,
    carry: &Carry,
    missing: MissingFields,
) -> (Vec<DecodedMessage>, Vec<MessageError>) {
    let mut good = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (index, value) in values.iter().enumerate() {
        // The reader checks what it can; a panic left in it is this message's error.
        let read = guarded("not an Arrow IPC stream: the reader failed on these bytes", || {
            read_one(value, inputs, carry, missing)
        });
        match read {
            Ok((inputs, carried)) => good.push(DecodedMessage {
                index,
                inputs,
                carried,
            }),
            Err(reason) => errors.push(MessageError { index, reason }),
        }
    }
    (good, errors)
}

/// The record batches of one IPC stream and its schema. The decoder slices
/// the bodies out of the message's own bytes, so no length it declares
/// allocates more than the message holds; every array is validated in full
/// (arrow-ipc's default) before it is returned.
pub fn read_stream(value: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let not_ipc = |e: arrow_schema::ArrowError| format!("not an Arrow IPC stream: {e}");
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from(value);
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer).map_err(not_ipc)? {
            batches.push(batch);
        }
    }
    decoder.finish().map_err(|_| {
        format!(
            "not an Arrow IPC stream: the {} byte(s) end inside a message; send whole IPC streams",
            value.len()
        )
    })?;
    let schema = decoder
        .schema()
        .ok_or_else(|| "not an Arrow IPC stream: it has no schema message".to_string())?;
    Ok((schema, batches))
}

fn read_one(
    value: &[u8],
    inputs: &SchemaRef,
    carry: &Carry,
    missing: MissingFields,
) -> Result<(RecordBatch, Vec<CarriedColumn>), String> {
    let (schema, batches) = read_stream(value)?;
    let batch = match batches.len() {
        1 => batches.into_iter().next().expect("one batch"),
        _ => concat_batches(&schema, &batches)
            .map_err(|e| format!("cannot join the stream's batches: {e}"))?,
    };
    check_expansion(&batch, inputs)?;
    let prepared = prepare_event(&batch, inputs, missing)?;
    let mut carried = Vec::with_capacity(carry.len());
    for (c, name) in carry.names().enumerate() {
        match schema.column_with_name(name) {
            Some((i, field)) => carried.push((Arc::new(field.clone()), batch.column(i).clone())),
            None if carry.is_id(c) => {}
            None => carried.push((
                Arc::new(Field::new(name, DataType::Null, true)),
                new_null_array(&DataType::Null, batch.num_rows()),
            )),
        }
    }
    Ok((prepared, carried))
}

/// Refuse a dictionary-encoded string column that the cast to its declared
/// string input would expand beyond [`MAX_EXPANDED_BYTES`].
fn check_expansion(batch: &RecordBatch, inputs: &SchemaRef) -> Result<(), String> {
    if !batch.columns().iter().any(|c| matches!(c.data_type(), DataType::Dictionary(..))) {
        return Ok(());
    }
    for field in inputs.fields() {
        let Some(column) = batch.column_by_name(field.name()) else {
            continue;
        };
        let Some(dict) = column.as_any_dictionary_opt() else {
            continue;
        };
        let values = dict.values();
        let longest = match values.data_type() {
            DataType::Utf8 => longest(values.as_string::<i32>().offsets().windows(2).map(|w| (w[1] - w[0]) as usize)),
            DataType::LargeUtf8 => longest(values.as_string::<i64>().offsets().windows(2).map(|w| (w[1] - w[0]) as usize)),
            DataType::Utf8View => longest(values.as_string_view().views().iter().map(|v| *v as u32 as usize)),
            _ => 0,
        };
        let bound = longest.saturating_mul(dict.keys().len());
        if bound > MAX_EXPANDED_BYTES {
            return Err(format!(
                "column '{}' is a dictionary of {} row(s) whose longest value has {longest} byte(s): \
                 as {} it could take {bound} bytes, more than the {MAX_EXPANDED_BYTES} allowed; \
                 send the strings themselves or shorter values",
                field.name(),
                dict.keys().len(),
                crate::input::type_name(field.data_type()),
            ));
        }
    }
    Ok(())
}

fn longest(lengths: impl Iterator<Item = usize>) -> usize {
    lengths.max().unwrap_or(0)
}

/// The output rows of one message as one IPC stream, the copied columns first.
pub fn encode(output: &RecordBatch, carried: &[CarriedColumn]) -> Result<Vec<u8>, String> {
    let batch = if carried.is_empty() {
        output.clone()
    } else {
        let mut fields: Vec<_> = carried.iter().map(|(f, _)| f.clone()).collect();
        fields.extend(output.schema_ref().fields().iter().cloned());
        let mut columns: Vec<_> = carried.iter().map(|(_, c)| c.clone()).collect();
        columns.extend(output.columns().iter().cloned());
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| format!("cannot add the copied columns: {e}"))?
    };
    let mut buf = Vec::new();
    let mut writer = StreamWriter::try_new(&mut buf, batch.schema_ref())
        .map_err(|e| format!("cannot write Arrow IPC: {e}"))?;
    writer
        .write(&batch)
        .map_err(|e| format!("cannot write Arrow IPC: {e}"))?;
    writer
        .finish()
        .map_err(|e| format!("cannot write Arrow IPC: {e}"))?;
    drop(writer);
    Ok(buf)
}
