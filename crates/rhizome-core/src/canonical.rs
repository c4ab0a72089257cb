//! Strict JSON in, RFC 8785 canonical JSON out.
//!
//! Everything a hash or a signature covers is RFC 8785 (JSON Canonicalization Scheme) bytes.
//! Input from outside is parsed strictly first: valid UTF-8, no duplicate object keys, nesting
//! at most 128 deep, and every number within ±(2^53 - 1), because RFC 8785 writes numbers as
//! IEEE doubles and a larger integer would be signed as a different value than written.

use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::ops::Range;

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

// ---------------------------------------------------------------------------------------------
// Reading strictly into canonical bytes, without a tree
// ---------------------------------------------------------------------------------------------

/// Largest canonical output kept with 32-bit offsets (the top bit of a member's end marks it
/// kept). Far above any line this protocol reads (16 MiB).
const MAX_OUT: usize = (1 << 31) - 1;
const KEPT: u32 = 1 << 31;
/// Members of an object compared one by one for duplicates; beyond, through a hash table.
const LINEAR_MEMBERS: usize = 8;

/// How one member of an object read by [`read_top`] is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Written into the canonical output (the default).
    Keep,
    /// Read as its own canonical bytes and handed to the router, not written.
    Capture,
    /// Handed to the router as a value when it is a scalar (an array or object is checked and
    /// reported as [`Captured::Composite`]), not written.
    Scalar,
    /// Checked, then dropped.
    Drop,
}

/// What a captured member held.
pub(crate) enum Captured {
    /// Its canonical bytes, nesting depth (0 for a scalar) and number of JSON values.
    Bytes {
        bytes: Vec<u8>,
        depth: usize,
        values: u64,
    },
    /// A scalar value.
    Scalar(Value),
    /// An array or object (checked, not kept).
    Composite,
}

/// Decides where the members of the top-level object go, and receives captured ones.
pub(crate) trait Router {
    /// How the member named `key` is read.
    fn route(&mut self, key: &str) -> Route;
    /// What the member last routed to [`Route::Capture`] or [`Route::Scalar`] held.
    fn captured(&mut self, captured: Captured);
}

/// Every member kept: plain canonicalization.
pub(crate) struct KeepAll;

impl Router for KeepAll {
    fn route(&mut self, _: &str) -> Route {
        Route::Keep
    }
    fn captured(&mut self, _: Captured) {}
}

/// A JSON text read by [`read_top`].
pub(crate) struct Top {
    /// RFC 8785 bytes of the value, without the members the router took out.
    pub canonical: Vec<u8>,
    /// The value is an object.
    pub object: bool,
    /// Nesting depth (0 for a scalar, 1 for a flat array or object).
    pub depth: usize,
}

/// Reads one JSON text with [`parse_strict`]'s checks (same refusals, same positions) into its
/// canonical bytes, the members of a top-level object routed by `router`. Memory: the output,
/// one scratch copy of the largest object, and 12 bytes per member of the objects open at a
/// time (plus a 4-byte slot or two per member of those with more than 8): never a tree.
pub(crate) fn read_top(text: &[u8], router: &mut dyn Router) -> Result<Top, JsonError> {
    // The output is seldom longer than the text (only numbers written with exponents grow):
    // one allocation, no copies as it grows.
    let mut canon = Canon {
        out: Vec::with_capacity(text.len()),
        ..Canon::default()
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let (depth, object) = de.deserialize_any(TopVisitor {
        canon: &mut canon,
        router,
    })?;
    de.end()?;
    Ok(Top {
        canonical: canon.out,
        object,
        depth,
    })
}

/// The RFC 8785 canonical bytes of a JSON text, checked exactly as [`parse_strict`] checks it
/// (same refusals, same positions), without building the value: `to_canonical(&parse_strict(t)?)`
/// in bounded memory (see [`read_top`]): about the size of the text again, and a few times the
/// text for objects of tiny members, where a tree takes 15 to 30 times.
///
/// `omit` names a top-level member left out of the output and returned apart, as its own
/// canonical bytes (a signed object's `sig`).
pub fn canonical_strict(
    text: &[u8],
    omit: Option<&str>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), JsonError> {
    /// Takes the member named `omit` out.
    struct Omit<'a> {
        omit: Option<&'a str>,
        omitted: Option<Vec<u8>>,
    }
    impl Router for Omit<'_> {
        fn route(&mut self, key: &str) -> Route {
            if self.omit == Some(key) {
                Route::Capture
            } else {
                Route::Keep
            }
        }
        fn captured(&mut self, captured: Captured) {
            if let Captured::Bytes { bytes, .. } = captured {
                self.omitted = Some(bytes);
            }
        }
    }
    let mut router = Omit {
        omit,
        omitted: None,
    };
    let top = read_top(text, &mut router)?;
    Ok((top.canonical, router.omitted))
}

