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
//! [`encode`] writes each message's output rows as one IPC stream: the
//! copied columns first, then the prediction columns.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::concat::concat_batches;

use crate::codec::{Carry, MessageError};
use crate::input::prepare;

/// A column copied from a message to its output: its field and values.
pub type CarriedColumn = (Arc<Field>, ArrayRef);

/// One message read: its inputs and the columns copied to its output.
pub struct DecodedMessage {
    pub index: usize,
    pub inputs: RecordBatch,
    pub carried: Vec<CarriedColumn>,
}

/// Read each value as an IPC stream of the inputs.
pub fn decode(
    values: &[&[u8]],
    inputs: &SchemaRef,
    carry: &Carry,
) -> (Vec<DecodedMessage>, Vec<MessageError>) {
    let mut good = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (index, value) in values.iter().enumerate() {
        match read_one(value, inputs, carry) {
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

fn read_one(
    value: &[u8],
    inputs: &SchemaRef,
    carry: &Carry,
) -> Result<(RecordBatch, Vec<CarriedColumn>), String> {
    let reader = StreamReader::try_new(Cursor::new(value), None)
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let batch = concat_batches(&schema, &batches)
        .map_err(|e| format!("cannot join the stream's batches: {e}"))?;
    let prepared = prepare(&batch, inputs).map_err(|e| e.to_string())?;
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
