//! The fast path of [`JsonDecoder`](super::JsonDecoder): a message that is
//! one flat object of ASCII keys and scalar values without escapes (what
//! producers of events write) is read by a plain scanner instead of
//! serde_json's visitor. It fills the same slots with the same values, as
//! the general reader would:
//!
//! - numbers by the JSON grammar; integers as `UInt` (not negative) or `Int`
//!   (negative), other numbers as `Float`, correctly rounded as serde_json
//!   with `float_roundtrip` rounds them: short decimals by `decimal`
//!   (Clinger's fast path), the rest by the standard library;
//! - `true`, `false`, `null`; strings of printable ASCII without escapes;
//! - a later duplicate key wins; unknown keys are skipped; a copied field
//!   keeps its value's text.
//!
//! Anything else (nested values, escapes, non-ASCII bytes, `-0`, integers
//! beyond 64 bits, numbers out of range, any syntax error) returns `false`,
//! and the caller starts over with the general reader, which also words the
//! errors. So the fast path changes speed only (`docs/performance.md`):
//! `tests` check both readers give the same batches, copied values and errors.

use rustc_hash::FxHashMap;
use serde_json::value::RawValue;

use super::{Slot, Val};

/// The slots of keys, with the keys of the last message in order: messages
/// of one producer write their keys in the same order, so a key is compared
/// with the one at its position in the last message before it is hashed.
pub(super) struct Keys {
    pub index: FxHashMap<String, Slot>,
    last: Vec<(Box<[u8]>, Slot)>,
}

impl Keys {
    pub fn new(index: FxHashMap<String, Slot>) -> Self {
        Self {
            index,
            last: Vec::new(),
        }
    }

    /// The slot of the `k`-th key of a message (unknown keys: no slot).
    fn slot(&mut self, k: usize, key: &[u8]) -> Slot {
        if let Some((seen, slot)) = self.last.get(k) {
            if **seen == *key {
                return *slot;
            }
        }
        // Keys are printable ASCII here (`string`).
        let slot = std::str::from_utf8(key)
            .ok()
            .and_then(|key| self.index.get(key).copied())
            .unwrap_or_default();
        self.last.truncate(k);
        if self.last.len() == k {
            self.last.push((key.into(), slot));
        }
        slot
    }
}

/// Read `b` into `slots` and `carried` (which hold no values yet); `None`
/// if it needs the general reader (see the module docs).
pub(super) fn read(
    b: &[u8],
    keys: &mut Keys,
    slots: &mut [Val],
    carried: &mut [Option<Box<RawValue>>],
) -> Option<()> {
    let mut i = skip_ws(b, 0);
    expect(b, &mut i, b'{')?;
    i = skip_ws(b, i);
    if b.get(i) == Some(&b'}') {
        return end(b, i + 1);
    }
    for k in 0.. {
        let key = string(b, &mut i)?;
        i = skip_ws(b, i);
        expect(b, &mut i, b':')?;
        i = skip_ws(b, i);
        let start = i;
        let scalar = scalar(b, &mut i)?;
        let slot = keys.slot(k, key);
        if slot.input.is_some() || slot.carry.is_some() {
            // SAFETY: a scalar is printable ASCII (`string`, `number`, `word`).
            let raw = unsafe { std::str::from_utf8_unchecked(&b[start..i]) };
            if let Some(s) = slot.input {
                slots[s] = scalar.value(raw)?;
            }
            if let Some(c) = slot.carry {
                carried[c] = Some(RawValue::from_string(raw.to_owned()).ok()?);
            }
        }
        i = skip_ws(b, i);
        match b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return end(b, i + 1),
            _ => return None,
        }
    }
    None
}

/// What a scalar's text is.
#[derive(Clone, Copy)]
enum Scalar {
    Integer,
    Number,
    True,
    False,
    Null,
    /// A string without escapes (the text includes its quotes).
    Str,
}

