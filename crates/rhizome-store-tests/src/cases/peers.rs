//! [`PeerStore`](rhizome_store::PeerStore): peers, their `sent` and `acked` clocks, what they
//! publish, trust, and blocked authors (hidden from the views, kept in the tables).

use std::collections::{BTreeSet, HashSet};

use rhizome_core::privacy::HostDeclaration;
use rhizome_core::{Clock, InstanceId, PublicKey, Seq};
use rhizome_store::prelude::*;
use rhizome_store::{Direction, Peer, Trust};

use crate::fixture::*;
use crate::Factory;

fn clock(entries: &[(u8, u64)]) -> Clock {
    let mut c = Clock::new();
    for (n, s) in entries {
        c.set(pk(*n), Seq::new(*s).must("seq"));
    }
    c
}

fn peer(s: &dyn Store, id: &InstanceId) -> Peer {
    s.peer(id)
        .must("peer")
        .unwrap_or_else(|| panic!("peer {id} unknown"))
}

/// `record_exchange` creates the peer (trust unknown), refreshes its name, merges `sent` on
/// export (never lowering it), replaces `acked` on import, and records the last time, method
/// and direction; `peers` lists by name; `peer` finds one or `None`.
pub fn peers_record_exchange_clocks(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (hub, id) = (pk(50), InstanceId::of(&pk(50)));
    assert!(s.peers().must("peers").is_empty());
    assert!(s.peer(&id).must("peer").is_none());

    s.record_exchange(
        &hub,
        "hub",
        Direction::Export,
        &clock(&[(1, 3), (2, 1)]),
        T0,
        "usb",
    )
    .must("record export");
    let p = peer(s, &id);
    assert_eq!(
        (p.instance_id, p.public_key, p.name.as_str(), p.trust),
        (id, hub, "hub", Trust::Unknown),
        "peer created by its first exchange"
    );
    assert_eq!(p.sent, clock(&[(1, 3), (2, 1)]));
    assert!(p.acked.is_empty(), "acked set by an export");
    assert_eq!(
        (
            p.last_exchange_at,
            p.last_method.as_deref(),
            p.last_direction.as_deref()
        ),
        (Some(T0), Some("usb"), Some("export"))
    );
    assert_eq!(p.age_recipient, None);

    s.record_exchange(
        &hub,
        "hub",
        Direction::Export,
        &clock(&[(1, 2), (3, 5)]),
        T0 + 1,
        "usb",
    )
    .must("record export");
    assert_eq!(
        peer(s, &id).sent,
        clock(&[(1, 3), (2, 1), (3, 5)]),
        "sent is merged (entry-wise maximum)"
    );

    s.record_exchange(
        &hub,
        "hub 2",
        Direction::Import,
        &clock(&[(1, 1)]),
        T0 + 2,
        "https",
    )
    .must("record import");
    s.record_exchange(
        &hub,
        "hub 2",
        Direction::Import,
        &clock(&[(2, 2)]),
        T0 + 3,
        "https",
    )
    .must("record import");
    let p = peer(s, &id);
    assert_eq!(
        p.acked,
        clock(&[(2, 2)]),
        "acked is replaced by each import"
    );
    assert_eq!(
        p.sent,
        clock(&[(1, 3), (2, 1), (3, 5)]),
        "an import changed sent"
    );
    assert_eq!(
        (
            p.name.as_str(),
            p.last_exchange_at,
            p.last_method.as_deref(),
            p.last_direction.as_deref()
        ),
        ("hub 2", Some(T0 + 3), Some("https"), Some("import"))
    );

    s.record_exchange(
        &pk(51),
        "alpha",
        Direction::Import,
        &Clock::new(),
        T0,
        "usb",
    )
    .must("record other");
    let names: Vec<String> = s
        .peers()
        .must("peers")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alpha", "hub 2"], "peers by name");
}

