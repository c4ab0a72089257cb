#![allow(clippy::unwrap_used)]
//! A mutation fuzzer of the bundle reader: a small valid bundle is built in memory, then
//! proptest damages it (flipped bits and bytes, truncation, duplicated, deleted, swapped,
//! replaced or inserted lines, inserted bytes and newlines, data appended) and feeds the
//! result to `import_bundle` (into a fresh store), `inspect_bundle` and `check_bundle`.
//!
//! Whatever the bytes, all three must return (never panic), with a clean error only when
//! line 1 is not a valid manifest; they must agree on how the bundle ends; and the store must
//! stay sound: every stored event re-verifies, every feed runs 1, 2, 3, ... with each `prev`
//! linking to the event before it, nothing is stored that the original bundle did not carry
//! (no signature can be forged by damage), no fork is invented, a "complete" verdict means
//! every event arrived, a second import of the same bytes adds nothing, and importing the
//! undamaged bundle afterwards gives exactly the events one clean import gives.
//!
//! The default is 256 cases (about 15 s in a debug build; CI allows two minutes of
//! fuzzing). To fuzz longer, raise the case count:
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test -p rhizome-sync --release --test fuzz_reader
//! ```
//!
//! A failure is shrunk to a minimal mutation list and saved under
//! `tests/fuzz_reader.proptest-regressions`, replayed first on the next run.

use proptest::prelude::*;
use proptest::sample::Index;
use rhizome_core::bundle::Exporter;
use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::{Clock, Hash, InstanceId, PublicKey, SecretKey, Seq, Timestamp};

use rhizome_store::prelude::*;
use rhizome_store_sqlite::SqliteStore;
use rhizome_sync::{
    check_bundle, import_bundle, inspect_bundle, plan_export, write_bundle, ImportError,
    ImportOptions, Status,
};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// The bundle under test
// ---------------------------------------------------------------------------------------------

/// The valid bundle and what one clean import of it stores.
struct Fixture {
    bundle: Vec<u8>,
    /// Every event the bundle carries, by hash.
    hashes: BTreeSet<Hash>,
    /// The stored log of a clean import: (author, seq, hash) in store order.
    clean: Vec<(PublicKey, u64, Hash)>,
}

