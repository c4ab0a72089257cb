//! Rhizome sync: bundles on a stick (or any byte stream). Plans an export from vector clocks,
//! writes a bundle, reads one back with streaming verification, and tells what a bundle holds.
//!
//! The bundle layout itself (manifest, event lines, trailer) is defined in
//! `rhizome_core::bundle` and specified in `docs/PROTOCOL.md`; this crate moves bytes.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod codec;
pub mod export;
pub mod import;
mod lines;
pub mod policy;
pub mod rejection;

pub use export::{plan_export, write_bundle, write_file_atomically, ExportPlan};
pub use import::{
    check_bundle, import_bundle, inspect_bundle, read_manifest, ImportError, ImportOptions,
    ImportReport, Inspection, Status,
};
pub use policy::{admit, Admission, Policy, Refusal, Transport};
pub use rejection::Rejection;
