#![allow(clippy::unwrap_used)]
//! Keeps section 8 of `docs/PROTOCOL.md` (bundles) true, and keeps reading the first bundle
//! ever specified.
//!
//! (a) The worked example of section 8.9 is read from the document and recomputed: with
//! `rhizome-core` (a manifest built by hand, events signed with `event::sign`), with
//! `rhizome-sync` (`plan_export` + `write_bundle` on a store holding the events), and with
//! general-purpose SHA-256, Ed25519 and RFC 8785 libraries only.
//!
//! (b) `tests/golden/v1-example.bundle` holds the exact bytes of that example. It is a permanent
//! backward-compatibility test: every later version must import it as complete. It must never
//! be regenerated; its SHA-256 is the one the document gives.
//!
//! Convention: as in `crates/rhizome-core/tests/protocol_example.rs`, each value is the fenced
//! block on the line after a marker, here `<!-- sync-example:NAME -->` (a keyword of its own,
//! because that test requires its `example:` markers to be exactly its own). Each marker appears
//! once, and the set of markers in the document is exactly [`MARKERS`].

use std::collections::BTreeSet;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rhizome_core::bundle::{
    line_len, Counts, Exporter, FeedRange, Manifest, Trailer, FORMAT, MANIFEST_PREFIX,
    TRAILER_PREFIX,
};
use rhizome_core::canonical::{parse_strict, to_canonical};
use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::{
    Clock, Event, Hash, InstanceId, PublicKey, SecretKey, Seq, Timestamp, VerifiedEvent,
};
use rhizome_store::prelude::*;
use rhizome_store::Outcome;
use rhizome_store_sqlite::SqliteStore;
use rhizome_sync::import::MAX_LINE;
use rhizome_sync::{ImportError, ImportOptions, ImportReport, Status};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
const GOLDEN_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/v1-example.bundle"
);

/// The marker keyword of this test.
const KEYWORD: &str = "sync-example";

/// Every `sync-example` marker the document must contain, and nothing else.
const MARKERS: [&str; 13] = [
    "bundle-line-len",
    "bundle-inputs",
    "bundle-instance-key",
    "bundle-instance-id",
    "bundle-event-1",
    "bundle-event-2",
    "bundle-sizes",
    "bundle-manifest-hash",
    "bundle-manifest-line",
    "bundle-trailer-sha256",
    "bundle-trailer-hash",
    "bundle-trailer-line",
    "bundle-sha256",
];

/// The line-length formula exactly as the document writes it; [`formula_line_len`] is this
/// text in code, independent of `bundle::line_len`.
const LINE_LEN_FORMULA: &str = "line_len = 425 + digits(payload_size) + (66 if prev is a hash, 4 if prev is null) + digits(seq) + digits(timestamp) + length(type) + (11 + payload_size if the payload is present, 0 if withheld)";

fn doc() -> String {
    std::fs::read_to_string(DOC_PATH).unwrap_or_else(|e| panic!("cannot read {DOC_PATH}: {e}"))
}

/// The raw content of the block after `<!-- KEYWORD:NAME -->`, lines joined with `\n`.
fn block(doc: &str, keyword: &str, name: &str) -> String {
    let marker = format!("<!-- {keyword}:{name} -->");
    let lines: Vec<&str> = doc.lines().collect();
    let at: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == marker)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "marker {marker} must appear exactly once");
    let fence = lines
        .get(at[0] + 1)
        .unwrap_or_else(|| panic!("nothing after {marker}"));
    assert!(
        fence.starts_with("```"),
        "the line after {marker} must open a fenced block, found {fence:?}"
    );
    let body: Vec<&str> = lines[at[0] + 2..]
        .iter()
        .take_while(|l| l.trim_end() != "```")
        .copied()
        .collect();
    assert!(
        at[0] + 2 + body.len() < lines.len(),
        "the block after {marker} is not closed"
    );
    assert!(!body.is_empty(), "the block after {marker} is empty");
    body.join("\n")
}

/// A one-line text value of this test's markers.
fn text(doc: &str, name: &str) -> String {
    let b = block(doc, KEYWORD, name);
    assert!(!b.contains('\n'), "{KEYWORD}:{name} must be one line");
    b
}

/// A one-line value of section 7 (`example:` markers, owned by rhizome-core's test).
fn section7(doc: &str, name: &str) -> String {
    let b = block(doc, "example", name);
    b.chars().filter(|c| *c != '\n').collect()
}

/// A hex value (whitespace removed), checked to be lowercase hex, as bytes.
fn hex_bytes(doc: &str, name: &str) -> Vec<u8> {
    let h: String = block(doc, KEYWORD, name)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(
        h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{KEYWORD}:{name} must be lowercase hex"
    );
    hex::decode(&h).unwrap_or_else(|e| panic!("{KEYWORD}:{name} is not hex: {e}"))
}