/// Canonical output being written, and the members of the objects still open.
#[derive(Default)]
struct Canon {
    out: Vec<u8>,
    /// Members of the open objects, innermost last.
    members: Vec<Member>,
    /// Where an object's members are reordered.
    scratch: Vec<u8>,
    /// JSON values read.
    values: u64,
}

/// One member written in [`Canon::out`]: its key (quoted) from `key` to `key_end`, its value
/// up to `end` (whose top bit says whether the member is kept in the output).
#[derive(Clone, Copy)]
struct Member {
    key: u32,
    key_end: u32,
    end: u32,
}

impl Member {
    fn key<'o>(&self, out: &'o [u8]) -> &'o [u8] {
        &out[self.key as usize..self.key_end as usize]
    }
    fn kept(&self) -> bool {
        self.end & KEPT != 0
    }
}

fn too_large<E: de::Error>() -> E {
    E::custom("JSON text too large")
}

impl Canon {
    /// Reads an object's members (`router` decides where each goes), checking duplicates as
    /// they come, then writes the kept ones sorted by RFC 8785 order. Returns the depth.
    fn object<'de, A: MapAccess<'de>>(
        &mut self,
        mut map: A,
        router: &mut dyn Router,
    ) -> Result<usize, A::Error> {
        self.values += 1;
        let body = self.out.len() + 1;
        self.out.push(b'{');
        let first = self.members.len();
        let mut table: Vec<u32> = Vec::new();
        let mut depth = 0;
        // No rewrite is needed while the kept members come in order and no member left out
        // comes before a kept one (a signed object's `sig` is its last member, canonically).
        let mut sorted = true;
        let mut gap = false;
        let mut dropped = false;
        let mut last_kept: Option<Member> = None;
        loop {
            let comma = self.out.len();
            if self.members.len() > first {
                self.out.push(b',');
            }
            let key = self.out.len();
            let seed = KeySeed {
                out: &mut self.out,
                router: &mut *router,
            };
            let Some(route) = map.next_key_seed(seed)? else {
                self.out.truncate(comma);
                break;
            };
            let key_end = self.out.len();
            if key_end > MAX_OUT {
                return Err(too_large());
            }
            if self.is_duplicate(first, &mut table, key..key_end) {
                // Named as `parse_strict` names it: the key unescaped, in Rust's quoting.
                let name: String =
                    serde_json::from_slice(&self.out[key..key_end]).unwrap_or_default();
                return Err(de::Error::custom(format!("duplicate key {name:?}")));
            }
            self.out.push(b':');
            let value = self.out.len();
            let kept = match route {
                Route::Keep => {
                    depth = depth.max(map.next_value_seed(ValueSeed(&mut *self))?);
                    true
                }
                Route::Capture => {
                    let before = self.values;
                    let d = map.next_value_seed(ValueSeed(&mut *self))?;
                    let bytes = self.out[value..].to_vec();
                    self.out.truncate(value);
                    router.captured(Captured::Bytes {
                        bytes,
                        depth: d,
                        values: self.values - before,
                    });
                    false
                }
                Route::Scalar => {
                    let scalar = map.next_value_seed(ScalarSeed(&mut *self))?;
                    self.out.truncate(value);
                    router.captured(scalar.map_or(Captured::Composite, Captured::Scalar));
                    false
                }
                Route::Drop => {
                    map.next_value_seed(ValueSeed(&mut *self))?;
                    self.out.truncate(value);
                    false
                }
            };
            if self.out.len() > MAX_OUT {
                return Err(too_large());
            }
            let member = Member {
                key: key as u32,
                key_end: key_end as u32,
                end: self.out.len() as u32 | if kept { KEPT } else { 0 },
            };
            if kept {
                gap |= dropped;
                if let (true, Some(p)) = (sorted, last_kept) {
                    sorted = compare_keys(p.key(&self.out), member.key(&self.out)).is_lt();
                }
                last_kept = Some(member);
            } else {
                dropped = true;
            }
            self.members.push(member);
        }
        if !sorted || gap {
            self.rewrite(body, first);
        } else {
            // Only what was left out after the last kept member (keys kept for the
            // duplicate check) is cut.
            self.out
                .truncate(last_kept.map_or(body, |m| (m.end & !KEPT) as usize));
        }
        self.members.truncate(first);
        self.out.push(b'}');
        Ok(depth + 1)
    }

