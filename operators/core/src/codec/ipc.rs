//! Arrow IPC messages to and from Arrow.
//!
//! Each message value is one Arrow IPC stream (a schema and any number of
//! batches). [`decode`] reads each one alone and maps its columns onto the
//! model's inputs ([`crate::input::prepare`]: by name, with the documented
//! casts), so a message that is not IPC, or lacks an input, or has one of a
//! type that cannot be cast, is refused alone with the reason. The id
//! column, when one is named and present, is kept for the output.
//!
//! [`encode`] writes each message's output rows as one IPC stream: the id
//! column first (when there is one), then the prediction columns.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Field, Schema, SchemaRef};
use arrow_select::concat::concat_batches;

use crate::codec::MessageError;
use crate::input::prepare;

/// An id column carried from a message to its output: its field and values.
pub type IdColumn = (Arc<Field>, ArrayRef);

/// One message read: its inputs and its id column.
pub struct DecodedMessage {
    pub index: usize,
    pub inputs: RecordBatch,
    pub id: Option<IdColumn>,
}

/// Read each value as an IPC stream of the inputs.
pub fn decode(
    values: &[&[u8]],
    inputs: &SchemaRef,
    id_field: Option<&str>,
) -> (Vec<DecodedMessage>, Vec<MessageError>) {
    let mut good = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (index, value) in values.iter().enumerate() {
        match read_one(value, inputs, id_field) {
            Ok((inputs, id)) => good.push(DecodedMessage { index, inputs, id }),
            Err(reason) => errors.push(MessageError { index, reason }),
        }
    }
    (good, errors)
}

fn read_one(
    value: &[u8],
    inputs: &SchemaRef,
    id_field: Option<&str>,
) -> Result<(RecordBatch, Option<IdColumn>), String> {
    let reader = StreamReader::try_new(Cursor::new(value), None)
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not an Arrow IPC stream: {e}"))?;
    let batch = concat_batches(&schema, &batches)
        .map_err(|e| format!("cannot join the stream's batches: {e}"))?;
    let prepared = prepare(&batch, inputs).map_err(|e| e.to_string())?;
    let id = id_field.and_then(|name| {
        let (i, field) = schema.column_with_name(name)?;
        Some((Arc::new(field.clone()), batch.column(i).clone()))
    });
    Ok((prepared, id))
}

/// The output rows of one message as one IPC stream, the id column first.
pub fn encode(
    output: &RecordBatch,
    id: Option<&(Arc<Field>, ArrayRef)>,
) -> Result<Vec<u8>, String> {
    let batch = match id {
        None => output.clone(),
        Some((field, column)) => {
            let mut fields = vec![field.clone()];
            fields.extend(output.schema_ref().fields().iter().cloned());
            let mut columns = vec![column.clone()];
            columns.extend(output.columns().iter().cloned());
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                .map_err(|e| format!("cannot add the id column: {e}"))?
        }
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
