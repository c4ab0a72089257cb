//! Signed, hash-chained events: their one canonical encoding, signing and strict verification.
//!
//! An event's *header* (author, seq, prev, type, timestamp, payload_hash, payload_size) is what
//! is hashed and signed; the payload is committed by its hash and size, so it can be withheld
//! while the chain still verifies. [`Header::canonical_bytes`] is the only function that makes
//! hashed bytes, and [`signing_message`] the only one that makes signed bytes.
//!
//! Parsing gives an [`Event`]; only [`Event::verify`], [`verify_batch`] or [`sign`] give a
//! [`VerifiedEvent`], the one type the store accepts. Whether an event extends its feed (its
//! `prev` is the hash of the event before it) depends on the feed, so the store checks that.

use serde_json::{Map, Value};
use std::sync::OnceLock;

use crate::canonical::{self, parse_strict, write_string, JsonError};
use crate::ids::{push_hex, Hash, IdError, Seq, Timestamp};
use crate::keys::{KeyError, PublicKey, SecretKey, Signature};

/// Domain separation: the bytes an author signs are this prefix, then the 32-byte event hash.
pub const EVENT_SIGNING_PREFIX: &[u8] = b"RHIZOME-EVENT-V1\n";

/// Deepest nesting allowed inside a payload (the payload object itself is depth 1). An event
/// line adds one level, and strict parsing refuses lines nested 128 deep.
pub const MAX_PAYLOAD_DEPTH: usize = 100;

/// Longest event type name.
pub const MAX_TYPE_LEN: usize = 64;

/// Why an event is refused. Each variant is a reason an import report can count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The line is not strict JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] JsonError),
    /// The JSON is not an object.
    #[error("an event must be a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field this format does not define.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// A field has the wrong type or an invalid value.
    #[error("field `{field}`: {reason}")]
    Field {
        /// Field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `prev` must be null exactly when `seq` is 1.
    #[error("field `prev`: must be null for seq 1 and a hash otherwise")]
    PrevShape,
    /// The `hash` field is not the hash of the header.
    #[error("field `hash`: claims {claimed} but the header hashes to {computed}")]
    HashMismatch {
        /// What the event says.
        claimed: Hash,
        /// What the header hashes to.
        computed: Hash,
    },
    /// The payload does not match `payload_hash` / `payload_size`.
    #[error("field `payload`: {0}")]
    PayloadMismatch(String),
    /// The author key is malformed, non-canonical or of small order.
    #[error("field `author`: {0}")]
    AuthorKey(KeyError),
    /// The signature does not verify under the author's key.
    #[error("field `sig`: signature does not verify for the author")]
    BadSignature,
}

impl EventError {
    /// The stable machine-readable code of this reason (PROTOCOL 4.1), one per variant:
    /// import reports count refusals by it.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Json(_) => "invalid_json",
            EventError::NotAnObject => "not_an_object",
            EventError::MissingField(_) => "missing_field",
            EventError::UnknownField(_) => "unknown_field",
            EventError::Field { .. } => "invalid_field",
            EventError::PrevShape => "prev_shape",
            EventError::HashMismatch { .. } => "hash_mismatch",
            EventError::PayloadMismatch(_) => "payload_mismatch",
            EventError::AuthorKey(_) => "invalid_author_key",
            EventError::BadSignature => "bad_signature",
        }
    }

    /// The member of the event line the reason is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            EventError::Json(_) | EventError::NotAnObject => None,
            EventError::MissingField(f) => Some(f),
            EventError::UnknownField(f) => Some(f),
            EventError::Field { field, .. } => Some(field),
            EventError::PrevShape => Some("prev"),
            EventError::HashMismatch { .. } => Some("hash"),
            EventError::PayloadMismatch(_) => Some("payload"),
            EventError::AuthorKey(_) => Some("author"),
            EventError::BadSignature => Some("sig"),
        }
    }
}

fn field_err(field: &'static str, reason: impl ToString) -> EventError {
    EventError::Field {
        field,
        reason: reason.to_string(),
    }
}

/// An event type name: 1 to 64 characters from `A-Z a-z 0-9 _ . : -`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct EventType(String);