fn hex_string(doc: &str, name: &str) -> String {
    hex::encode(hex_bytes(doc, name))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn digits(n: u64) -> u64 {
    n.to_string().len() as u64
}

/// The lines of the example as the document gives them (no newlines).
struct DocLines {
    manifest: String,
    events: [String; 2],
    trailer: String,
}

impl DocLines {
    fn read(doc: &str) -> Self {
        Self {
            manifest: text(doc, "bundle-manifest-line"),
            events: [text(doc, "bundle-event-1"), text(doc, "bundle-event-2")],
            trailer: text(doc, "bundle-trailer-line"),
        }
    }
    /// Every byte before the trailer line.
    fn before_trailer(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for l in [&self.manifest, &self.events[0], &self.events[1]] {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
        out
    }
    /// The whole bundle: the four lines, each with its newline.
    fn bundle(&self) -> Vec<u8> {
        let mut out = self.before_trailer();
        out.extend_from_slice(self.trailer.as_bytes());
        out.push(b'\n');
        out
    }
}

/// The sizes block.
struct Sizes {
    manifest_line: u64,
    event_lines: [u64; 2],
    trailer_line: u64,
    file: u64,
}

fn sizes(doc: &str) -> Sizes {
    let v: Value = serde_json::from_str(&text(doc, "bundle-sizes")).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["manifest_line", "event_lines", "trailer_line", "file"])
    );
    let ev = v["event_lines"].as_array().unwrap();
    assert_eq!(ev.len(), 2);
    Sizes {
        manifest_line: v["manifest_line"].as_u64().unwrap(),
        event_lines: [ev[0].as_u64().unwrap(), ev[1].as_u64().unwrap()],
        trailer_line: v["trailer_line"].as_u64().unwrap(),
        file: v["file"].as_u64().unwrap(),
    }
}

/// The example's inputs, with the author of section 7.
struct Inputs {
    instance_seed: [u8; 32],
    author_seed: [u8; 32],
    name: String,
    created_at: u64,
    base: Value,
    recipient: Value,
    events: Vec<Value>,
}

fn inputs(doc: &str) -> Inputs {
    let v: Value = serde_json::from_str(&text(doc, "bundle-inputs")).unwrap();
    let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "instance_seed",
            "name",
            "created_at",
            "base",
            "recipient",
            "events"
        ]),
        "bundle-inputs members"
    );
    let s7: Value = serde_json::from_str(&section7(doc, "inputs")).unwrap();
    let seed = |v: &Value| -> [u8; 32] {
        hex::decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    Inputs {
        instance_seed: seed(&v["instance_seed"]),
        author_seed: seed(&s7["seed"]),
        name: v["name"].as_str().unwrap().to_owned(),
        created_at: v["created_at"].as_u64().unwrap(),
        base: v["base"].clone(),
        recipient: v["recipient"].clone(),
        events: v["events"].as_array().unwrap().clone(),
    }
}

/// The example rebuilt from its inputs with rhizome-core's API.
struct Built {
    instance: SecretKey,
    events: Vec<VerifiedEvent>,
    manifest: Manifest,
}

fn build(i: &Inputs) -> Built {
    let author = SecretKey::from_seed(&i.author_seed);
    let instance = SecretKey::from_seed(&i.instance_seed);
    let mut events: Vec<VerifiedEvent> = Vec::new();
    for e in &i.events {
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["seq", "type", "timestamp", "payload"])
        );
        let ev = sign(
            &author,
            Seq::new(e["seq"].as_u64().unwrap()).unwrap(),
            events.last().map(|p| p.hash),
            EventType::new(e["type"].as_str().unwrap()).unwrap(),
            Timestamp::new(e["timestamp"].as_u64().unwrap()).unwrap(),
            Payload::new(e["payload"].clone()).unwrap(),
        )
        .unwrap();
        events.push(ev);
    }
    let last = events.last().unwrap();
    let mut clock = Clock::new();
    clock.set(author.public_key(), last.header.seq);
    let bytes = events
        .iter()
        .map(|e| e.to_line().len() as u64 + 1)
        .sum::<u64>();
    assert_eq!(i.base, json!({}), "a full export");
    assert_eq!(i.recipient, Value::Null);
    let manifest = Manifest {
        format: FORMAT.into(),
        exporter: Exporter {
            instance_id: InstanceId::of(&instance.public_key()),
            public_key: instance.public_key(),
            name: i.name.clone(),
            age_recipient: None,
        },
        clock,
        base: Clock::new(),
        recipient: None,
        feeds: vec![FeedRange {
            author: author.public_key(),
            from: events[0].header.seq.get(),
            to: last.header.seq.get(),
            head: last.hash,
        }],
        counts: Counts {
            events: events.len() as u64,
            feeds: 1,
            bytes,
        },
        created_at: i.created_at,
        hosts: vec![],
        evidence: vec![],
    };
    Built {
        instance,
        events,
        manifest,
    }
}

/// [`LINE_LEN_FORMULA`] in code.
fn formula_line_len(
    payload_size: u64,
    prev_is_hash: bool,
    seq: u64,
    timestamp: u64,
    kind: &str,
    payload_present: bool,
) -> u64 {
    425 + digits(payload_size)
        + if prev_is_hash { 66 } else { 4 }
        + digits(seq)
        + digits(timestamp)
        + kind.len() as u64
        + if payload_present {
            11 + payload_size
        } else {
            0
        }
}

