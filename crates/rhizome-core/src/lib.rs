//! Rhizome's pure core: identities, ids, canonical JSON, signed hash-chained events,
//! payload schemas, vector clocks, and the sealing of private keys at rest.
//!
//! This crate performs no I/O and never reads the clock or an entropy source: time,
//! randomness and passphrases come in as arguments. Everything that touches a disk,
//! a network or a terminal lives in the crates above it (store, sync, cli).
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bundle;
pub mod canonical;
pub mod chain;
pub mod clock;
pub mod event;
pub mod ids;
pub mod keys;
pub mod privacy;
pub mod schema;
pub mod sealed;
pub mod views;

pub use clock::{Clock, UncheckedClock};
pub use event::{Event, EventError, Header, VerifiedEvent};
pub use ids::{Hash, IdError, InstanceId, Seq, Timestamp};
pub use keys::{KeyError, PublicKey, SecretKey, Signature};
