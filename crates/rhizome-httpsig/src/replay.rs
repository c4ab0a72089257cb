//! A bounded replay cache: remembers each accepted (key id, nonce) pair until its signature
//! expires, so the same signed request is accepted at most once.
//!
//! Time is passed in. The cache never forgets a pair whose signature could still verify:
//! it forgets a pair only once `now >= expires`, and it keeps the latest such `now` as its
//! horizon, refusing any pair whose `expires` is at or before the horizon. So even if the
//! caller's clock steps backwards after a purge, a forgotten pair cannot come back.

use std::collections::{BTreeSet, HashMap};

use rhizome_core::InstanceId;

use crate::error::AuthError;

/// The (key id, nonce) pairs of accepted signatures, each until its `expires`.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    /// Every `now` up to this one has been used to forget pairs with `expires <= horizon`.
    horizon: i64,
    entries: HashMap<(InstanceId, Box<str>), i64>,
    by_expiry: BTreeSet<(i64, InstanceId, Box<str>)>,
}

impl ReplayCache {
    /// A cache holding at most `capacity` pairs (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            horizon: i64::MIN,
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// The most pairs held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Pairs held now (expired ones included until the next purge).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets the pairs whose signature has expired at `now`, earliest first.
    pub fn purge(&mut self, now: i64) {
        self.horizon = self.horizon.max(now);
        while let Some(first) = self.by_expiry.first() {
            if first.0 > self.horizon {
                break;
            }
            if let Some((_, id, nonce)) = self.by_expiry.pop_first() {
                self.entries.remove(&(id, nonce));
            }
        }
    }

    /// Records the pair of a verified signature, or refuses it:
    /// [`AuthError::Replayed`] if the pair is held, or if `expires` is at or before a time
    /// the cache has already purged at (the pair may have been forgotten);
    /// [`AuthError::ReplayCacheFull`] if every held pair is unexpired and there is no room.
    ///
    /// Call it only after the signature verified, so that nobody without the key can fill
    /// the cache.
    pub fn check_and_insert(
        &mut self,
        keyid: InstanceId,
        nonce: &str,
        expires: i64,
        now: i64,
    ) -> Result<(), AuthError> {
        let key = (keyid, Box::<str>::from(nonce));
        if self.entries.contains_key(&key) {
            return Err(AuthError::Replayed);
        }
        if self.entries.len() >= self.capacity {
            self.purge(now);
        }
        if expires <= self.horizon {
            return Err(AuthError::Replayed);
        }
        if self.entries.len() >= self.capacity {
            // Full of pairs whose signatures are still valid. Forgetting one would let its
            // request be replayed until it expires, silently; refusing a new request costs
            // only availability (a 503 with Retry-After) for at most one validity window,
            // and the caller can tell. Integrity over availability.
            return Err(AuthError::ReplayCacheFull {
                retry_after: self.retry_after(now),
            });
        }
        self.by_expiry.insert((expires, keyid, key.1.clone()));
        self.entries.insert(key, expires);
        Ok(())
    }

    /// Seconds from `now` until the earliest held pair expires (0 when empty or past).
    pub fn retry_after(&self, now: i64) -> u64 {
        self.by_expiry
            .first()
            .map(|(e, _, _)| u64::try_from(e.saturating_sub(now)).unwrap_or(0))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> InstanceId {
        InstanceId::from_bytes([n; 16])
    }

    #[test]
    fn same_pair_twice_is_a_replay() {
        let mut c = ReplayCache::new(10);
        c.check_and_insert(id(1), "n1", 1300, 1000).unwrap();
        assert_eq!(
            c.check_and_insert(id(1), "n1", 1300, 1001),
            Err(AuthError::Replayed)
        );
        // Same nonce, other key: a different pair.
        c.check_and_insert(id(2), "n1", 1300, 1001).unwrap();
        // Other nonce, same key.
        c.check_and_insert(id(1), "n2", 1300, 1001).unwrap();
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn full_of_unexpired_pairs_refuses_without_forgetting() {
        let mut c = ReplayCache::new(2);
        c.check_and_insert(id(1), "a", 1100, 1000).unwrap();
        c.check_and_insert(id(1), "b", 1200, 1000).unwrap();
        assert_eq!(
            c.check_and_insert(id(1), "c", 1300, 1050),
            Err(AuthError::ReplayCacheFull { retry_after: 50 })
        );
        // Nothing was forgotten: both old pairs are still replays.
        assert_eq!(
            c.check_and_insert(id(1), "a", 1100, 1050),
            Err(AuthError::Replayed)
        );
        assert_eq!(
            c.check_and_insert(id(1), "b", 1200, 1050),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn full_evicts_the_earliest_expired_first() {
        let mut c = ReplayCache::new(3);
        c.check_and_insert(id(1), "late", 1300, 1000).unwrap();
        c.check_and_insert(id(1), "early", 1100, 1000).unwrap();
        c.check_and_insert(id(1), "mid", 1200, 1000).unwrap();
        // At 1150 only "early" has expired: it goes, the others stay.
        c.check_and_insert(id(1), "new", 1400, 1150).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.check_and_insert(id(1), "mid", 1200, 1150),
            Err(AuthError::Replayed)
        );
        assert_eq!(
            c.check_and_insert(id(1), "late", 1300, 1150),
            Err(AuthError::Replayed)
        );
        // "early" was forgotten, but its expiry is behind the horizon: still refused.
        assert_eq!(
            c.check_and_insert(id(1), "early", 1100, 1000),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn clock_stepping_back_cannot_revive_a_forgotten_pair() {
        let mut c = ReplayCache::new(1);
        c.check_and_insert(id(1), "a", 1100, 1000).unwrap();
        c.purge(1200);
        assert!(c.is_empty());
        // The clock steps back to 1050, when "a" would still be valid.
        assert_eq!(
            c.check_and_insert(id(1), "a", 1100, 1050),
            Err(AuthError::Replayed)
        );
        // A fresh pair expiring after the horizon is fine.
        c.check_and_insert(id(1), "b", 1300, 1050).unwrap();
    }

    #[test]
    fn retry_after_is_time_to_earliest_expiry() {
        let mut c = ReplayCache::new(4);
        assert_eq!(c.retry_after(0), 0);
        c.check_and_insert(id(1), "a", 1300, 1000).unwrap();
        c.check_and_insert(id(1), "b", 1250, 1000).unwrap();
        assert_eq!(c.retry_after(1000), 250);
        assert_eq!(c.retry_after(2000), 0);
    }
}