    /// Whether the key at `key` (just written) is already a member of the object whose
    /// members start at `first`; if not, it is recorded as the next one.
    fn is_duplicate(&self, first: usize, table: &mut Vec<u32>, key: Range<usize>) -> bool {
        let out = &self.out;
        let new = &out[key];
        let members = &self.members[first..];
        if members.len() < LINEAR_MEMBERS {
            return members.iter().any(|m| m.key(out) == new);
        }
        // Open addressing over member indexes (+1; 0 is empty), at most half full.
        if table.len() < 2 * (members.len() + 1) {
            *table = vec![0; (4 * (members.len() + 1)).next_power_of_two()];
            for (i, m) in members.iter().enumerate() {
                let slot = probe(table, hash_key(m.key(out)), |_| false);
                table[slot] = i as u32 + 1;
            }
        }
        let slot = probe(table, hash_key(new), |i| members[i].key(out) == new);
        if table[slot] != 0 {
            return true;
        }
        table[slot] = members.len() as u32 + 1;
        false
    }

    /// Writes the kept members of the object whose body starts at `body` again, sorted by
    /// key (RFC 8785: by UTF-16 code units) and comma-separated.
    fn rewrite(&mut self, body: usize, first: usize) {
        let out = &self.out;
        self.members[first..].sort_unstable_by(|a, b| compare_keys(a.key(out), b.key(out)));
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        for m in self.members[first..].iter().filter(|m| m.kept()) {
            if !scratch.is_empty() {
                scratch.push(b',');
            }
            scratch.extend_from_slice(&out[m.key as usize..(m.end & !KEPT) as usize]);
        }
        self.out.truncate(body);
        self.out.extend_from_slice(&scratch);
        self.scratch = scratch;
    }
}

/// The slot of `table` holding a member for which `same` holds, or the empty slot where the
/// probe for `hash` ends.
fn probe(table: &[u32], hash: u64, same: impl Fn(usize) -> bool) -> usize {
    let mask = table.len() - 1;
    let mut slot = hash as usize & mask;
    while table[slot] != 0 && !same(table[slot] as usize - 1) {
        slot = (slot + 1) & mask;
    }
    slot
}

/// FNV-1a: keys come from the text being read, and a collision only costs a comparison.
fn hash_key(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// RFC 8785 order of two keys as written by [`write_string`] (quotes included): by the UTF-16
/// code units of the keys. Bytes compare the same way when neither has an escape (`\`) nor a
/// character from U+E000 up (UTF-8 lead byte 0xEE or above), which is nearly always.
fn compare_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let plain = |k: &[u8]| !k.iter().any(|&c| c == b'\\' || c >= 0xee);
    if plain(a) && plain(b) {
        return a.cmp(b);
    }
    Utf16Units::of(a).cmp(Utf16Units::of(b))
}

/// The UTF-16 code units of a string as [`write_string`] writes it (quotes included).
struct Utf16Units<'a> {
    chars: std::str::Chars<'a>,
    low: Option<u16>,
}

