//! [`QuarantineStore`](rhizome_store::QuarantineStore): blobs named by their SHA-256, and the
//! records of held bundles.

use std::io::{Read, Write};

use rhizome_core::{Hash, InstanceId};
use rhizome_store::prelude::*;
use rhizome_store::{BlobId, Held};
use sha2::{Digest, Sha256};

use crate::fixture::*;
use crate::Factory;

fn store_blob(s: &dyn Store, pieces: &[&[u8]]) -> BlobId {
    let mut sink = s.blob_sink().must("blob_sink");
    for p in pieces {
        sink.write_all(p).must("writing a blob");
    }
    sink.flush().must("flushing a blob");
    sink.finish().must("finishing a blob")
}

fn read_blob(s: &dyn Store, id: &BlobId) -> Vec<u8> {
    let mut out = Vec::new();
    s.open_blob(id)
        .must("open_blob")
        .read_to_end(&mut out)
        .must("reading a blob");
    out
}

/// A blob written in pieces gets the SHA-256 of its bytes as id and reads back the same; the
/// same bytes again give the same id; an empty blob works; `delete_blob` removes it (then
/// `open_blob` fails) and is a no-op when absent.
pub fn quarantine_blob_round_trip(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let bytes = b"{\"format\":\"rhizome-bundle/1\"}\nline one\nline two\n";
    let id = store_blob(s, &[&bytes[..10], &bytes[10..11], &bytes[11..]]);
    assert_eq!(
        id,
        BlobId(Hash::digest(bytes)),
        "blob id is the SHA-256 of the bytes"
    );
    assert_eq!(read_blob(s, &id), bytes, "blob read back");
    assert_eq!(store_blob(s, &[bytes]), id, "same bytes, same id");
    let other = store_blob(s, &[b"another"]);
    assert_ne!(other, id);

    let empty = store_blob(s, &[]);
    assert_eq!(empty, BlobId(Hash::digest(b"")));
    assert!(read_blob(s, &empty).is_empty());

    s.delete_blob(&id).must("delete_blob");
    assert!(s.open_blob(&id).is_err(), "a deleted blob still opens");
    s.delete_blob(&id).must("delete_blob of an absent blob");
    assert_eq!(
        read_blob(s, &other),
        b"another",
        "deleting one blob touched another"
    );
    assert!(
        s.open_blob(&BlobId(absent("blob"))).is_err(),
        "a blob never stored opens"
    );
}

/// A 20 MiB blob written in 64 KiB pieces keeps its exact bytes (compared by SHA-256 and
/// length while streaming back).
pub fn quarantine_large_blob(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    const PIECE: usize = 64 * 1024;
    const PIECES: usize = 320;
    let mut block = vec![0u8; PIECE];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut hasher = Sha256::new();
    let mut sink = s.blob_sink().must("blob_sink");
    for i in 0..PIECES {
        block[..8].copy_from_slice(&(i as u64).to_be_bytes());
        hasher.update(&block);
        sink.write_all(&block).must("writing a large blob");
    }
    let id = sink.finish().must("finishing a large blob");
    let expected = BlobId(Hash::from_bytes(hasher.finalize().into()));
    assert_eq!(id, expected, "id of a 20 MiB blob");

    let mut reader = s.open_blob(&id).must("open_blob");
    let (mut back, mut len, mut buf) = (Sha256::new(), 0usize, vec![0u8; 100_000]);
    loop {
        let n = reader.read(&mut buf).must("reading a large blob");
        if n == 0 {
            break;
        }
        back.update(&buf[..n]);
        len += n;
    }
    assert_eq!(len, PIECE * PIECES, "length read back");
    assert_eq!(
        BlobId(Hash::from_bytes(back.finalize().into())),
        expected,
        "bytes read back"
    );
}

/// A sink dropped before `finish` stores nothing: its bytes cannot be opened by their id,
/// and the same bytes written again finish normally.
pub fn quarantine_unfinished_sink(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let bytes = b"half a bundle, then the stick was pulled";
    let id = BlobId(Hash::digest(bytes));
    {
        let mut sink = s.blob_sink().must("blob_sink");
        sink.write_all(bytes).must("writing");
        sink.flush().must("flushing");
    }
    assert!(
        s.open_blob(&id).is_err(),
        "an unfinished blob can be opened"
    );
    assert_eq!(store_blob(s, &[bytes]), id);
    assert_eq!(read_blob(s, &id), bytes);
}

fn held(id: &str, n: u8, arrived_at: u64, blob: Option<&[u8]>) -> Held {
    // Every other instance's bundle arrived truncated.
    let incomplete = (n % 2 == 1).then(|| "truncated: no trailer".to_string());
    Held {
        id: id.into(),
        instance_id: InstanceId::of(&pk(n)),
        public_key: pk(n),
        name: format!("instance {n}"),
        events: 1000 + u64::from(n),
        feeds: 3,
        invalid: 2,
        arrived_at,
        blob: blob.map(|b| BlobId(Hash::digest(b))),
        incomplete,
    }
}

fn json(h: &[Held]) -> serde_json::Value {
    serde_json::to_value(h).must("serializing held records")
}

/// `hold` records a held bundle (false, and nothing changed, when the id is taken); `held`
/// returns every field (`incomplete` both set and unset), oldest first; `release` forgets one (false when absent).
pub fn quarantine_hold_held_release(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    assert!(s.held().must("held").is_empty());
    let (first, second) = (
        held("0123456789abcdef", 50, T0 + 200, Some(b"1")),
        // Held by a Rhizome before blobs: no blob id.
        held("fedcba9876543210", 51, T0 + 100, None),
    );
    assert!(s.hold(&first).must("hold"), "first hold");
    assert!(s.hold(&second).must("hold"));
    let clash = held("0123456789abcdef", 52, T0 + 300, Some(b"elsewhere"));
    assert!(!s.hold(&clash).must("hold"), "a taken id was held again");
    assert_eq!(
        json(&s.held().must("held")),
        json(&[second.clone(), first.clone()]),
        "held, oldest first, every field"
    );
    assert!(s.release(&first.id).must("release"));
    assert!(
        !s.release(&first.id).must("release"),
        "second release reported a change"
    );
    assert!(!s.release("nope").must("release"));
    assert_eq!(json(&s.held().must("held")), json(&[second]));
}
