//! The bundle format `rhizome-bundle/1`: its signed manifest and trailer lines, and exact
//! line sizes. Pure: the reader and writer that do I/O live in `rhizome-sync`.
//!
//! A bundle is JSON Lines: the manifest, then one event line per event (each feed's events in
//! seq order), then the trailer, whose SHA-256 commits to every byte before it. Manifest and
//! trailer are signed by the exporting instance: Ed25519 over a domain prefix followed by the
//! SHA-256 of the RFC 8785 bytes of the object without its `sig` member.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{canonical_strict, parse_strict, to_canonical, JsonError};
use crate::clock::Clock;
use crate::ids::{Hash, InstanceId};
use crate::keys::{PublicKey, SecretKey, Signature};
use crate::privacy::{HostDeclaration, HostError};

/// Format name and version, first member of every manifest.
pub const FORMAT: &str = "rhizome-bundle/1";
/// Longest manifest line a reader accepts and a writer may produce (16 MiB, line feed
/// excluded): a manifest lists every feed a bundle carries, about 250 bytes each.
pub const MAX_LINE: usize = 16 << 20;
/// Longest line after the manifest (event lines, the trailer) a reader accepts and a writer
/// may produce (2 MiB, line feed excluded). A reader holds several event lines at once and
/// may build a JSON tree of one payload, which takes up to about 25 times its bytes; the
/// largest event of the known types (a `CIRCLE_UPDATE` or a `POST` with 10,000 members) is
/// under 700 KB. PROTOCOL 3.5 and 8.8.
pub const MAX_EVENT_LINE: usize = 2 << 20;

/// True when a line read after the trailer is blank: nothing but the bytes JSON counts as
/// whitespace (RFC 8259: space, tab, carriage return; a line feed ends the line). PROTOCOL 8.8
/// rule 9 (a).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Domain prefix of manifest signatures.
pub const MANIFEST_PREFIX: &[u8] = b"RHIZOME-MANIFEST-V1\n";
/// Domain prefix of trailer signatures.
pub const TRAILER_PREFIX: &[u8] = b"RHIZOME-TRAILER-V1\n";

/// Why a manifest or trailer line is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not strict JSON.
    #[error("invalid JSON: {0}")]
    Json(#[from] JsonError),
    /// Fields missing, of the wrong type, or unknown.
    #[error("{0}")]
    Shape(String),
    /// Another format or version.
    #[error("unsupported format {0:?} (this rhizome reads {FORMAT})")]
    Format(String),
    /// The instance id is not derived from the public key.
    #[error("exporter instance_id {claimed} does not belong to its public key (that would be {derived})")]
    InstanceId {
        /// Claimed id.
        claimed: InstanceId,
        /// Id of the key.
        derived: InstanceId,
    },
    /// The signature does not verify under the exporter key.
    #[error("signature does not verify for the exporter's key")]
    BadSignature,
    /// A host declaration in `hosts` does not hold.
    #[error("field `hosts[{index}]`: {error}")]
    Host {
        /// Position in `hosts`.
        index: usize,
        /// What is wrong with it.
        error: HostError,
    },
}

/// Who made a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exporter {
    /// Instance id (derived from the key).
    pub instance_id: InstanceId,
    /// Instance public key.
    pub public_key: PublicKey,
    /// Instance name.
    pub name: String,
    /// The age X25519 recipient (`age1...`) bundles for this instance are encrypted to, when
    /// it publishes one (PROTOCOL 8.12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_recipient: Option<String>,
}

/// One feed's slice in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRange {
    /// The feed.
    pub author: PublicKey,
    /// First seq carried.
    pub from: u64,
    /// Last seq carried.
    pub to: u64,
    /// Hash of the event at `to`.
    pub head: Hash,
}

