//! [`KeyStore`](rhizome_store::KeyStore): the identity, local authors, host declarations.

use rhizome_core::privacy::HostDeclaration;
use rhizome_core::sealed::plain;
use rhizome_core::InstanceId;
use rhizome_store::StoreError;

use crate::fixture::*;
use crate::Factory;

/// `init` creates the identity and default author once (then `AlreadyInitialized`, nothing
/// changed); `add_author` refuses a taken name (`AuthorExists`); `authors` lists the default
/// first, then by name; `author(None | name)` finds them or says `NotInitialized` /
/// `UnknownAuthor`; local authors are followed.
pub fn keys_init_identity_and_authors(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let v = s.schema_version().must("schema_version");
    assert!(
        v >= 1,
        "schema_version of a fresh store is {v}, expected >= 1"
    );
    assert!(
        matches!(s.identity(), Err(StoreError::NotInitialized)),
        "identity() of an empty store: {:?}",
        s.identity().map(|i| i.name)
    );
    assert!(
        matches!(s.author(None), Err(StoreError::NotInitialized)),
        "author(None) of an empty store: {:?}",
        s.author(None).map(|a| a.name)
    );
    assert!(
        s.authors().must("authors").is_empty(),
        "authors of an empty store"
    );

    let id = identity(1, "village school");
    s.init(&id, &local_author("zoe", 11, true)).must("init");
    let got = s.identity().must("identity");
    assert_eq!(
        (&got.name, got.public_key, &got.secret, got.created_at),
        (&id.name, id.public_key, &id.secret, id.created_at),
        "identity read back"
    );

    match s.init(&identity(2, "other"), &local_author("max", 13, true)) {
        Err(StoreError::AlreadyInitialized) => {}
        other => panic!("second init: expected AlreadyInitialized, got {other:?}"),
    }
    assert_eq!(s.identity().must("identity").name, "village school");
    assert_eq!(
        s.authors().must("authors").len(),
        1,
        "a refused init added its author"
    );

    s.add_author(&local_author("bo", 12, false))
        .must("add_author bo");
    s.add_author(&local_author("ana", 14, false))
        .must("add_author ana");
    match s.add_author(&local_author("bo", 15, false)) {
        Err(StoreError::AuthorExists(name)) => assert_eq!(name, "bo"),
        other => panic!("add_author with a taken name: expected AuthorExists, got {other:?}"),
    }

    let all = s.authors().must("authors");
    let summary: Vec<_> = all
        .iter()
        .map(|a| (a.name.as_str(), a.public_key, a.is_default))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("zoe", pk(11), true),
            ("ana", pk(14), false),
            ("bo", pk(12), false)
        ],
        "authors(): the default first, then by name"
    );
    assert_eq!(
        all[1].secret,
        plain(&key(14)),
        "ana's stored secret read back"
    );

    assert_eq!(s.author(None).must("author(None)").name, "zoe");
    assert_eq!(s.author(Some("bo")).must("author(bo)").public_key, pk(12));
    match s.author(Some("cy")) {
        Err(StoreError::UnknownAuthor(name)) => assert_eq!(name, "cy"),
        other => panic!(
            "author(cy): expected UnknownAuthor, got {:?}",
            other.map(|a| a.name)
        ),
    }

    let follows = s.follows().must("follows");
    for n in [11, 12, 14] {
        assert!(
            follows.contains(&pk(n)),
            "local author {n} is not followed: {follows:?}"
        );
    }
    assert!(
        !follows.contains(&pk(15)) && !follows.contains(&pk(13)),
        "a refused author is followed: {follows:?}"
    );
}

/// `add_local_host` stores one declaration per author, a new one replacing the old;
/// `local_hosts` returns them exactly (signature included).
pub fn keys_local_hosts_replace_per_author(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    assert!(s.local_hosts().must("local_hosts").is_empty());
    let here = InstanceId::of(&pk(1));
    let a_old = HostDeclaration::sign(&key(21), here, T0);
    let b = HostDeclaration::sign(&key(22), here, T0 + 5);
    s.add_local_host(&a_old).must("add_local_host a");
    s.add_local_host(&b).must("add_local_host b");
    let sorted = |mut v: Vec<HostDeclaration>| {
        v.sort_by_key(|d| d.author);
        v
    };
    assert_eq!(
        sorted(s.local_hosts().must("local_hosts")),
        sorted(vec![a_old.clone(), b.clone()]),
        "both declarations read back exactly"
    );
    let a_new = HostDeclaration::sign(&key(21), here, T0 + 10);
    s.add_local_host(&a_new).must("add_local_host a again");
    let got = sorted(s.local_hosts().must("local_hosts"));
    assert_eq!(
        got,
        sorted(vec![a_new, b]),
        "a second declaration by the same author replaces the first"
    );
    for d in &got {
        d.verify(&here)
            .unwrap_or_else(|e| panic!("stored declaration no longer verifies: {e}"));
    }
}
