//! JSON messages to and from Arrow.
//!
//! [`decode`] reads each message value as one JSON object and fills a batch
//! of the model's declared inputs through [`RowBuilder`], so the rules for
//! values are those of rows everywhere (numbers into float fields, integers
//! into integer fields, ...). A message that cannot be read is refused
//! alone, with its index and the reason: not JSON, not an object, a missing
//! field, a field of the wrong type. Keys that are neither inputs nor copied
//! are skipped; the copied fields ([`Carry`]: the id field, then the carried
//! fields) are kept as written (raw JSON), for the output.
//!
//! [`encode`] writes one JSON object per output row: the copied fields first
//! (the id field left out where the input had none, a carried field `null`),
//! then the prediction fields in declared order.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use rustc_hash::FxHashMap;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::codec::{guarded, Carry, MessageError};
use crate::error::InputError;
use crate::rows::{Cell, MissingFields, RowBuilder};

mod flat;

/// A field's value as read, before [`RowBuilder`] checks it.
#[derive(Debug, Clone, Default)]
enum Val {
    #[default]
    Unset,
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// An array or object where a scalar belongs.
    Nested(&'static str),
}

/// Where a key's value goes: an input slot, a copied slot, or both.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    input: Option<usize>,
    carry: Option<usize>,
}

/// Reads messages of one schema; keeps its scratch space between calls.
pub struct JsonDecoder {
    builder: RowBuilder,
    /// Where each key goes: by key (a fast hash: SipHash was 12% of decoding)
    /// and by its position in the last message (`flat::Keys`).
    keys: flat::Keys,
    slots: Vec<Val>,
    carried: Vec<Option<Box<RawValue>>>,
    /// Try the flat-object scanner (`flat.rs`) before serde_json.
    flat: bool,
    /// What an input field absent from a message is.
    missing: MissingFields,
    /// A panic interrupted a message: the builder's columns may disagree.
    torn: bool,
}

/// What [`JsonDecoder::decode`] read from a list of messages.
pub struct Decoded {
    /// The inputs of the messages that could be read, in message order.
    pub batch: RecordBatch,
    /// For each row of `batch`, the index of its message.
    pub rows: Vec<usize>,
    /// For each row, the copied fields as written (raw JSON), when present:
    /// row-major, [`Carry::len`] entries per row.
    pub carried: Vec<Option<Box<RawValue>>>,
    /// The messages that could not be read.
    pub errors: Vec<MessageError>,
}

impl JsonDecoder {
    /// A decoder for a model's input schema; the fields of `carry` are kept for the output.
    pub fn new(schema: SchemaRef, carry: &Carry) -> Result<Self, InputError> {
        let mut index: FxHashMap<String, Slot> = FxHashMap::default();
        for (i, f) in schema.fields().iter().enumerate() {
            index.entry(f.name().clone()).or_default().input = Some(i);
        }
        for (c, name) in carry.names().enumerate() {
            index.entry(name.to_string()).or_default().carry = Some(c);
        }
        let slots = vec![Val::Unset; schema.fields().len()];
        Ok(Self {
            builder: RowBuilder::new(schema)?,
            keys: flat::Keys::new(index),
            slots,
            carried: vec![None; carry.len()],
            // `STREAMML_JSON_FLAT=0`: serde_json's reader alone (to compare the two in one process).
            flat: std::env::var_os("STREAMML_JSON_FLAT").is_none_or(|v| v != "0"),
            missing: MissingFields::Error,
            torn: false,
        })
    }

    /// The same decoder reading absent input fields as `missing` says.
    pub fn with_missing_fields(mut self, missing: MissingFields) -> Self {
        self.missing = missing;
        self
    }

    /// The same decoder with serde_json's reader alone (to compare the two).
    #[cfg(test)]
    pub(crate) fn general_only(mut self) -> Self {
        self.flat = false;
        self
    }