/// An event line carried as fork evidence (PROTOCOL 8.4): a second signed event at a position
/// whose feed the exporter holds otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The equivocating author.
    pub author: PublicKey,
    /// The position both events claim.
    pub seq: u64,
    /// Hash of the evidence event (not the one in the exporter's log).
    pub hash: Hash,
}

/// Event, feed and byte counts of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Event lines.
    pub events: u64,
    /// Feeds.
    pub feeds: u64,
    /// Bytes of all event lines, newlines included.
    pub bytes: u64,
}

/// Line 1 of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The exporting instance.
    pub exporter: Exporter,
    /// Everything the exporter held when it cut the bundle: feed -> highest contiguous seq.
    pub clock: Clock,
    /// What the delta was cut against (empty for a full export).
    pub base: Clock,
    /// The instance the bundle is meant for, if any.
    pub recipient: Option<InstanceId>,
    /// Each feed carried, with its seq range and head.
    pub feeds: Vec<FeedRange>,
    /// Counts.
    pub counts: Counts,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Authors this instance hosts, each declaration signed by its author (PROTOCOL 9).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostDeclaration>,
    /// Event lines carried as fork evidence, after the feeds' lines (PROTOCOL 8.4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

/// A manifest line as written: the manifest's members and its signature (checked apart).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestLine {
    format: String,
    exporter: Exporter,
    clock: Clock,
    base: Clock,
    // Required, `null` or an id (PROTOCOL 8.2): not defaulted when missing.
    #[serde(deserialize_with = "nullable")]
    recipient: Option<InstanceId>,
    feeds: Vec<FeedRange>,
    counts: Counts,
    created_at: u64,
    #[serde(default)]
    hosts: Vec<HostDeclaration>,
    #[serde(default)]
    evidence: Vec<Evidence>,
    #[serde(rename = "sig")]
    _sig: serde::de::IgnoredAny,
}

/// A member that must be present and may be `null` (serde would default a missing `Option`).
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

impl From<ManifestLine> for Manifest {
    fn from(l: ManifestLine) -> Self {
        Self {
            format: l.format,
            exporter: l.exporter,
            clock: l.clock,
            base: l.base,
            recipient: l.recipient,
            feeds: l.feeds,
            counts: l.counts,
            created_at: l.created_at,
            hosts: l.hosts,
            evidence: l.evidence,
        }
    }
}

/// The last line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trailer {
    /// Always [`FORMAT`]; the member that marks a line as the trailer.
    pub trailer: String,
    /// Number of event lines.
    pub events: u64,
    /// SHA-256 of every byte before the trailer line.
    pub sha256: Hash,
}

fn signed_line<T: Serialize>(obj: &T, prefix: &[u8], key: &SecretKey) -> Vec<u8> {
    // Serializing these plain structs into a `Value` cannot fail.
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    let sig = key.sign(&message(prefix, &v));
    if let Value::Object(m) = &mut v {
        m.insert("sig".into(), Value::String(sig.to_hex()));
    }
    to_canonical(&v)
}

/// The bytes signed for an object: prefix, then SHA-256 of its canonical JSON (sig removed).
fn message(prefix: &[u8], without_sig: &Value) -> Vec<u8> {
    signed_message(prefix, &to_canonical(without_sig))
}

/// [`message`] from the canonical bytes themselves.
fn signed_message(prefix: &[u8], canonical: &[u8]) -> Vec<u8> {
    let mut m = prefix.to_vec();
    m.extend_from_slice(Hash::digest(canonical).as_bytes());
    m
}

/// Splits off `sig` and checks it under `key`.
fn check_sig(mut v: Value, prefix: &[u8], key: &PublicKey) -> Result<Value, BundleError> {
    let sig = v.as_object_mut().and_then(|m| m.remove("sig"));
    verify_sig(sig, prefix, &to_canonical(&v), key)?;
    Ok(v)
}