fn formula_for(e: &Event) -> u64 {
    formula_line_len(
        e.header.payload_size,
        e.header.prev.is_some(),
        e.header.seq.get(),
        e.header.timestamp.get(),
        e.header.kind.as_str(),
        e.payload.is_some(),
    )
}

fn new_store(dir: &tempfile::TempDir, name: &str) -> SqliteStore {
    SqliteStore::open(&dir.path().join(name)).unwrap()
}

fn import(store: &mut SqliteStore, bytes: &[u8]) -> Result<ImportReport, ImportError> {
    let opts = ImportOptions {
        now: 1_764_000_180_000,
        method: "usb".into(),
    };
    rhizome_sync::import_bundle(store, bytes, &opts, &mut |_| {})
}

fn golden() -> Vec<u8> {
    std::fs::read(GOLDEN_PATH).unwrap_or_else(|e| panic!("cannot read {GOLDEN_PATH}: {e}"))
}

/// A bundle of these lines with a correct trailer signed by `key` (for the reader rules).
fn with_trailer(key: &SecretKey, manifest: &[u8], events: &[&[u8]]) -> Vec<u8> {
    let mut out = manifest.to_vec();
    out.push(b'\n');
    for e in events {
        out.extend_from_slice(e);
        out.push(b'\n');
    }
    let t = Trailer {
        trailer: FORMAT.into(),
        events: events.len() as u64,
        sha256: Hash::digest(&out),
    };
    out.extend_from_slice(&t.to_line(key));
    out.push(b'\n');
    out
}

#[test]
fn document_markers_are_exactly_the_checked_ones() {
    let doc = doc();
    let prefix = format!("<!-- {KEYWORD}:");
    let found: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .filter_map(|l| l.strip_suffix(" -->"))
        .collect();
    let unique: BTreeSet<&str> = found.iter().copied().collect();
    assert_eq!(found.len(), unique.len(), "a marker is repeated: {found:?}");
    assert_eq!(unique, BTreeSet::from(MARKERS));
}

#[test]
fn example_inputs_are_the_ones_the_protocol_describes() {
    let doc = doc();
    let i = inputs(&doc);
    let instance_seed: [u8; 32] = std::array::from_fn(|n| 0x20 + n as u8);
    assert_eq!(i.instance_seed, instance_seed, "0x20, 0x21, ..., 0x3f");
    let author_seed: [u8; 32] = std::array::from_fn(|n| n as u8);
    assert_eq!(i.author_seed, author_seed, "the author of section 7");
    assert_eq!(i.name, "Village school");
    assert_eq!(i.created_at, 1_764_000_120_000);
    assert_eq!(i.base, json!({}));
    assert_eq!(i.recipient, Value::Null);
    assert_eq!(i.events.len(), 2);

    // seq 1 is the event of section 7.
    let s7: Value = serde_json::from_str(&section7(&doc, "inputs")).unwrap();
    for k in ["seq", "type", "timestamp", "payload"] {
        assert_eq!(i.events[0][k], s7[k], "seq 1 `{k}` is section 7's");
    }
    // seq 2 likes it, one minute later.
    let hash1 = section7(&doc, "hash");
    assert_eq!(
        i.events[1],
        json!({"seq": 2, "type": "LIKE", "timestamp": 1_764_000_060_000u64,
               "payload": {"target": hash1}})
    );
}

