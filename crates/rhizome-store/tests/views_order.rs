//! Property: the views depend only on the set of events, not on the order they arrive in
//! (as long as each author's own events keep their order), and a rebuild from the log gives
//! exactly the views maintained incrementally.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::{Hash, SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::{Outcome, SqliteStore, Store};
use serde_json::{json, Value};

const AUTHORS: usize = 3;

#[derive(Debug, Clone)]
struct Step {
    author: usize,
    action: u8,
    pick: usize,
    name: u8,
    member: usize,
    flag: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..AUTHORS,
        0u8..12,
        any::<usize>(),
        0u8..3,
        0..AUTHORS,
        any::<bool>(),
    )
        .prop_map(|(author, action, pick, name, member, flag)| Step {
            author,
            action,
            pick,
            name,
            member,
            flag,
        })
}

/// Turns a script into signed events (global script order), each author's chain in order.
fn events(script: &[Step]) -> Vec<(usize, VerifiedEvent)> {
    let keys: Vec<SecretKey> = (0..AUTHORS)
        .map(|i| SecretKey::from_seed(&[i as u8 + 1; 32]))
        .collect();
    let mut heads: Vec<Option<(Seq, Hash)>> = vec![None; AUTHORS];
    let mut out: Vec<(usize, VerifiedEvent)> = Vec::new();
    for (i, s) in script.iter().enumerate() {
        // Targets are earlier events of any author: they may arrive later after reordering.
        let target = if out.is_empty() {
            Hash::digest(b"absent").to_hex()
        } else {
            out[s.pick % out.len()].1.hash.to_hex()
        };
        let circle = ["a", "b", "c"][s.name as usize].to_string();
        let member = keys[s.member].public_key().to_hex();
        let renamed = ["a", "b", "c"][(s.name as usize + 1) % 3];
        let (kind, payload): (&str, Value) = match s.action {
            0 => ("POST", json!({"text": format!("post {i}")})),
            1 => (
                "COMMENT",
                json!({"target": target, "text": format!("comment {i}")}),
            ),
            2 => ("LIKE", json!({"target": target})),
            3 => ("STAR", json!({"target": target, "starred": s.flag})),
            4 => ("TAG_ADD", json!({"target": target, "tag": circle})),
            5 => ("RESHARE", json!({"target": target})),
            6 => (
                "CIRCLE_UPDATE",
                json!({"circle": circle, "op": "create", "members": [member]}),
            ),
            7 => (
                "CIRCLE_UPDATE",
                json!({"circle": circle, "op": if s.flag { "add" } else { "remove" }, "members": [member]}),
            ),
            8 => (
                "CIRCLE_UPDATE",
                json!({"circle": circle, "op": "rename", "new_name": renamed}),
            ),
            9 => (
                "POST",
                json!({"text": format!("reply {i}"), "reply_to": target}),
            ),
            10 if s.flag => (
                "PROFILE",
                json!({"name": (["Ana", "Bo", "Ana"][s.name as usize]), "about": format!("profile {i}")}),
            ),
            10 => (
                "PROFILE",
                json!({"name": (["Ana", "Bo", "Cy"][s.name as usize])}),
            ),
            _ => ("FUTURE_TYPE", json!({"n": i})),
        };
        let (seq, prev) = match heads[s.author] {
            Some((sq, h)) => (sq.next(), Some(h)),
            None => (Seq::FIRST, None),
        };
        let mut ev = sign(
            &keys[s.author],
            seq,
            prev,
            EventType::new(kind).unwrap(),
            Timestamp::new(1_000 + (i as u64 % 7)).unwrap(), // equal timestamps happen
            Payload::new(payload).unwrap(),
        )
        .unwrap();
        if s.flag && (s.action == 0 || (s.action == 10 && s.pick % 3 == 0)) {
            ev = ev.without_payload();
        }
        heads[s.author] = Some((seq, ev.hash));
        out.push((s.author, ev));
    }
    out
}

/// A random interleaving that keeps each author's order.
fn interleave(evs: &[(usize, VerifiedEvent)], mut seed: u64) -> Vec<VerifiedEvent> {
    let mut queues: Vec<std::collections::VecDeque<VerifiedEvent>> =
        vec![Default::default(); AUTHORS];
    for (a, e) in evs {
        queues[*a].push_back(e.clone());
    }
    let mut out = Vec::new();
    while queues.iter().any(|q| !q.is_empty()) {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let live: Vec<usize> = (0..AUTHORS).filter(|a| !queues[*a].is_empty()).collect();
        let a = live[(seed >> 33) as usize % live.len()];
        if let Some(e) = queues[a].pop_front() {
            out.push(e);
        }
    }
    out
}