/// Checks a parsed `sig` member (if any) over the canonical bytes of its object without it.
fn verify_sig(
    sig: Option<Value>,
    prefix: &[u8],
    unsigned: &[u8],
    key: &PublicKey,
) -> Result<(), BundleError> {
    let sig = match sig {
        Some(Value::String(s)) => s
            .parse::<Signature>()
            .map_err(|e| BundleError::Shape(format!("field `sig`: {e}")))?,
        _ => return Err(BundleError::Shape("missing field `sig`".into())),
    };
    key.verify(&signed_message(prefix, unsigned), &sig)
        .map_err(|_| BundleError::BadSignature)
}

impl Manifest {
    /// The signed manifest line (no newline).
    pub fn to_line(&self, key: &SecretKey) -> Vec<u8> {
        signed_line(self, MANIFEST_PREFIX, key)
    }

    /// Parses and verifies a manifest line: format, exporter id, signature.
    ///
    /// A manifest lists every feed it carries (up to [`MAX_LINE`] bytes of them), so it is
    /// canonicalized with [`canonical_strict`], never held as a JSON tree: the signed bytes are
    /// read into the typed manifest, which is what the signature covers, exactly.
    pub fn parse(line: &[u8]) -> Result<Manifest, BundleError> {
        let (unsigned, sig) = canonical_strict(line, Some("sig"))?;
        /// The members needed before the signature can be checked, read without a tree
        /// (anything else, or another type, is skipped).
        #[derive(Deserialize)]
        struct Peek {
            format: Option<AnyStr>,
            exporter: Option<PeekExporter>,
        }
        #[derive(Deserialize)]
        struct PeekExporter {
            public_key: Option<AnyStr>,
        }
        // Only an object is a manifest (serde would also read a struct from an array).
        let peek = (unsigned.first() == Some(&b'{'))
            .then(|| serde_json::from_slice::<Peek>(&unsigned).ok())
            .flatten();
        match peek.as_ref().and_then(|p| p.format.as_ref()?.0.as_deref()) {
            Some(FORMAT) => {}
            Some(other) => return Err(BundleError::Format(other.into())),
            None => {
                return Err(BundleError::Shape(
                    "not a manifest: no `format` member".into(),
                ))
            }
        }
        let key: PublicKey = peek
            .as_ref()
            .and_then(|p| p.exporter.as_ref()?.public_key.as_ref()?.0.as_deref())
            .ok_or_else(|| BundleError::Shape("missing field `exporter.public_key`".into()))?
            .parse()
            .map_err(|e| BundleError::Shape(format!("field `exporter.public_key`: {e}")))?;
        let sig = sig.and_then(|s| serde_json::from_slice::<Value>(&s).ok());
        verify_sig(sig, MANIFEST_PREFIX, &unsigned, &key)?;
        // Freed before the manifest is read into the values that outlive this call, so that
        // these can take its place (a 15 MB manifest's import kept 10 MB more otherwise).
        drop(unsigned);
        // Read from the line as written, so integers must be written with digits only
        // (PROTOCOL 8.2: `5.0` is refused, though its canonical form is `5`). The values are
        // those the signature covers: the line has no duplicate keys (checked above), and the
        // canonical bytes are a function of the values.
        let m: Manifest = serde_json::from_slice::<ManifestLine>(line)
            .map_err(|e| BundleError::Shape(JsonError::from(e).message))?
            .into();
        let mut authors = std::collections::BTreeSet::new();
        for f in &m.feeds {
            if f.from < 1 || f.from > f.to || f.to > crate::ids::MAX_SAFE_INTEGER {
                return Err(BundleError::Shape(format!(
                    "field `feeds`: range {}..{} of feed {} is not 1 <= from <= to",
                    f.from, f.to, f.author
                )));
            }
            if !authors.insert(f.author) {
                return Err(BundleError::Shape(format!(
                    "field `feeds`: feed {} is listed twice",
                    f.author
                )));
            }
        }
        let mut evidence = std::collections::BTreeSet::new();
        for e in &m.evidence {
            if crate::Seq::new(e.seq).is_err() {
                return Err(BundleError::Shape(format!(
                    "field `evidence`: seq {} of {} is not 1 to 2^53-1",
                    e.seq, e.author
                )));
            }
            if !evidence.insert(e.hash) {
                return Err(BundleError::Shape(format!(
                    "field `evidence`: event {} is listed twice",
                    e.hash
                )));
            }
        }
        let derived = InstanceId::of(&m.exporter.public_key);
        if derived != m.exporter.instance_id {
            return Err(BundleError::InstanceId {
                claimed: m.exporter.instance_id,
                derived,
            });
        }
        if let Some(r) = &m.exporter.age_recipient {
            if !is_age_recipient(r) {
                return Err(BundleError::Shape(format!(
                    "field `exporter.age_recipient`: {r:?} is not an age X25519 recipient (age1 and 58 Bech32 characters)"
                )));
            }
        }
        for (index, d) in m.hosts.iter().enumerate() {
            d.verify(&m.exporter.instance_id)
                .map_err(|error| BundleError::Host { index, error })?;
        }
        Ok(m)
    }
}

