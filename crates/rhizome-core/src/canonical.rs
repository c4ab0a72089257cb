//! Strict JSON in, RFC 8785 canonical JSON out.
//!
//! Everything a hash or a signature covers is RFC 8785 (JSON Canonicalization Scheme) bytes.
//! Input from outside is parsed strictly first: valid UTF-8, no duplicate object keys, nesting
//! at most 128 deep, and every number within ±(2^53 - 1), because RFC 8785 writes numbers as
//! IEEE doubles and a larger integer would be signed as a different value than written.

use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
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

/// The RFC 8785 canonical bytes of a JSON text, checked exactly as [`parse_strict`] checks it
/// (same refusals, same positions), without building the value: `to_canonical(&parse_strict(t)?)`
/// in less memory: the output, and each object's members while they are sorted. A manifest
/// lists every feed it carries; one of 4.8 MB took 22 MB as a tree, and `bundle inspect` of its
/// bundle now peaks at 24 MB instead of 50. Objects of many tiny members still cost tens of
/// bytes per byte of text, about as much as the tree.
///
/// `omit` names a top-level member left out of the output and returned apart, as its own
/// canonical bytes (a signed object's `sig`).
pub fn canonical_strict(
    text: &[u8],
    omit: Option<&str>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), JsonError> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let out = de.deserialize_any(CanonicalVisitor { omit })?;
    de.end()?;
    Ok(out)
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

/// One value as canonical bytes, for [`canonical_strict`].
struct CanonicalBytes;

impl<'de> DeserializeSeed<'de> for CanonicalBytes {
    type Value = Vec<u8>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        Ok(d.deserialize_any(CanonicalVisitor { omit: None })?.0)
    }
}

/// Numbers get [`StrictValue`]'s range check, strings [`write_string`]; arrays and objects are
/// written member by member, an object's members sorted once all are read (RFC 8785: by UTF-16
/// code units of the keys).
struct CanonicalVisitor<'a> {
    omit: Option<&'a str>,
}

impl<'de> Visitor<'de> for CanonicalVisitor<'_> {
    type Value = (Vec<u8>, Option<Vec<u8>>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok((to_canonical(&Value::Bool(v)), None))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok((to_canonical(&Value::Null), None))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((to_canonical(&StrictValue.visit_u64(v)?), None))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((to_canonical(&StrictValue.visit_i64(v)?), None))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok((to_canonical(&StrictValue.visit_f64(v)?), None))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        let mut out = Vec::with_capacity(v.len() + 2);
        write_string(&mut out, v);
        Ok((out, None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = vec![b'['];
        while let Some(item) = seq.next_element_seed(CanonicalBytes)? {
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(&item);
        }
        out.push(b']');
        Ok((out, None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut omitted = None;
        while let Some(key) = map.next_key::<String>()? {
            let is_omitted = self.omit == Some(key.as_str());
            if members.contains_key(&key) || (is_omitted && omitted.is_some()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(CanonicalBytes)?;
            if is_omitted {
                omitted = Some(value);
            } else {
                members.insert(key, value);
            }
        }
        let mut members: Vec<(String, Vec<u8>)> = members.into_iter().collect();
        members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
        let mut out = vec![b'{'];
        for (key, value) in members {
            if out.len() > 1 {
                out.push(b',');
            }
            write_string(&mut out, &key);
            out.push(b':');
            out.extend_from_slice(&value);
        }
        out.push(b'}');
        Ok((out, omitted))
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
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

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

    /// `canonical_strict` is `to_canonical(&parse_strict(t)?)`, refusals included (same message
    /// and position), on `t`: the text of `v` compact and pretty, and with one byte changed,
    /// deleted or inserted (which makes most texts invalid, some duplicate keys, some valid).
    fn same_as_tree(text: &[u8]) -> Result<(), TestCaseError> {
        let tree = parse_strict(text).map(|v| to_canonical(&v));
        let streamed = canonical_strict(text, None).map(|(bytes, omitted)| {
            assert_eq!(omitted, None);
            bytes
        });
        prop_assert_eq!(streamed, tree, "text {:?}", String::from_utf8_lossy(text));
        Ok(())
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let number = prop_oneof![
            (-(1i64 << 54)..(1i64 << 54)).prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number,
            any::<String>().prop_map(Value::String),
            "[a-c\\u{e9}\\u{1f600}\\u{ff61}\"\\\\\\n]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-c\\u{e9}\\u{1f600}\\u{ff61}]{0,2}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_strict_equals_the_tree_path(
            v in json_value(),
            pretty in any::<bool>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            edit in 0..4u8,
        ) {
            let mut text = if pretty {
                serde_json::to_vec_pretty(&v).unwrap_or_default()
            } else {
                serde_json::to_vec(&v).unwrap_or_default()
            };
            same_as_tree(&text)?;
            let i = at.index(text.len() + 1);
            let valid = text.clone();
            match edit {
                0 if i < text.len() => text[i] = byte,
                1 if i < text.len() => { text.remove(i); }
                2 => text.insert(i, byte),
                _ => text.insert(i, b'"'),
            }
            same_as_tree(&text)?;
            // Duplicate keys, at the top and nested, around a valid value.
            let mut dup = br#"{"k":"#.to_vec();
            dup.extend_from_slice(&valid);
            dup.extend_from_slice(br#","k":0}"#);
            same_as_tree(&dup)?;
            let mut nested = br#"[{"\u00e9":0,"#.to_vec();
            nested.extend_from_slice(&dup[1..]);
            nested.push(b']');
            same_as_tree(&nested)?;
        }
    }

    #[test]
    fn canonical_strict_sets_the_omitted_member_apart() {
        let text = br#"{ "z": [1, {"b": 2, "a": 1}], "sig": "00ff", "a": "x" }"#;
        let (bytes, omitted) = canonical_strict(text, Some("sig")).unwrap();
        assert_eq!(bytes, br#"{"a":"x","z":[1,{"a":1,"b":2}]}"#);
        assert_eq!(omitted.as_deref(), Some(&br#""00ff""#[..]));
        // Only at the top level; and a second one is a duplicate key like any other.
        let (_, nested) = canonical_strict(br#"{"a":{"sig":1}}"#, Some("sig")).unwrap();
        assert_eq!(nested, None);
        let e = canonical_strict(br#"{"sig":"1","sig":"2"}"#, Some("sig")).unwrap_err();
        assert!(e.message.contains("duplicate key \"sig\""), "{e}");
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(canonical_strict(deep.as_bytes(), None).is_err());
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