impl EventType {
    /// Checks the name.
    pub fn new(name: &str) -> Result<Self, EventError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
        if name.is_empty() || name.len() > MAX_TYPE_LEN || !name.chars().all(ok_char) {
            return Err(field_err(
                "type",
                format!("{name:?} is not 1-{MAX_TYPE_LEN} characters of A-Z a-z 0-9 _ . : -"),
            ));
        }
        Ok(Self(name.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The signed part of an event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Header {
    /// The author's public key: the feed id.
    pub author: PublicKey,
    /// Position in the feed.
    pub seq: Seq,
    /// Hash of the previous event of the feed; `None` exactly when `seq` is 1.
    pub prev: Option<Hash>,
    /// Event type.
    pub kind: EventType,
    /// Author's clock, ms since the epoch.
    pub timestamp: Timestamp,
    /// SHA-256 of the payload's canonical bytes.
    pub payload_hash: Hash,
    /// Length of the payload's canonical bytes.
    pub payload_size: u64,
}

impl Header {
    /// The RFC 8785 canonical JSON of the header: the bytes the event hash covers.
    ///
    /// Written by hand for speed; a test checks it against a general RFC 8785 serializer.
    /// Keys in RFC 8785 order: author, payload_hash, payload_size, prev, seq, timestamp, type.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(300);
        out.extend_from_slice(b"{\"author\":\"");
        push_hex(&mut out, self.author.as_bytes());
        out.extend_from_slice(b"\",\"payload_hash\":\"");
        push_hex(&mut out, self.payload_hash.as_bytes());
        out.extend_from_slice(b"\",\"payload_size\":");
        push_u64(&mut out, self.payload_size);
        out.extend_from_slice(b",\"prev\":");
        match &self.prev {
            Some(p) => {
                out.push(b'"');
                push_hex(&mut out, p.as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"seq\":");
        push_u64(&mut out, self.seq.get());
        out.extend_from_slice(b",\"timestamp\":");
        push_u64(&mut out, self.timestamp.get());
        out.extend_from_slice(b",\"type\":");
        write_string(&mut out, self.kind.as_str());
        out.push(b'}');
        out
    }

    /// The event hash: SHA-256 of [`Header::canonical_bytes`].
    pub fn hash(&self) -> Hash {
        Hash::digest(&self.canonical_bytes())
    }
}

/// The bytes an author signs for an event with hash `hash`.
pub fn signing_message(hash: &Hash) -> [u8; 49] {
    let mut m = [0u8; 49];
    m[..17].copy_from_slice(EVENT_SIGNING_PREFIX);
    m[17..].copy_from_slice(hash.as_bytes());
    m
}

/// A payload: its canonical bytes, and the JSON object they hold, built when first asked for.
///
/// Payloads read from bundles or from the store are kept as bytes: a JSON tree takes 15 to 30
/// times the bytes of a payload of tiny members, so import and export never build one, and
/// views build one per event, for the known types only ([`Payload::with_value`]). Small
/// payloads (at most [`PREBUILT_VALUES`] JSON values) are built when read, which costs little
/// and saves the store's writer thread the work.
#[derive(Clone, Debug)]
pub struct Payload {
    canonical: Vec<u8>,
    value: OnceLock<Value>,
}

/// Payloads of at most this many JSON values get their tree when read (ordinary posts, likes
/// and tags have 2 to 4); a tree of 16 values is at most about a kilobyte beyond the strings.
pub const PREBUILT_VALUES: u64 = 16;

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Payload {
    /// Wraps a JSON object; refuses anything else and numbers beyond ±(2^53-1).
    pub fn new(value: Value) -> Result<Self, EventError> {
        if !value.is_object() {
            return Err(field_err("payload", "must be a JSON object"));
        }
        canonical::check_numbers(&value).map_err(|e| field_err("payload", e))?;
        check_depth(canonical::depth(&value))?;
        let canonical = canonical::to_canonical(&value);
        Ok(Self {
            canonical,
            value: OnceLock::from(value),
        })
    }

    /// A payload read strictly as canonical bytes (PROTOCOL 3.2), with its depth and number
    /// of values: checked like [`Payload::new`], no tree built unless it is small.
    fn read(bytes: Vec<u8>, depth: usize, values: u64) -> Result<Self, EventError> {
        if bytes.first() != Some(&b'{') {
            return Err(field_err("payload", "must be a JSON object"));
        }
        check_depth(depth)?;
        let p = Self {
            canonical: bytes,
            value: OnceLock::new(),
        };
        if values <= PREBUILT_VALUES {
            p.value();
        }
        Ok(p)
    }

    /// Parses canonical bytes as stored; refuses bytes that are not canonical.
    pub fn from_canonical(bytes: &[u8]) -> Result<Self, EventError> {
        let top = canonical::read_top(bytes, &mut canonical::KeepAll)?;
        if !top.object {
            return Err(field_err("payload", "must be a JSON object"));
        }
        check_depth(top.depth)?;
        if top.canonical != bytes {
            return Err(field_err("payload", "stored bytes are not canonical"));
        }
        Ok(Self {
            canonical: top.canonical,
            value: OnceLock::new(),
        })
    }

    /// The JSON object, built from the canonical bytes the first time (and kept).
    pub fn value(&self) -> &Value {
        // The bytes were read strictly and are canonical: they parse (Null is unreachable).
        self.value
            .get_or_init(|| parse_strict(&self.canonical).unwrap_or(Value::Null))
    }

    /// Calls `f` with the JSON object, building a tree for the call only when none is kept:
    /// for code that reads many payloads in a row (views, the store's writer).
    pub fn with_value<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        match self.value.get() {
            Some(v) => f(v),
            None => f(&parse_strict(&self.canonical).unwrap_or(Value::Null)),
        }
    }

    /// The canonical bytes (what `payload_hash` covers).
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }
    /// SHA-256 of the canonical bytes.
    pub fn hash(&self) -> Hash {
        Hash::digest(&self.canonical)
    }
}

fn check_depth(depth: usize) -> Result<(), EventError> {
    if depth > MAX_PAYLOAD_DEPTH {
        return Err(field_err(
            "payload",
            format!("nested deeper than {MAX_PAYLOAD_DEPTH} levels"),
        ));
    }
    Ok(())
}

/// An event as read from outside: well-formed, not yet verified.
#[derive(Clone, PartialEq, Debug)]
pub struct Event {
    /// The signed header.
    pub header: Header,
    /// The payload, unless withheld.
    pub payload: Option<Payload>,
    /// Claimed hash of the header.
    pub hash: Hash,
    /// Claimed signature by the author.
    pub sig: Signature,
}

/// An event whose hash, payload commitment and author signature have been checked.
/// Only this crate's verification and signing functions construct one.
#[derive(Clone, PartialEq, Debug)]
pub struct VerifiedEvent(Event);

impl std::ops::Deref for VerifiedEvent {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.0
    }
}

impl VerifiedEvent {
    /// The same event with its payload withheld; it still verifies.
    pub fn without_payload(&self) -> VerifiedEvent {
        VerifiedEvent(Event {
            payload: None,
            ..self.0.clone()
        })
    }
    /// Unwraps the event.
    pub fn into_inner(self) -> Event {
        self.0
    }
    /// Re-attaches a withheld payload after checking it against the signed commitment.
    pub fn with_payload(&self, payload: Payload) -> Result<VerifiedEvent, EventError> {
        check_payload(&self.0.header, &payload)?;
        Ok(VerifiedEvent(Event {
            payload: Some(payload),
            ..self.0.clone()
        }))
    }
}

fn check_payload(h: &Header, p: &Payload) -> Result<(), EventError> {
    if p.canonical.len() as u64 != h.payload_size {
        return Err(EventError::PayloadMismatch(format!(
            "canonical size is {} bytes but payload_size says {}",
            p.canonical.len(),
            h.payload_size
        )));
    }
    if p.hash() != h.payload_hash {
        return Err(EventError::PayloadMismatch(
            "canonical bytes do not hash to payload_hash".into(),
        ));
    }
    Ok(())
}

/// Creates and signs the next event of `secret`'s feed.
pub fn sign(
    secret: &SecretKey,
    seq: Seq,
    prev: Option<Hash>,
    kind: EventType,
    timestamp: Timestamp,
    payload: Payload,
) -> Result<VerifiedEvent, EventError> {
    if (seq == Seq::FIRST) != prev.is_none() {
        return Err(EventError::PrevShape);
    }
    let header = Header {
        author: secret.public_key(),
        seq,
        prev,
        kind,
        timestamp,
        payload_hash: payload.hash(),
        payload_size: payload.canonical.len() as u64,
    };
    let hash = header.hash();
    let sig = secret.sign(&signing_message(&hash));
    Ok(VerifiedEvent(Event {
        header,
        payload: Some(payload),
        hash,
        sig,
    }))
}

/// Where an event's payload comes from.
enum PayloadSource {
    /// A JSON value built in code, or parsed as a tree.
    Value(Value),
    /// Canonical bytes read from a line, with depth and number of values.
    Read(Vec<u8>, usize, u64),
}

/// The members of an event line as [`Event::parse`] reads them (see `canonical::read_top`).
#[derive(Default)]
struct LineMembers {
    /// Header members (a placeholder array for one that was an array or object).
    header: Map<String, Value>,
    /// The header member being read.
    current: Option<&'static str>,
    /// The payload as canonical bytes, its depth and number of values.
    payload: Option<(Vec<u8>, usize, u64)>,
    /// The first unknown member name, in byte order (as a sorted map would give it).
    unknown: Option<String>,
}

/// The members an event line may have besides `payload`.
const HEADER_MEMBERS: [&str; 9] = [
    "author",
    "seq",
    "prev",
    "type",
    "timestamp",
    "payload_hash",
    "payload_size",
    "hash",
    "sig",
];

impl canonical::Router for LineMembers {
    fn route(&mut self, key: &str) -> canonical::Route {
        if let Some(f) = HEADER_MEMBERS.iter().find(|f| **f == key) {
            self.current = Some(f);
            canonical::Route::Scalar
        } else if key == "payload" {
            canonical::Route::Capture
        } else {
            if self.unknown.as_deref().is_none_or(|u| key < u) {
                self.unknown = Some(key.to_owned());
            }
            canonical::Route::Drop
        }
    }
    fn captured(&mut self, captured: canonical::Captured) {
        use canonical::Captured;
        match captured {
            Captured::Bytes {
                bytes,
                depth,
                values,
            } => self.payload = Some((bytes, depth, values)),
            Captured::Scalar(v) => {
                if let Some(f) = self.current.take() {
                    self.header.insert(f.to_owned(), v);
                }
            }
            // Any array or object fails the type checks alike.
            Captured::Composite => {
                if let Some(f) = self.current.take() {
                    self.header.insert(f.to_owned(), Value::Array(Vec::new()));
                }
            }
        }
    }
}

impl Event {
    /// Parses one event line (strict JSON; see `docs/PROTOCOL.md`). Checks structure only.
    ///
    /// No JSON tree is built for the line: the header members are read as values, the payload
    /// as canonical bytes, anything else checked and dropped (so memory stays about twice
    /// the line, whatever it holds).
    pub fn parse(line: &[u8]) -> Result<Event, EventError> {
        let mut members = LineMembers::default();
        let top = canonical::read_top(line, &mut members)?;
        if !top.object {
            return Err(EventError::NotAnObject);
        }
        let payload = members
            .payload
            .map(|(bytes, depth, values)| PayloadSource::Read(bytes, depth, values));
        Self::from_members(members.header, payload, members.unknown)
    }

