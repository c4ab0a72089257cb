//! Vector clocks: for each feed (author key), the highest seq held contiguously from 1.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ids::Seq;
use crate::keys::{KeyError, PublicKey};

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

/// A clock as read, its feed ids not yet checked as keys: checking one is a point
/// decompression (~20 µs), and a clock of 1,000 feeds is mostly feeds the reader holds already.
/// Turn it into a [`Clock`] with [`UncheckedClock::check_against`], or, for a clock this
/// instance stored itself, [`UncheckedClock::trusted`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct UncheckedClock(BTreeMap<HexKey, Seq>);

/// 64 lowercase hex characters, decoded but not checked as a curve point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct HexKey([u8; 32]);

impl<'de> Deserialize<'de> for HexKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::ids::decode_hex::<32>(&s)
            .map(HexKey)
            .map_err(serde::de::Error::custom)
    }
}

impl UncheckedClock {
    /// The clock, each feed id checked as a public key (PROTOCOL 2.1) unless `known` lists it
    /// (a key already held was checked when it was first stored).
    pub fn check_against(self, known: &Clock) -> Result<Clock, KeyError> {
        let mut out = BTreeMap::new();
        for (HexKey(bytes), seq) in self.0 {
            let unchecked = PublicKey::from_bytes_unchecked(bytes);
            let key = if known.0.contains_key(&unchecked) {
                unchecked
            } else {
                PublicKey::from_bytes(bytes)?
            };
            out.insert(key, seq);
        }
        Ok(Clock(out))
    }

    /// The clock without checking its keys: only for a clock this instance wrote itself.
    pub fn trusted(self) -> Clock {
        Clock(
            self.0
                .into_iter()
                .map(|(HexKey(b), seq)| (PublicKey::from_bytes_unchecked(b), seq))
                .collect(),
        )
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

    /// Keys held already pass unchecked; any other is checked, so a small-order or
    /// non-canonical one is refused exactly as by `Clock`'s own parsing.
    #[test]
    fn an_unchecked_clock_checks_every_key_it_does_not_know() {
        let a = SecretKey::from_seed(&[1; 32]).public_key();
        let mut known = Clock::new();
        known.set(a, Seq::new(2).unwrap());
        let good = format!("{{\"{a}\":5}}");
        let parsed: UncheckedClock = serde_json::from_str(&good).unwrap();
        let strict: Clock = serde_json::from_str(&good).unwrap();
        assert_eq!(parsed.clone().check_against(&known).unwrap(), strict);
        assert_eq!(parsed.check_against(&Clock::new()).unwrap(), strict);
        // The identity point (small order) and a non-canonical encoding of it (y = p + 1).
        let identity = format!("01{}", "00".repeat(31));
        let non_canonical = format!("ee{}7f", "ff".repeat(30));
        for bad in [identity, non_canonical] {
            let text = format!("{{\"{bad}\":1}}");
            assert!(serde_json::from_str::<Clock>(&text).is_err());
            let parsed: UncheckedClock = serde_json::from_str(&text).unwrap();
            assert!(parsed.check_against(&known).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<UncheckedClock>("{\"zz\":1}").is_err());
        assert!(serde_json::from_str::<UncheckedClock>(&format!("{{\"{a}\":0}}")).is_err());
    }
}