impl Trailer {
    /// The signed trailer line (no newline).
    pub fn to_line(&self, key: &SecretKey) -> Vec<u8> {
        signed_line(self, TRAILER_PREFIX, key)
    }

    /// True when a parsed line is meant as a trailer (has a `trailer` member).
    pub fn is_trailer(v: &Value) -> bool {
        v.get("trailer").is_some()
    }

    /// The trailer, parsed, if `line` is one: it parses strictly as an object one of whose
    /// member names is written `"trailer"`, literally (no escape, as canonical JSON writes
    /// it). Every reader uses this one rule, so readers agree on where a bundle ends
    /// (PROTOCOL 8.8 rule 3).
    pub fn detect(line: &[u8]) -> Option<Value> {
        // Runs on every line of every bundle: a SIMD substring search, not a byte loop.
        memchr::memmem::find(line, b"\"trailer\"")?;
        if !names_trailer_literally(line) {
            return None;
        }
        parse_strict(line).ok().filter(Self::is_trailer)
    }

    /// Verifies a trailer (already parsed) under the exporter's key.
    pub fn verify(v: Value, exporter: &PublicKey) -> Result<Trailer, BundleError> {
        let v = check_sig(v, TRAILER_PREFIX, exporter)?;
        let t: Trailer =
            serde_json::from_value(v).map_err(|e| BundleError::Shape(e.to_string()))?;
        if t.trailer != FORMAT {
            return Err(BundleError::Format(t.trailer));
        }
        Ok(t)
    }
}

