//! What the PostgreSQL tests share: the server to test against, scratch stores, events, and a
//! comparison of every read with the SQLite reference backend.
#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::{Hash, SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::prelude::*;
use rhizome_store::Cursor;
use rhizome_store_postgres::PgStore;
use serde_json::{json, Value};
use std::ops::ControlFlow;

pub use rhizome_store_postgres::testing::{admin, server};

/// A store in a schema of its own, dropped with the last handle (even when the test fails).
pub fn scratch(url: &str) -> PgStore {
    PgStore::create_scratch(url).unwrap_or_else(|e| panic!("PostgreSQL at {url} is unusable: {e}"))
}

pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

pub fn signed(
    sk: &SecretKey,
    seq: u64,
    prev: Option<Hash>,
    kind: &str,
    ts: u64,
    payload: Value,
) -> VerifiedEvent {
    sign(
        sk,
        Seq::new(seq).unwrap(),
        prev,
        EventType::new(kind).unwrap(),
        Timestamp::new(ts).unwrap(),
        Payload::new(payload).unwrap(),
    )
    .unwrap()
}

/// `n` posts of one author.
pub fn chain(sk: &SecretKey, n: u64) -> Vec<VerifiedEvent> {
    let mut prev = None;
    (1..=n)
        .map(|i| {
            let ev = signed(
                sk,
                i,
                prev,
                "POST",
                1000 + i,
                json!({ "text": format!("post {i}") }),
            );
            prev = Some(ev.hash);
            ev
        })
        .collect()
}

/// A small deterministic generator (no dependency needed for shuffles).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Events of every kind the views know, and some they do not, from `authors` authors, each
/// author's chain in order: posts (some withheld), comments, replies, likes, stars and
/// unstars, tags (one with U+0000 in it), profiles (one about with U+0000), reshares, circles (create, add, remove, rename,
/// clashing names), limited payloads, an unknown type and a schema failure. Returns the
/// events in script order; `withheld` lists those that were given without their payload.
pub fn rich(authors: u8, steps: usize, seed: u64) -> (Vec<VerifiedEvent>, Vec<VerifiedEvent>) {
    let keys: Vec<SecretKey> = (0..authors).map(|i| key(i + 40)).collect();
    let mut heads: Vec<Option<(u64, Hash)>> = vec![None; authors as usize];
    let mut rng = Rng(seed);
    let mut out: Vec<VerifiedEvent> = Vec::new();
    let mut whole = Vec::new();
    for i in 0..steps {
        let a = rng.below(authors as usize);
        let target = if out.is_empty() {
            Hash::digest(b"absent").to_hex()
        } else {
            out[rng.below(out.len())].hash.to_hex()
        };
        let circle = ["a", "b", "c"][rng.below(3)];
        let renamed = ["a", "b", "c"][rng.below(3)];
        let member = keys[rng.below(keys.len())].public_key().to_hex();
        let flag = rng.below(2) == 0;
        let (kind, payload): (&str, Value) = match rng.below(14) {
            13 => (
                "PROFILE",
                if flag {
                    json!({"name": format!("Ana {i}"), "about": "a\u{0}b"})
                } else {
                    json!({"name": format!("Bo {i}")})
                },
            ),
            0 | 1 => ("POST", json!({"text": format!("post {i}")})),
            2 => (
                "COMMENT",
                json!({"target": target, "text": format!("c {i}")}),
            ),
            3 => ("LIKE", json!({"target": target})),
            4 => ("STAR", json!({"target": target, "starred": flag})),
            5 => (
                "TAG_ADD",
                json!({"target": target, "tag": if flag { "river" } else { "nul\u{0}tag" }}),
            ),
            6 => ("RESHARE", json!({"target": target})),
            7 => (
                "CIRCLE_UPDATE",
                json!({"circle": circle, "op": "create", "members": [member]}),
            ),
            8 => (
                "CIRCLE_UPDATE",
                json!({"circle": circle, "op": if flag { "add" } else { "remove" }, "members": [member]}),
            ),
            9 => (
                "CIRCLE_UPDATE",
                json!({"circle": circle, "op": "rename", "new_name": renamed}),
            ),
            10 => (
                "POST",
                json!({"text": format!("reply {i}"), "reply_to": target}),
            ),
            11 => (
                "POST",
                json!({"text": format!("for friends {i}"),
                       "audience": {"circle": circle, "members": [member]}}),
            ),
            _ if flag => ("FUTURE_TYPE", json!({"n": i})),
            _ => ("LIKE", json!({"target": 5})),
        };
        let (seq, prev) = match heads[a] {
            Some((s, h)) => (s + 1, Some(h)),
            None => (1, None),
        };
        // Equal timestamps happen: the timeline orders them by hash.
        let ev = signed(&keys[a], seq, prev, kind, 5_000 + (i as u64 % 11), payload);
        heads[a] = Some((seq, ev.hash));
        if kind == "POST" && rng.below(5) == 0 {
            whole.push(ev.clone());
            out.push(ev.without_payload());
        } else {
            out.push(ev);
        }
    }
    (out, whole)
}