    /// Read each value as one JSON object of the inputs.
    pub fn decode(&mut self, values: &[&[u8]]) -> Decoded {
        let mut rows = Vec::with_capacity(values.len());
        let mut carried = Vec::with_capacity(values.len() * self.carried.len());
        let mut errors = Vec::new();
        for (i, value) in values.iter().enumerate() {
            match self.read_guarded(value) {
                Ok(()) => {
                    rows.push(i);
                    carried.extend(self.carried.iter_mut().map(Option::take));
                }
                Err(reason) => errors.push(MessageError { index: i, reason }),
            }
        }
        if std::mem::take(&mut self.torn) {
            self.builder = RowBuilder::new(self.builder.schema().clone()).expect("built once already");
            return self.reread(values, rows, errors);
        }
        match self.builder.finish() {
            Ok(batch) => Decoded {
                batch,
                rows,
                carried,
                errors,
            },
            // A value that fits the wide column but not the declared type (an
            // integer out of range of int8, say): find the messages one by one.
            Err(_) if rows.len() > 1 => self.isolate(values, rows, errors),
            Err(e) => {
                errors.extend(rows.iter().map(|&index| MessageError {
                    index,
                    reason: e.to_string(),
                }));
                errors.sort_by_key(|e| e.index);
                Decoded {
                    batch: RecordBatch::new_empty(self.builder.schema().clone()),
                    rows: Vec::new(),
                    carried: Vec::new(),
                    errors,
                }
            }
        }
    }

    /// Decode the messages `good` again (after a panic tore the builder).
    fn reread(&mut self, values: &[&[u8]], good: Vec<usize>, errors: Vec<MessageError>) -> Decoded {
        let subset: Vec<&[u8]> = good.iter().map(|&i| values[i]).collect();
        let mut all = self.decode(&subset);
        all.rows = all.rows.iter().map(|&r| good[r]).collect();
        all.errors.iter_mut().for_each(|e| e.index = good[e.index]);
        all.errors.extend(errors);
        all.errors.sort_by_key(|e| e.index);
        all
    }

    fn isolate(
        &mut self,
        values: &[&[u8]],
        rows: Vec<usize>,
        mut errors: Vec<MessageError>,
    ) -> Decoded {
        let mut good = Vec::new();
        for index in rows {
            let one = self.decode(&values[index..=index]);
            match one.errors.into_iter().next() {
                Some(e) => errors.push(MessageError {
                    index,
                    reason: e.reason,
                }),
                None => good.push(index),
            }
        }
        errors.sort_by_key(|e| e.index);
        let subset: Vec<&[u8]> = good.iter().map(|&i| values[i]).collect();
        let mut all = self.decode(&subset);
        all.rows = all.rows.iter().map(|&r| good[r]).collect();
        all.errors = errors;
        all
    }

    /// [`Self::read_one`], with a panic (a bug, never expected) made the
    /// message's error: one message never takes its batch down. After a
    /// panic the builder may be torn (`self.torn`): `decode` then reads the
    /// good messages again into a fresh one.
    fn read_guarded(&mut self, value: &[u8]) -> Result<(), String> {
        let mut panicked = true;
        let read = guarded("invalid JSON: the reader failed on this message", || {
            let read = self.read_one(value);
            panicked = false;
            read
        });
        self.torn |= panicked;
        read
    }

    /// Read one message into the builder and its copied fields into
    /// `self.carried`; or the reason it cannot be read.
    fn read_one(&mut self, value: &[u8]) -> Result<(), String> {
        self.clear();
        if !(self.flat && flat::read(value, &mut self.keys, &mut self.slots, &mut self.carried).is_some()) {
            self.clear();
            self.read_general(value)?;
        }
        let fields = self.builder.schema().fields();
        let mut cells = Vec::with_capacity(self.slots.len());
        for (slot, field) in self.slots.iter().zip(fields) {
            cells.push(match slot {
                Val::Unset => self.missing.absent(field.name())?,
                Val::Nested(kind) => {
                    return Err(format!(
                        "field '{}' is {kind}, expected {}",
                        field.name(),
                        crate::input::type_name(field.data_type())
                    ))
                }
                Val::Null => Cell::Null,
                Val::Bool(b) => Cell::Bool(*b),
                Val::Int(v) => Cell::Int(*v),
                Val::UInt(v) => Cell::UInt(*v),
                Val::Float(v) => Cell::Float(*v),
                Val::Str(s) => Cell::Str(s),
            });
        }
        self.builder.append_row(&cells)?;
        Ok(())
    }