impl<'a> Utf16Units<'a> {
    fn of(quoted: &'a [u8]) -> Self {
        let inner = quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default();
        Self {
            // Written from a `&str`: always UTF-8.
            chars: std::str::from_utf8(inner).unwrap_or_default().chars(),
            low: None,
        }
    }
}

impl Iterator for Utf16Units<'_> {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        if let Some(low) = self.low.take() {
            return Some(low);
        }
        let c = match self.chars.next()? {
            '\\' => match self.chars.next()? {
                'b' => '\u{08}',
                'f' => '\u{0c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'u' => {
                    let hex: String = self.chars.by_ref().take(4).collect();
                    char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                }
                other => other,
            },
            c => c,
        };
        let mut units = [0u16; 2];
        let units = c.encode_utf16(&mut units);
        self.low = units.get(1).copied();
        Some(units[0])
    }
}

/// The top-level value of [`read_top`]: an object goes through the router, anything else is
/// written as it is. Gives the depth and whether it was an object.
struct TopVisitor<'c, 'r> {
    canon: &'c mut Canon,
    router: &'r mut dyn Router,
}

impl<'de> Visitor<'de> for TopVisitor<'_, '_> {
    type Value = (usize, bool);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        ValueVisitor(self.canon).visit_bool(v).map(|d| (d, false))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        ValueVisitor(self.canon).visit_unit().map(|d| (d, false))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        ValueVisitor(self.canon).visit_u64(v).map(|d| (d, false))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        ValueVisitor(self.canon).visit_i64(v).map(|d| (d, false))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        ValueVisitor(self.canon).visit_f64(v).map(|d| (d, false))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        ValueVisitor(self.canon).visit_str(v).map(|d| (d, false))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        ValueVisitor(self.canon).visit_seq(seq).map(|d| (d, false))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.canon.object(map, self.router).map(|d| (d, true))
    }
}

/// A key: written canonical into the output, and routed.
struct KeySeed<'o, 'r> {
    out: &'o mut Vec<u8>,
    router: &'r mut dyn Router,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = Route;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Route, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = Route;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, key: &str) -> Result<Route, E> {
        write_string(self.out, key);
        Ok(self.router.route(key))
    }
}

/// One value, written canonical into the output; gives its depth.
struct ValueSeed<'c>(&'c mut Canon);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = usize;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(ValueVisitor(self.0))
    }
}

/// Numbers get [`StrictValue`]'s range check, strings [`write_string`]; arrays are written
/// element by element, objects by [`Canon::object`].
struct ValueVisitor<'c>(&'c mut Canon);