impl Scalar {
    /// The value the general reader would give `raw`; `None` where it
    /// would not give it the same way (see the module docs).
    fn value(self, raw: &str) -> Option<Val> {
        Some(match self {
            Self::Integer if raw.starts_with('-') => match raw.parse::<i64>().ok()? {
                0 => return None, // "-0" is the float -0.0 to serde_json
                v => Val::Int(v),
            },
            Self::Integer => Val::UInt(raw.parse().ok()?),
            Self::Number => {
                let v = match decimal(raw) {
                    Some(v) => v,
                    None => raw.parse().ok()?,
                };
                if !v.is_finite() {
                    return None; // "number out of range" to serde_json
                }
                Val::Float(v)
            }
            Self::True => Val::Bool(true),
            Self::False => Val::Bool(false),
            Self::Null => Val::Null,
            Self::Str => Val::Str(raw[1..raw.len() - 1].to_owned()),
        })
    }
}

/// Powers of ten that are exact doubles.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A number of the grammar (checked by `number`) whose digits make an
/// integer `w <= 2^53` and whose decimal exponent `e` is within 22 of 0:
/// `w` and `10^|e|` are exact doubles, so one multiplication or division
/// rounds correctly (Clinger's fast path), giving the bits `str::parse`
/// gives. Other numbers: `None`.
fn decimal(raw: &str) -> Option<f64> {
    let b = raw.as_bytes();
    let negative = b[0] == b'-';
    let (mut w, mut digits, mut fraction, mut exp) = (0u64, 0u32, 0i32, 0i32);
    // One pass over the digits (the grammar is checked by `number`): `at`
    // stops at the exponent's letter, if any.
    let mut at = usize::from(negative);
    let mut in_fraction = false;
    while at < b.len() {
        match b[at] {
            c @ b'0'..=b'9' => {
                digits += 1;
                if digits > 19 {
                    return None;
                }
                w = w * 10 + u64::from(c - b'0');
                fraction += i32::from(in_fraction);
            }
            b'.' => in_fraction = true,
            _ => {
                exp = raw[at + 1..].parse().ok()?; // [eE] [+-]? digits
                break;
            }
        }
        at += 1;
    }
    let e = exp.checked_sub(fraction)?;
    if w > 1 << 53 || !(-22..=22).contains(&e) {
        return None;
    }
    let v = w as f64;
    let v = if e < 0 {
        v / POW10[(-e) as usize]
    } else {
        v * POW10[e as usize]
    };
    Some(if negative { -v } else { v })
}

/// Step over one scalar at `*i`.
fn scalar(b: &[u8], i: &mut usize) -> Option<Scalar> {
    match *b.get(*i)? {
        b'"' => string(b, i).map(|_| Scalar::Str),
        b't' => word(b, i, b"true", Scalar::True),
        b'f' => word(b, i, b"false", Scalar::False),
        b'n' => word(b, i, b"null", Scalar::Null),
        _ => number(b, i),
    }
}

fn word(b: &[u8], i: &mut usize, w: &[u8], s: Scalar) -> Option<Scalar> {
    if b[*i..].starts_with(w) {
        *i += w.len();
        Some(s)
    } else {
        None
    }
}

/// A number by the JSON grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn number(b: &[u8], i: &mut usize) -> Option<Scalar> {
    let mut at = *i;
    if b.get(at) == Some(&b'-') {
        at += 1;
    }
    match b.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(b, at),
        _ => return None,
    }
    let mut kind = Scalar::Integer;
    if b.get(at) == Some(&b'.') {
        let from = at + 1;
        at = digits(b, from);
        if at == from {
            return None;
        }
        kind = Scalar::Number;
    }
    if matches!(b.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(b.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let from = at;
        at = digits(b, from);
        if at == from {
            return None;
        }
        kind = Scalar::Number;
    }
    *i = at;
    Some(kind)
}

fn digits(b: &[u8], mut at: usize) -> usize {
    while b.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    at
}