    /// Builds an event from a parsed JSON object. Checks structure only.
    pub fn from_map(mut map: Map<String, Value>) -> Result<Event, EventError> {
        let payload = map.remove("payload").map(PayloadSource::Value);
        Self::from_members(map, payload, None)
    }

    /// The checks of PROTOCOL 4.1 (#3 to #16), in order, on an event's members: `map` holds
    /// the header members (and, from [`Event::from_map`], unknown ones), `unknown` the first
    /// unknown member name in byte order when the caller set them apart.
    fn from_members(
        mut map: Map<String, Value>,
        payload: Option<PayloadSource>,
        unknown: Option<String>,
    ) -> Result<Event, EventError> {
        fn take(map: &mut Map<String, Value>, f: &'static str) -> Result<Value, EventError> {
            map.remove(f).ok_or(EventError::MissingField(f))
        }
        fn string(v: Value, f: &'static str) -> Result<String, EventError> {
            match v {
                Value::String(s) => Ok(s),
                _ => Err(field_err(f, "must be a string")),
            }
        }
        fn uint(v: &Value, f: &'static str) -> Result<u64, EventError> {
            v.as_u64()
                .ok_or_else(|| field_err(f, "must be a non-negative integer"))
        }
        fn id<T: std::str::FromStr<Err = IdError>>(
            v: Value,
            f: &'static str,
        ) -> Result<T, EventError> {
            string(v, f)?.parse().map_err(|e| field_err(f, e))
        }

        // The point itself is checked by verification (decompressing it here would cost
        // as much again).
        let author = PublicKey::from_bytes_unchecked(
            crate::ids::decode_hex::<32>(&string(take(&mut map, "author")?, "author")?)
                .map_err(|e| EventError::AuthorKey(KeyError::Encoding(e)))?,
        );
        let seq =
            Seq::new(uint(&take(&mut map, "seq")?, "seq")?).map_err(|e| field_err("seq", e))?;
        let prev = match map.remove("prev") {
            None | Some(Value::Null) => None,
            Some(v) => Some(id::<Hash>(v, "prev")?),
        };
        if (seq == Seq::FIRST) != prev.is_none() {
            return Err(EventError::PrevShape);
        }
        let kind = EventType::new(&string(take(&mut map, "type")?, "type")?)?;
        let timestamp = Timestamp::new(uint(&take(&mut map, "timestamp")?, "timestamp")?)
            .map_err(|e| field_err("timestamp", e))?;
        let payload_hash = id::<Hash>(take(&mut map, "payload_hash")?, "payload_hash")?;
        let payload_size = uint(&take(&mut map, "payload_size")?, "payload_size")?;
        let hash = id::<Hash>(take(&mut map, "hash")?, "hash")?;
        let sig: Signature = string(take(&mut map, "sig")?, "sig")?
            .parse()
            .map_err(|e| field_err("sig", e))?;
        let payload = match payload {
            None => None,
            Some(PayloadSource::Value(v)) => Some(Payload::new(v)?),
            Some(PayloadSource::Read(bytes, depth, values)) => {
                Some(Payload::read(bytes, depth, values)?)
            }
        };
        if let Some(k) = unknown.or_else(|| map.into_iter().next().map(|(k, _)| k)) {
            return Err(EventError::UnknownField(k));
        }
        Ok(Event {
            header: Header {
                author,
                seq,
                prev,
                kind,
                timestamp,
                payload_hash,
                payload_size,
            },
            payload,
            hash,
            sig,
        })
    }