/// `record_publications` keeps a known peer's age recipient (`None` keeps the one known) and
/// the authors it hosts, from declarations naming that instance only; `peer_hosts` lists them.
pub fn peers_publications(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (p_key, other_key) = (pk(50), pk(51));
    let (p, other) = (InstanceId::of(&p_key), InstanceId::of(&other_key));
    s.record_exchange(&p_key, "p", Direction::Import, &Clock::new(), T0, "usb")
        .must("record p");
    s.record_exchange(
        &other_key,
        "other",
        Direction::Import,
        &Clock::new(),
        T0,
        "usb",
    )
    .must("record other");
    assert!(s.peer_hosts(&p).must("peer_hosts").is_empty());

    let recipient = "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq";
    let hosts = [
        HostDeclaration::sign(&key(21), p, T0 + 10),
        HostDeclaration::sign(&key(22), p, T0 + 10),
        HostDeclaration::sign(&key(23), other, T0 + 10),
    ];
    s.record_publications(&p, Some(recipient), &hosts)
        .must("record_publications");
    assert_eq!(peer(s, &p).age_recipient.as_deref(), Some(recipient));
    assert_eq!(
        peer(s, &other).age_recipient,
        None,
        "recipient given to the wrong peer"
    );
    assert_eq!(
        s.peer_hosts(&p).must("peer_hosts"),
        HashSet::from([pk(21), pk(22)]),
        "a declaration naming another instance was kept"
    );
    assert!(s.peer_hosts(&other).must("peer_hosts").is_empty());

    // An older declaration again, and a newer one: still the same authors.
    let again = [
        HostDeclaration::sign(&key(21), p, T0),
        HostDeclaration::sign(&key(22), p, T0 + 20),
    ];
    s.record_publications(&p, None, &again)
        .must("record_publications");
    assert_eq!(
        peer(s, &p).age_recipient.as_deref(),
        Some(recipient),
        "None cleared the recipient"
    );
    assert_eq!(
        s.peer_hosts(&p).must("peer_hosts"),
        HashSet::from([pk(21), pk(22)])
    );
    assert!(s
        .peer_hosts(&InstanceId::of(&pk(52)))
        .must("peer_hosts")
        .is_empty());
}

/// `add_peer` makes a peer known with a trust (again: renames and re-trusts, no duplicate);
/// `set_trust` changes it, and is false for an unknown peer; exchanges keep the trust.
pub fn peers_add_and_trust(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (k, id) = (pk(50), InstanceId::of(&pk(50)));
    assert!(
        !s.set_trust(&id, Trust::Trusted).must("set_trust"),
        "trust set on an unknown peer"
    );
    assert!(
        s.peers().must("peers").is_empty(),
        "set_trust created a peer"
    );

    s.add_peer(&k, "school", Trust::Trusted).must("add_peer");
    let p = peer(s, &id);
    assert_eq!(
        (p.name.as_str(), p.trust, p.public_key),
        ("school", Trust::Trusted, k)
    );
    assert!(p.sent.is_empty() && p.acked.is_empty());
    assert_eq!(
        (p.last_exchange_at, p.last_method, p.last_direction),
        (None, None, None)
    );

    s.add_peer(&k, "school 2", Trust::Blocked)
        .must("add_peer again");
    let all = s.peers().must("peers");
    assert_eq!(all.len(), 1, "add_peer twice made two peers");
    assert_eq!(
        (all[0].name.as_str(), all[0].trust),
        ("school 2", Trust::Blocked)
    );

    assert!(s.set_trust(&id, Trust::Unknown).must("set_trust"));
    assert_eq!(peer(s, &id).trust, Trust::Unknown);
    assert!(s.set_trust(&id, Trust::Trusted).must("set_trust"));
    s.record_exchange(
        &k,
        "school 3",
        Direction::Import,
        &clock(&[(1, 1)]),
        T0,
        "usb",
    )
    .must("record_exchange");
    assert_eq!(
        peer(s, &id).trust,
        Trust::Trusted,
        "an exchange changed the trust"
    );
}

