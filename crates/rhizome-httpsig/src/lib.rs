//! Authentication building blocks for Rhizome's HTTPS sync, pure and transport-neutral:
//!
//! - [`base`], [`signature`]: RFC 9421 HTTP Message Signatures, the subset Rhizome needs
//!   (derived components `@method`, `@target-uri`, `@authority`, `@scheme`,
//!   `@request-target`, `@path`, `@query`, `@status`, fields by name, the `req` flag; the
//!   parameters `created`, `expires`, `nonce`, `keyid`, `alg`, `tag`), signed with Ed25519
//!   (section 3.3.6) and verified strictly with `rhizome-core`'s keys;
//! - [`sfv`]: the strict, bounded RFC 8941 Structured Field parser and serializer they use;
//! - [`digest`]: RFC 9530 `Content-Digest` (SHA-256) with an incremental hasher;
//! - [`policy`]: Rhizome's profile (docs/PROTOCOL.md section 10): what requests and responses cover,
//!   signing them, and the verification checks with one error per reason ([`AuthError`]);
//! - [`replay`]: a bounded cache of (key id, nonce) pairs.
//!
//! No I/O, no clock, no entropy: the time and the nonce bytes are arguments, messages are
//! plain values (a method string, a target URI string, (name, value) header pairs), so any
//! HTTP stack can call it.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod base;
pub mod digest;
pub mod error;
pub mod message;
pub mod policy;
pub mod replay;
pub mod sfv;
pub mod signature;

pub use base::{signature_base, Component, Message, Param, SignatureParams};
pub use digest::{BodyHasher, ContentDigest, DigestError};
pub use error::AuthError;
pub use message::{Headers, Request, Response};
pub use policy::{
    presented_key, sign_request, sign_response, verify_request, verify_response, Nonce, Policy,
    Signed, VerifiedRequest, VerifiedResponse,
};
pub use replay::ReplayCache;

/// Longest combined value of a signature field (`Signature-Input`, `Signature`) or of any
/// covered field, in bytes.
pub const MAX_FIELD_LEN: usize = 8192;

/// Most covered components in one signature.
pub const MAX_COMPONENTS: usize = 32;

/// Most labels (signatures) in one `Signature-Input` or `Signature` field.
pub const MAX_LABELS: usize = 8;

/// Longest signature base, in bytes.
pub const MAX_BASE_LEN: usize = 65536;