    /// Every check except the signature: hash of the header and payload commitment.
    pub fn check_commitments(&self) -> Result<(), EventError> {
        let computed = self.header.hash();
        if computed != self.hash {
            return Err(EventError::HashMismatch {
                claimed: self.hash,
                computed,
            });
        }
        if let Some(p) = &self.payload {
            check_payload(&self.header, p)?;
        }
        Ok(())
    }

    /// Full verification of one event.
    pub fn verify(self) -> Result<VerifiedEvent, EventError> {
        self.header.author.check().map_err(EventError::AuthorKey)?;
        self.check_commitments()?;
        self.header
            .author
            .verify(&signing_message(&self.hash), &self.sig)
            .map_err(|_| EventError::BadSignature)?;
        Ok(VerifiedEvent(self))
    }

    /// The event as one line of canonical JSON (no newline); see [`line`].
    pub fn to_line(&self) -> Vec<u8> {
        line(
            &self.header,
            self.payload.as_ref().map(|p| &p.canonical[..]),
            &self.hash,
            &self.sig,
        )
    }
}

/// An event line from its parts, keys in RFC 8785 order: author, hash, payload (if present),
/// payload_hash, payload_size, prev, seq, sig, timestamp, type. `payload` must be canonical
/// bytes (the store keeps them so, which lets export skip re-parsing payloads).
pub fn line(h: &Header, payload: Option<&[u8]>, hash: &Hash, sig: &Signature) -> Vec<u8> {
    let mut out = Vec::with_capacity(450 + payload.map_or(0, <[u8]>::len));
    let hex_field = |out: &mut Vec<u8>, name: &[u8], bytes: &[u8]| {
        out.extend_from_slice(name);
        out.push(b'"');
        push_hex(out, bytes);
        out.push(b'"');
    };
    hex_field(&mut out, b"{\"author\":", h.author.as_bytes());
    hex_field(&mut out, b",\"hash\":", hash.as_bytes());
    if let Some(p) = payload {
        out.extend_from_slice(b",\"payload\":");
        out.extend_from_slice(p);
    }
    hex_field(&mut out, b",\"payload_hash\":", h.payload_hash.as_bytes());
    out.extend_from_slice(b",\"payload_size\":");
    push_u64(&mut out, h.payload_size);
    match &h.prev {
        Some(p) => hex_field(&mut out, b",\"prev\":", p.as_bytes()),
        None => out.extend_from_slice(b",\"prev\":null"),
    }
    out.extend_from_slice(b",\"seq\":");
    push_u64(&mut out, h.seq.get());
    hex_field(&mut out, b",\"sig\":", sig.as_bytes());
    out.extend_from_slice(b",\"timestamp\":");
    push_u64(&mut out, h.timestamp.get());
    out.extend_from_slice(b",\"type\":");
    write_string(&mut out, h.kind.as_str());
    out.push(b'}');
    out
}

/// Appends the decimal digits of `n` (RFC 8785 form for integers below 2^53).
fn push_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// An event that failed verification, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The event as read.
    pub event: Box<Event>,
    /// Why it was refused.
    pub error: EventError,
}

