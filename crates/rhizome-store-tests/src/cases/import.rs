//! [`ImportStore`](rhizome_store::ImportStore) and its sessions: pending promotion, fork
//! evidence, filled payloads, rollback, and the second handle.

use rhizome_core::{Hash, InstanceId, Seq};
use rhizome_store::prelude::*;
use rhizome_store::{LogStats, Outcome};
use serde_json::json;

use crate::fixture::*;
use crate::Factory;

fn seq(n: u64) -> Seq {
    Seq::new(n).must("seq")
}

/// In one session, events whose predecessors are missing are parked (Gap) and join their feed
/// as soon as a later batch, or an earlier event of the same batch, fills the gap; `promoted`
/// counts them; `events()` counts what was given; all durable on commit.
pub fn import_promotes_pending_across_batches(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (mut a, mut b) = (Feed::new(1), Feed::new(2));
    let ev: Vec<_> = (1..=5).map(|i| a.post(&format!("a{i}"))).collect();
    let (b1, b2) = (b.post("b1"), b.post("b2"));
    s.follow(&a.pk()).must("follow");
    {
        let mut session = s.begin_import(None).must("begin_import");
        let r = session
            .add(&[ev[2].clone(), ev[4].clone()])
            .must("add a3 a5");
        assert_eq!(
            r.outcomes,
            [Outcome::Gap { head: 0 }, Outcome::Gap { head: 0 }]
        );
        assert_eq!(r.promoted, 0);
        let r = session
            .add(&[ev[0].clone(), ev[1].clone()])
            .must("add a1 a2");
        assert_eq!(r.outcomes, [Outcome::Inserted, Outcome::Inserted]);
        assert_eq!(
            r.promoted, 1,
            "a3 joins once a2 is in; a5 still waits for a4"
        );
        let r = session.add(&[ev[3].clone()]).must("add a4");
        assert_eq!(
            (r.outcomes, r.promoted),
            (vec![Outcome::Inserted], 1),
            "a4 then a5"
        );
        let r = session.add(&[b2.clone(), b1.clone()]).must("add b2 b1");
        assert_eq!(
            (r.outcomes, r.promoted),
            (vec![Outcome::Gap { head: 0 }, Outcome::Inserted], 1),
            "b2 parked then promoted within its own batch"
        );
        assert_eq!(session.events(), 7, "events given to the session");
        session.commit().must("commit");
    }
    assert_eq!(s.head(&a.pk()).must("head a"), Some((seq(5), ev[4].hash)));
    assert_eq!(s.head(&b.pk()).must("head b"), Some((seq(2), b2.hash)));
    assert_eq!(s.pending_count().must("pending_count"), 0);
    let seqs: Vec<u64> = events_of(s, Some(&a.pk()))
        .iter()
        .map(|e| e.header.seq.get())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(
        s.timeline(Some(&a.pk()), None, 10).must("timeline").len(),
        5,
        "promoted events reach the views"
    );
    assert_views_check(s, "after promotion");
}

