#![allow(clippy::unwrap_used)]
//! Keeps the worked example of `docs/PROTOCOL.md` (and its sealed-key example) true.
//!
//! The test reads the document itself and recomputes every value it gives, twice: with
//! `rhizome-core`'s API, and independently with general-purpose primitives only (`sha2`,
//! `ed25519-dalek`, `serde_json_canonicalizer`, `serde_json`), so that neither the document
//! nor the code can change alone.
//!
//! Convention for the document: each example value is the fenced code block (```` ``` ```` or
//! ```` ```lang ````) that starts on the line right after a marker line
//! `<!-- example:NAME -->`. Each marker appears exactly once. The value is the block's content:
//! for hex values all whitespace is removed (long hex may be wrapped over several lines); text
//! values must be one line, used as written. The set of markers in the document must be exactly
//! the set this test checks, so a value cannot be added to the document without a check.

use std::collections::BTreeSet;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rhizome_core::event::{sign, signing_message, EventType, Payload, EVENT_SIGNING_PREFIX};
use rhizome_core::sealed::{SealingKey, StoredSecret};
use rhizome_core::{Event, EventError, Hash, InstanceId, SecretKey, Seq, Timestamp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");

/// Every marker the document must contain, and nothing else.
const MARKERS: [&str; 28] = [
    "inputs",
    "author",
    "instance-id",
    "payload-canonical",
    "payload-size",
    "payload-hash",
    "header",
    "header-hex",
    "hash",
    "message-hex",
    "signature",
    "event-line",
    "event-line-withheld",
    "sealed-passphrase",
    "sealed-key",
    "host-unsigned",
    "host-message-hex",
    "host-declaration",
    "profile-inputs",
    "profile-payload",
    "profile-event-line",
    "salted-bucket",
    "salted-inputs",
    "salted-payload",
    "salted-size",
    "salted-hash",
    "salted-event-line",
    "salted-event-line-withheld",
];

fn doc() -> String {
    std::fs::read_to_string(DOC_PATH).unwrap_or_else(|e| panic!("cannot read {DOC_PATH}: {e}"))
}

/// The raw content of the block after `<!-- example:NAME -->`, lines joined with `\n`.
fn block(doc: &str, name: &str) -> String {
    let marker = format!("<!-- example:{name} -->");
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

/// A one-line text value.
fn text(doc: &str, name: &str) -> String {
    let b = block(doc, name);
    assert!(!b.contains('\n'), "example:{name} must be one line");
    b
}

/// A hex value (whitespace removed), checked to be lowercase hex, as bytes.
fn hex_bytes(doc: &str, name: &str) -> Vec<u8> {
    let h: String = block(doc, name)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(
        h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "example:{name} must be lowercase hex"
    );
    hex::decode(&h).unwrap_or_else(|e| panic!("example:{name} is not hex: {e}"))
}

fn hex_string(doc: &str, name: &str) -> String {
    hex::encode(hex_bytes(doc, name))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The inputs block, parsed.
struct Inputs {
    seed: [u8; 32],
    seq: u64,
    prev: Value,
    kind: String,
    timestamp: u64,
    payload: Value,
}

fn inputs(doc: &str) -> Inputs {
    let v: Value = serde_json::from_str(&text(doc, "inputs")).unwrap();
    let obj = v.as_object().unwrap();
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["seed", "seq", "prev", "type", "timestamp", "payload"]),
        "example:inputs members"
    );
    let seed: [u8; 32] = hex::decode(v["seed"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    Inputs {
        seed,
        seq: v["seq"].as_u64().unwrap(),
        prev: v["prev"].clone(),
        kind: v["type"].as_str().unwrap().to_owned(),
        timestamp: v["timestamp"].as_u64().unwrap(),
        payload: v["payload"].clone(),
    }
}

#[test]
fn document_markers_are_exactly_the_checked_ones() {
    let doc = doc();
    let found: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<!-- example:"))
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
    let expected_seed: [u8; 32] = std::array::from_fn(|n| n as u8);
    assert_eq!(i.seed, expected_seed, "seed is 0x00, 0x01, ..., 0x1f");
    assert_eq!(i.seq, 1);
    assert_eq!(i.prev, Value::Null);
    assert_eq!(i.kind, "POST");
    assert_eq!(i.timestamp, 1_764_000_000_000);
    assert_eq!(
        i.payload,
        json!({"text": "Hello from the village school", "lang": "en"})
    );
}

/// (a) Everything recomputed through rhizome-core's API.
#[test]
fn example_matches_rhizome_core() {
    let doc = doc();
    let i = inputs(&doc);
    let sk = SecretKey::from_seed(&i.seed);
    let pk = sk.public_key();
    assert_eq!(pk.to_hex(), hex_string(&doc, "author"));
    assert_eq!(
        InstanceId::of(&pk).to_hex(),
        hex_string(&doc, "instance-id")
    );

    let payload = Payload::new(i.payload.clone()).unwrap();
    assert_eq!(
        payload.canonical_bytes(),
        text(&doc, "payload-canonical").as_bytes()
    );
    assert_eq!(
        payload.canonical_bytes().len().to_string(),
        text(&doc, "payload-size")
    );
    assert_eq!(payload.hash().to_hex(), hex_string(&doc, "payload-hash"));

    let prev = match &i.prev {
        Value::Null => None,
        v => Some(v.as_str().unwrap().parse::<Hash>().unwrap()),
    };
    let ev = sign(
        &sk,
        Seq::new(i.seq).unwrap(),
        prev,
        EventType::new(&i.kind).unwrap(),
        Timestamp::new(i.timestamp).unwrap(),
        payload,
    )
    .unwrap();

    let header = ev.header.canonical_bytes();
    assert_eq!(header, text(&doc, "header").as_bytes());
    assert_eq!(header, hex_bytes(&doc, "header-hex"));
    assert_eq!(ev.header.hash(), ev.hash);
    assert_eq!(ev.hash.to_hex(), hex_string(&doc, "hash"));
    assert_eq!(
        signing_message(&ev.hash).to_vec(),
        hex_bytes(&doc, "message-hex")
    );
    assert_eq!(ev.sig.to_hex(), hex_string(&doc, "signature"));
    assert_eq!(ev.to_line(), text(&doc, "event-line").as_bytes());
    assert_eq!(
        ev.without_payload().to_line(),
        text(&doc, "event-line-withheld").as_bytes()
    );

    // The document's lines read back as the very event the code signs.
    let back = Event::parse(text(&doc, "event-line").as_bytes())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(back, ev);
    let withheld = Event::parse(text(&doc, "event-line-withheld").as_bytes())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(withheld, ev.without_payload());

    // The prefix the prose gives is the one the code uses.
    assert!(doc.contains(&format!("`{}`", hex::encode(EVENT_SIGNING_PREFIX))));
}

/// (b) Everything recomputed without rhizome-core, from the document's own values, except the
/// final parse-and-verify of the document's event lines.
#[test]
fn example_matches_general_primitives() {
    let doc = doc();
    let i = inputs(&doc);

    // Keys and ids.
    let signing = SigningKey::from_bytes(&i.seed);
    let author = hex_bytes(&doc, "author");
    assert_eq!(signing.verifying_key().to_bytes().to_vec(), author);
    assert_eq!(
        sha256(&author)[..16].to_vec(),
        hex_bytes(&doc, "instance-id")
    );

    // Payload commitment.
    let payload_canonical = serde_json_canonicalizer::to_vec(&i.payload).unwrap();
    assert_eq!(
        payload_canonical,
        text(&doc, "payload-canonical").as_bytes()
    );
    let payload_size: u64 = text(&doc, "payload-size").parse().unwrap();
    assert_eq!(payload_canonical.len() as u64, payload_size);
    let payload_hash = hex_bytes(&doc, "payload-hash");
    assert_eq!(sha256(&payload_canonical).to_vec(), payload_hash);

    // Signed header: the seven members, RFC 8785, and its hex is the same bytes.
    let header_json = json!({
        "author": hex::encode(&author),
        "payload_hash": hex::encode(&payload_hash),
        "payload_size": payload_size,
        "prev": i.prev,
        "seq": i.seq,
        "timestamp": i.timestamp,
        "type": i.kind,
    });
    assert_eq!(
        i.seq == 1,
        i.prev.is_null(),
        "prev is null exactly for seq 1"
    );
    let header_text = text(&doc, "header");
    let header = hex_bytes(&doc, "header-hex");
    assert_eq!(header, header_text.as_bytes());
    assert_eq!(
        serde_json_canonicalizer::to_vec(&header_json).unwrap(),
        header
    );
    assert!(
        doc.contains(&format!("The same {} bytes in hex", header.len())),
        "the prose gives the header's length"
    );

    // Event hash and the 49-byte signed message.
    let hash = sha256(&header);
    assert_eq!(hash.to_vec(), hex_bytes(&doc, "hash"));
    let prefix = b"RHIZOME-EVENT-V1\n";
    assert_eq!(prefix.len(), 17);
    let message = [&prefix[..], &hash[..]].concat();
    assert_eq!(message.len(), 49);
    assert_eq!(message, hex_bytes(&doc, "message-hex"));

    // Signature: Ed25519 is deterministic, and the document's signature verifies strictly.
    let sig_bytes: [u8; 64] = hex_bytes(&doc, "signature").try_into().unwrap();
    assert_eq!(signing.sign(&message).to_bytes(), sig_bytes);
    let vk = VerifyingKey::from_bytes(&author.clone().try_into().unwrap()).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&sig_bytes);
    vk.verify_strict(&message, &sig).unwrap();
    let mut other = message.clone();
    other[48] ^= 1;
    assert!(vk.verify_strict(&other, &sig).is_err());

    // The event line: canonical JSON of the whole event, with the values above.
    let line = text(&doc, "event-line");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        serde_json_canonicalizer::to_vec(&v).unwrap(),
        line.as_bytes()
    );
    let mut expected = header_json.clone();
    expected["hash"] = json!(hex::encode(hash));
    expected["sig"] = json!(hex::encode(sig_bytes));
    expected["payload"] = i.payload.clone();
    assert_eq!(v, expected);

    // The withheld line is the same object without `payload`, canonical.
    let withheld = text(&doc, "event-line-withheld");
    let mut w = v.clone();
    w.as_object_mut().unwrap().remove("payload");
    assert_eq!(
        serde_json_canonicalizer::to_vec(&w).unwrap(),
        withheld.as_bytes()
    );

    // Finally rhizome-core's reader accepts both lines, and refuses a tampered payload.
    for l in [&line, &withheld] {
        let ev = Event::parse(l.as_bytes()).unwrap().verify().unwrap();
        assert_eq!(ev.hash.as_bytes(), &hash);
        assert_eq!(ev.sig.as_bytes(), &sig_bytes);
        assert_eq!(ev.header.author.as_bytes().to_vec(), author);
    }
    let tampered = line.replace("village", "Village");
    assert_ne!(tampered, line);
    assert!(matches!(
        Event::parse(tampered.as_bytes()).unwrap().verify(),
        Err(EventError::PayloadMismatch(_))
    ));
}

/// The sealed-key example of "Keys at rest" opens with its passphrase and re-seals identically.
#[test]
fn sealed_key_example_opens_and_reseals() {
    let doc = doc();
    let record = text(&doc, "sealed-key");
    let stored: StoredSecret = serde_json::from_str(&record).unwrap();
    let StoredSecret::Sealed {
        kdf, salt, nonce, ..
    } = &stored
    else {
        panic!("example:sealed-key is not a sealed record");
    };
    let salt: [u8; 16] = hex::decode(salt).unwrap().try_into().unwrap();
    let nonce: [u8; 24] = hex::decode(nonce).unwrap().try_into().unwrap();
    let passphrase = text(&doc, "sealed-passphrase");
    let author = hex_string(&doc, "author");

    let key = SealingKey::derive(passphrase.as_bytes(), salt, *kdf).unwrap();
    let sk = key.open(&stored, author.as_bytes()).unwrap();
    assert_eq!(sk.public_key().to_hex(), author);
    assert_eq!(*sk.to_seed(), inputs(&doc).seed);
    assert!(key.open(&stored, b"another key").is_err());
    let again = key.seal(&sk, nonce, author.as_bytes());
    assert_eq!(serde_json::to_string(&again).unwrap(), record);
}

/// Section 9.2: the example author declares that instance 56475aa7... hosts it.
#[test]
fn host_declaration_example() {
    use rhizome_core::privacy::{HostDeclaration, HOST_PREFIX};
    let doc = doc();
    let i = inputs(&doc);
    let instance: InstanceId = "56475aa75463474c0285df5dbf2bcab7".parse().unwrap();
    let issued_at = 1_764_000_000_000;
    // (a) rhizome-core.
    let d = HostDeclaration::sign(&SecretKey::from_seed(&i.seed), instance, issued_at);
    d.verify(&instance).unwrap();
    let line = rhizome_core::canonical::to_canonical(&serde_json::to_value(&d).unwrap());
    assert_eq!(
        String::from_utf8(line).unwrap(),
        text(&doc, "host-declaration")
    );
    // (b) General-purpose primitives only.
    let sk = SigningKey::from_bytes(&i.seed);
    let unsigned = json!({
        "author": hex::encode(sk.verifying_key().as_bytes()),
        "instance_id": "56475aa75463474c0285df5dbf2bcab7",
        "issued_at": issued_at,
    });
    let canonical = serde_json_canonicalizer::to_vec(&unsigned).unwrap();
    assert_eq!(
        String::from_utf8(canonical.clone()).unwrap(),
        text(&doc, "host-unsigned")
    );
    let mut message = b"RHIZOME-HOST-V1\n".to_vec();
    assert_eq!(HOST_PREFIX, &message[..]);
    message.extend_from_slice(&sha256(&canonical));
    assert_eq!(message, hex_bytes(&doc, "host-message-hex"));
    let sig = sk.sign(&message);
    let mut full = unsigned.clone();
    full["sig"] = json!(hex::encode(sig.to_bytes()));
    assert_eq!(
        String::from_utf8(serde_json_canonicalizer::to_vec(&full).unwrap()).unwrap(),
        text(&doc, "host-declaration")
    );
    VerifyingKey::from_bytes(sk.verifying_key().as_bytes())
        .unwrap()
        .verify_strict(&message, &sig)
        .unwrap();
}

/// Padmé above the floor of 512, written from the document's words (section 9.4), without
/// rhizome-core: E = floor(log2 n), S = floor(log2 E) + 1, round n up to a multiple of 2^(E-S).
fn bucket_from_the_document(n: u64) -> u64 {
    if n <= 512 {
        return 512;
    }
    let e = (n as f64).log2().floor() as u32;
    let s = (e as f64).log2().floor() as u32 + 1;
    let step = 1u64 << (e - s);
    n.div_ceil(step) * step
}

/// Section 9.4: a limited LIKE, salted and padded, as a host of the member receives it and as
/// everyone else does (withheld).
#[test]
fn salted_payload_example() {
    use rhizome_core::privacy::{padded_size, protect, SALT_BYTES};
    let doc = doc();
    assert_eq!(
        text(&doc, "salted-bucket"),
        "bucket(n) = 512 if n <= 512, else n rounded up to a multiple of 2^(E - S)"
    );
    for n in [
        0, 1, 511, 512, 513, 544, 545, 1000, 4097, 5000, 70_000, 1_000_000,
    ] {
        assert_eq!(padded_size(n), bucket_from_the_document(n), "{n}");
    }

    let inputs: Value = serde_json::from_str(&text(&doc, "salted-inputs")).unwrap();
    let keys: BTreeSet<&str> = inputs
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "seed",
            "seq",
            "prev",
            "type",
            "timestamp",
            "payload",
            "salt"
        ])
    );
    let seed: [u8; 32] = hex::decode(inputs["seed"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(seed, inputs_seed(&doc));
    // The member is the key of the seed 0x40..0x5f, the target the event of section 7.
    let member = SecretKey::from_seed(&std::array::from_fn(|n| 0x40 + n as u8)).public_key();
    assert_eq!(
        inputs["payload"],
        json!({"target": hex_string(&doc, "hash"),
               "audience": {"circle": "family", "members": [member]}})
    );
    let salt: [u8; SALT_BYTES] = hex::decode(inputs["salt"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(salt, std::array::from_fn(|n| 0xa0 + n as u8));
    let prev: Hash = inputs["prev"].as_str().unwrap().parse().unwrap();

    // (a) rhizome-core.
    let payload = protect(inputs["payload"].clone(), &salt).unwrap();
    assert_eq!(
        payload.canonical_bytes(),
        text(&doc, "salted-payload").as_bytes()
    );
    assert_eq!(
        payload.canonical_bytes().len().to_string(),
        text(&doc, "salted-size")
    );
    assert_eq!(payload.hash().to_hex(), hex_string(&doc, "salted-hash"));
    let sk = SecretKey::from_seed(&seed);
    let ev = sign(
        &sk,
        Seq::new(inputs["seq"].as_u64().unwrap()).unwrap(),
        Some(prev),
        EventType::new(inputs["type"].as_str().unwrap()).unwrap(),
        Timestamp::new(inputs["timestamp"].as_u64().unwrap()).unwrap(),
        payload.clone(),
    )
    .unwrap();
    assert_eq!(ev.to_line(), text(&doc, "salted-event-line").as_bytes());
    assert_eq!(
        ev.without_payload().to_line(),
        text(&doc, "salted-event-line-withheld").as_bytes()
    );
    rhizome_core::schema::check("LIKE", payload.value()).unwrap();
    for name in ["salted-event-line", "salted-event-line-withheld"] {
        let back = Event::parse(text(&doc, name).as_bytes())
            .unwrap()
            .verify()
            .unwrap();
        assert_eq!(back.hash, ev.hash, "{name}");
    }

    // (b) General-purpose primitives: salt and an empty pad, measure, fill, canonicalize.
    let mut v = inputs["payload"].clone();
    v["audience"]["salt"] = json!(hex::encode(salt));
    v["audience"]["pad"] = json!("");
    let bare = serde_json_canonicalizer::to_vec(&v).unwrap().len() as u64;
    assert!(doc.contains(&format!(
        "With an empty `pad` the canonical payload is {bare} bytes, so its bucket is {} and `pad` is {}",
        bucket_from_the_document(bare),
        bucket_from_the_document(bare) - bare
    )));
    v["audience"]["pad"] = json!("0".repeat((bucket_from_the_document(bare) - bare) as usize));
    let canonical = serde_json_canonicalizer::to_vec(&v).unwrap();
    assert_eq!(canonical, text(&doc, "salted-payload").as_bytes());
    assert_eq!(canonical.len() as u64, bucket_from_the_document(bare));
    assert_eq!(sha256(&canonical).to_vec(), hex_bytes(&doc, "salted-hash"));
    let header = json!({
        "author": hex_string(&doc, "author"),
        "payload_hash": hex::encode(sha256(&canonical)),
        "payload_size": canonical.len(),
        "prev": inputs["prev"],
        "seq": inputs["seq"],
        "timestamp": inputs["timestamp"],
        "type": inputs["type"],
    });
    let hash = sha256(&serde_json_canonicalizer::to_vec(&header).unwrap());
    let message = [&b"RHIZOME-EVENT-V1\n"[..], &hash[..]].concat();
    let sig = SigningKey::from_bytes(&seed).sign(&message);
    let mut line = header.clone();
    line["hash"] = json!(hex::encode(hash));
    line["sig"] = json!(hex::encode(sig.to_bytes()));
    assert_eq!(
        serde_json_canonicalizer::to_vec(&line).unwrap(),
        text(&doc, "salted-event-line-withheld").as_bytes()
    );
    line["payload"] = v;
    assert_eq!(
        serde_json_canonicalizer::to_vec(&line).unwrap(),
        text(&doc, "salted-event-line").as_bytes()
    );
}

fn inputs_seed(doc: &str) -> [u8; 32] {
    inputs(doc).seed
}

/// Section 5: the author of section 7 publishes its profile; the salted example of 9.4 follows
/// it in the same feed.
#[test]
fn profile_example() {
    let doc = doc();
    let inputs: Value = serde_json::from_str(&text(&doc, "profile-inputs")).unwrap();
    let keys: BTreeSet<&str> = inputs
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["seq", "prev", "type", "timestamp", "payload"])
    );
    assert_eq!(inputs["prev"], json!(hex_string(&doc, "hash")));
    let seed = inputs_seed(&doc);

    // (a) rhizome-core: the payload passes the PROFILE schema, and signs to the line.
    let payload = Payload::new(inputs["payload"].clone()).unwrap();
    assert_eq!(
        rhizome_core::schema::check("PROFILE", payload.value()),
        Ok(Some(rhizome_core::schema::Kind::Profile))
    );
    assert_eq!(
        payload.canonical_bytes(),
        text(&doc, "profile-payload").as_bytes()
    );
    assert!(doc.contains(&format!(
        "(its `payload_size` is {})",
        payload.canonical_bytes().len()
    )));
    let ev = sign(
        &SecretKey::from_seed(&seed),
        Seq::new(inputs["seq"].as_u64().unwrap()).unwrap(),
        Some(inputs["prev"].as_str().unwrap().parse().unwrap()),
        EventType::new(inputs["type"].as_str().unwrap()).unwrap(),
        Timestamp::new(inputs["timestamp"].as_u64().unwrap()).unwrap(),
        payload,
    )
    .unwrap();
    assert_eq!(ev.to_line(), text(&doc, "profile-event-line").as_bytes());
    let back = Event::parse(text(&doc, "profile-event-line").as_bytes())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(back, ev);
    assert_eq!(
        rhizome_core::views::effects(&back),
        vec![rhizome_core::views::Effect::Profile {
            name: "Ana Lima".into(),
            about: Some("Teacher at the village school".into())
        }]
    );

    // (b) General-purpose primitives.
    let canonical = serde_json_canonicalizer::to_vec(&inputs["payload"]).unwrap();
    let header = json!({
        "author": hex_string(&doc, "author"),
        "payload_hash": hex::encode(sha256(&canonical)),
        "payload_size": canonical.len(),
        "prev": inputs["prev"],
        "seq": inputs["seq"],
        "timestamp": inputs["timestamp"],
        "type": inputs["type"],
    });
    let hash = sha256(&serde_json_canonicalizer::to_vec(&header).unwrap());
    let message = [&b"RHIZOME-EVENT-V1\n"[..], &hash[..]].concat();
    let mut line = header.clone();
    line["hash"] = json!(hex::encode(hash));
    line["sig"] = json!(hex::encode(
        SigningKey::from_bytes(&seed).sign(&message).to_bytes()
    ));
    line["payload"] = inputs["payload"].clone();
    assert_eq!(
        serde_json_canonicalizer::to_vec(&line).unwrap(),
        text(&doc, "profile-event-line").as_bytes()
    );

    // The salted example of 9.4 is the next event of the same feed.
    let salted: Value = serde_json::from_str(&text(&doc, "salted-inputs")).unwrap();
    assert_eq!(salted["prev"], json!(hex::encode(hash)));
    assert_eq!(salted["seq"], 3);
}