/// A string, or `None` for any other JSON value (skipped without building it).
struct AnyStr(Option<String>);

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<AnyStr, E> {
                Ok(AnyStr(Some(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<AnyStr, E> {
                Ok(AnyStr(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<AnyStr, E> {
                Ok(AnyStr(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<AnyStr, E> {
                Ok(AnyStr(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<AnyStr, E> {
                Ok(AnyStr(None))
            }
            fn visit_unit<E>(self) -> Result<AnyStr, E> {
                Ok(AnyStr(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<AnyStr, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(AnyStr(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<AnyStr, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AnyStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether the top-level object of `line` has a member whose name is written `"trailer"`
/// without escapes. serde_json hands a name over borrowed from the text exactly when it has
/// no escape. Any line that is not such an object gives false.
fn names_trailer_literally(line: &[u8]) -> bool {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    struct Name;
    impl<'de> Visitor<'de> for Name {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a member name")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<bool, E> {
            Ok(v == "trailer")
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
    }
    struct NameSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for NameSeed {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(Name)
        }
    }
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut literal = false;
            while let Some(is) = map.next_key_seed(NameSeed)? {
                literal |= is;
                map.next_value::<IgnoredAny>()?;
            }
            Ok(literal)
        }
    }
    serde_json::Deserializer::from_slice(line)
        .deserialize_map(Members)
        .unwrap_or(false)
}

/// The shape of an age X25519 recipient: `age1` then 58 lowercase Bech32 characters (a
/// 32-byte key and its checksum). The checksum is checked where the key is used.
pub fn is_age_recipient(s: &str) -> bool {
    const BECH32: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    s.len() == 62 && s.starts_with("age1") && s.bytes().skip(4).all(|c| BECH32.contains(&c))
}

fn digits(n: u64) -> u64 {
    n.checked_ilog10().map_or(1, |d| u64::from(d) + 1)
}

/// Exact length in bytes of an event line plus its newline, from the stored sizes alone
/// (the writer's output; a test checks the two agree). `payload_len` is `None` when withheld.
pub fn line_len(
    type_len: u64,
    seq: u64,
    timestamp: u64,
    payload_size: u64,
    has_prev: bool,
    payload_len: Option<u64>,
) -> u64 {
    // {"author":"<64>","hash":"<64>",["payload":<P>,]"payload_hash":"<64>","payload_size":N,
    // "prev":"<64>"|null,"seq":N,"sig":"<128>","timestamp":N,"type":"<T>"}\n
    // Member names, quotes, colons, commas, the hex fields, braces and the newline.
    const FIXED: u64 = 425;
    FIXED
        + digits(payload_size)
        + if has_prev { 66 } else { 4 }
        + digits(seq)
        + digits(timestamp)
        + type_len
        + payload_len.map_or(0, |p| 11 + p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{sign, EventType, Payload};
    use crate::{Seq, Timestamp};
    use serde_json::json;

    fn manifest(key: &SecretKey) -> Manifest {
        let mut clock = Clock::new();
        clock.set(key.public_key(), Seq::new(3).unwrap());
        Manifest {
            format: FORMAT.into(),
            exporter: Exporter {
                instance_id: InstanceId::of(&key.public_key()),
                public_key: key.public_key(),
                name: "ship".into(),
                age_recipient: None,
            },
            clock,
            base: Clock::new(),
            recipient: None,
            feeds: vec![],
            counts: Counts::default(),
            created_at: 5,
            hosts: vec![],
            evidence: vec![],
        }
    }

    #[test]
    fn manifest_round_trip_and_forgery() {
        let k = SecretKey::from_seed(&[3; 32]);
        let m = manifest(&k);
        let line = m.to_line(&k);
        assert_eq!(Manifest::parse(&line).unwrap(), m);
        let forged = String::from_utf8(line.clone())
            .unwrap()
            .replace("ship", "shop");
        assert_eq!(
            Manifest::parse(forged.as_bytes()),
            Err(BundleError::BadSignature)
        );
        let other = SecretKey::from_seed(&[4; 32]);
        let mut m2 = manifest(&k);
        m2.exporter.public_key = other.public_key();
        let e = Manifest::parse(&m2.to_line(&other)).unwrap_err();
        assert!(matches!(e, BundleError::InstanceId { .. }), "{e}");
        assert!(matches!(
            Manifest::parse(b"{\"format\":\"rhizome-bundle/9\"}"),
            Err(BundleError::Format(_))
        ));
    }

    /// A manifest whose signature is valid but whose text is not what a writer emits: read by
    /// the rules of PROTOCOL 8.2, not by its canonical form alone.
    #[test]
    fn manifest_text_rules_hold_under_a_valid_signature() {
        let k = SecretKey::from_seed(&[3; 32]);
        let line = String::from_utf8(manifest(&k).to_line(&k)).unwrap();
        // Whitespace and member order do not matter (the canonical bytes are signed).
        let spaced = line.replacen("{", "{ ", 1).replacen(",", " ,\n", 2);
        assert_eq!(Manifest::parse(spaced.as_bytes()).unwrap(), manifest(&k));
        // `5.0` has the canonical form `5`, so the signature holds, but integers are written
        // with digits only.
        for spelling in ["5.0", "5e0", "50e-1"] {
            let float = line.replace("\"created_at\":5", &format!("\"created_at\":{spelling}"));
            assert_ne!(float, line);
            let e = Manifest::parse(float.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, BundleError::Shape(m) if m.contains("floating point")),
                "{spelling}: {e}"
            );
        }
        // A duplicate member, even one equal to the first, is refused before anything else.
        let dup = line.replacen("{", "{\"created_at\":5,", 1);
        assert!(matches!(
            Manifest::parse(dup.as_bytes()),
            Err(BundleError::Json(_))
        ));
        // Only an object is a manifest, whatever an array holds.
        assert_eq!(
            Manifest::parse(br#"["rhizome-bundle/1", {"public_key": "00"}]"#),
            Err(BundleError::Shape(
                "not a manifest: no `format` member".into()
            ))
        );
    }

    #[test]
    fn hosts_and_age_recipient_are_checked() {
        let k = SecretKey::from_seed(&[3; 32]);
        let here = InstanceId::of(&k.public_key());
        let author = SecretKey::from_seed(&[8; 32]);
        let mut m = manifest(&k);
        m.exporter.age_recipient =
            Some("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj".into());
        m.hosts.push(HostDeclaration::sign(&author, here, 9));
        let line = m.to_line(&k);
        assert_eq!(Manifest::parse(&line).unwrap(), m);
        // Old manifests (no `hosts`, no `age_recipient`) still parse: both are optional.
        assert!(!String::from_utf8(manifest(&k).to_line(&k))
            .unwrap()
            .contains("hosts"));
        // A declaration for another instance, though signed by the exporter, is refused.
        let mut m2 = manifest(&k);
        let elsewhere = InstanceId::of(&author.public_key());
        m2.hosts.push(HostDeclaration::sign(&author, elsewhere, 9));
        let e = Manifest::parse(&m2.to_line(&k)).unwrap_err();
        assert!(matches!(e, BundleError::Host { index: 0, .. }), "{e}");
        // A declaration whose author signature does not verify.
        let mut m3 = manifest(&k);
        let mut forged = HostDeclaration::sign(&author, here, 9);
        forged.issued_at = 10;
        m3.hosts.push(forged);
        let e = Manifest::parse(&m3.to_line(&k)).unwrap_err();
        assert!(e.to_string().contains("hosts[0]"), "{e}");
        let mut m4 = manifest(&k);
        m4.exporter.age_recipient = Some("age1notakey".into());
        assert!(Manifest::parse(&m4.to_line(&k)).is_err());
    }

    /// The manifest rules of PROTOCOL 8.2 an implementation could read two ways.
    #[test]
    fn manifest_members_are_read_one_way() {
        let k = SecretKey::from_seed(&[3; 32]);
        let feed = |author: PublicKey| FeedRange {
            author,
            from: 1,
            to: 2,
            head: Hash::digest(b"h"),
        };
        let shape = |m: &Manifest| -> String {
            match Manifest::parse(&m.to_line(&k)) {
                Err(BundleError::Shape(s)) => s,
                other => panic!("{other:?}"),
            }
        };
        // A feed listed twice.
        let mut m = manifest(&k);
        m.feeds = vec![feed(k.public_key()), feed(k.public_key())];
        assert!(shape(&m).contains("listed twice"));
        // Evidence: seq 0, beyond 2^53-1, or the same event twice.
        let ev = |seq: u64, hash: &[u8]| Evidence {
            author: k.public_key(),
            seq,
            hash: Hash::digest(hash),
        };
        for bad in [vec![ev(0, b"e")], vec![ev(1, b"e"), ev(2, b"e")]] {
            let mut m = manifest(&k);
            m.evidence = bad;
            assert!(shape(&m).starts_with("field `evidence`"));
        }
        // (Beyond 2^53-1 strict JSON refuses the number itself.)
        let mut m = manifest(&k);
        m.evidence = vec![ev(1 << 53, b"e")];
        assert!(matches!(
            Manifest::parse(&m.to_line(&k)),
            Err(BundleError::Json(_))
        ));
        // `"hosts": []` and `"evidence": []` read as absent.
        let line = String::from_utf8(manifest(&k).to_line(&k)).unwrap();
        let mut v: Value = serde_json::from_str(&line).unwrap();
        v["hosts"] = serde_json::json!([]);
        v["evidence"] = serde_json::json!([]);
        let resigned = {
            v.as_object_mut().unwrap().remove("sig");
            let sig = k.sign(&message(MANIFEST_PREFIX, &v));
            v["sig"] = Value::String(sig.to_hex());
            to_canonical(&v)
        };
        assert_eq!(Manifest::parse(&resigned).unwrap(), manifest(&k));
        // `recipient` is required (null when there is none): a manifest without it, signed,
        // is refused.
        v.as_object_mut().unwrap().remove("sig");
        v.as_object_mut().unwrap().remove("recipient");
        let sig = k.sign(&message(MANIFEST_PREFIX, &v));
        v["sig"] = Value::String(sig.to_hex());
        let e = Manifest::parse(&to_canonical(&v)).unwrap_err();
        assert!(e.to_string().contains("missing field `recipient`"), "{e}");
        // A feed author that is 64 hex but not a valid key (the identity point, small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut m = manifest(&k);
        m.feeds = vec![feed(PublicKey::from_bytes_unchecked(identity))];
        let e = Manifest::parse(&m.to_line(&k)).unwrap_err();
        assert!(e.to_string().contains("small-order"), "{e}");
        let mut m = manifest(&k);
        m.evidence = vec![Evidence {
            author: PublicKey::from_bytes_unchecked(identity),
            seq: 1,
            hash: Hash::digest(b"e"),
        }];
        assert!(Manifest::parse(&m.to_line(&k)).is_err());
    }

    /// Integers are digits only everywhere (PROTOCOL 1.4): `2.0` has the canonical form `2`,
    /// so the signatures still verify, and the value is still refused.
    #[test]
    fn integers_written_as_fractions_are_refused_under_valid_signatures() {
        let k = SecretKey::from_seed(&[3; 32]);
        let author = SecretKey::from_seed(&[8; 32]);
        let here = InstanceId::of(&k.public_key());
        let mut m = manifest(&k);
        m.hosts.push(HostDeclaration::sign(&author, here, 9));
        let line = String::from_utf8(m.to_line(&k)).unwrap();
        assert!(Manifest::parse(line.as_bytes()).is_ok());
        for (from, to) in [("\"issued_at\":9", "\"issued_at\":9.0"), (":3}", ":3.0}")] {
            let bad = line.replacen(from, to, 1);
            assert_ne!(bad, line, "{from}");
            let e = Manifest::parse(bad.as_bytes()).unwrap_err();
            assert!(
                matches!(&e, BundleError::Shape(s) if s.contains("floating point")),
                "{from}: {e}"
            );
        }
        let t = Trailer {
            trailer: FORMAT.into(),
            events: 2,
            sha256: Hash::digest(b"x"),
        };
        let line = String::from_utf8(t.to_line(&k)).unwrap();
        let bad = line.replace("\"events\":2", "\"events\":2.0");
        let v = Trailer::detect(bad.as_bytes()).unwrap();
        let e = Trailer::verify(v, &k.public_key()).unwrap_err();
        assert!(e.to_string().contains("floating point"), "{e}");
    }

    #[test]
    fn feed_ranges_must_be_ordered() {
        let k = SecretKey::from_seed(&[3; 32]);
        let mut m = manifest(&k);
        m.feeds.push(FeedRange {
            author: k.public_key(),
            from: 5,
            to: 2,
            head: Hash::digest(b"h"),
        });
        let e = Manifest::parse(&m.to_line(&k)).unwrap_err();
        assert!(
            matches!(&e, BundleError::Shape(s) if s.contains("from <= to")),
            "{e}"
        );
        m.feeds[0].from = 0;
        m.feeds[0].to = 0;
        assert!(Manifest::parse(&m.to_line(&k)).is_err());
    }

    #[test]
    fn trailer_detection_needs_the_literal_member_name() {
        let k = SecretKey::from_seed(&[3; 32]);
        let t = Trailer {
            trailer: FORMAT.into(),
            events: 0,
            sha256: Hash::digest(b""),
        };
        assert!(Trailer::detect(&t.to_line(&k)).is_some());
        assert!(Trailer::detect(br#"{"\u0074railer":"rhizome-bundle/1"}"#).is_none());
        assert!(Trailer::detect(br#"{"text":"the \"trailer\" word"}"#).is_none());
        // The 9 bytes elsewhere in the line, and the member's name escaped: not a trailer
        // (PROTOCOL 8.8 rule 3), though it parses to an object with a member `trailer`.
        assert!(
            Trailer::detect(br#"{"\u0074railer":"rhizome-bundle/1","note":"trailer"}"#).is_none()
        );
        assert!(Trailer::detect(br#"{"note":"trailer","t\u0072ailer":"x"}"#).is_none());
        // A literal name makes it one, escapes elsewhere or not, nested `trailer`s not.
        assert!(Trailer::detect(br#"{"note":"\u0041","trailer":"x"}"#).is_some());
        assert!(Trailer::detect(br#"{"x":{"trailer":1}}"#).is_none());
        // Both spellings at once are a duplicate member: not strict JSON, so not a trailer.
        assert!(Trailer::detect(br#"{"trailer":"x","\u0074railer":"y"}"#).is_none());
    }

    #[test]
    fn blank_after_the_trailer_is_json_whitespace_only() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \t\r \r"));
        for other in [&b"\x0c"[..], b"\x0b", b"\x00", b"\xc2\xa0", b"x"] {
            assert!(!is_blank(other), "{other:?}");
        }
    }

    #[test]
    fn trailer_round_trip() {
        let k = SecretKey::from_seed(&[3; 32]);
        let t = Trailer {
            trailer: FORMAT.into(),
            events: 2,
            sha256: Hash::digest(b"x"),
        };
        let v = parse_strict(&t.to_line(&k)).unwrap();
        assert!(Trailer::is_trailer(&v));
        assert_eq!(Trailer::verify(v.clone(), &k.public_key()).unwrap(), t);
        assert_eq!(
            Trailer::verify(v, &SecretKey::from_seed(&[9; 32]).public_key()),
            Err(BundleError::BadSignature)
        );
    }

    #[test]
    fn line_len_is_exact() {
        let k = SecretKey::from_seed(&[3; 32]);
        let mut prev = None;
        for (seq, ts, text) in [
            (1u64, 0u64, "a"),
            (2, 1_764_000_000_000, "longer text é"),
            (10, 9, ""),
        ] {
            let p = if text.is_empty() {
                json!({})
            } else {
                json!({"text": text})
            };
            let e = sign(
                &k,
                Seq::new(seq).unwrap(),
                prev,
                EventType::new("TAG_ADD").unwrap(),
                Timestamp::new(ts).unwrap(),
                Payload::new(p).unwrap(),
            )
            .unwrap();
            prev = Some(e.hash);
            let size = e.header.payload_size;
            assert_eq!(
                line_len(7, seq, ts, size, seq > 1, Some(size)),
                e.to_line().len() as u64 + 1
            );
            assert_eq!(
                line_len(7, seq, ts, size, seq > 1, None),
                e.without_payload().to_line().len() as u64 + 1
            );
        }
    }
}