    /// No value read yet.
    fn clear(&mut self) {
        for slot in &mut self.slots {
            *slot = Val::Unset;
        }
        for c in &mut self.carried {
            *c = None;
        }
    }

    /// Read one message with serde_json into the slots (cleared).
    fn read_general(&mut self, value: &[u8]) -> Result<(), String> {
        let mut reason = None;
        let seed = Message {
            index: &self.keys.index,
            slots: &mut self.slots,
            carried: &mut self.carried,
            reason: &mut reason,
        };
        let mut de = serde_json::Deserializer::from_slice(value);
        let read = seed.deserialize(&mut de).and_then(|()| de.end());
        if let Err(e) = read {
            return Err(reason.unwrap_or_else(|| describe(&e)));
        }
        Ok(())
    }
}

fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!("invalid JSON: {e}"),
        Category::Data => e.to_string(),
    }
}

/// The visitor of one message: an object whose values go into `slots`.
struct Message<'a> {
    index: &'a FxHashMap<String, Slot>,
    slots: &'a mut [Val],
    carried: &'a mut [Option<Box<RawValue>>],
    reason: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Message<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Message<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.index.get(key.as_ref()).copied().unwrap_or_default() {
                Slot {
                    carry: Some(c),
                    input,
                } => {
                    let raw: Box<RawValue> = map.next_value()?;
                    if let Some(i) = input {
                        // Copied and also an input: read it from its raw text.
                        let mut de = serde_json::Deserializer::from_str(raw.get());
                        self.slots[i] = de::Deserialize::deserialize(&mut de)
                            .map(|ScalarOf(v)| v)
                            .map_err(de::Error::custom)?;
                    }
                    self.carried[c] = Some(raw);
                }
                Slot {
                    input: Some(i),
                    carry: None,
                } => self.slots[i] = map.next_value::<ScalarOf>()?.0,
                Slot {
                    input: None,
                    carry: None,
                } => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.refuse("an array"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.refuse("a string"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.refuse("a number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.refuse("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.refuse("a number"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.refuse("a bool"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.refuse("null"))
    }
}

impl Message<'_> {
    fn refuse<E: de::Error>(self, kind: &str) -> E {
        *self.reason = Some(format!("expected a JSON object, got {kind}"));
        E::custom("not an object")
    }
}

/// An object key, borrowed from the message where it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }
}

/// Any JSON value, read as the scalar [`Val`] it is.
struct ScalarOf(Val);

impl<'de> de::Deserialize<'de> for ScalarOf {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = ScalarOf;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<ScalarOf, E> {
        Ok(ScalarOf(Val::Null))
    }
    fn visit_bool<E>(self, v: bool) -> Result<ScalarOf, E> {
        Ok(ScalarOf(Val::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ScalarOf, E> {
        Ok(ScalarOf(Val::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ScalarOf, E> {
        Ok(ScalarOf(Val::UInt(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<ScalarOf, E> {
        Ok(ScalarOf(Val::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<ScalarOf, E> {
        Ok(ScalarOf(Val::Str(v.to_string())))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ScalarOf, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ScalarOf(Val::Nested("an array")))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScalarOf, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(ScalarOf(Val::Nested("an object")))
    }
}

/// One JSON object per row of `output`: the copied fields of `carry` first
/// (`carried`: [`Carry::len`] raw values per row, as [`Decoded::carried`];
/// a missing id is left out, a missing carried field is `null`), then every
/// output column.
pub fn encode(
    output: &RecordBatch,
    carry: &Carry,
    carried: &[Option<Box<RawValue>>],
) -> Result<Vec<Vec<u8>>, String> {
    let columns: Vec<(String, &ArrayRef)> = output
        .schema_ref()
        .fields()
        .iter()
        .zip(output.columns())
        .map(|(f, c)| (serde_json::to_string(f.name()).expect("a string"), c))
        .collect();
    for (name, column) in &columns {
        if !writable(column.data_type()) {
            return Err(format!(
                "output {name} has type {}, which the JSON encoder does not write; use --format arrow",
                column.data_type()
            ));
        }
    }
    let keys: Vec<String> = carry
        .names()
        .map(|k| serde_json::to_string(k).expect("a string"))
        .collect();
    let width = keys.len();
    if carried.len() != width * output.num_rows() {
        return Err(format!(
            "{} copied value(s) for {} output row(s) of {width} copied field(s)",
            carried.len(),
            output.num_rows()
        ));
    }
    let mut out = Vec::with_capacity(output.num_rows());
    for row in 0..output.num_rows() {
        let mut buf = Vec::with_capacity(32 + 24 * columns.len());
        buf.push(b'{');
        let mut first = true;
        for (c, key) in keys.iter().enumerate() {
            let value = carried[row * width + c].as_deref();
            if value.is_none() && carry.is_id(c) {
                continue;
            }
            if !first {
                buf.push(b',');
            }
            first = false;
            buf.extend_from_slice(key.as_bytes());
            buf.push(b':');
            buf.extend_from_slice(value.map_or("null", RawValue::get).as_bytes());
        }
        for (name, column) in &columns {
            if !first {
                buf.push(b',');
            }
            first = false;
            buf.extend_from_slice(name.as_bytes());
            buf.push(b':');
            write_value(&mut buf, column.as_ref(), row);
        }
        buf.push(b'}');
        out.push(buf);
    }
    Ok(out)
}

fn writable(t: &DataType) -> bool {
    use DataType::*;
    match t {
        Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32
        | Float64 | Utf8 | LargeUtf8 => true,
        FixedSizeList(f, _) | List(f) | LargeList(f) => writable(f.data_type()),
        _ => false,
    }
}

fn write_float(buf: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        serde_json::to_writer(&mut *buf, &v).expect("writing to a Vec");
    } else {
        buf.extend_from_slice(b"null"); // JSON has no NaN or infinity
    }
}

fn write_value(buf: &mut Vec<u8>, column: &dyn Array, row: usize) {
    use DataType::*;
    if column.is_null(row) {
        buf.extend_from_slice(b"null");
        return;
    }
    match column.data_type() {
        Boolean => buf.extend_from_slice(if column.as_boolean().value(row) {
            b"true"
        } else {
            b"false"
        }),
        Int8 => write!(buf, "{}", column.as_primitive::<Int8Type>().value(row)).unwrap(),
        Int16 => write!(buf, "{}", column.as_primitive::<Int16Type>().value(row)).unwrap(),
        Int32 => write!(buf, "{}", column.as_primitive::<Int32Type>().value(row)).unwrap(),
        Int64 => write!(buf, "{}", column.as_primitive::<Int64Type>().value(row)).unwrap(),
        UInt8 => write!(buf, "{}", column.as_primitive::<UInt8Type>().value(row)).unwrap(),
        UInt16 => write!(buf, "{}", column.as_primitive::<UInt16Type>().value(row)).unwrap(),
        UInt32 => write!(buf, "{}", column.as_primitive::<UInt32Type>().value(row)).unwrap(),
        UInt64 => write!(buf, "{}", column.as_primitive::<UInt64Type>().value(row)).unwrap(),
        Float32 => write_float(buf, column.as_primitive::<Float32Type>().value(row) as f64),
        Float64 => write_float(buf, column.as_primitive::<Float64Type>().value(row)),
        Utf8 => serde_json::to_writer(&mut *buf, column.as_string::<i32>().value(row)).unwrap(),
        LargeUtf8 => {
            serde_json::to_writer(&mut *buf, column.as_string::<i64>().value(row)).unwrap()
        }
        FixedSizeList(_, _) => write_list(buf, column.as_fixed_size_list().value(row).as_ref()),
        List(_) => write_list(buf, column.as_list::<i32>().value(row).as_ref()),
        LargeList(_) => write_list(buf, column.as_list::<i64>().value(row).as_ref()),
        _ => unreachable!("writable() was checked"),
    }
}

fn write_list(buf: &mut Vec<u8>, values: &dyn Array) {
    buf.push(b'[');
    for i in 0..values.len() {
        if i > 0 {
            buf.push(b',');
        }
        write_value(buf, values, i);
    }
    buf.push(b']');
}