fn digests_after(
    order: &[VerifiedEvent],
    chunk: usize,
) -> (
    Vec<rhizome_store::views::TableDigest>,
    SqliteStore,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("v.db")).unwrap();
    for c in order.chunks(chunk.max(1)) {
        assert!(store
            .append(c)
            .unwrap()
            .iter()
            .all(|o| *o == Outcome::Inserted));
    }
    (store.view_digests().unwrap(), store, dir)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn views_do_not_depend_on_arrival_order(
        script in prop::collection::vec(step(), 1..40),
        seed_a in any::<u64>(),
        seed_b in any::<u64>(),
        chunk in 1usize..8,
    ) {
        let evs = events(&script);
        let (a, _sa, _da) = digests_after(&interleave(&evs, seed_a), 1);
        let (b, mut sb, _db) = digests_after(&interleave(&evs, seed_b), chunk);
        prop_assert_eq!(&a, &b);
        sb.rebuild_views().unwrap();
        prop_assert_eq!(&sb.view_digests().unwrap(), &a);
        prop_assert!(sb.check_views().unwrap().ok());
    }
}

#[test]
fn a_comment_before_its_target_shows_once_the_target_arrives() {
    let script = vec![
        Step {
            author: 0,
            action: 0,
            pick: 0,
            name: 0,
            member: 0,
            flag: false,
        },
        Step {
            author: 1,
            action: 1,
            pick: 0,
            name: 0,
            member: 0,
            flag: false,
        },
        Step {
            author: 2,
            action: 2,
            pick: 0,
            name: 0,
            member: 0,
            flag: false,
        },
    ];
    let evs = events(&script);
    let post = evs[0].1.hash;
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("v.db")).unwrap();
    // Comment and like arrive first.
    store.append(&[evs[1].1.clone(), evs[2].1.clone()]).unwrap();
    assert_eq!(store.thread(&post).unwrap().len(), 1);
    assert!(store.get(&post).unwrap().is_none());
    store.append(&[evs[0].1.clone()]).unwrap();
    assert_eq!(store.thread(&post).unwrap()[0].hash, evs[1].1.hash);
    assert_eq!(store.likers(&post).unwrap(), vec![evs[2].1.header.author]);
}

fn profile_event(key: &SecretKey, seq: u64, prev: Option<Hash>, payload: Value) -> VerifiedEvent {
    sign(
        key,
        Seq::new(seq).unwrap(),
        prev,
        EventType::new("PROFILE").unwrap(),
        Timestamp::new(1_000 + seq).unwrap(),
        Payload::new(payload).unwrap(),
    )
    .unwrap()
}

/// The latest PROFILE by seq wins, even when an earlier one's payload arrives after it
/// (stored withheld first, filled later); a PROFILE the schema refuses changes nothing; a
/// rebuild gives the same rows.
#[test]
fn the_latest_profile_by_seq_wins_whatever_the_arrival_order() {
    let key = SecretKey::from_seed(&[4; 32]);
    let author = key.public_key();
    let first = profile_event(&key, 1, None, json!({"name": "Ana"}));
    let second = profile_event(
        &key,
        2,
        Some(first.hash),
        json!({"name": "Ana Lima", "about": "teacher"}),
    );
    let bad = profile_event(
        &key,
        3,
        Some(second.hash),
        json!({"name": "\u{1b}]0;x\u{7}"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
    store
        .append(&[first.without_payload(), second.clone(), bad])
        .unwrap();
    let shown = |s: &SqliteStore| {
        s.profile(&author)
            .unwrap()
            .map(|p| (p.seq, p.name, p.about))
    };
    assert_eq!(
        shown(&store),
        Some((2, "Ana Lima".to_string(), Some("teacher".to_string())))
    );
    // The first payload arrives late: it does not override the later profile.
    assert_eq!(
        store.append(std::slice::from_ref(&first)).unwrap(),
        vec![Outcome::Filled]
    );
    assert_eq!(shown(&store).unwrap().0, 2);
    assert!(store.check_views().unwrap().ok());
    store.rebuild_views().unwrap();
    assert_eq!(shown(&store).unwrap().0, 2);
    assert!(store
        .skipped()
        .unwrap()
        .iter()
        .any(|s| s.seq == 3 && s.reason == "schema"));
    assert_eq!(
        store
            .profile(&SecretKey::from_seed(&[5; 32]).public_key())
            .unwrap(),
        None
    );
}

/// A store from before schema 7 gets its profile view on open, from the log.
#[test]
fn the_profile_view_is_filled_when_an_older_store_opens() {
    let key = SecretKey::from_seed(&[6; 32]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        store
            .append(&[profile_event(&key, 1, None, json!({"name": "Old"}))])
            .unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("DROP TABLE v_profiles; PRAGMA user_version = 6;")
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 7);
    assert_eq!(
        store.profile(&key.public_key()).unwrap().unwrap().name,
        "Old"
    );
}