impl ValueVisitor<'_> {
    fn scalar(self, bytes: &[u8]) -> usize {
        self.0.values += 1;
        self.0.out.extend_from_slice(bytes);
        0
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<usize, E> {
        Ok(self.scalar(if v { b"true" } else { b"false" }))
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(self.scalar(b"null"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        if v > MAX_SAFE_INTEGER {
            StrictValue.visit_u64::<E>(v)?;
        }
        // RFC 8785 writes an integer below 2^53 as its decimal digits.
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = v;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Ok(self.scalar(&digits[i..]))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        let n = StrictValue.visit_i64(v)?;
        Ok(self.scalar(&to_canonical(&n)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<usize, E> {
        let n = StrictValue.visit_f64(v)?;
        Ok(self.scalar(&to_canonical(&n)))
    }
    fn visit_str<E>(self, v: &str) -> Result<usize, E> {
        self.0.values += 1;
        write_string(&mut self.0.out, v);
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        self.0.values += 1;
        self.0.out.push(b'[');
        let start = self.0.out.len();
        let mut depth = 0;
        loop {
            let comma = self.0.out.len();
            if comma > start {
                self.0.out.push(b',');
            }
            match seq.next_element_seed(ValueSeed(&mut *self.0))? {
                Some(d) => depth = depth.max(d),
                None => {
                    self.0.out.truncate(comma);
                    break;
                }
            }
            if self.0.out.len() > MAX_OUT {
                return Err(too_large());
            }
        }
        self.0.out.push(b']');
        Ok(depth + 1)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<usize, A::Error> {
        self.0.object(map, &mut KeepAll)
    }
}

/// A member routed to [`Route::Scalar`]: a scalar as a value; an array or object is written
/// (so checked) like any value, and the caller drops it.
struct ScalarSeed<'c>(&'c mut Canon);

impl<'de> DeserializeSeed<'de> for ScalarSeed<'_> {
    type Value = Option<Value>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Value::Bool(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        StrictValue.visit_u64(v).map(Some)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        StrictValue.visit_i64(v).map(Some)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        StrictValue.visit_f64(v).map(Some)
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        ValueVisitor(self.0).visit_seq(seq).map(|_| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ValueVisitor(self.0).visit_map(map).map(|_| None)
    }
}

/// Appends `s` to `out` as an RFC 8785 JSON string (quotes included).
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    // Nearly every string needs no escape: copied whole.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
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

    /// Objects past the linear duplicate check (a hash table) and keys that sort differently
    /// by bytes and by UTF-16 code units, against the tree path.
    #[test]
    fn large_objects_and_odd_keys_match_the_tree_path() {
        // 2,000 members in a scrambled order, each holding a small unsorted object.
        let members: Vec<String> = (0..2000u32)
            .map(|i| format!("\"k{}\":[{{\"z\":1,\"a\":[2,{{}}]}}]", (i * 7919) % 2000))
            .collect();
        let body = members.join(",");
        let text = format!("{{{body}}}");
        same_as_tree(text.as_bytes()).unwrap();
        assert!(canonical_strict(text.as_bytes(), None).is_ok());
        // A duplicate found late, through the table, with spacing around it.
        for dup in [",\"k1234\" :0", ",\"k\\u0031234\":0", ",\"k0\":0"] {
            let text = format!("{{{body}{dup}}}");
            same_as_tree(text.as_bytes()).unwrap();
            let e = canonical_strict(text.as_bytes(), None).unwrap_err();
            assert!(e.message.contains("duplicate key"), "{e}");
        }
        // U+FF61 sorts after U+1F600 by code points but before it by UTF-16 code units; an
        // escaped control character sorts first; in a small and in a large object.
        let odd = ["\\u0001", "\u{ff61}", "\u{1f600}", "a", "\\n", "\u{e9}"];
        for extra in [0usize, 20] {
            let mut keys: Vec<String> = odd.iter().map(|k| format!("\"{k}\":0")).collect();
            keys.extend((0..extra).map(|i| format!("\"b{i}\":{i}")));
            keys.reverse();
            let text = format!("{{{}}}", keys.join(","));
            same_as_tree(text.as_bytes()).unwrap();
        }
    }

    #[test]
    fn canonical_strict_sets_the_omitted_member_apart() {
        let text = br#"{ "z": [1, {"b": 2, "a": 1}], "sig": "00ff", "a": "x" }"#;
        let (bytes, omitted) = canonical_strict(text, Some("sig")).unwrap();
        assert_eq!(bytes, br#"{"a":"x","z":[1,{"a":1,"b":2}]}"#);
        assert_eq!(omitted.as_deref(), Some(&br#""00ff""#[..]));
        // Wherever it is: first, between, last (the canonical place, cut without a rewrite).
        for text in [
            &br#"{"sig":"x","a":1,"b":[2]}"#[..],
            br#"{"a":1,"sig":"x","b":[2]}"#,
            br#"{"a":1,"b":[2],"sig":"x"}"#,
            br#"{"b":[2],"a":1,"sig":"x"}"#,
        ] {
            let (bytes, omitted) = canonical_strict(text, Some("sig")).unwrap();
            assert_eq!(
                bytes,
                br#"{"a":1,"b":[2]}"#,
                "{}",
                String::from_utf8_lossy(text)
            );
            assert_eq!(omitted.as_deref(), Some(&br#""x""#[..]));
        }
        let (bytes, _) = canonical_strict(br#"{"sig":"x"}"#, Some("sig")).unwrap();
        assert_eq!(bytes, b"{}");
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
