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
//!
//! An input field absent from a message is that message's error (for an IPC
//! message: every row of it), worded by [`crate::rows::absent_field`]; an
//! explicit null is a missing value where the input is nullable; see
//! [`MessageScorer::with_missing_fields`] for the opt-in that reads absent
//! fields as null. Hostile bytes are each message's error too: lengths are
//! checked against the bytes before anything is allocated, arrays are
//! validated in full, and a panic while one message is read becomes its
//! error ([`ipc`], [`json`]).
//!
//! [`Carry`] names the input fields copied into every output beside the
//! predictions: the id field first, then the carried fields, each as written
//! in the input (JSON: the raw value; Arrow: the column).

pub mod ipc;
pub mod json;

use arrow_array::RecordBatch;

use crate::drift::DriftCounters;
use crate::error::InputError;
use crate::model::Model;
use crate::rows::MissingFields;

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

/// The input fields copied from each message into its output, before the
/// predictions: the id field first, then the carried fields in the order given.
///
/// A message without the id field gets an output without it (as before
/// carried fields existed); a message without a carried field gets a null
/// there (JSON `null`; Arrow: a column of type null), so every output has
/// the same keys. Neither is a reason to refuse the message: they are not
/// model inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carry {
    pub id_field: Option<String>,
    pub fields: Vec<String>,
}

impl Carry {
    /// Only an id field (or nothing).
    pub fn id(id_field: Option<String>) -> Self {
        Self {
            id_field,
            fields: Vec::new(),
        }
    }

