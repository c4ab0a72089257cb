//! Rhizome's HTTPS sync (PROTOCOL section 10): the same bundles as on a stick, over TLS 1.3,
//! between instances that authenticate with their instance keys alone.
//!
//! - [`server`]: `rhizome serve`: the descriptor, pull, clock and push endpoints, every
//!   request verified (RFC 9421, [`rhizome_httpsig`]) before anything is read or stored, and
//!   bounded in size, time, concurrency and rate;
//! - [`client`]: `rhizome sync`: pin or learn the server's instance, pull then push, retries
//!   with backoff on a broken link;
//! - [`tls`]: rustls (ring provider only), the self-signed certificate made from the instance
//!   key and the client's pinning verifier;
//! - [`descriptor`]: the signed instance descriptor;
//! - [`auth`]: signing requests and checking them with the server's replay cache;
//! - [`bridge`]: byte channels between the async network side and the node, which is
//!   synchronous (its calls run on blocking threads).
//!
//! Every decision about a peer (blocked or not, what it may receive, admission of what it
//! sends) is the node's ([`rhizome_node::live`], [`rhizome_node::Node::import`]); this crate
//! moves bytes and authenticates.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod bridge;
pub mod client;
pub mod descriptor;
pub mod server;
pub mod tls;

pub use client::{SyncOptions, SyncReport};
pub use descriptor::Descriptor;
pub use server::{ServeConfig, Server};

/// Paths of the endpoints.
pub mod paths {
    /// The signed instance descriptor (no authentication).
    pub const DESCRIPTOR: &str = "/.well-known/rhizome";
    /// What the server holds (signed request).
    pub const CLOCK: &str = "/rhizome/v1/clock";
    /// A bundle of what the caller lacks (signed request with the caller's clock).
    pub const PULL: &str = "/rhizome/v1/pull";
    /// A bundle from the caller (signed, streamed request body).
    pub const PUSH: &str = "/rhizome/v1/push";
}

/// Media type of a bundle body.
pub const BUNDLE_TYPE: &str = "application/x-rhizome-bundle";

/// Why an HTTPS operation failed; each variant maps to one exit code of the CLI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpsError {
    /// The network: cannot connect, connection cut, timed out (after the retries).
    #[error("link down: {0}")]
    Link(String),
    /// The server is not the instance expected, or its descriptor or signatures are invalid;
    /// nothing was sent.
    #[error("{0}")]
    Peer(String),
    /// The server answered with a refusal.
    #[error("the server refused ({status}{}): {message}", if code.is_empty() { String::new() } else { format!(", {code}") })]
    Refused {
        /// HTTP status.
        status: u16,
        /// The stable reason code of its JSON body, if any.
        code: String,
        /// Its message.
        message: String,
        /// `Retry-After`, seconds.
        retry_after: Option<u64>,
    },
    /// TLS set-up (certificates, keys).
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer broke the protocol (a malformed answer).
    #[error("protocol: {0}")]
    Protocol(String),
    /// Binding or serving.
    #[error("{0}")]
    Io(String),
    /// The node refused or failed.
    #[error(transparent)]
    Node(#[from] rhizome_node::NodeError),
}

/// Result alias of this crate.
pub type Result<T, E = HttpsError> = std::result::Result<T, E>;

/// Unix seconds now.
pub fn now_secs() -> i64 {
    (rhizome_node::now_ms() / 1000) as i64
}