/// Verifies many events, signatures through the strict batch equation. Results keep the order
/// of the input.
pub fn verify_batch(events: Vec<Event>) -> Vec<Result<VerifiedEvent, Rejected>> {
    let reject = |e: Event, error| Rejected {
        event: Box::new(e),
        error,
    };
    let mut pre: Vec<Result<Event, Rejected>> = events
        .into_iter()
        .map(|e| match e.check_commitments() {
            Ok(()) => Ok(e),
            Err(err) => Err(reject(e, err)),
        })
        .collect();
    let msgs: Vec<[u8; 49]> = pre
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|e| signing_message(&e.hash))
        .collect();
    let items: Vec<(PublicKey, &[u8], Signature)> = pre
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .zip(&msgs)
        .map(|(e, m)| (e.header.author, &m[..], e.sig))
        .collect();
    let mut good = crate::keys::verify_batch(&items).into_iter();
    drop(items);
    pre.drain(..)
        .map(|r| match r {
            Ok(e) => match good.next() {
                Some(Ok(())) => Ok(VerifiedEvent(e)),
                Some(Err(KeyError::BadSignature)) | None => {
                    Err(reject(e, EventError::BadSignature))
                }
                Some(Err(k)) => Err(reject(e, EventError::AuthorKey(k))),
            },
            Err(x) => Err(x),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(seq: u64, prev: Option<Hash>) -> VerifiedEvent {
        let sk = SecretKey::from_seed(&[9u8; 32]);
        sign(
            &sk,
            Seq::new(seq).unwrap(),
            prev,
            EventType::new("POST").unwrap(),
            Timestamp::new(1_700_000_000_000).unwrap(),
            Payload::new(json!({"text": "hello \"world\" €", "n": 3})).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn header_bytes_match_general_canonicalizer() {
        let e = ev(2, Some(Hash::digest(b"x")));
        let v = json!({
            "author": e.header.author.to_hex(), "seq": 2, "prev": e.header.prev.unwrap().to_hex(),
            "type": "POST", "timestamp": 1_700_000_000_000u64,
            "payload_hash": e.header.payload_hash.to_hex(), "payload_size": e.header.payload_size,
        });
        assert_eq!(e.header.canonical_bytes(), canonical::to_canonical(&v));
    }

    #[test]
    fn line_is_canonical_and_round_trips() {
        for e in [
            ev(1, None),
            ev(2, Some(Hash::digest(b"x"))),
            ev(1, None).without_payload(),
        ] {
            let line = e.to_line();
            let v = parse_strict(&line).unwrap();
            assert_eq!(
                canonical::to_canonical(&v),
                line,
                "{}",
                String::from_utf8_lossy(&line)
            );
            let back = Event::parse(&line).unwrap().verify().unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn tampering_is_detected() {
        let e = ev(1, None);
        let mut bad = e.clone().into_inner();
        bad.header.timestamp = Timestamp::new(1).unwrap();
        assert!(matches!(bad.verify(), Err(EventError::HashMismatch { .. })));

        let mut bad = e.clone().into_inner();
        bad.payload = Some(Payload::new(json!({"text": "other"})).unwrap());
        assert!(matches!(bad.verify(), Err(EventError::PayloadMismatch(_))));

        let mut bad = e.clone().into_inner();
        let mut s = *bad.sig.as_bytes();
        s[0] ^= 1;
        bad.sig = Signature::from_bytes(s);
        assert_eq!(bad.clone().verify(), Err(EventError::BadSignature));
        let out = verify_batch(vec![e.clone().into_inner(), bad]);
        assert!(out[0].is_ok());
        assert!(matches!(&out[1], Err(r) if r.error == EventError::BadSignature));
    }

    #[test]
    fn structural_errors_name_the_field() {
        let line = ev(1, None).to_line();
        let mut v: Value = serde_json::from_slice(&line).unwrap();
        v["extra"] = json!(1);
        let e = Event::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(e, EventError::UnknownField("extra".into()));
        let mut v: Value = serde_json::from_slice(&line).unwrap();
        v["prev"] = json!(Hash::digest(b"p").to_hex());
        assert_eq!(
            Event::parse(&serde_json::to_vec(&v).unwrap()),
            Err(EventError::PrevShape)
        );
        let mut v: Value = serde_json::from_slice(&line).unwrap();
        v.as_object_mut().unwrap().remove("sig");
        assert_eq!(
            Event::parse(&serde_json::to_vec(&v).unwrap()),
            Err(EventError::MissingField("sig"))
        );
    }
}