/// A string of printable ASCII without escapes at `*i` (its quotes
/// included); its contents.
fn string<'a>(b: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    expect(b, i, b'"')?;
    let start = *i;
    let len = b[start..].iter().position(|&c| c == b'"')?;
    let body = &b[start..start + len];
    if body
        .iter()
        .any(|&c| !(0x20..0x7f).contains(&c) || c == b'\\')
    {
        return None;
    }
    *i = start + len + 1;
    Some(body)
}

fn expect(b: &[u8], i: &mut usize, c: u8) -> Option<()> {
    (b.get(*i) == Some(&c)).then(|| *i += 1)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Only whitespace may follow the object.
fn end(b: &[u8], i: usize) -> Option<()> {
    (skip_ws(b, i) == b.len()).then_some(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};

    use super::super::{Decoded, JsonDecoder, Val};
    use crate::codec::Carry;

    /// Inputs of every kind the rows take, one nullable; `x` is also copied.
    fn decoders() -> (JsonDecoder, JsonDecoder) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, false),
            Field::new("n", DataType::Int64, false),
            Field::new("u", DataType::UInt8, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ]));
        let carry = Carry {
            id_field: Some("id".into()),
            fields: vec!["x".into(), "t".into()],
        };
        let fast = JsonDecoder::new(schema.clone(), &carry).expect("a decoder");
        let general = JsonDecoder::new(schema, &carry)
            .expect("a decoder")
            .general_only();
        (fast, general)
    }

    /// Everything `Decoded` holds, comparable: the batch, rows, copied texts and errors.
    type Seen = (
        arrow_array::RecordBatch,
        Vec<usize>,
        Vec<Option<String>>,
        Vec<(usize, String)>,
    );

    fn seen(d: Decoded) -> Seen {
        let carried = d
            .carried
            .iter()
            .map(|r| r.as_ref().map(|r| r.get().to_owned()))
            .collect();
        let errors = d.errors.into_iter().map(|e| (e.index, e.reason)).collect();
        (d.batch, d.rows, carried, errors)
    }

    fn assert_same(values: &[&[u8]]) {
        let (mut fast, mut general) = decoders();
        for v in values {
            // One at a time (each its own batch and errors), then all in one batch.
            assert_eq!(
                seen(fast.decode(&[v])),
                seen(general.decode(&[v])),
                "message {:?}",
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(seen(fast.decode(values)), seen(general.decode(values)));
    }

    #[test]
    fn the_scanner_reads_what_serde_json_reads() {
        let values: Vec<&[u8]> = vec![
            br#"{"x":1.5,"n":-3,"u":7,"s":"a b","b":true,"id":17,"t":"2026"}"#,
            br#" { "x" : 0.1 , "n" : 9223372036854775807 , "id" : "e-1" } "#,
            b"{\n\t\"x\":1e5,\r\"n\":0}",
            br#"{"x":-0.0,"n":-9223372036854775808,"u":null,"s":null,"b":false}"#,
            br#"{"x":2.2250738585072011e-308,"n":1,"id":null}"#,
            br#"{"x":9007199254740993,"n":2,"zz":[1,2],"q":{"a":1}}"#,
            br#"{"x":1.7976931348623157e308,"n":3}"#,
            br#"{"x":0.30000000000000004441,"n":3,"x":4.25}"#,
            br#"{"x":123456789012345678901234567890.5e-20,"n":4,"unknown":"v"}"#,
            // The general reader's cases: escapes, non-ASCII, -0, big integers, out of range.
            br#"{"x":1,"n":2,"s":"a\"b","id":"\u00e9"}"#,
            "{\"x\":1,\"n\":2,\"s\":\"é\"}".as_bytes(),
            br#"{"x":-0,"n":-0}"#,
            br#"{"x":18446744073709551616,"n":1}"#,
            br#"{"x":1e400,"n":1}"#,
            br#"{"x":1,"n":2,"u":300}"#,
            br#"{"x":1,"n":2,"u":-1}"#,
            br#"{"x":[1],"n":2}"#,
            br#"{"x":"1.5","n":2}"#,
            br#"{"x":true,"n":2}"#,
            br#"{"x":1.5,"n":2.5}"#,
            br#"{"x":1.5}"#,
            br#"{}"#,
            // Not JSON, or not an object.
            br#"{"x":1.5,"n":2,}"#,
            br#"{"x":1.5,"n":2} x"#,
            br#"{"x":01,"n":2}"#,
            br#"{"x":1.,"n":2}"#,
            br#"{"x":.5,"n":2}"#,
            br#"{"x":1e,"n":2}"#,
            br#"{"x":+1,"n":2}"#,
            br#"{"x":1 "n":2}"#,
            br#"{"x":nul,"n":2}"#,
            br#"{"x":1,"n":2"#,
            br#"{"x""#,
            b"",
            b"[1,2]",
            b"12",
            b"\"text\"",
            b"{\"x\":1,\"n\":2,\"s\":\"a\x01b\"}",
            b"{\"x\":1,\"n\":2,\"s\":\"\xff\"}",
        ];
        assert_same(&values);
    }

    #[test]
    fn flat_messages_take_the_scanner_and_others_do_not() {
        let (fast, _) = decoders();
        let mut slots = vec![Val::Unset; 5];
        let mut carried = vec![None; 3];
        let mut keys = super::Keys::new(fast.keys.index.clone());
        let mut read = |v: &[u8]| super::read(v, &mut keys, &mut slots, &mut carried).is_some();
        assert!(read(
            br#"{"x":1.5,"n":-3,"u":7,"s":"a b","b":true,"id":17,"t":"2026","other":null}"#
        ));
        assert!(read(b" {} "));
        for general in [
            &br#"{"x":1,"s":"a\nb"}"#[..],
            br#"{"x":{"a":1}}"#,
            br#"{"x":-0}"#,
            b"[]",
        ] {
            assert!(!read(general), "{:?}", String::from_utf8_lossy(general));
        }
    }

    #[test]
    fn the_fast_decimals_round_as_the_standard_parser() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut taken = 0;
        for k in 0..200_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let digits = (state % 10_000_000_000_000_000) >> (k % 50);
            let scale = (state >> 56) as usize % 24;
            let mut text = format!("{digits:0>width$}", width = scale + 1);
            text.insert(text.len() - scale, '.');
            let text = match k % 3 {
                0 => format!("-{text}"),
                1 => format!("{text}e{}", (state >> 40) as i64 % 30 - 15),
                _ => text,
            };
            if let Some(v) = super::decimal(&text) {
                taken += 1;
                assert_eq!(
                    v.to_bits(),
                    text.parse::<f64>().expect("a number").to_bits(),
                    "{text}"
                );
            }
        }
        assert!(taken > 100_000, "the fast path took {taken} of 200,000");
    }

    #[test]
    fn numbers_are_parsed_to_the_same_bits() {
        // Random decimals of many lengths and exponents, written as producers write them.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let texts: Vec<String> = (0..3000)
            .map(|k| {
                let bits = next();
                let v = f64::from_bits(bits);
                let x = match k % 4 {
                    0 if v.is_finite() => format!("{v:e}"),
                    1 => format!(
                        "{:.*}",
                        (bits % 20) as usize,
                        (bits >> 12) as f64 / 1e6 - 2e6
                    ),
                    2 => format!(
                        "{}e{}",
                        bits % 1_000_000_007,
                        (bits >> 40) as i64 % 300 - 150
                    ),
                    _ => format!("-{}.{}", bits >> 50, bits % 100_000_000_000_000_000),
                };
                format!(r#"{{"x":{x},"n":{},"id":{x}}}"#, next() as i64)
            })
            .collect();
        let values: Vec<&[u8]> = texts.iter().map(String::as_bytes).collect();
        assert_same(&values);
    }
}
