//! Vector clocks: for each feed (author key), the highest seq held contiguously from 1.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ids::Seq;
use crate::keys::PublicKey;

/// Feed -> highest contiguous seq held. Feeds not listed are held up to 0 (not at all).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Clock(BTreeMap<PublicKey, Seq>);

impl Clock {
    /// An empty clock.
    pub fn new() -> Self {
        Self::default()
    }
    /// Highest seq held for `feed`, 0 if none.
    pub fn get(&self, feed: &PublicKey) -> u64 {
        self.0.get(feed).map_or(0, |s| s.get())
    }
    /// Sets the entry for `feed`.
    pub fn set(&mut self, feed: PublicKey, seq: Seq) {
        self.0.insert(feed, seq);
    }
    /// Forgets `feed` (held up to 0).
    pub fn remove(&mut self, feed: &PublicKey) {
        self.0.remove(feed);
    }
    /// Raises each entry to the maximum of both clocks.
    pub fn merge(&mut self, other: &Clock) {
        for (k, v) in &other.0 {
            let e = self.0.entry(*k).or_insert(*v);
            *e = (*e).max(*v);
        }
    }
    /// Feeds and entries.
    pub fn iter(&self) -> impl Iterator<Item = (&PublicKey, &Seq)> {
        self.0.iter()
    }
    /// Number of feeds.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when no feed is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// For each feed where `self` is ahead of `base`: the seq range `base+1 ..= self` to send.
    pub fn ahead_of<'a>(
        &'a self,
        base: &'a Clock,
    ) -> impl Iterator<Item = (PublicKey, u64, u64)> + 'a {
        self.0.iter().filter_map(move |(k, v)| {
            let from = base.get(k) + 1;
            (from <= v.get()).then_some((*k, from, v.get()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretKey;

    #[test]
    fn delta_ranges_and_merge() {
        let a = SecretKey::from_seed(&[1; 32]).public_key();
        let b = SecretKey::from_seed(&[2; 32]).public_key();
        let mut mine = Clock::new();
        mine.set(a, Seq::new(10).unwrap());
        mine.set(b, Seq::new(3).unwrap());
        let mut theirs = Clock::new();
        theirs.set(a, Seq::new(4).unwrap());
        theirs.set(b, Seq::new(3).unwrap());
        let d: Vec<_> = mine.ahead_of(&theirs).collect();
        assert_eq!(d, vec![(a, 5, 10)]);
        theirs.merge(&mine);
        assert_eq!(theirs.get(&a), 10);
        assert_eq!(mine.ahead_of(&theirs).count(), 0);
    }
}
