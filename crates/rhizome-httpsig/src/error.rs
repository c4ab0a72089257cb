//! Why a signature, a signed request or a signed response is refused: one variant per reason,
//! each with a stable short code for the body of a 401 answer.

use crate::sfv::SfvError;

/// Why authentication failed. [`AuthError::code`] gives the stable code a server puts in its
/// 401 body; the `Display` text adds detail for logs and people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The message has no `Signature-Input` or no `Signature` field.
    #[error("no {field} field")]
    MissingSignature {
        /// `signature-input` or `signature`.
        field: &'static str,
    },
    /// The signature fields carry no signature under the expected label.
    #[error("no signature labelled {label:?}")]
    MissingLabel {
        /// The label looked for.
        label: String,
    },
    /// A header field the signature covers, or the policy requires, is absent.
    #[error("header field {name:?} is missing")]
    MissingHeader {
        /// Lowercase field name.
        name: String,
    },
    /// A field or value does not parse (RFC 8941 syntax, base64, URI, key id, nonce, ...).
    #[error("{field} is malformed: {reason}")]
    Malformed {
        /// What was being parsed (a field name or a part of one).
        field: String,
        /// What was wrong.
        reason: String,
    },
    /// An input is over one of the crate's bounds (field length, component count, labels).
    #[error("{what} is too large")]
    TooLarge {
        /// What was too large.
        what: String,
    },
    /// A covered component this implementation does not support (or that does not apply to
    /// this message, such as `@status` in a request or `req` without a request).
    #[error("unsupported component {component}")]
    UnsupportedComponent {
        /// The component identifier as serialized.
        component: String,
    },
    /// A signature parameter this implementation does not know, or of the wrong type.
    #[error("unsupported signature parameter {param:?}")]
    UnsupportedParam {
        /// The parameter name.
        param: String,
    },
    /// A signature parameter the policy requires is absent.
    #[error("signature parameter {param:?} is missing")]
    MissingParam {
        /// The parameter name.
        param: &'static str,
    },
    /// `alg` names an algorithm other than `ed25519`.
    #[error("unsupported algorithm {alg:?} (only \"ed25519\")")]
    UnsupportedAlg {
        /// The algorithm named.
        alg: String,
    },
    /// `tag` is not the one the policy expects (a response signature offered as a request's).
    #[error("signature tag {found:?}, expected {expected:?}")]
    WrongTag {
        /// The tag found.
        found: String,
        /// The tag required.
        expected: &'static str,
    },
    /// `expires - created` is longer than the policy allows (or negative).
    #[error("validity window of {window} s is outside 0..={max} s")]
    WindowTooLong {
        /// `expires - created`.
        window: i64,
        /// The most allowed.
        max: i64,
    },
    /// `created` is later than now plus the allowed clock skew.
    #[error("signature created at {created}, in the future (now {now})")]
    NotYetValid {
        /// `created`.
        created: i64,
        /// The verifier's time.
        now: i64,
    },
    /// `expires` is not after now.
    #[error("signature expired at {expires} (now {now})")]
    Expired {
        /// `expires`.
        expires: i64,
        /// The verifier's time.
        now: i64,
    },
    /// A component the policy requires is not covered by the signature.
    #[error("required component {component} is not covered by the signature")]
    NotCovered {
        /// The component identifier as serialized.
        component: String,
    },
    /// The verifier holds no key for this key id.
    #[error("unknown key id {keyid}")]
    UnknownKey {
        /// The key id.
        keyid: String,
    },
    /// The key does not belong to the key id (or is not the expected peer's key).
    #[error("key does not match key id {keyid}")]
    WrongKey {
        /// The key id.
        keyid: String,
    },
    /// The signature does not verify over the signature base (strict Ed25519).
    #[error("signature does not verify")]
    BadSignature,
    /// The content does not hash to the signed `Content-Digest`.
    #[error("content does not match its Content-Digest")]
    DigestMismatch,
    /// This (key id, nonce) pair was seen before, or is too old to be told apart from a replay.
    #[error("request replayed (nonce already used)")]
    Replayed,
    /// The replay cache is full of unexpired entries: try again after `retry_after` seconds.
    #[error("replay cache full, retry after {retry_after} s")]
    ReplayCacheFull {
        /// Seconds until the earliest entry expires.
        retry_after: u64,
    },
}

impl AuthError {
    /// The stable short code for this reason (lowercase, `-`-separated), for response bodies
    /// and counters. Codes never change meaning; new reasons get new codes.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingSignature { .. } => "missing-signature",
            AuthError::MissingLabel { .. } => "missing-label",
            AuthError::MissingHeader { .. } => "missing-header",
            AuthError::Malformed { .. } => "malformed",
            AuthError::TooLarge { .. } => "too-large",
            AuthError::UnsupportedComponent { .. } => "unsupported-component",
            AuthError::UnsupportedParam { .. } => "unsupported-param",
            AuthError::MissingParam { .. } => "missing-param",
            AuthError::UnsupportedAlg { .. } => "unsupported-alg",
            AuthError::WrongTag { .. } => "wrong-tag",
            AuthError::WindowTooLong { .. } => "window-too-long",
            AuthError::NotYetValid { .. } => "not-yet-valid",
            AuthError::Expired { .. } => "expired",
            AuthError::NotCovered { .. } => "not-covered",
            AuthError::UnknownKey { .. } => "unknown-key",
            AuthError::WrongKey { .. } => "wrong-key",
            AuthError::BadSignature => "bad-signature",
            AuthError::DigestMismatch => "digest-mismatch",
            AuthError::Replayed => "replayed",
            AuthError::ReplayCacheFull { .. } => "replay-cache-full",
        }
    }

    /// The HTTP status a server answers with: 503 (with `Retry-After`) when the replay cache
    /// is full, since the request may succeed later; 401 for every other reason.
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::ReplayCacheFull { .. } => 503,
            _ => 401,
        }
    }

    /// Every code [`AuthError::code`] can return, in the order of the variants.
    pub const CODES: [&'static str; 20] = [
        "missing-signature",
        "missing-label",
        "missing-header",
        "malformed",
        "too-large",
        "unsupported-component",
        "unsupported-param",
        "missing-param",
        "unsupported-alg",
        "wrong-tag",
        "window-too-long",
        "not-yet-valid",
        "expired",
        "not-covered",
        "unknown-key",
        "wrong-key",
        "bad-signature",
        "digest-mismatch",
        "replayed",
        "replay-cache-full",
    ];

    pub(crate) fn malformed(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AuthError::Malformed {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn from_sfv(field: &str, e: SfvError) -> Self {
        match e {
            SfvError::TooLong { .. } | SfvError::TooMany { .. } => AuthError::TooLarge {
                what: format!("{field} ({e})"),
            },
            other => AuthError::malformed(field, other.to_string()),
        }
    }
}
