//! What the cases build from: keys from fixed seeds, events with fixed timestamps, identities,
//! and the failure helpers that name what was being done.

use std::fmt::Display;
use std::ops::ControlFlow;

use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::sealed::plain;
use rhizome_core::{Event, Hash, PublicKey, SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::prelude::*;
use rhizome_store::{Identity, LocalAuthor, TableDigest};
use serde_json::{json, Value};

/// The base timestamp of every fixture event (2023-11-14, ms).
pub(crate) const T0: u64 = 1_700_000_000_000;

/// Unwraps a store result, or fails the case naming the step and the error.
pub(crate) trait Must<T> {
    fn must(self, what: &str) -> T;
}

impl<T, E: Display> Must<T> for Result<T, E> {
    #[track_caller]
    fn must(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// The key of fixture `n`.
pub(crate) fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

/// The public key of fixture `n`.
pub(crate) fn pk(n: u8) -> PublicKey {
    key(n).public_key()
}

/// A hash that no fixture event has.
pub(crate) fn absent(tag: &str) -> Hash {
    Hash::digest(format!("absent {tag}").as_bytes())
}

/// Signs an arbitrary event (forks, gaps, wrong links).
pub(crate) fn signed(
    sk: &SecretKey,
    seq: u64,
    prev: Option<Hash>,
    kind: &str,
    ts: u64,
    payload: Value,
) -> VerifiedEvent {
    sign(
        sk,
        Seq::new(seq).must("fixture seq"),
        prev,
        EventType::new(kind).must("fixture type"),
        Timestamp::new(ts).must("fixture timestamp"),
        Payload::new(payload).must("fixture payload"),
    )
    .must("signing a fixture event")
}

/// One author's feed, built event after event.
pub(crate) struct Feed {
    pub(crate) sk: SecretKey,
    n: u8,
    pub(crate) events: Vec<VerifiedEvent>,
}

impl Feed {
    pub(crate) fn new(n: u8) -> Self {
        Feed {
            sk: key(n),
            n,
            events: Vec::new(),
        }
    }

    pub(crate) fn pk(&self) -> PublicKey {
        self.sk.public_key()
    }

    fn next_seq(&self) -> (u64, Option<Hash>) {
        (
            self.events.len() as u64 + 1,
            self.events.last().map(|e| e.hash),
        )
    }

    /// The next event, at `T0 + 1000 * seq + n` (distinct across fixture authors).
    pub(crate) fn add(&mut self, kind: &str, payload: Value) -> VerifiedEvent {
        let ts = T0 + 1000 * (self.events.len() as u64 + 1) + u64::from(self.n);
        self.add_at(kind, payload, ts)
    }

    /// The next event, at timestamp `ts`.
    pub(crate) fn add_at(&mut self, kind: &str, payload: Value, ts: u64) -> VerifiedEvent {
        let (seq, prev) = self.next_seq();
        let ev = signed(&self.sk, seq, prev, kind, ts, payload);
        self.events.push(ev.clone());
        ev
    }

    pub(crate) fn post(&mut self, text: &str) -> VerifiedEvent {
        self.add("POST", json!({ "text": text }))
    }

    pub(crate) fn post_at(&mut self, text: &str, ts: u64) -> VerifiedEvent {
        self.add_at("POST", json!({ "text": text }), ts)
    }

    /// A COMMENT on `target`.
    pub(crate) fn comment(&mut self, target: &Hash, text: &str) -> VerifiedEvent {
        self.add(
            "COMMENT",
            json!({ "target": target.to_hex(), "text": text }),
        )
    }

    pub(crate) fn like(&mut self, target: &Hash) -> VerifiedEvent {
        self.add("LIKE", json!({ "target": target.to_hex() }))
    }

    pub(crate) fn star(&mut self, target: &Hash, starred: bool) -> VerifiedEvent {
        self.add(
            "STAR",
            json!({ "target": target.to_hex(), "starred": starred }),
        )
    }

    pub(crate) fn tag(&mut self, target: &Hash, tag: &str) -> VerifiedEvent {
        self.add("TAG_ADD", json!({ "target": target.to_hex(), "tag": tag }))
    }

    pub(crate) fn circle(&mut self, op: Value) -> VerifiedEvent {
        self.add("CIRCLE_UPDATE", op)
    }
}

pub(crate) fn identity(n: u8, name: &str) -> Identity {
    Identity {
        name: name.into(),
        public_key: pk(n),
        secret: plain(&key(n)),
        created_at: T0,
    }
}

pub(crate) fn local_author(name: &str, n: u8, is_default: bool) -> LocalAuthor {
    LocalAuthor {
        name: name.into(),
        public_key: pk(n),
        secret: plain(&key(n)),
        is_default,
    }
}

/// Every stored event of `feed` (or all), in the order the store visits them.
pub(crate) fn events_of(s: &dyn Store, feed: Option<&PublicKey>) -> Vec<Event> {
    let mut out = Vec::new();
    let mut bad = None;
    s.for_each_event(feed, &mut |e| match e {
        Ok(e) => {
            out.push(e);
            ControlFlow::Continue(())
        }
        Err(e) => {
            bad = Some(e.to_string());
            ControlFlow::Break(())
        }
    })
    .must("for_each_event");
    if let Some(e) = bad {
        panic!("for_each_event passed an unreadable row: {e}");
    }
    out
}

pub(crate) fn digests(s: &dyn Store) -> Vec<TableDigest> {
    s.view_digests().must("view_digests")
}

/// Asserts that rebuilding the views aside gives exactly the live ones.
#[track_caller]
pub(crate) fn assert_views_check(s: &mut dyn Store, when: &str) {
    let check = s.check_views().must("check_views");
    assert!(
        check.ok(),
        "views check {when}: live and rebuilt views differ: {:?}",
        check.differences
    );
}

pub(crate) fn hex_of(hashes: &[Hash]) -> Vec<String> {
    hashes
        .iter()
        .map(|h| h.to_hex()[..12].to_string())
        .collect()
}
