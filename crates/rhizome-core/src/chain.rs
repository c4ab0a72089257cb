//! The chain rules (PROTOCOL 4.3), decided once for every backend and every reader: where an
//! event falls against its feed's head, and whether a walk of a feed in seq order is a chain.
//! Pure functions of values; the store supplies the head and, when needed, the stored hash.

use crate::event::Header;
use crate::ids::Hash;
use crate::keys::PublicKey;

/// Where an event falls against the head of its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// seq = head + 1 and prev = head hash: it extends the feed.
    Extends,
    /// seq ≤ head: the same event again, or another one at a held position (a fork). Which of
    /// the two is decided by [`at_held_position`] once the stored hash is known.
    Held,
    /// seq > head + 1: earlier events are missing.
    Gap {
        /// Highest contiguous seq held.
        head: u64,
    },
    /// seq = head + 1 but prev is not the head's hash: another history (a fork).
    PrevMismatch {
        /// Hash of the head held.
        head_hash: Option<Hash>,
    },
}

/// Where `header` falls against a feed whose head is `head_seq` (0 for an empty feed) with
/// hash `head_hash`.
pub fn link(head_seq: u64, head_hash: Option<&Hash>, header: &Header) -> Link {
    let seq = header.seq.get();
    if seq <= head_seq {
        Link::Held
    } else if seq > head_seq + 1 {
        Link::Gap { head: head_seq }
    } else if header.prev.as_ref() != head_hash {
        Link::PrevMismatch {
            head_hash: head_hash.copied(),
        }
    } else {
        Link::Extends
    }
}

/// An event at a position the feed already holds: the same event, or a fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtHeld {
    /// The stored event has this hash: a duplicate (which may bring a withheld payload).
    Same,
    /// Another event is stored there: an equivocation.
    Fork {
        /// Hash of the stored event.
        existing: Hash,
    },
}

/// Decides [`Link::Held`] once the hash stored at that position is known.
pub fn at_held_position(stored: Hash, incoming: &Hash) -> AtHeld {
    if stored == *incoming {
        AtHeld::Same
    } else {
        AtHeld::Fork { existing: stored }
    }
}

/// Checks a walk over stored events, feed after feed and each feed in seq order, against the
/// chain rules: every feed starts at seq 1 and each event's prev is the hash of the one before.
#[derive(Debug, Default)]
pub struct ChainWalk {
    feed: Option<PublicKey>,
    last_seq: u64,
    last_hash: Option<Hash>,
}

impl ChainWalk {
    /// Takes the next event of the walk (its header and hash); says what is wrong, if anything.
    pub fn next(&mut self, header: &Header, hash: &Hash) -> Option<String> {
        if self.feed != Some(header.author) {
            *self = ChainWalk {
                feed: Some(header.author),
                ..Default::default()
            };
        }
        let problem = match link(self.last_seq, self.last_hash.as_ref(), header) {
            Link::Extends => None,
            Link::Held | Link::Gap { .. } => Some(format!(
                "seq {} follows seq {} (gap or repeat)",
                header.seq, self.last_seq
            )),
            Link::PrevMismatch { .. } => Some(format!(
                "prev is {} but the event before it has hash {}",
                header.prev.map_or("null".into(), |p| p.to_hex()),
                self.last_hash.map_or("null".into(), |p| p.to_hex())
            )),
        };
        self.last_seq = header.seq.get();
        self.last_hash = Some(*hash);
        problem
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use crate::{SecretKey, Seq, Timestamp};

    fn header(seq: u64, prev: Option<Hash>) -> Header {
        Header {
            author: SecretKey::from_seed(&[7; 32]).public_key(),
            seq: Seq::new(seq).unwrap(),
            prev,
            kind: EventType::new("POST").unwrap(),
            timestamp: Timestamp::new(1).unwrap(),
            payload_hash: Hash::digest(b"{}"),
            payload_size: 2,
        }
    }

    #[test]
    fn link_covers_every_position() {
        let h1 = Hash::digest(b"1");
        let other = Hash::digest(b"x");
        assert_eq!(link(0, None, &header(1, None)), Link::Extends);
        assert_eq!(
            link(0, None, &header(1, Some(other))),
            Link::PrevMismatch { head_hash: None }
        );
        assert_eq!(link(0, None, &header(3, None)), Link::Gap { head: 0 });
        assert_eq!(link(1, Some(&h1), &header(2, Some(h1))), Link::Extends);
        assert_eq!(
            link(1, Some(&h1), &header(2, Some(other))),
            Link::PrevMismatch {
                head_hash: Some(h1)
            }
        );
        assert_eq!(link(1, Some(&h1), &header(1, None)), Link::Held);
        assert_eq!(at_held_position(h1, &h1), AtHeld::Same);
        assert_eq!(at_held_position(h1, &other), AtHeld::Fork { existing: h1 });
    }

    #[test]
    fn walk_reports_gaps_and_broken_links() {
        let mut w = ChainWalk::default();
        let (a, b) = (Hash::digest(b"a"), Hash::digest(b"b"));
        assert_eq!(w.next(&header(1, None), &a), None);
        assert_eq!(w.next(&header(2, Some(a)), &b), None);
        assert!(w.next(&header(4, Some(b)), &a).unwrap().contains("gap"));
        let mut w = ChainWalk::default();
        assert!(w.next(&header(1, Some(a)), &a).unwrap().contains("prev"));
    }
}