    /// The copied names in output order: the id field (if any), then the carried fields.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.id_field.iter().chain(&self.fields).map(String::as_str)
    }

    /// How many names [`Carry::names`] yields.
    pub fn len(&self) -> usize {
        usize::from(self.id_field.is_some()) + self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the `i`-th name is the id field (left out where a message lacks it).
    pub fn is_id(&self, i: usize) -> bool {
        i == 0 && self.id_field.is_some()
    }

    /// Refuse names given twice, and names the model's outputs already use
    /// (an output would have two fields of one name).
    pub fn check(&self, model: &Model) -> Result<(), InputError> {
        let mut seen = std::collections::HashSet::new();
        for (i, name) in self.names().enumerate() {
            let what = if self.is_id(i) { "id field" } else { "carried field" };
            if !seen.insert(name) {
                return Err(InputError::Other(format!(
                    "{what} '{name}' is named twice among the id field and the carried fields; name each field once"
                )));
            }
            if model.output_schema().field_with_name(name).is_ok() {
                let outputs: Vec<&str> = model
                    .output_schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                return Err(InputError::Other(format!(
                    "{what} '{name}' has the name of an output of {}; the outputs are [{}]; \
                     rename the field in the input, or do not carry it",
                    model.origin(),
                    outputs.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Decode, score, encode: a model and a message format.
pub struct MessageScorer {
    model: Model,
    format: Format,
    carry: Carry,
    missing: MissingFields,
}

impl MessageScorer {
    /// A scorer; fails for a JSON scorer of inputs that JSON rows cannot fill,
    /// and for copied fields that [`Carry::check`] refuses.
    pub fn new(model: Model, format: Format, carry: Carry) -> Result<Self, InputError> {
        carry.check(&model)?;
        if format == Format::Json {
            json::JsonDecoder::new(model.input_schema().clone(), &Carry::default())?;
        }
        Ok(Self {
            model,
            format,
            carry,
            missing: MissingFields::Error,
        })
    }

    /// The same scorer reading input fields absent from a message as `missing`
    /// says (default: [`MissingFields::Error`], the message is refused).
    pub fn with_missing_fields(mut self, missing: MissingFields) -> Self {
        self.missing = missing;
        self
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
        self.score_decoded(&self.decode(values), values.len(), drift)
    }

    /// Score a batch of message values with this scorer and with each of
    /// `shadows` (challengers), each counting into its own drift counters:
    /// one [`Scored`] per scorer, this one's first.
    ///
    /// The values are decoded once for every scorer that
    /// [reads them alike](MessageScorer::reads_like), and once more for each
    /// other one; so a challenger of the same inputs costs its model and its
    /// outputs' encoding, not a second decoding.
    pub fn score_shadowed(
        &self,
        values: &[&[u8]],
        drift: Option<&mut DriftCounters>,
        shadows: Vec<(&MessageScorer, Option<&mut DriftCounters>)>,
    ) -> Vec<Scored> {
        let decoded = self.decode(values);
        let mut all = Vec::with_capacity(1 + shadows.len());
        all.push(self.score_decoded(&decoded, values.len(), drift));
        for (scorer, counters) in shadows {
            all.push(if self.reads_like(scorer) {
                scorer.score_decoded(&decoded, values.len(), counters)
            } else {
                scorer.score_counted(values, counters)
            });
        }
        all
    }

    /// Whether `other` decodes message values exactly as this scorer does:
    /// the same format, input schema, copied fields and missing-field rule.
    pub fn reads_like(&self, other: &MessageScorer) -> bool {
        self.format == other.format
            && self.missing == other.missing
            && self.carry == other.carry
            && self.model.input_schema() == other.model.input_schema()
    }

    fn decode(&self, values: &[&[u8]]) -> Decoding {
        #[cfg(test)]
        DECODES.with(|n| n.set(n.get() + 1));
        match self.format {
            Format::Json => match json::JsonDecoder::new(self.model.input_schema().clone(), &self.carry) {
                Ok(d) => Decoding::Json(d.with_missing_fields(self.missing).decode(values)),
                Err(e) => Decoding::Refused(e.to_string()),
            },
            Format::Arrow => {
                let (messages, errors) = ipc::decode(values, self.model.input_schema(), &self.carry, self.missing);
                Decoding::Arrow(messages, errors)
            }
        }
    }

    /// Score what [`MessageScorer::decode`] read from `n` values.
    fn score_decoded(&self, decoded: &Decoding, n: usize, drift: Option<&mut DriftCounters>) -> Scored {
        let mut scored = Scored {
            outputs: vec![None; n],
            ..Scored::default()
        };
        let mut drift = drift;
        match decoded {
            Decoding::Json(decoded) => self.score_json(decoded, &mut scored, &mut drift),
            Decoding::Arrow(messages, errors) => {
                scored.errors.extend_from_slice(errors);
                self.score_ipc(messages, &mut scored, &mut drift)
            }
            Decoding::Refused(reason) => fail_all(&mut scored, &(0..n).collect::<Vec<_>>(), reason),
        }
        scored.errors.sort_by_key(|e| e.index);
        scored
    }

    fn score_json(&self, decoded: &json::Decoded, scored: &mut Scored, drift: &mut Option<&mut DriftCounters>) {
        scored.errors.extend_from_slice(&decoded.errors);
        let width = self.carry.len();
        let emit = |rows: &[usize],
                    carried: &[Option<Box<serde_json::value::RawValue>>],
                    out: &RecordBatch,
                    scored: &mut Scored| match json::encode(out, &self.carry, carried) {
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
                emit(&decoded.rows, &decoded.carried, &out, scored)
            }
            Err(_) => {
                for (row, &index) in decoded.rows.iter().enumerate() {
                    let one = decoded.batch.slice(row, 1);
                    match self.model.score_prepared(&one) {
                        Ok(out) => {
                            count(drift, &one, &out, scored);
                            let carried = &decoded.carried[row * width..(row + 1) * width];
                            emit(&[index], carried, &out, scored)
                        }
                        Err(e) => fail_all(scored, &[index], &e.to_string()),
                    }
                }
            }
        }
    }

    fn score_ipc(&self, messages: &[ipc::DecodedMessage], scored: &mut Scored, drift: &mut Option<&mut DriftCounters>) {
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
        for m in messages {
            let rows = m.inputs.num_rows();
            let out = match &whole {
                Ok(out) => Ok(out.slice(offset, rows)),
                Err(_) => self.model.score_prepared(&m.inputs).map_err(|e| e.to_string()).inspect(|out| {
                    count(drift, &m.inputs, out, scored);
                }),
            };
            offset += rows;
            match out.and_then(|out| ipc::encode(&out, &m.carried)) {
                Ok(bytes) => scored.outputs[m.index] = Some(bytes),
                Err(reason) => fail_all(scored, &[m.index], &reason),
            }
        }
    }
}

/// Message values as one scorer read them, to be scored by every scorer that
/// reads them alike ([`MessageScorer::reads_like`]).
enum Decoding {
    Json(json::Decoded),
    Arrow(Vec<ipc::DecodedMessage>, Vec<MessageError>),
    /// No decoder could be built: every message gets this reason.
    Refused(String),
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

#[cfg(test)]
thread_local! {
    /// Batches of values this thread decoded.
    static DECODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

thread_local! {
    /// Whether this thread is inside [`guarded`] (its panics are not printed).
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `read` (one message's decoding); a panic in it (arrow-ipc's reader
/// still panics on some malformed schemas and buffers) becomes the error
/// `"{what} (<the panic's message>)"`, and is not printed: the message's
/// error carries it. Panics elsewhere print as before (the hook chains).
pub(crate) fn guarded<T>(what: &str, read: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info)
            }
        }));
    });
    let outer = QUIET.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    QUIET.set(outer);
    result.unwrap_or_else(|p| Err(format!("{what} ({})", crate::error::panic_text(&*p))))
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
