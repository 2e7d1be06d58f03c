//! Message codecs: a batch of message values (Kafka records) in, one Arrow
//! batch scored, one encoded output per message out.
//!
//! [`MessageScorer::score`] decodes every value ([`json`]: one JSON object
//! each; [`ipc`]: one Arrow IPC stream each), scores all the messages that
//! could be read in one call of the model, and encodes the outputs. A
//! message that cannot be read or scored gets a [`MessageError`] (its index
//! and the reason) and no output; the others are scored all the same. If the
//! model fails on the whole batch, each message is scored alone, so one
//! poison message cannot take its neighbours down with it.

pub mod ipc;
pub mod json;

use arrow_array::RecordBatch;

use crate::drift::DriftCounters;
use crate::error::InputError;
use crate::model::Model;

/// How message values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per message; outputs likewise.
    Json,
    /// One Arrow IPC stream per message; outputs likewise.
    Arrow,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Format::Json),
            "arrow" => Ok(Format::Arrow),
            _ => Err(format!("format '{s}' is not one of json, arrow")),
        }
    }
}

/// A message that could not be read or scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// Its position in the values passed in.
    pub index: usize,
    pub reason: String,
}

/// What [`MessageScorer::score`] returns.
#[derive(Debug, Default)]
pub struct Scored {
    /// One entry per value: the encoded output, or `None` where `errors` has the reason.
    pub outputs: Vec<Option<Vec<u8>>>,
    /// The messages without output, by index.
    pub errors: Vec<MessageError>,
    /// Why drift counters passed to [`MessageScorer::score_counted`] could not
    /// count (the predictions are unaffected).
    pub drift_error: Option<String>,
}

/// Decode, score, encode: a model and a message format.
pub struct MessageScorer {
    model: Model,
    format: Format,
    id_field: Option<String>,
}

impl MessageScorer {
    /// A scorer; fails for a JSON scorer of inputs that JSON rows cannot fill.
    pub fn new(model: Model, format: Format, id_field: Option<String>) -> Result<Self, InputError> {
        if format == Format::Json {
            json::JsonDecoder::new(model.input_schema().clone(), None)?;
        }
        Ok(Self {
            model,
            format,
            id_field,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Score a batch of message values.
    pub fn score(&self, values: &[&[u8]]) -> Scored {
        self.score_counted(values, None)
    }

    /// Score a batch of message values and count the scored rows' inputs and
    /// outputs into `drift` (rows that fail are not counted).
    pub fn score_counted(&self, values: &[&[u8]], drift: Option<&mut DriftCounters>) -> Scored {
        let mut scored = Scored {
            outputs: vec![None; values.len()],
            ..Scored::default()
        };
        let mut drift = drift;
        match self.format {
            Format::Json => self.score_json(values, &mut scored, &mut drift),
            Format::Arrow => self.score_ipc(values, &mut scored, &mut drift),
        }
        scored.errors.sort_by_key(|e| e.index);
        scored
    }

    fn score_json(&self, values: &[&[u8]], scored: &mut Scored, drift: &mut Option<&mut DriftCounters>) {
        let mut decoder =
            json::JsonDecoder::new(self.model.input_schema().clone(), self.id_field.clone())
                .expect("checked in new");
        let decoded = decoder.decode(values);
        scored.errors.extend(decoded.errors);
        let id_field = self.id_field.as_deref();
        let emit = |rows: &[usize],
                    ids: &[Option<Box<serde_json::value::RawValue>>],
                    out: &RecordBatch,
                    scored: &mut Scored| match json::encode(out, id_field, ids) {
            Ok(encoded) => {
                for (&index, value) in rows.iter().zip(encoded) {
                    scored.outputs[index] = Some(value);
                }
            }
            Err(reason) => fail_all(scored, rows, &reason),
        };
        if decoded.rows.is_empty() {
            return;
        }
        match self.model.score_prepared(&decoded.batch) {
            Ok(out) => {
                count(drift, &decoded.batch, &out, scored);
                emit(&decoded.rows, &decoded.ids, &out, scored)
            }
            Err(_) => {
                for (row, (&index, id)) in decoded.rows.iter().zip(&decoded.ids).enumerate() {
                    let one = decoded.batch.slice(row, 1);
                    match self.model.score_prepared(&one) {
                        Ok(out) => {
                            count(drift, &one, &out, scored);
                            emit(&[index], std::slice::from_ref(id), &out, scored)
                        }
                        Err(e) => fail_all(scored, &[index], &e.to_string()),
                    }
                }
            }
        }
    }

    fn score_ipc(&self, values: &[&[u8]], scored: &mut Scored, drift: &mut Option<&mut DriftCounters>) {
        let (messages, errors) =
            ipc::decode(values, self.model.input_schema(), self.id_field.as_deref());
        scored.errors.extend(errors);
        if messages.is_empty() {
            return;
        }
        let batches: Vec<&RecordBatch> = messages.iter().map(|m| &m.inputs).collect();
        let joined = arrow_select::concat::concat_batches(self.model.input_schema(), batches);
        let whole = joined.map_err(|e| e.to_string()).and_then(|b| {
            let out = self.model.score_prepared(&b).map_err(|e| e.to_string())?;
            count(drift, &b, &out, scored);
            Ok(out)
        });
        let mut offset = 0;
        for m in &messages {
            let rows = m.inputs.num_rows();
            let out = match &whole {
                Ok(out) => Ok(out.slice(offset, rows)),
                Err(_) => self.model.score_prepared(&m.inputs).map_err(|e| e.to_string()).inspect(|out| {
                    count(drift, &m.inputs, out, scored);
                }),
            };
            offset += rows;
            match out.and_then(|out| ipc::encode(&out, m.id.as_ref())) {
                Ok(bytes) => scored.outputs[m.index] = Some(bytes),
                Err(reason) => fail_all(scored, &[m.index], &reason),
            }
        }
    }
}

/// Count a scored batch into the drift counters, if any; a failure is
/// noted once in `scored` (counting never costs a prediction).
fn count(drift: &mut Option<&mut DriftCounters>, inputs: &RecordBatch, outputs: &RecordBatch, scored: &mut Scored) {
    let Some(counters) = drift.as_deref_mut() else {
        return;
    };
    let counted = counters.observe(inputs).and_then(|()| counters.observe_outputs(outputs));
    if let Err(e) = counted {
        scored.drift_error.get_or_insert_with(|| e.to_string());
    }
}

fn fail_all(scored: &mut Scored, indices: &[usize], reason: &str) {
    scored
        .errors
        .extend(indices.iter().map(|&index| MessageError {
            index,
            reason: reason.to_string(),
        }));
}

#[cfg(test)]
mod tests;