/// (a) Everything recomputed with rhizome-core from the inputs.
#[test]
fn example_matches_rhizome_core() {
    let doc = doc();
    let i = inputs(&doc);
    let b = build(&i);
    let lines = DocLines::read(&doc);
    let pk = b.instance.public_key();
    assert_eq!(pk.to_hex(), hex_string(&doc, "bundle-instance-key"));
    assert_eq!(
        InstanceId::of(&pk).to_hex(),
        hex_string(&doc, "bundle-instance-id")
    );

    // Event lines: line 2 is section 7's event line.
    assert_eq!(b.events[0].to_line(), lines.events[0].as_bytes());
    assert_eq!(b.events[1].to_line(), lines.events[1].as_bytes());
    assert_eq!(lines.events[0], section7(&doc, "event-line"));
    assert_eq!(b.events[1].header.prev, Some(b.events[0].hash));

    // Manifest: the signed hash, the line, and the line read back.
    let unsigned = to_canonical(&serde_json::to_value(&b.manifest).unwrap());
    assert_eq!(
        Hash::digest(&unsigned).to_hex(),
        hex_string(&doc, "bundle-manifest-hash")
    );
    assert_eq!(b.manifest.to_line(&b.instance), lines.manifest.as_bytes());
    assert_eq!(
        Manifest::parse(lines.manifest.as_bytes()).unwrap(),
        b.manifest
    );

    // Trailer.
    let before = lines.before_trailer();
    let t = Trailer {
        trailer: FORMAT.into(),
        events: 2,
        sha256: Hash::digest(&before),
    };
    assert_eq!(t.sha256.to_hex(), hex_string(&doc, "bundle-trailer-sha256"));
    let unsigned = to_canonical(&serde_json::to_value(&t).unwrap());
    assert_eq!(
        Hash::digest(&unsigned).to_hex(),
        hex_string(&doc, "bundle-trailer-hash")
    );
    assert_eq!(t.to_line(&b.instance), lines.trailer.as_bytes());
    let parsed = parse_strict(lines.trailer.as_bytes()).unwrap();
    assert!(Trailer::is_trailer(&parsed));
    assert_eq!(Trailer::verify(parsed, &pk).unwrap(), t);

    // Sizes: each line, `line_len`, the formula as the document writes it, the file.
    let s = sizes(&doc);
    assert_eq!(s.manifest_line, lines.manifest.len() as u64 + 1);
    for (n, e) in b.events.iter().enumerate() {
        let h = &e.header;
        let size = h.payload_size;
        let computed = line_len(
            h.kind.as_str().len() as u64,
            h.seq.get(),
            h.timestamp.get(),
            size,
            h.prev.is_some(),
            Some(size),
        );
        assert_eq!(s.event_lines[n], lines.events[n].len() as u64 + 1);
        assert_eq!(s.event_lines[n], computed);
        assert_eq!(s.event_lines[n], formula_for(e));
        // The formula also holds for the withheld line.
        let w = e.without_payload();
        assert_eq!(w.to_line().len() as u64 + 1, formula_for(&w));
        assert_eq!(
            line_len(
                h.kind.as_str().len() as u64,
                h.seq.get(),
                h.timestamp.get(),
                size,
                h.prev.is_some(),
                None
            ),
            formula_for(&w)
        );
    }
    assert_eq!(block(&doc, KEYWORD, "bundle-line-len"), LINE_LEN_FORMULA);
    let event_bytes = s.event_lines.iter().sum::<u64>();
    assert_eq!(b.manifest.counts.bytes, event_bytes);
    assert_eq!(s.trailer_line, lines.trailer.len() as u64 + 1);
    assert_eq!(
        s.trailer_line,
        254 + digits(2),
        "8.6: 254 + digits, line feed included"
    );
    let bundle = lines.bundle();
    assert_eq!(s.file, bundle.len() as u64);
    assert_eq!(
        s.file,
        s.manifest_line + b.manifest.counts.bytes + s.trailer_line
    );
    assert_eq!(
        Hash::digest(&bundle).to_hex(),
        hex_string(&doc, "bundle-sha256")
    );

    // Numbers the prose repeats.
    for phrase in [
        format!("their sum, {event_bytes})"),
        format!("the first {} bytes of the file", before.len()),
        format!("the whole file ({} bytes)", bundle.len()),
        "**including its line feed** is\n`254 + digits(events)`".to_string(),
        format!(
            "`{}` ({} bytes) | {} bytes |",
            hex::encode(MANIFEST_PREFIX),
            MANIFEST_PREFIX.len(),
            MANIFEST_PREFIX.len() + 32
        ),
        format!(
            "`{}` ({} bytes) | {} bytes |",
            hex::encode(TRAILER_PREFIX),
            TRAILER_PREFIX.len(),
            TRAILER_PREFIX.len() + 32
        ),
        format!("`{}`", String::from_utf8_lossy(&MANIFEST_PREFIX[..19])),
        format!("`{}`", String::from_utf8_lossy(&TRAILER_PREFIX[..18])),
        "16 MiB (16,777,216 bytes)".to_string(),
        "2 MiB (2,097,152 bytes)".to_string(),
        format!("format `{FORMAT}`"),
    ] {
        assert!(doc.contains(&phrase), "the document should say {phrase:?}");
    }
    assert_eq!(MAX_LINE, 16_777_216);
    assert_eq!(rhizome_sync::import::MAX_EVENT_LINE, 2_097_152);
    assert_eq!(MANIFEST_PREFIX.last(), Some(&b'\n'));
    assert_eq!(TRAILER_PREFIX.last(), Some(&b'\n'));
}