fn scratch() -> tempfile::TempDir {
    // SQLite's fsyncs cost nothing on /dev/shm; the checks here are about logic, not power loss.
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("rhizome-fuzz-")
            .tempdir_in(shm)
        {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn opts() -> ImportOptions {
    ImportOptions {
        now: 1_764_000_000_000,
        method: "usb".into(),
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = scratch();
        let mut store = SqliteStore::open(&dir.path().join("source.db")).unwrap();
        let payloads = [
            ("POST", json!({"text": "The well is fixed"})),
            (
                "POST",
                json!({"text": "é ü 😀 \"quoted\" \\ back\nslash", "lang": "pt-BR"}),
            ),
            // The word the reader looks for to find the trailer, inside a payload.
            (
                "RECIPE",
                json!({"trailer": "rhizome-bundle/1", "events": 1, "sha256": "00"}),
            ),
            (
                "TAG_ADD",
                json!({"tag": "water", "n": [1, 2.5, -3, 9_007_199_254_740_991u64]}),
            ),
            ("NOTE", json!({})),
            (
                "POST",
                json!({"text": "{\"not\":\"json\"}\n{}", "deep": [[[[{"a": null}]]]]}),
            ),
        ];
        let mut events = Vec::new();
        for author in 0..3u8 {
            let key = SecretKey::from_seed(&[author + 1; 32]);
            let mut prev = None;
            for seq in 1..=(3 + author as u64) {
                let (kind, payload) = &payloads[(seq as usize + author as usize) % payloads.len()];
                let ev = sign(
                    &key,
                    Seq::new(seq).unwrap(),
                    prev,
                    EventType::new(kind).unwrap(),
                    Timestamp::new(1_700_000_000_000 + seq * 1000 + author as u64).unwrap(),
                    Payload::new(payload.clone()).unwrap(),
                )
                .unwrap();
                prev = Some(ev.hash);
                events.push(ev);
            }
        }
        store.append(&events).unwrap();
        let exporter_key = SecretKey::from_seed(&[0xee; 32]);
        let exporter = Exporter {
            instance_id: InstanceId::of(&exporter_key.public_key()),
            public_key: exporter_key.public_key(),
            name: "fuzz source".into(),
            age_recipient: None,
        };
        let plan = plan_export(&store, exporter, Clock::new(), None, 1_764_000_000_000).unwrap();
        let mut bundle = Vec::new();
        write_bundle(&store, &plan, &exporter_key, &mut bundle, &mut |_| {}).unwrap();
        assert_eq!(bundle.len() as u64, plan.file_bytes(&exporter_key));

        // One clean import: the reference.
        let mut clean_store = SqliteStore::open(&dir.path().join("clean.db")).unwrap();
        let report = import_bundle(&mut clean_store, &bundle[..], &opts(), &mut |_| {}).unwrap();
        assert_eq!(report.status, Status::Complete);
        assert_eq!(report.new, events.len() as u64);
        let clean = sound_log(&clean_store).unwrap();
        assert_eq!(clean.len(), events.len());
        Fixture {
            bundle,
            hashes: events.iter().map(|e| e.hash).collect(),
            clean,
        }
    })
}

/// The stored log, after checking that it is sound: every event re-verifies, every feed runs
/// 1..n with `prev` links, and the clock agrees. Returns (author, seq, hash) in store order.
fn sound_log(store: &SqliteStore) -> Result<Vec<(PublicKey, u64, Hash)>, String> {
    let mut out = Vec::new();
    let mut problem = None;
    let mut last: BTreeMap<PublicKey, (u64, Hash)> = BTreeMap::new();
    store
        .for_each_event(None, &mut |item| {
            let ev = match item {
                Ok(ev) => ev,
                Err(e) => {
                    problem = Some(format!("unreadable row: {e}"));
                    return ControlFlow::Break(());
                }
            };
            let h = &ev.header;
            let (seq, prev) = (h.seq.get(), h.prev);
            let expected = last
                .get(&h.author)
                .map_or((1, None), |(s, hash)| (s + 1, Some(*hash)));
            if (seq, prev) != expected {
                problem = Some(format!(
                    "feed {} seq {seq}: expected seq {} with prev {:?}",
                    h.author, expected.0, expected.1
                ));
                return ControlFlow::Break(());
            }
            last.insert(h.author, (seq, ev.hash));
            out.push((h.author, seq, ev.hash));
            if let Err(e) = ev.verify() {
                problem = Some(format!("stored event does not verify: {e}"));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| e.to_string())?;
    if let Some(p) = problem {
        return Err(p);
    }
    let clock = store.clock().map_err(|e| e.to_string())?;
    let heads: BTreeMap<PublicKey, u64> = clock.iter().map(|(k, s)| (*k, s.get())).collect();
    let ends: BTreeMap<PublicKey, u64> = last.iter().map(|(k, (s, _))| (*k, *s)).collect();
    if heads != ends {
        return Err(format!("clock {heads:?} but the log ends at {ends:?}"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: Index, bit: u8 },
    SetByte { at: Index, byte: u8 },
    Truncate { at: Index },
    DuplicateLine { line: Index },
    DeleteLine { line: Index },
    SwapLines { a: Index, b: Index },
    InsertBytes { at: Index, bytes: Vec<u8> },
    InsertNewline { at: Index },
    ReplaceLine { line: Index, with: Vec<u8> },
    InsertLine { line: Index, with: Vec<u8> },
    Append { bytes: Vec<u8> },
}

/// Line-shaped garbage: random bytes, or text that looks like what a reader expects.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..80),
        1 => Just(br#"{"events":0,"sha256":"00","sig":"0","trailer":"rhizome-bundle/1"}"#.to_vec()),
        1 => Just(br#"{"format":"rhizome-bundle/1"}"#.to_vec()),
        1 => Just(b"{}".to_vec()),
        1 => Just(b"null".to_vec()),
        1 => Just("[".repeat(5000).into_bytes()),
        1 => Just(b"{\"a\":1,\"a\":2}".to_vec()),
        1 => Just(b"\"\xff\xfe\"".to_vec()),
        1 => Just(b"   \t ".to_vec()),
        1 => Just(Vec::new()),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        2 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        2 => any::<Index>().prop_map(|line| Mutation::DuplicateLine { line }),
        2 => any::<Index>().prop_map(|line| Mutation::DeleteLine { line }),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        2 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::InsertBytes { at, bytes }),
        2 => any::<Index>().prop_map(|at| Mutation::InsertNewline { at }),
        2 => (any::<Index>(), garbage())
            .prop_map(|(line, with)| Mutation::ReplaceLine { line, with }),
        2 => (any::<Index>(), garbage())
            .prop_map(|(line, with)| Mutation::InsertLine { line, with }),
        3 => prop_oneof![
            Just(b"\n".to_vec()),
            Just(b"\n \t\n".to_vec()),
            Just(b"\r\n".to_vec()),
            garbage(),
            garbage().prop_map(|g| [b"\n".as_slice(), &g].concat()),
            garbage().prop_map(|g| [b"\n".as_slice(), &g, b"\n"].concat()),
        ]
        .prop_map(|bytes| Mutation::Append { bytes }),
    ]
}

/// The pieces between newlines (the last one empty when the bytes end with a newline), so
/// that joining them with newlines gives the bytes back exactly.
fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn join(pieces: &[Vec<u8>]) -> Vec<u8> {
    pieces.join(&b'\n')
}

/// Indices of the real lines (not the empty piece after a final newline).
fn line_count(pieces: &[Vec<u8>]) -> usize {
    if pieces.last().is_some_and(Vec::is_empty) {
        pieces.len() - 1
    } else {
        pieces.len()
    }
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match m {
        Mutation::FlipBit { at, bit } if len > 0 => bytes[at.index(len)] ^= 1 << bit,
        Mutation::SetByte { at, byte } if len > 0 => bytes[at.index(len)] = *byte,
        Mutation::Truncate { at } => bytes.truncate(at.index(len + 1)),
        Mutation::InsertBytes { at, bytes: b } => {
            let i = at.index(len + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::InsertNewline { at } => bytes.insert(at.index(len + 1), b'\n'),
        Mutation::DuplicateLine { line } | Mutation::DeleteLine { line } => {
            let mut p = split(bytes);
            let n = line_count(&p);
            if n == 0 {
                return;
            }
            let i = line.index(n);
            if matches!(m, Mutation::DuplicateLine { .. }) {
                let l = p[i].clone();
                p.insert(i, l);
            } else {
                p.remove(i);
            }
            *bytes = join(&p);
        }
        Mutation::SwapLines { a, b } => {
            let mut p = split(bytes);
            let n = line_count(&p);
            if n > 0 {
                p.swap(a.index(n), b.index(n));
                *bytes = join(&p);
            }
        }
        Mutation::InsertLine { line, with } => {
            let mut p = split(bytes);
            let i = line.index(line_count(&p) + 1);
            p.insert(i, with.iter().copied().filter(|b| *b != b'\n').collect());
            *bytes = join(&p);
        }
        Mutation::Append { bytes: b } => bytes.extend_from_slice(b),
        Mutation::ReplaceLine { line, with } => {
            let mut p = split(bytes);
            let n = line_count(&p);
            if n > 0 {
                // Newlines in the garbage would make several lines; keep it one.
                p[line.index(n)] = with.iter().copied().filter(|b| *b != b'\n').collect();
                *bytes = join(&p);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------------

fn kind(s: &Status) -> String {
    // The serialized tag ("complete", "truncated", ...): the variants' names without their
    // details, whatever variants the enum has.
    serde_json::to_value(s).unwrap()["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn check(mutated: &[u8]) -> Result<(), TestCaseError> {
    let fx = fixture();
    let dir = scratch();
    let mut store = SqliteStore::open(&dir.path().join("fuzz.db")).unwrap();

    let imported = import_bundle(&mut store, mutated, &opts(), &mut |_| {});
    let inspected = inspect_bundle(mutated);
    let checked = check_bundle(mutated);

    // inspect fails only on an empty input; otherwise it describes what it saw.
    let ins = match inspected {
        Err(ImportError::Empty) => {
            prop_assert!(mutated.is_empty());
            prop_assert!(matches!(imported, Err(ImportError::Empty)));
            prop_assert!(matches!(checked, Err(ImportError::Empty)));
            None
        }
        Err(e) => return Err(TestCaseError::fail(format!("inspect failed: {e}"))),
        Ok(i) => Some(i),
    };

    let report = match imported {
        Err(ImportError::Empty) => {
            prop_assert!(mutated.is_empty());
            None
        }
        Err(ImportError::Manifest(_)) | Err(ImportError::ManifestTooLong) => {
            let ins = ins.as_ref().unwrap();
            prop_assert!(
                ins.manifest.is_none(),
                "import refused a manifest inspect accepted"
            );
            None
        }
        Err(e) => return Err(TestCaseError::fail(format!("import failed: {e}"))),
        Ok(r) => Some(r),
    };

    let stored = sound_log(&store).map_err(TestCaseError::fail)?;
    for (author, seq, hash) in &stored {
        prop_assert!(
            fx.hashes.contains(hash),
            "stored an event the bundle never carried: {author} seq {seq}"
        );
    }
    prop_assert!(store.forks().unwrap().is_empty(), "invented a fork");

    let Some(report) = report else {
        // Refused whole: nothing stored, no peer recorded.
        prop_assert!(stored.is_empty());
        prop_assert!(store.peers().unwrap().is_empty());
        return Ok(());
    };
    let ins = ins.unwrap();
    prop_assert!(
        ins.manifest.is_some(),
        "inspect refused a manifest import accepted"
    );
    prop_assert_eq!(report.new + report.promoted, stored.len() as u64);
    prop_assert_eq!(report.refused_total as usize, report.refused.len());
    prop_assert_eq!(report.forks, 0);
    prop_assert!(report.bytes <= mutated.len() as u64);
    prop_assert_eq!(store.pending_count().unwrap(), report.pending);
    // (A waiting event carried twice is counted twice but kept once.)
    prop_assert!(report.pending <= report.parked);
    prop_assert_eq!(store.peers().unwrap().len(), 1);

    // Import and inspect agree on how the bundle ended.
    prop_assert_eq!(
        kind(&report.status),
        kind(&ins.status),
        "{:?} vs {:?}",
        report.status,
        ins.status
    );
    // check_bundle (inspect plus per-event verification) sees the same lines, and every event
    // it finds invalid was refused by the import.
    let checked = checked.map_err(|e| TestCaseError::fail(format!("check failed: {e}")))?;
    prop_assert_eq!(kind(&checked.status), kind(&ins.status));
    prop_assert_eq!(checked.event_lines, ins.event_lines);
    prop_assert_eq!(checked.malformed_lines, ins.malformed_lines);
    prop_assert_eq!(ins.invalid_events, 0, "inspect does not verify events");
    prop_assert!(checked.invalid_events <= report.refused_total);

    if report.status == Status::Complete {
        // Complete means the trailer's hash matched: every event arrived intact.
        prop_assert_eq!(&stored, &fx.clean);
        prop_assert_eq!(report.refused_total, 0);
        prop_assert_eq!(report.pending, 0);
        prop_assert!(report.missing.is_empty());
    }

    // The same bytes again add nothing.
    let again = import_bundle(&mut store, mutated, &opts(), &mut |_| {}).unwrap();
    prop_assert_eq!(again.new, 0);
    prop_assert_eq!(again.promoted, 0);
    prop_assert_eq!(
        sound_log(&store).map_err(TestCaseError::fail)?,
        stored.clone()
    );

    // The undamaged bundle then completes the store exactly as one clean import does.
    let fixed = import_bundle(&mut store, &fx.bundle[..], &opts(), &mut |_| {}).unwrap();
    prop_assert_eq!(fixed.status, Status::Complete);
    prop_assert_eq!(fixed.refused_total, 0);
    prop_assert_eq!(
        fixed.new + fixed.promoted + stored.len() as u64,
        fx.clean.len() as u64
    );
    // (Feeds are listed in the order the store first saw them, which damage can change.)
    let mut now = sound_log(&store).map_err(TestCaseError::fail)?;
    let mut clean = fx.clean.clone();
    now.sort();
    clean.sort();
    prop_assert_eq!(now, clean);
    prop_assert_eq!(store.pending_count().unwrap(), 0);
    prop_assert!(store.forks().unwrap().is_empty());
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn damaged_bundles_never_panic_and_never_corrupt_the_store(
        mutations in proptest::collection::vec(mutation(), 1..=4)
    ) {
        let mut bytes = fixture().bundle.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes)?;
    }
}

#[test]
fn the_undamaged_bundle_passes_the_same_checks() {
    check(&fixture().bundle).unwrap();
}

#[test]
fn every_single_line_deletion_truncation_and_tail_passes() {
    // Exhaustive over the small bundle: each line deleted, a cut at every 7th byte, and
    // assorted data after the trailer.
    let fx = fixture();
    for tail in [
        &b"\n"[..],
        b" ",
        b"\n\n",
        b"\r\n",
        b" \t\n\n",
        b"x",
        b"\n{}\n",
        b"\x00",
    ] {
        let bytes = [&fx.bundle[..], tail].concat();
        check(&bytes).unwrap_or_else(|e| panic!("{tail:?} appended: {e}"));
    }
    let lines = line_count(&split(&fx.bundle));
    for i in 0..lines {
        let mut p = split(&fx.bundle);
        p.remove(i);
        check(&join(&p)).unwrap_or_else(|e| panic!("line {i} deleted: {e}"));
    }
    for cut in (0..fx.bundle.len()).step_by(7) {
        check(&fx.bundle[..cut]).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
    }
}

#[test]
fn blank_lines_after_the_trailer_are_judged_alike_by_import_and_inspect() {
    // Regression: inspect used to call any line after the trailer "data after the
    // trailer line" while import ignores blank ones.
    let mut bytes = fixture().bundle.clone();
    bytes.extend_from_slice(b"\n \n");
    let dir = scratch();
    let mut store = SqliteStore::open(&dir.path().join("b.db")).unwrap();
    let report = import_bundle(&mut store, &bytes[..], &opts(), &mut |_| {}).unwrap();
    assert_eq!(report.status, Status::Complete);
    let ins = inspect_bundle(&bytes[..]).unwrap();
    assert_eq!(ins.status, Status::Complete);
}
