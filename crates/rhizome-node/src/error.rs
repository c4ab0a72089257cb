//! The node's error: what went wrong, in terms a front-end can act on (each variant has one
//! meaning, so the CLI maps it to one exit code and the web page to one message).

use rhizome_store::StoreError;

/// Why a node operation failed. Whatever the variant, nothing was half-applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Input a person or a peer gave that cannot be used: a malformed hash or key, an unknown
    /// or ambiguous target, a payload that fails its schema, an unknown peer.
    #[error("{0}")]
    Invalid(String),
    /// The passphrase is missing or wrong: nothing was written.
    #[error("{0}")]
    Passphrase(String),
    /// No instance where one is expected, or one where none may be created.
    #[error("{0}")]
    Home(String),
    /// A bundle refused whole (bad manifest, not a bundle, blocked carrier, a held copy that
    /// changed): nothing of it was stored.
    #[error("{0}")]
    Rejected(String),
    /// A bundle refused by policy before its events were read (its carrier is blocked): a
    /// value, so transports answer it by its reason, not by its wording.
    #[error("{0}")]
    Refused(rhizome_sync::Refusal),
    /// Verification found problems (`verify`, `views check`).
    #[error("{0}")]
    VerifyFailed(String),
    /// Reading or writing a file or stream failed.
    #[error("{0}")]
    Io(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Result alias of the node.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;

impl NodeError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        NodeError::Invalid(message.into())
    }
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::Io(e.to_string())
    }
}

impl From<rhizome_sync::ImportError> for NodeError {
    fn from(e: rhizome_sync::ImportError) -> Self {
        match e {
            rhizome_sync::ImportError::Store(s) => NodeError::Store(s),
            other => NodeError::Rejected(other.to_string()),
        }
    }
}
