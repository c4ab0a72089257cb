//! Exit codes, and the error type that carries one to `main`.

use rhizome_node::{NodeError, StoreError};

// 2 is clap's own code for bad arguments.
/// Malformed JSON, schema violation, unknown target, bad key or hash.
pub const INVALID_INPUT: u8 = 3;
/// Missing or wrong passphrase.
pub const PASSPHRASE: u8 = 4;
/// No instance, already initialized, damaged or read-only database.
pub const HOME: u8 = 5;
/// `verify` found a bad event or chain; `views check` found a difference.
pub const VERIFY_FAILED: u8 = 6;
/// A bundle without a valid trailer: truncated or altered (valid events kept).
pub const TRUNCATED: u8 = 7;
/// A bundle refused whole: nothing stored.
pub const REJECTED: u8 = 8;
/// Some events of a bundle refused, the rest kept.
pub const PARTIAL: u8 = 9;
/// The database server cannot be reached, refused the credentials, or dropped the connection
/// (every transaction committed before stays; a rerun continues).
pub const UNAVAILABLE: u8 = 10;
/// `sync`: the network link is down or broke, after the retries (what was verified stays).
pub const LINK_DOWN: u8 = 11;
/// `sync`: the server is not the instance expected (`--peer`), or its descriptor, handshake or
/// signatures are invalid; nothing was sent.
pub const WRONG_PEER: u8 = 12;
/// `sync`: the server refused (401, 403, 413, 429, 503 after retries, ...) or broke the protocol.
pub const REFUSED_BY_PEER: u8 = 13;

/// An error with the exit code it deserves.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Fail {
    /// Process exit code.
    pub code: u8,
    /// What to tell the user.
    pub message: String,
}

/// Shorthand for an error with a code.
pub fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    Fail {
        code,
        message: message.into(),
    }
    .into()
}

/// The exit code of a store error.
fn store_code(s: &StoreError) -> u8 {
    match s {
        StoreError::Corrupt { .. }
        | StoreError::NewerSchema { .. }
        | StoreError::ReadOnly { .. }
        | StoreError::NotInitialized
        | StoreError::AlreadyInitialized => HOME,
        StoreError::AuthorExists(_) | StoreError::UnknownAuthor(_) => INVALID_INPUT,
        StoreError::Unavailable { .. } => UNAVAILABLE,
        _ => 1,
    }
}

/// The exit code for an error: the first `Fail`, `NodeError` or `StoreError` in its chain
/// decides.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Fail>() {
            return f.code;
        }
        if let Some(n) = cause.downcast_ref::<NodeError>() {
            return match n {
                NodeError::Invalid(_) => INVALID_INPUT,
                NodeError::Passphrase(_) => PASSPHRASE,
                NodeError::Home(_) => HOME,
                NodeError::Rejected(_) | NodeError::Refused(_) => REJECTED,
                NodeError::VerifyFailed(_) => VERIFY_FAILED,
                NodeError::Store(s) => store_code(s),
                _ => 1,
            };
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            return store_code(s);
        }
    }
    1
}
