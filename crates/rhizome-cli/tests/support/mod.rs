//! Test machinery for the network tests (tests/https_faults.rs): real `rhizome serve`
//! processes, homes and their comparison (`home`), a fault-injecting TCP proxy, a slow client
//! and a network-namespace harness (`net`). Not every test file uses every helper.
#![allow(dead_code, clippy::unwrap_used)]

pub mod home;
pub mod net;
pub mod pg;