/// Blocking an author: `block_author`/`unblock_author` say whether they changed anything;
/// `blocked_authors` lists them; a blocked author's events vanish from timeline (and its
/// counts), thread (with the replies below theirs), likers and tags, but stay in the log and
/// the view tables (digests unchanged, check ok); unblocking brings everything back.
pub fn peers_blocked_authors_hidden_from_views(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (mut a, mut b, mut c) = (Feed::new(1), Feed::new(2), Feed::new(3));
    let p = a.post("a's post");
    let b_post = b.post("b's post");
    let b_reply = b.comment(&p.hash, "b replies");
    let c_under_b = c.comment(&b_reply.hash, "c replies to b");
    let c_reply = c.comment(&p.hash, "c replies");
    b.like(&p.hash);
    c.like(&p.hash);
    b.tag(&p.hash, "from-b");
    c.tag(&p.hash, "from-c");
    b.add("RESHARE", serde_json::json!({"target": p.hash.to_hex()}));
    for f in [&a, &b, &c] {
        s.append(&f.events).must("append");
        s.follow(&f.pk()).must("follow");
    }
    assert!(s.blocked_authors().must("blocked_authors").is_empty());

    struct Seen {
        timeline: Vec<(PublicKey, u64, u64)>,
        thread: BTreeSet<rhizome_core::Hash>,
        likers: Vec<PublicKey>,
        tag_counts: Vec<(String, u64)>,
        tagged: usize,
        tags_of: Vec<String>,
    }
    let seen = |s: &dyn Store| Seen {
        timeline: s
            .timeline(None, None, 100)
            .must("timeline")
            .iter()
            .map(|i| (i.author, i.likes, i.replies))
            .collect(),
        thread: s
            .thread(&p.hash)
            .must("thread")
            .iter()
            .map(|r| r.hash)
            .collect(),
        likers: s.likers(&p.hash).must("likers"),
        tag_counts: s.tag_counts().must("tag_counts"),
        tagged: s.tagged("from-b").must("tagged").len(),
        tags_of: s.tags_of(&p.hash).must("tags_of"),
    };
    let before = seen(&*s);
    assert_eq!(
        before.thread,
        BTreeSet::from([b_reply.hash, c_under_b.hash, c_reply.hash])
    );
    let (views, stats) = (digests(s), s.stats().must("stats"));

    assert!(s.block_author(&b.pk()).must("block"), "first block");
    assert!(
        !s.block_author(&b.pk()).must("block"),
        "second block reported a change"
    );
    assert_eq!(
        s.blocked_authors().must("blocked_authors"),
        BTreeSet::from([b.pk()])
    );
    let blocked = seen(&*s);
    assert!(
        blocked
            .timeline
            .iter()
            .all(|(author, _, _)| *author != b.pk()),
        "a blocked author's posts or reshares in the timeline"
    );
    assert_eq!(
        blocked
            .timeline
            .iter()
            .find(|(author, _, _)| *author == a.pk())
            .map(|t| (t.1, t.2)),
        Some((1, 1)),
        "a's post counts only c's like and reply"
    );
    assert_eq!(
        blocked.thread,
        BTreeSet::from([c_reply.hash]),
        "a blocked author's reply, and the replies below it, in the thread"
    );
    assert_eq!(blocked.likers, vec![c.pk()]);
    assert_eq!(blocked.tag_counts, vec![("from-c".to_string(), 1)]);
    assert_eq!(blocked.tagged, 0);
    assert_eq!(blocked.tags_of, ["from-c"]);
    assert_eq!(digests(s), views, "blocking changed the view tables");
    assert_eq!(s.stats().must("stats"), stats, "blocking changed the log");
    assert_eq!(s.get(&b_post.hash).must("get").as_ref(), Some(&*b_post));
    assert_views_check(s, "with a blocked author");

    assert!(s.unblock_author(&b.pk()).must("unblock"));
    assert!(
        !s.unblock_author(&b.pk()).must("unblock"),
        "second unblock reported a change"
    );
    assert!(s.blocked_authors().must("blocked_authors").is_empty());
    let after = seen(&*s);
    assert_eq!(after.timeline, before.timeline, "timeline after unblocking");
    assert_eq!(after.thread, before.thread);
    assert_eq!(after.likers, before.likers);
    assert_eq!(after.tag_counts, before.tag_counts);
    assert_eq!(after.tagged, before.tagged);
    assert_eq!(after.tags_of, before.tags_of);
}

/// An instance can be blocked by its id alone, before any of its bundles arrived: `trust_of`
/// says `Blocked` (and `None` for an id never seen), `set_trust(Unknown)` lifts it, and a known
/// peer's trust is its own.
pub fn peers_block_by_id(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (k, id) = (pk(60), InstanceId::of(&pk(60)));
    let never = InstanceId::of(&pk(61));
    assert_eq!(s.trust_of(&never).must("trust_of"), None);
    s.block_instance(&id).must("block_instance");
    s.block_instance(&id).must("block_instance twice");
    assert_eq!(s.trust_of(&id).must("trust_of"), Some(Trust::Blocked));
    assert!(
        s.peers().must("peers").is_empty(),
        "blocking by id made a peer"
    );
    assert!(
        !s.set_trust(&id, Trust::Unknown).must("set_trust"),
        "an instance blocked by id is not a known peer"
    );
    assert_eq!(s.trust_of(&id).must("trust_of"), None, "unblock lifts it");

    s.add_peer(&k, "school", Trust::Trusted).must("add_peer");
    assert_eq!(s.trust_of(&id).must("trust_of"), Some(Trust::Trusted));
    s.block_instance(&id).must("block_instance of a known peer");
    assert_eq!(
        s.trust_of(&id).must("trust_of"),
        Some(Trust::Blocked),
        "a block by id wins over a known peer's trust"
    );
    assert!(s.set_trust(&id, Trust::Unknown).must("set_trust"));
    assert_eq!(s.trust_of(&id).must("trust_of"), Some(Trust::Unknown));
}
