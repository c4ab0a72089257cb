#![allow(clippy::unwrap_used)]
//! A second permanent bundle, beside `tests/golden/v1-example.bundle` (which `golden.rs` keeps
//! reading): `tests/golden/v1-profile-salted.bundle`, still format `rhizome-bundle/1`, holding
//! what issue 10 added: a `PROFILE` event (PROTOCOL 5) and a salted, padded limited payload
//! (PROTOCOL 9.4), as a bundle for a host of the circle's member carries it.
//!
//! Its three event lines are the worked examples of `docs/PROTOCOL.md` (sections 7, 5 and 9.4,
//! read from the document), its manifest and trailer are signed by the instance key of
//! section 8.9. The test rebuilds the file from those and compares it byte for byte with the
//! committed one, whose SHA-256 is fixed below: like the first golden bundle, it must never be
//! regenerated. Then every version must import it complete, with the views it implies.

use rhizome_core::bundle::{Counts, Exporter, FeedRange, Manifest, Trailer, FORMAT};
use rhizome_core::privacy::Audience;
use rhizome_core::{Clock, Event, Hash, InstanceId, PublicKey, SecretKey, Seq};
use rhizome_store::prelude::*;
use rhizome_store_sqlite::SqliteStore;
use rhizome_sync::{ImportOptions, Status};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/v1-profile-salted.bundle"
);
const OLD_GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/v1-example.bundle"
);
/// SHA-256 of the committed file. It never changes.
const GOLDEN_SHA256: &str = "008a91b1ba5df2bbe587f365bc94441e54bb6d65e2f847518dfa6875efff57b2";

/// The one-line value of the block after `<!-- example:NAME -->` (markers owned by
/// rhizome-core's protocol_example test, which checks these values).
fn example(doc: &str, name: &str) -> String {
    let marker = format!("<!-- example:{name} -->");
    let mut lines = doc.lines().skip_while(|l| l.trim() != marker);
    assert!(lines.next().is_some(), "no {marker}");
    assert!(lines.next().unwrap().starts_with("```"));
    let value = lines.next().unwrap().to_string();
    assert_eq!(
        lines.next().map(str::trim_end),
        Some("```"),
        "{name}: one line"
    );
    value
}

/// The bundle rebuilt from the document's event lines.
fn rebuilt() -> Vec<u8> {
    let doc = std::fs::read_to_string(DOC_PATH).unwrap();
    let lines: Vec<String> = ["event-line", "profile-event-line", "salted-event-line"]
        .iter()
        .map(|n| example(&doc, n))
        .collect();
    let events: Vec<Event> = lines
        .iter()
        .map(|l| {
            Event::parse(l.as_bytes())
                .unwrap()
                .verify()
                .unwrap()
                .into_inner()
        })
        .collect();
    let author = events[0].header.author;
    let instance = SecretKey::from_seed(&std::array::from_fn(|n| 0x20 + n as u8));
    let mut clock = Clock::new();
    clock.set(author, Seq::new(3).unwrap());
    let manifest = Manifest {
        format: FORMAT.into(),
        exporter: Exporter {
            instance_id: InstanceId::of(&instance.public_key()),
            public_key: instance.public_key(),
            name: "Village school".into(),
            age_recipient: None,
        },
        clock,
        base: Clock::new(),
        // For the instance whose key is the author's seed (section 7): a host of the member,
        // by the rule of 9.3, so the limited payload travels.
        recipient: Some("56475aa75463474c0285df5dbf2bcab7".parse().unwrap()),
        feeds: vec![FeedRange {
            author,
            from: 1,
            to: 3,
            head: events[2].hash,
        }],
        counts: Counts {
            events: 3,
            feeds: 1,
            bytes: lines.iter().map(|l| l.len() as u64 + 1).sum(),
        },
        created_at: 1_764_000_120_000,
        hosts: vec![],
        evidence: vec![],
    };
    let mut out = manifest.to_line(&instance);
    out.push(b'\n');
    for l in &lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    let trailer = Trailer {
        trailer: FORMAT.into(),
        events: 3,
        sha256: Hash::digest(&out),
    };
    out.extend_from_slice(&trailer.to_line(&instance));
    out.push(b'\n');
    out
}

fn import(store: &mut SqliteStore, bytes: &[u8]) -> rhizome_sync::ImportReport {
    let opts = ImportOptions {
        now: 1_764_000_180_000,
        method: "usb".into(),
    };
    rhizome_sync::import_bundle(store, bytes, &opts, &mut |_| {}).unwrap()
}

#[test]
fn the_committed_file_is_the_documented_events_and_never_changes() {
    let bytes = std::fs::read(GOLDEN).unwrap();
    assert_eq!(
        hex::encode(Hash::digest(&bytes).as_bytes()),
        GOLDEN_SHA256,
        "tests/golden/v1-profile-salted.bundle changed: it must never be regenerated"
    );
    assert_eq!(bytes, rebuilt());
    let doc = std::fs::read_to_string(DOC_PATH).unwrap();
    assert!(doc.contains(&format!("(SHA-256 `{GOLDEN_SHA256}`)")));
}

#[test]
fn it_imports_complete_with_the_profile_and_the_limited_like() {
    let bytes = std::fs::read(GOLDEN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let r = import(&mut store, &bytes);
    assert_eq!(r.status, Status::Complete);
    assert_eq!((r.new, r.refused_total, r.pending, r.forks), (3, 0, 0, 0));
    let author: PublicKey = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
        .parse()
        .unwrap();
    let profile = store.profile(&author).unwrap().unwrap();
    assert_eq!(
        (profile.seq, profile.name.as_str(), profile.about.as_deref()),
        (2, "Ana Lima", Some("Teacher at the village school"))
    );
    // The salted LIKE reaches the views (its schema accepts salt and pad) ...
    let post: Hash = "547a1f9fa5c4d72728ab955be7f31956af57852457cf328816b5773ea2df73f7"
        .parse()
        .unwrap();
    assert_eq!(store.likers(&post).unwrap(), vec![author]);
    assert!(store.skipped().unwrap().is_empty());
    // ... and is indexed as limited to its member, so it is withheld from anyone else.
    let member = SecretKey::from_seed(&std::array::from_fn(|n| 0x40 + n as u8)).public_key();
    assert_eq!(
        store.limited(&author, 1, 3).unwrap(),
        vec![(3, Audience::Limited(vec![member]))]
    );
    assert!(store.check_views().unwrap().ok());
    let again = import(&mut store, &bytes);
    assert_eq!((again.new, again.duplicate), (0, 3));
}

/// Both golden bundles, the first one unchanged, in one store: they share the first event and
/// part at seq 2 (a LIKE in the first, the PROFILE here), so the second is fork evidence, kept
/// as such, and nothing else breaks.
#[test]
fn both_golden_bundles_import_into_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let old = import(&mut store, &std::fs::read(OLD_GOLDEN).unwrap());
    assert_eq!((old.status, old.new), (Status::Complete, 2));
    let new = import(&mut store, &std::fs::read(GOLDEN).unwrap());
    assert_eq!(new.status, Status::Complete);
    assert_eq!((new.duplicate, new.forks), (1, 2), "{new:?}");
    assert!(store.check_views().unwrap().ok());
}
