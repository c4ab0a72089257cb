//! Strict JSON in, RFC 8785 canonical JSON out.
//!
//! Everything a hash or a signature covers is RFC 8785 (JSON Canonicalization Scheme) bytes.
//! Input from outside is parsed strictly first: valid UTF-8, no duplicate object keys, nesting
//! at most 128 deep, and every number within ±(2^53 - 1), because RFC 8785 writes numbers as
//! IEEE doubles and a larger integer would be signed as a different value than written.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

use crate::ids::MAX_SAFE_INTEGER;

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line} column {column}")]
pub struct JsonError {
    /// What is wrong.
    pub message: String,
    /// 1-based line within the text.
    pub line: usize,
    /// 1-based column within the line.
    pub column: usize,
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        // serde_json appends " at line L column C" to custom messages; keep the bare message.
        let full = e.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) => full[..i].to_string(),
            None => full,
        };
        Self {
            message,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Parses one JSON text strictly (see the module docs).
pub fn parse_strict(text: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let v = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// The RFC 8785 canonical bytes of a JSON value.
pub fn to_canonical(value: &Value) -> Vec<u8> {
    // Serializing a `Value` into memory cannot fail: its keys are strings and its numbers finite.
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}

/// Checks that every number in `value` is within ±(2^53 - 1). Values built in code (not parsed
/// by [`parse_strict`]) go through this before they are signed.
pub fn check_numbers(value: &Value) -> Result<(), String> {
    match value {
        Value::Number(n) => check_number(n),
        Value::Array(items) => items.iter().try_for_each(check_numbers),
        Value::Object(map) => map.values().try_for_each(check_numbers),
        _ => Ok(()),
    }
}

/// Nesting depth of a value: 0 for scalars, 1 for an empty or flat array/object.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn check_number(n: &serde_json::Number) -> Result<(), String> {
    let ok = if let Some(u) = n.as_u64() {
        u <= MAX_SAFE_INTEGER
    } else if let Some(i) = n.as_i64() {
        i.unsigned_abs() <= MAX_SAFE_INTEGER
    } else {
        n.as_f64()
            .is_some_and(|f| f.is_finite() && f.abs() <= MAX_SAFE_INTEGER as f64)
    };
    if ok {
        Ok(())
    } else {
        Err(format!("number {n} is beyond ±(2^53-1)"))
    }
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.number(v.into())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.number(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        let n = serde_json::Number::from_f64(v).ok_or_else(|| E::custom("number is not finite"))?;
        self.number(n)
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let v = map.next_value_seed(StrictValue)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

impl StrictValue {
    fn number<E: de::Error>(self, n: serde_json::Number) -> Result<Value, E> {
        check_number(&n).map_err(E::custom)?;
        Ok(Value::Number(n))
    }
}

/// Appends `s` to `out` as an RFC 8785 JSON string (quotes included).
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_with_position() {
        let e = parse_strict(
            br#"{"a":1,
"a":2}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("duplicate key \"a\""), "{e}");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn numbers_beyond_2_pow_53_are_refused() {
        assert!(parse_strict(b"9007199254740991").is_ok());
        assert!(parse_strict(b"-9007199254740991").is_ok());
        assert!(parse_strict(b"9007199254740992").is_err());
        assert!(parse_strict(b"-9007199254740992").is_err());
        assert!(parse_strict(b"1e300").is_err());
        assert!(parse_strict(b"0.5").is_ok());
    }

    #[test]
    fn deep_nesting_and_bad_utf8_are_refused() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_strict(deep.as_bytes()).is_err());
        assert!(parse_strict(b"\"\xff\"").is_err());
        assert!(parse_strict(b"{} x").is_err());
    }

    #[test]
    fn write_string_matches_the_canonicalizer() {
        for s in [
            "plain",
            "quote\"back\\slash",
            "\u{1}\u{1f}\n\t",
            "€ and 😀",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            write_string(&mut out, s);
            assert_eq!(out, to_canonical(&Value::String(s.into())), "{s:?}");
        }
    }
}