/// Parked events survive their session and are promoted by a later one; an event parked twice
/// is parked once; a parked event that no longer links when its turn comes becomes fork
/// evidence instead of entering the log.
pub fn import_promotes_pending_across_sessions(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let ev: Vec<_> = (1..=5).map(|i| a.post(&format!("a{i}"))).collect();
    let carrier = InstanceId::of(&pk(90));
    let one = |s: &mut dyn Store, e: &rhizome_core::VerifiedEvent| {
        s.import_batch(std::slice::from_ref(e), Some(&carrier))
            .must("import_batch")
    };
    assert_eq!(one(s, &ev[2]).outcomes, [Outcome::Gap { head: 0 }]);
    assert_eq!(one(s, &ev[1]).outcomes, [Outcome::Gap { head: 0 }]);
    assert_eq!(s.pending_count().must("pending_count"), 2);
    assert_eq!(
        s.head(&a.pk()).must("head"),
        None,
        "a parked event entered the log"
    );
    assert_eq!(one(s, &ev[4]).outcomes, [Outcome::Gap { head: 0 }]);
    assert_eq!(one(s, &ev[4]).outcomes, [Outcome::Gap { head: 0 }]);
    assert_eq!(s.pending_count().must("pending_count"), 3, "parked twice");

    let r = one(s, &ev[0]);
    assert_eq!(
        (r.outcomes, r.promoted),
        (vec![Outcome::Inserted], 2),
        "a1 brings a2, a3"
    );
    assert_eq!(s.head(&a.pk()).must("head"), Some((seq(3), ev[2].hash)));
    assert_eq!(s.pending_count().must("pending_count"), 1);
    let r = one(s, &ev[3]);
    assert_eq!((r.outcomes, r.promoted), (vec![Outcome::Inserted], 1));
    assert_eq!(s.head(&a.pk()).must("head"), Some((seq(5), ev[4].hash)));
    assert_eq!(s.pending_count().must("pending_count"), 0);

    // b3' links to another b2: parked, then refused as a fork once b2 is in.
    let mut b = Feed::new(2);
    let (b1, b2) = (b.post("b1"), b.post("b2"));
    let stray = signed(
        &b.sk,
        3,
        Some(absent("b2'")),
        "POST",
        T0,
        json!({"text": "b3'"}),
    );
    assert_eq!(one(s, &stray).outcomes, [Outcome::Gap { head: 0 }]);
    let r = s
        .import_batch(&[b1, b2.clone()], Some(&carrier))
        .must("import b1 b2");
    assert_eq!((r.outcomes, r.promoted), (vec![Outcome::Inserted; 2], 0));
    assert_eq!(s.head(&b.pk()).must("head b"), Some((seq(2), b2.hash)));
    assert_eq!(
        s.pending_count().must("pending_count"),
        0,
        "the stray stayed parked"
    );
    let forks = s.forks().must("forks");
    assert!(
        forks.iter().any(|f| f.author == b.pk()
            && f.seq == 3
            && f.other == stray.hash
            && f.held == b2.hash
            && f.kind == "prev_mismatch"),
        "a promoted event that does not link is fork evidence: {forks:?}"
    );
}

/// A session with a carrier records forks (same seq: `same_seq`; wrong prev: `prev_mismatch`)
/// with the carrier; `forks`, `fork_lines` (exact stored lines) and `forked_authors` list them
/// in order; the same evidence twice is kept once; the log is untouched.
pub fn import_records_forks_with_carrier(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let carrier = InstanceId::of(&pk(90));
    let (mut a, mut b) = (Feed::new(1), Feed::new(2));
    let (a1, a2) = (a.post("a1"), a.post("a2"));
    let b1 = b.post("b1");
    s.append(&[a1.clone(), a2.clone(), b1.clone()])
        .must("append");
    assert!(s.forks().must("forks").is_empty());
    assert!(s.forked_authors().must("forked_authors").is_empty());

    let a2_other = signed(&a.sk, 2, Some(a1.hash), "POST", T0, json!({"text": "a2'"}));
    let a3_wrong = signed(
        &a.sk,
        3,
        Some(absent("x")),
        "POST",
        T0,
        json!({"text": "a3'"}),
    );
    let b1_other = signed(&b.sk, 1, None, "POST", T0, json!({"text": "b1'"}));
    {
        let mut session = s.begin_import(Some(&carrier)).must("begin_import");
        let r = session
            .add(&[a2_other.clone(), a3_wrong.clone()])
            .must("add forks");
        assert_eq!(
            r.outcomes,
            [
                Outcome::Fork { existing: a2.hash },
                Outcome::PrevMismatch {
                    head_hash: Some(a2.hash)
                }
            ]
        );
        session.commit().must("commit");
    }
    let r = s
        .import_batch(std::slice::from_ref(&b1_other), None)
        .must("import b fork");
    assert_eq!(r.outcomes, [Outcome::Fork { existing: b1.hash }]);
    // Again: nothing new.
    s.import_batch(&[a2_other.clone(), b1_other.clone()], Some(&carrier))
        .must("import forks again");

    let mut expected = vec![
        (a.pk(), 2, a2.hash, a2_other.hash, "same_seq", Some(carrier)),
        (
            a.pk(),
            3,
            a2.hash,
            a3_wrong.hash,
            "prev_mismatch",
            Some(carrier),
        ),
        (b.pk(), 1, b1.hash, b1_other.hash, "same_seq", None),
    ];
    expected.sort_by_key(|e| (e.0, e.1));
    let got: Vec<_> = s
        .forks()
        .must("forks")
        .into_iter()
        .map(|f| (f.author, f.seq, f.held, f.other, f.kind, f.carrier))
        .collect();
    let got: Vec<_> = got
        .iter()
        .map(|(a, q, h, o, k, c)| (*a, *q, *h, *o, k.as_str(), *c))
        .collect();
    assert_eq!(got, expected, "forks(), by author and seq");

    let lines = s.fork_lines(&a.pk()).must("fork_lines");
    assert_eq!(
        lines,
        vec![
            (2, a2_other.hash, a2_other.to_line()),
            (3, a3_wrong.hash, a3_wrong.to_line())
        ],
        "fork_lines: the conflicting events' lines, by seq"
    );
    let mut authors = vec![a.pk(), b.pk()];
    authors.sort();
    assert_eq!(s.forked_authors().must("forked_authors"), authors);
    assert!(s.fork_lines(&pk(9)).must("fork_lines").is_empty());
    assert_eq!(s.head(&a.pk()).must("head"), Some((seq(2), a2.hash)));
    assert_eq!(
        s.stats().must("stats"),
        LogStats {
            events: 3,
            feeds: 2
        }
    );
    assert_eq!(
        s.get(&a2_other.hash).must("get"),
        None,
        "a fork entered the log"
    );
}