/// (a) Everything recomputed from the document's values with general-purpose libraries only
/// (SHA-256, Ed25519, RFC 8785), so that the text alone is enough to implement the format.
#[test]
fn example_matches_general_primitives() {
    let doc = doc();
    let i = inputs(&doc);
    let lines = DocLines::read(&doc);
    let author = section7(&doc, "author");

    // Instance key and id.
    let signing = SigningKey::from_bytes(&i.instance_seed);
    let key = hex_bytes(&doc, "bundle-instance-key");
    assert_eq!(signing.verifying_key().to_bytes().to_vec(), key);
    assert_eq!(
        sha256(&key)[..16].to_vec(),
        hex_bytes(&doc, "bundle-instance-id")
    );
    let vk = VerifyingKey::from_bytes(&key.clone().try_into().unwrap()).unwrap();

    // Every line is RFC 8785 canonical JSON.
    let parse = |l: &str| -> Value {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(serde_json_canonicalizer::to_vec(&v).unwrap(), l.as_bytes());
        v
    };
    let e1 = parse(&lines.events[0]);
    let e2 = parse(&lines.events[1]);
    let m = parse(&lines.manifest);
    let t = parse(&lines.trailer);

    // The events: hash, signature, chain, the LIKE's target.
    let event_prefix = b"RHIZOME-EVENT-V1\n";
    for (e, seq) in [(&e1, 1), (&e2, 2)] {
        let header = json!({
            "author": e["author"], "payload_hash": e["payload_hash"],
            "payload_size": e["payload_size"], "prev": e["prev"], "seq": e["seq"],
            "timestamp": e["timestamp"], "type": e["type"],
        });
        let hash = sha256(&serde_json_canonicalizer::to_vec(&header).unwrap());
        assert_eq!(e["hash"], json!(hex::encode(hash)));
        assert_eq!(e["seq"], json!(seq));
        assert_eq!(e["author"], json!(author));
        let payload = serde_json_canonicalizer::to_vec(&e["payload"]).unwrap();
        assert_eq!(e["payload_size"], json!(payload.len()));
        assert_eq!(e["payload_hash"], json!(hex::encode(sha256(&payload))));
        let author_key =
            VerifyingKey::from_bytes(&hex::decode(&author).unwrap().try_into().unwrap()).unwrap();
        let sig: [u8; 64] = hex::decode(e["sig"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        author_key
            .verify_strict(
                &[&event_prefix[..], &hash[..]].concat(),
                &ed25519_dalek::Signature::from_bytes(&sig),
            )
            .unwrap();
    }
    assert_eq!(e1["prev"], Value::Null);
    assert_eq!(e2["prev"], e1["hash"]);
    assert_eq!(e2["payload"], json!({"target": e1["hash"]}));
    assert_eq!(e2["type"], json!("LIKE"));

    // Signed objects: prefix + SHA-256 of the canonical object without `sig`, Ed25519, and the
    // signature is the deterministic one of the seed.
    let check_signed = |v: &Value, prefix: &[u8], hash_marker: &str| {
        let mut unsigned = v.clone();
        let sig = unsigned.as_object_mut().unwrap().remove("sig").unwrap();
        let hash = sha256(&serde_json_canonicalizer::to_vec(&unsigned).unwrap());
        assert_eq!(hash.to_vec(), hex_bytes(&doc, hash_marker));
        let message = [prefix, &hash[..]].concat();
        let sig: [u8; 64] = hex::decode(sig.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(signing.sign(&message).to_bytes(), sig);
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        vk.verify_strict(&message, &sig).unwrap();
        let mut other = message.clone();
        other[0] ^= 1;
        assert!(vk.verify_strict(&other, &sig).is_err());
    };

    // Manifest: members, values, signature.
    let members =
        |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        members(&m),
        set(&[
            "format",
            "exporter",
            "clock",
            "base",
            "recipient",
            "feeds",
            "counts",
            "created_at",
            "sig"
        ])
    );
    assert_eq!(m["format"], json!("rhizome-bundle/1"));
    assert_eq!(
        m["exporter"],
        json!({"instance_id": hex_string(&doc, "bundle-instance-id"),
               "public_key": hex::encode(&key), "name": i.name})
    );
    assert_eq!(m["clock"], json!({ author.clone(): 2 }));
    assert_eq!(m["base"], i.base);
    assert_eq!(m["recipient"], i.recipient);
    assert_eq!(
        m["feeds"],
        json!([{"author": author, "from": 1, "to": 2, "head": e2["hash"]}])
    );
    let bytes = lines.events[0].len() + 1 + lines.events[1].len() + 1;
    assert_eq!(
        m["counts"],
        json!({"events": 2, "feeds": 1, "bytes": bytes})
    );
    assert_eq!(m["created_at"], json!(i.created_at));
    check_signed(&m, b"RHIZOME-MANIFEST-V1\n", "bundle-manifest-hash");

    // Trailer: members, the hash of every byte before it, signature.
    assert_eq!(members(&t), set(&["trailer", "events", "sha256", "sig"]));
    assert_eq!(t["trailer"], json!("rhizome-bundle/1"));
    assert_eq!(t["events"], json!(2));
    let before = lines.before_trailer();
    let digest = hex::encode(sha256(&before));
    assert_eq!(digest, hex_string(&doc, "bundle-trailer-sha256"));
    assert_eq!(t["sha256"], json!(digest));
    check_signed(&t, b"RHIZOME-TRAILER-V1\n", "bundle-trailer-hash");

    // The whole file.
    assert_eq!(
        hex::encode(sha256(&lines.bundle())),
        hex_string(&doc, "bundle-sha256")
    );

    // The sizes follow from the formula, evaluated on the lines' own values.
    let s = sizes(&doc);
    for (n, e) in [&e1, &e2].into_iter().enumerate() {
        let size = e["payload_size"].as_u64().unwrap();
        assert_eq!(
            formula_line_len(
                size,
                !e["prev"].is_null(),
                e["seq"].as_u64().unwrap(),
                e["timestamp"].as_u64().unwrap(),
                e["type"].as_str().unwrap(),
                e.get("payload").is_some()
            ),
            s.event_lines[n]
        );
    }
}

/// (a) The exporter of rhizome-sync writes exactly the example from a store holding its events.
#[test]
fn plan_export_and_write_bundle_produce_the_example() {
    let doc = doc();
    let i = inputs(&doc);
    let lines = DocLines::read(&doc);
    let instance = SecretKey::from_seed(&i.instance_seed);
    let documented = Manifest::parse(lines.manifest.as_bytes()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(&dir, "exporter.db");
    let events: Vec<VerifiedEvent> = lines
        .events
        .iter()
        .map(|l| Event::parse(l.as_bytes()).unwrap().verify().unwrap())
        .collect();
    assert_eq!(
        store.append(&events).unwrap(),
        vec![Outcome::Inserted, Outcome::Inserted]
    );

    let mut plan =
        rhizome_sync::plan_export(&store, documented.exporter.clone(), Clock::new(), None, 0)
            .unwrap();
    plan.manifest.created_at = i.created_at;
    assert_eq!(plan.manifest, documented);
    let mut out = Vec::new();
    let trailer =
        rhizome_sync::write_bundle(&store, &plan, &instance, &mut out, &mut |_| {}).unwrap();
    assert_eq!(out, lines.bundle());
    assert_eq!(
        trailer.sha256.to_hex(),
        hex_string(&doc, "bundle-trailer-sha256")
    );
    // The exact size is known before writing, and does not depend on the key (8.6).
    assert_eq!(plan.file_bytes(&instance), out.len() as u64);
    assert_eq!(
        plan.file_bytes(&SecretKey::from_seed(&[0; 32])),
        out.len() as u64
    );
    assert_eq!(sizes(&doc).file, out.len() as u64);

    // Delta semantics (8.7): the ranges of the clock ahead of the base.
    let author: PublicKey = section7(&doc, "author").parse().unwrap();
    let mut base = Clock::new();
    base.set(author, Seq::new(1).unwrap());
    let delta =
        rhizome_sync::plan_export(&store, documented.exporter.clone(), base.clone(), None, 0)
            .unwrap();
    assert_eq!(delta.manifest.clock, documented.clock, "clock: all held");
    assert_eq!(delta.manifest.base, base);
    assert_eq!(
        delta.manifest.feeds,
        vec![FeedRange {
            author,
            from: 2,
            to: 2,
            head: events[1].hash
        }]
    );
    assert_eq!(
        delta.manifest.counts,
        Counts {
            events: 1,
            feeds: 1,
            bytes: sizes(&doc).event_lines[1]
        }
    );
    base.set(author, Seq::new(2).unwrap());
    let other = SecretKey::from_seed(&[7; 32]).public_key();
    base.set(other, Seq::new(5).unwrap());
    let nothing = rhizome_sync::plan_export(&store, documented.exporter, base, None, 0).unwrap();
    assert!(nothing.manifest.feeds.is_empty());
    assert_eq!(nothing.manifest.counts, Counts::default());
    let mut empty = Vec::new();
    rhizome_sync::write_bundle(&store, &nothing, &instance, &mut empty, &mut |_| {}).unwrap();
    assert_eq!(empty.iter().filter(|b| **b == b'\n').count(), 2);
    assert_eq!(nothing.file_bytes(&instance), empty.len() as u64);
    let mut fresh = new_store(&dir, "empty.db");
    let r = import(&mut fresh, &empty).unwrap();
    assert_eq!((r.status, r.events_read), (Status::Complete, 0));
}

/// (b) The committed golden bundle is the documented one, byte for byte.
#[test]
fn golden_file_is_the_documented_bundle() {
    let doc = doc();
    let bytes = golden();
    assert_eq!(
        hex::encode(sha256(&bytes)),
        hex_string(&doc, "bundle-sha256"),
        "tests/golden/v1-example.bundle changed: it must never be regenerated"
    );
    assert_eq!(bytes, DocLines::read(&doc).bundle());
}

/// (b) Every version reads the first bundle: complete, two new events, the peer recorded.
#[test]
fn golden_file_imports_as_complete() {
    let doc = doc();
    let bytes = golden();
    let manifest = Manifest::parse(bytes.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(&dir, "importer.db");

    let r = import(&mut store, &bytes).unwrap();
    assert_eq!(r.status, Status::Complete);
    assert_eq!(r.new, 2);
    assert_eq!(r.events_read, 2);
    assert_eq!(
        (r.duplicate, r.pending, r.promoted, r.forks, r.refused_total),
        (0, 0, 0, 0, 0)
    );
    assert!(r.missing.is_empty(), "{:?}", r.missing);
    assert_eq!(r.feeds_touched, 1);
    assert_eq!(r.bytes, bytes.len() as u64);
    assert_eq!(r.exporter, manifest.exporter);

    // The events are held, as the document writes them.
    assert_eq!(store.clock().unwrap(), manifest.clock);
    for (n, line) in DocLines::read(&doc).events.iter().enumerate() {
        let ev = Event::parse(line.as_bytes()).unwrap();
        let held = store.get(&ev.hash).unwrap().unwrap();
        assert_eq!(held.to_line(), line.as_bytes(), "event line {}", n + 1);
    }

    // The exporter is now a peer, its acked clock the manifest's clock (8.8, rule 10).
    let peers = store.peers().unwrap();
    assert_eq!(peers.len(), 1);
    let p = &peers[0];
    assert_eq!(
        p.instance_id.to_hex(),
        hex_string(&doc, "bundle-instance-id")
    );
    assert_eq!(p.name, "Village school");
    assert_eq!(p.acked, manifest.clock);
    assert_eq!(p.last_exchange_at, Some(1_764_000_180_000));
    assert_eq!(p.last_method.as_deref(), Some("usb"));
    assert_eq!(p.last_direction.as_deref(), Some("import"));
    assert!(doc.contains(&format!(
        "`{}`",
        serde_json::to_string(&manifest.clock).unwrap()
    )));

    // Importing again stores nothing.
    let again = import(&mut store, &bytes).unwrap();
    assert_eq!(again.status, Status::Complete);
    assert_eq!((again.new, again.duplicate), (0, 2));

    // Inspection agrees.
    let ins = rhizome_sync::inspect_bundle(&bytes[..]).unwrap();
    assert_eq!(ins.status, Status::Complete);
    assert_eq!((ins.event_lines, ins.malformed_lines), (2, 0));
    assert_eq!(ins.manifest, Some(manifest));
    assert_eq!(ins.manifest_error, None);
    assert_eq!(ins.bytes, bytes.len() as u64);
}

/// (b) The reader rules of 8.8, on the golden bundle and variants of it.
#[test]
fn reader_rules_on_the_golden_bundle() {
    let doc = doc();
    let i = inputs(&doc);
    let key = SecretKey::from_seed(&i.instance_seed);
    let bytes = golden();
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    assert_eq!(lines.len(), 5, "four lines, each ending with a newline");
    assert!(lines[4].is_empty());
    let (manifest, e1, e2) = (lines[0], lines[1], lines[2]);
    let before = lines[..3].iter().map(|l| l.len() + 1).sum::<usize>();
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        new_store(&dir, &format!("s{n}.db"))
    };

    // Rule 9: the trailer's own newline is not needed.
    let r = import(&mut fresh(), &bytes[..bytes.len() - 1]).unwrap();
    assert_eq!((r.status, r.new), (Status::Complete, 2));

    // Rule 9 (a): whitespace-only lines may follow the trailer; data may not.
    let r = import(&mut fresh(), &[&bytes[..], b"\n"].concat()).unwrap();
    assert_eq!(r.status, Status::Complete);
    let r = import(&mut fresh(), &[&bytes[..], b"x\n"].concat()).unwrap();
    assert!(
        matches!(r.status, Status::TrailerInvalid(_)),
        "{:?}",
        r.status
    );
    assert_eq!(r.new, 2, "events are kept whatever the status");

    // Rule 9, truncated: no trailer; a cut last line is ignored, neither refused nor counted.
    let r = import(&mut fresh(), &bytes[..before - 10]).unwrap();
    assert_eq!(r.status, Status::Truncated);
    assert_eq!((r.new, r.events_read, r.refused_total), (1, 1, 0));
    let r = import(&mut fresh(), &bytes[..before]).unwrap();
    assert_eq!((r.status, r.new), (Status::Truncated, 2));

    // Rule 9 (b), (c), (d): a trailer by another key, over other bytes, or miscounting.
    let trailer = |key: &SecretKey, events: u64, sha256: Hash| {
        let t = Trailer {
            trailer: FORMAT.into(),
            events,
            sha256,
        };
        [&bytes[..before], &t.to_line(key), b"\n"].concat()
    };
    let right = Hash::digest(&bytes[..before]);
    assert_eq!(trailer(&key, 2, right), bytes);
    for bad in [
        trailer(&SecretKey::from_seed(&[9; 32]), 2, right),
        trailer(&key, 2, Hash::digest(&bytes[..before - 1])),
        trailer(&key, 3, right),
    ] {
        let r = import(&mut fresh(), &bad).unwrap();
        assert!(
            matches!(r.status, Status::TrailerInvalid(_)),
            "{:?}",
            r.status
        );
        assert_eq!(r.new, 2);
        let ins = rhizome_sync::inspect_bundle(&bad[..]).unwrap();
        assert!(matches!(ins.status, Status::TrailerInvalid(_)));
    }

    // Rule 2: a manifest that does not verify rejects the whole bundle; nothing is stored.
    let forged =
        String::from_utf8(bytes.clone())
            .unwrap()
            .replacen("Village school", "Village schoo1", 1);
    let mut store = fresh();
    assert!(matches!(
        import(&mut store, forged.as_bytes()),
        Err(ImportError::Manifest(_))
    ));
    assert!(matches!(import(&mut store, b""), Err(ImportError::Empty)));
    assert_eq!(store.clock().unwrap(), Clock::new());
    assert!(store.peers().unwrap().is_empty());

    // 8.2: a reader recomputes the signed bytes from the parsed manifest, so a manifest line
    // that is not canonical (members reordered, spaces) still verifies; `recipient` must be
    // there (`null` when there is none: "exactly these members"), even under a valid
    // signature; an unknown member is refused.
    let m: serde_json::Map<String, Value> = serde_json::from_slice(manifest).unwrap();
    let mut reordered: Vec<(String, Value)> = m.clone().into_iter().collect();
    reordered.reverse();
    let pretty = format!(
        "{{ {} }}",
        reordered
            .iter()
            .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), v))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_ne!(pretty.as_bytes(), manifest);
    assert_eq!(
        Manifest::parse(pretty.as_bytes()).unwrap(),
        Manifest::parse(manifest).unwrap()
    );
    let built = build(&i);
    let mut unsigned = serde_json::to_value(&built.manifest).unwrap();
    let sign_value = |v: &Value| {
        let msg = [MANIFEST_PREFIX, Hash::digest(&to_canonical(v)).as_bytes()].concat();
        let mut v = v.clone();
        v["sig"] = json!(key.sign(&msg).to_hex());
        to_canonical(&v)
    };
    assert_eq!(
        Manifest::parse(&sign_value(&unsigned)).unwrap(),
        built.manifest
    );
    let recipient = unsigned.as_object_mut().unwrap().remove("recipient");
    let e = Manifest::parse(&sign_value(&unsigned)).unwrap_err();
    assert!(e.to_string().contains("missing field `recipient`"), "{e}");
    unsigned["recipient"] = recipient.unwrap();
    unsigned["exporter"]["extra"] = json!(1);
    assert!(Manifest::parse(&sign_value(&unsigned)).is_err());

    // Rules 4 and 7: events in reverse order wait in pending, then join their feed; a refused
    // line does not stop the import.
    let r = import(&mut fresh(), &with_trailer(&key, manifest, &[e2, e1])).unwrap();
    assert_eq!(r.status, Status::Complete);
    assert_eq!((r.new, r.promoted, r.pending), (1, 1, 0));
    let mut store = fresh();
    let r = import(&mut store, &with_trailer(&key, manifest, &[e2])).unwrap();
    assert_eq!((r.status, r.new, r.pending), (Status::Complete, 0, 1));
    assert_eq!(store.pending_count().unwrap(), 1);
    assert_eq!(
        r.missing.len(),
        1,
        "the manifest lists two events of the feed"
    );
    let r = import(&mut store, &with_trailer(&key, manifest, &[e1])).unwrap();
    assert_eq!((r.new, r.promoted), (1, 1));
    assert_eq!(store.pending_count().unwrap(), 0);
    assert_eq!(store.clock().unwrap(), built.manifest.clock);

    let tampered = String::from_utf8(e2.to_vec())
        .unwrap()
        .replace("\"type\":\"LIKE\"", "\"type\":\"LIKE2\"");
    let r = import(
        &mut fresh(),
        &with_trailer(&key, manifest, &[e1, tampered.as_bytes()]),
    )
    .unwrap();
    assert_eq!(r.status, Status::Complete);
    assert_eq!((r.new, r.events_read, r.refused_total), (1, 2, 1));
    assert_eq!(r.refused[0].line, 3);

    // Rule 8: same_seq and prev_mismatch are kept as evidence, with the carrier.
    let author = SecretKey::from_seed(&i.author_seed);
    let event = |seq: u64, prev: Option<Hash>| {
        sign(
            &author,
            Seq::new(seq).unwrap(),
            prev,
            EventType::new("POST").unwrap(),
            Timestamp::new(1_764_000_090_000).unwrap(),
            Payload::new(json!({"text": "the other story"})).unwrap(),
        )
        .unwrap()
        .to_line()
    };
    let mut store = fresh();
    import(&mut store, &bytes).unwrap();
    let same_seq = event(2, Some(built.events[0].hash));
    let mismatch = event(3, Some(Hash::digest(b"not the head")));
    let r = import(
        &mut store,
        &with_trailer(&key, manifest, &[&same_seq, &mismatch]),
    )
    .unwrap();
    assert_eq!((r.status, r.forks, r.new), (Status::Complete, 2, 0));
    let forks = store.forks().unwrap();
    let kinds: Vec<(u64, &str)> = forks.iter().map(|f| (f.seq, f.kind.as_str())).collect();
    assert_eq!(kinds, vec![(2, "same_seq"), (3, "prev_mismatch")]);
    assert_eq!(forks[0].held, built.events[1].hash);
    assert_eq!(forks[1].held, built.events[1].hash, "the head");
    for f in &forks {
        assert_eq!(f.carrier, Some(built.manifest.exporter.instance_id));
    }
    assert_eq!(
        store.clock().unwrap(),
        built.manifest.clock,
        "feed unchanged"
    );
}

/// PROTOCOL 4.1 lists every refusal code with its meaning: exactly the reference's list.
#[test]
fn refusal_codes_in_the_document_are_the_reference_ones() {
    let doc = doc();
    let marker = "<!-- codes:refusals -->";
    assert_eq!(doc.matches(marker).count(), 1, "{marker} once");
    let rows: Vec<(String, String)> = doc[doc.find(marker).unwrap() + marker.len()..]
        .lines()
        .skip(1)
        .skip(2) // header and separator
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 2, "{l}");
            (cells[0].trim_matches('`').to_owned(), cells[1].to_owned())
        })
        .collect();
    let reference: Vec<(String, String)> = rhizome_sync::rejection::CODES
        .iter()
        .map(|(c, m)| (c.to_string(), m.to_string()))
        .collect();
    assert_eq!(rows, reference);
}