/// Every read of `a` and `b` (and what they say about the given events) is the same.
pub fn assert_same_reads(a: &dyn Store, b: &dyn Store, events: &[VerifiedEvent]) {
    assert_eq!(a.clock().unwrap(), b.clock().unwrap(), "clock");
    assert_eq!(a.stats().unwrap(), b.stats().unwrap(), "stats");
    assert_eq!(a.type_counts().unwrap(), b.type_counts().unwrap(), "types");
    assert_eq!(
        a.pending_count().unwrap(),
        b.pending_count().unwrap(),
        "pending"
    );
    assert_eq!(
        a.view_digests().unwrap(),
        b.view_digests().unwrap(),
        "view digests"
    );
    assert_eq!(a.skipped().unwrap(), b.skipped().unwrap(), "skipped");
    assert_eq!(
        a.tag_counts().unwrap(),
        b.tag_counts().unwrap(),
        "tag counts"
    );
    assert_eq!(a.follows().unwrap(), b.follows().unwrap(), "follows");
    assert_eq!(
        a.forked_authors().unwrap(),
        b.forked_authors().unwrap(),
        "forked"
    );
    let forks = |s: &dyn Store| -> Vec<String> {
        s.forks()
            .unwrap()
            .iter()
            .map(|f| format!("{f:?}"))
            .collect()
    };
    assert_eq!(forks(a), forks(b), "forks");
    let walk = |s: &dyn Store| -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        s.for_each_event(None, &mut |e| {
            v.push(e.unwrap().to_line());
            ControlFlow::Continue(())
        })
        .unwrap();
        v.sort();
        v
    };
    assert_eq!(walk(a), walk(b), "events");
    // Timeline pages of 7 by cursor, from the top down.
    let mut cursor = None;
    loop {
        let pa = a.timeline(None, cursor, 7).unwrap();
        assert_eq!(pa, b.timeline(None, cursor, 7).unwrap(), "timeline page");
        let Some(last) = pa.last() else { break };
        cursor = Some(Cursor {
            ts: last.ts,
            hash: last.hash,
        });
    }
    let mut authors: Vec<_> = events.iter().map(|e| e.header.author).collect();
    authors.sort();
    authors.dedup();
    for au in &authors {
        assert_eq!(
            a.timeline(Some(au), None, 1000).unwrap(),
            b.timeline(Some(au), None, 1000).unwrap(),
            "timeline of {au}"
        );
        assert_eq!(a.starred(au).unwrap(), b.starred(au).unwrap(), "starred");
        assert_eq!(a.circles(au).unwrap(), b.circles(au).unwrap(), "circles");
        assert_eq!(a.head(au).unwrap(), b.head(au).unwrap(), "head");
        assert_eq!(a.profile(au).unwrap(), b.profile(au).unwrap(), "profile");
        assert_eq!(
            a.fork_lines(au).unwrap(),
            b.fork_lines(au).unwrap(),
            "fork lines"
        );
        let to = a.clock().unwrap().get(au);
        let lim = |s: &dyn Store| format!("{:?}", s.limited(au, 1, to).unwrap());
        assert_eq!(lim(a), lim(b), "limited");
        assert_eq!(
            a.stored_hashes(au, 1, to).unwrap(),
            b.stored_hashes(au, 1, to).unwrap(),
            "stored hashes"
        );
        let odd = |seq: u64| seq % 2 == 1;
        let pa = a.plan_range(au, 1, to, &odd).unwrap();
        let pb = b.plan_range(au, 1, to, &odd).unwrap();
        assert_eq!(
            (pa.count, pa.bytes, pa.head),
            (pb.count, pb.bytes, pb.head),
            "plan"
        );
        let lines = |s: &dyn Store| {
            let mut v = Vec::new();
            s.write_range(au, 1, to, &odd, &mut |l| {
                v.extend_from_slice(l);
                Ok(())
            })
            .unwrap();
            v
        };
        let la = lines(a);
        assert_eq!(la.len() as u64, pa.bytes, "plan bytes = written bytes");
        assert_eq!(la, lines(b), "written range");
    }
    for ev in events {
        assert_eq!(a.get(&ev.hash).unwrap(), b.get(&ev.hash).unwrap(), "get");
        assert_eq!(
            a.thread(&ev.hash).unwrap(),
            b.thread(&ev.hash).unwrap(),
            "thread"
        );
        assert_eq!(
            a.likers(&ev.hash).unwrap(),
            b.likers(&ev.hash).unwrap(),
            "likers"
        );
        assert_eq!(
            a.tags_of(&ev.hash).unwrap(),
            b.tags_of(&ev.hash).unwrap(),
            "tags of"
        );
        let p = &ev.hash.to_hex()[..7];
        assert_eq!(
            a.find_by_prefix(p, 3).unwrap(),
            b.find_by_prefix(p, 3).unwrap(),
            "prefix"
        );
    }
    for tag in ["river", "nul\u{0}tag", "none"] {
        assert_eq!(
            a.tagged(tag).unwrap(),
            b.tagged(tag).unwrap(),
            "tagged {tag:?}"
        );
    }
}

/// `url` with the search path set to `schema`.
pub fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}