/// An event stored withheld is completed by a copy with its payload (Outcome::Filled, through
/// a session or a plain append): the views show it, its `withheld` skip record goes,
/// `stored_hashes` lists it; a second copy, or a withheld copy, changes nothing.
pub fn import_fills_withheld_payloads(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let (a1, a2) = (a.post("first"), a.post("second"));
    let a3 = a.like(&a1.hash);
    s.follow(&a.pk()).must("follow");
    s.append(&[a1.without_payload(), a2.clone(), a3.without_payload()])
        .must("append withheld");
    let timeline = |s: &dyn Store| -> Vec<Hash> {
        s.timeline(None, None, 10)
            .must("timeline")
            .iter()
            .map(|i| i.hash)
            .collect()
    };
    assert_eq!(
        timeline(&*s),
        vec![a2.hash],
        "a withheld post is in the timeline"
    );
    let skipped: Vec<(Hash, String)> = s
        .skipped()
        .must("skipped")
        .into_iter()
        .map(|k| (k.hash, k.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![(a1.hash, "withheld".into()), (a3.hash, "withheld".into())]
    );
    assert_eq!(
        s.stored_hashes(&a.pk(), 1, 3).must("stored_hashes"),
        vec![(2, a2.hash)]
    );

    {
        let mut session = s.begin_import(None).must("begin_import");
        let r = session.add(std::slice::from_ref(&a1)).must("add a1");
        assert_eq!(r.outcomes, [Outcome::Filled]);
        session.commit().must("commit");
    }
    assert_eq!(
        s.append(std::slice::from_ref(&a3)).must("append a3"),
        [Outcome::Filled]
    );

    assert_eq!(
        timeline(&*s),
        vec![a2.hash, a1.hash],
        "the filled post shows"
    );
    assert_eq!(
        s.likers(&a1.hash).must("likers"),
        vec![a.pk()],
        "the filled like counts"
    );
    assert!(
        s.skipped().must("skipped").is_empty(),
        "skip records of filled events remain"
    );
    assert_eq!(
        s.stored_hashes(&a.pk(), 1, 3).must("stored_hashes"),
        vec![(1, a1.hash), (2, a2.hash), (3, a3.hash)]
    );
    assert_eq!(s.get(&a1.hash).must("get").as_ref(), Some(&*a1));
    let views = digests(s);

    let r = s
        .import_batch(&[a1.clone(), a1.without_payload()], None)
        .must("import copies");
    assert_eq!(r.outcomes, [Outcome::Duplicate, Outcome::Duplicate]);
    assert_eq!(
        s.append(&[a3.without_payload()]).must("append"),
        [Outcome::Duplicate]
    );
    assert_eq!(
        s.get(&a1.hash).must("get").as_ref(),
        Some(&*a1),
        "a withheld copy erased the payload"
    );
    assert_eq!(digests(s), views, "copies changed the views");
    assert_views_check(s, "after fills");
}

/// A session dropped without commit leaves nothing: no event, head, pending event, fork
/// evidence, filled payload or view row; the store takes a new session afterwards.
pub fn import_rolls_back_on_drop(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (mut a, b) = (Feed::new(1), Feed::new(2));
    let (a1, a2, a3) = (a.post("a1"), a.post("a2"), a.post("a3"));
    let withheld = a.post("a4");
    let b2 = signed(
        &b.sk,
        2,
        Some(absent("b1")),
        "POST",
        T0,
        json!({"text": "b2"}),
    );
    let fork = signed(&a.sk, 1, None, "POST", T0, json!({"text": "a1'"}));
    s.follow(&a.pk()).must("follow");
    s.append(std::slice::from_ref(&a1)).must("append a1");
    let before = (
        s.clock().must("clock"),
        s.stats().must("stats"),
        digests(s),
        s.pending_count().must("pending_count"),
    );
    {
        let mut session = s
            .begin_import(Some(&InstanceId::of(&pk(90))))
            .must("begin_import");
        let r = session
            .add(&[a2.clone(), a3.clone(), b2.clone(), fork.clone()])
            .must("add");
        assert_eq!(
            r.outcomes,
            [
                Outcome::Inserted,
                Outcome::Inserted,
                Outcome::Gap { head: 0 },
                Outcome::Fork { existing: a1.hash }
            ]
        );
        session
            .add(&[withheld.without_payload()])
            .must("add withheld");
        session
            .add(std::slice::from_ref(&withheld))
            .must("add fill");
        // Dropped here, uncommitted.
    }
    let after = (
        s.clock().must("clock"),
        s.stats().must("stats"),
        digests(s),
        s.pending_count().must("pending_count"),
    );
    assert_eq!(
        after, before,
        "an uncommitted session left (clock, stats, views, pending)"
    );
    assert_eq!(s.head(&a.pk()).must("head"), Some((seq(1), a1.hash)));
    assert_eq!(s.get(&a2.hash).must("get"), None);
    assert!(
        s.forks().must("forks").is_empty(),
        "fork evidence of an uncommitted session"
    );
    assert_eq!(s.timeline(None, None, 10).must("timeline").len(), 1);

    let r = s
        .import_batch(std::slice::from_ref(&a2), None)
        .must("import after rollback");
    assert_eq!(r.outcomes, [Outcome::Inserted]);
}

/// `import_batch` is a session of its own, committed; `bulk_mode` on and off changes no
/// result.
pub fn import_batch_and_bulk_mode(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let ev: Vec<_> = (1..=4).map(|i| a.post(&format!("a{i}"))).collect();
    s.bulk_mode(true).must("bulk_mode on");
    let r = s
        .import_batch(&[ev[1].clone(), ev[0].clone(), ev[3].clone()], None)
        .must("import_batch");
    assert_eq!(
        r.outcomes,
        [
            Outcome::Gap { head: 0 },
            Outcome::Inserted,
            Outcome::Gap { head: 1 }
        ]
    );
    assert_eq!(r.promoted, 1);
    s.bulk_mode(false).must("bulk_mode off");
    let r = s.import_batch(&[ev[2].clone()], None).must("import_batch");
    assert_eq!((r.outcomes, r.promoted), (vec![Outcome::Inserted], 1));
    assert_eq!(s.head(&a.pk()).must("head"), Some((seq(4), ev[3].hash)));
    assert_eq!(s.pending_count().must("pending_count"), 0);
}

/// `reader()` is a second handle on the same data: it sees what the first commits (appends,
/// sessions, follows), never what a session has not committed yet, and its own writes are
/// seen by the first.
pub fn import_reader_sees_committed_writes(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let (a1, a2) = (a.post("a1"), a.post("a2"));
    let r = s.reader().must("reader");
    assert_eq!(r.head(&a.pk()).must("reader head"), None);
    s.append(std::slice::from_ref(&a1)).must("append");
    assert_eq!(r.get(&a1.hash).must("reader get").as_ref(), Some(&*a1));
    assert_eq!(r.head(&a.pk()).must("reader head"), Some((seq(1), a1.hash)));
    {
        let mut session = s.begin_import(None).must("begin_import");
        session.add(std::slice::from_ref(&a2)).must("add");
        assert_eq!(
            r.get(&a2.hash).must("reader get"),
            None,
            "uncommitted write visible"
        );
        assert_eq!(r.head(&a.pk()).must("reader head"), Some((seq(1), a1.hash)));
        session.commit().must("commit");
    }
    assert_eq!(r.get(&a2.hash).must("reader get").as_ref(), Some(&*a2));
    assert_eq!(r.clock().must("reader clock"), s.clock().must("clock"));
    assert_eq!(
        r.stats().must("reader stats"),
        LogStats {
            events: 2,
            feeds: 1
        }
    );
    let mut r = r;
    assert!(r.follow(&a.pk()).must("reader follow"));
    assert_eq!(
        s.follows().must("follows"),
        vec![a.pk()],
        "a write through the reader"
    );
}
