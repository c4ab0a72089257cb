//! Why an event line of a bundle was refused: the one enum of every reason an import report
//! counts, each with a stable machine-readable code (PROTOCOL 4.1). The checks of an event
//! line itself are `EventError`'s (their codes are defined beside it, so a new check cannot
//! come without one); this adds what only a reader with a store can refuse.
//!
//! Whole bundles are refused apart, before any line is read, and produce no report: a blocked
//! carrier is a [`crate::policy::Refusal`] (the admission decision), a bad manifest an
//! [`crate::ImportError`].

use rhizome_core::EventError;
use serde::Serialize;

/// Why one event line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The line fails a check of PROTOCOL 4.1 (structure, commitments, signature).
    #[error(transparent)]
    Event(#[from] EventError),
    /// The line is longer than any event line may be (PROTOCOL 8.8 rule 1); it was not read
    /// into memory.
    #[error("line of {len} bytes is longer than the {max}-byte limit")]
    LineTooLong {
        /// Its length, line feed excluded.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A valid event whose `seq` this store cannot hold (PROTOCOL 2.4).
    #[error("field `seq`: {seq} is beyond this store's limit of {max}")]
    SeqBeyondStore {
        /// The event's seq.
        seq: u64,
        /// The store's highest seq.
        max: u64,
    },
    /// A bug: a line lost between the stages of the import.
    #[error("internal: line lost")]
    Internal,
}

/// Every code a [`Rejection`] can have, with its meaning: the table of PROTOCOL 4.1 (a test
/// checks that the two agree, and that every variant's code is here).
pub const CODES: &[(&str, &str)] = &[
    ("invalid_json", "not strict JSON (1.3)"),
    ("not_an_object", "not a JSON object"),
    ("missing_field", "a required member is absent"),
    (
        "invalid_field",
        "a member has the wrong type or an invalid value",
    ),
    ("unknown_field", "a member this format does not define"),
    ("prev_shape", "`prev` is not null exactly when `seq` is 1"),
    (
        "invalid_author_key",
        "`author` is not a valid public key (2.1)",
    ),
    ("hash_mismatch", "`hash` is not the hash of the header"),
    (
        "payload_mismatch",
        "the payload does not match `payload_size` or `payload_hash`",
    ),
    (
        "bad_signature",
        "`sig` does not verify under `author` (4.2)",
    ),
    (
        "line_too_long",
        "the line is longer than an event line may be (8.8 rule 1)",
    ),
    (
        "seq_beyond_store_limit",
        "a valid event whose `seq` the reader's store cannot hold (2.4)",
    ),
    ("internal", "a bug in the reader"),
];

impl Rejection {
    /// The stable code of this reason (one of [`CODES`]).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Event(e) => e.code(),
            Rejection::LineTooLong { .. } => "line_too_long",
            Rejection::SeqBeyondStore { .. } => "seq_beyond_store_limit",
            Rejection::Internal => "internal",
        }
    }

    /// The member of the event line the reason is about, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Rejection::Event(e) => e.field(),
            Rejection::SeqBeyondStore { .. } => Some("seq"),
            Rejection::LineTooLong { .. } | Rejection::Internal => None,
        }
    }
}

/// A refused line as an import report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// 1-based line number in the bundle.
    pub line: u64,
    /// Stable reason code ([`CODES`]).
    pub code: &'static str,
    /// The member the reason is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why, for people.
    pub reason: String,
}

impl Refusal {
    /// The refusal of line `line` for `why`.
    pub fn new(line: u64, why: &Rejection) -> Self {
        Self {
            line,
            code: why.code(),
            field: why.field().map(str::to_owned),
            reason: why.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhizome_core::keys::KeyError;

    /// One of each reason, with its code: every code is in [`CODES`], and the codes differ
    /// where the texts do not (several reasons print "field `x`: ...").
    #[test]
    fn every_reason_has_its_own_listed_code() {
        let json = rhizome_core::canonical::parse_strict(b"{").unwrap_err();
        let hash = rhizome_core::Hash::digest(b"h");
        let all = [
            Rejection::Event(EventError::Json(json)),
            Rejection::Event(EventError::NotAnObject),
            Rejection::Event(EventError::MissingField("sig")),
            Rejection::Event(EventError::UnknownField("x".into())),
            Rejection::Event(EventError::Field {
                field: "prev",
                reason: "must be a string".into(),
            }),
            Rejection::Event(EventError::PrevShape),
            Rejection::Event(EventError::HashMismatch {
                claimed: hash,
                computed: hash,
            }),
            Rejection::Event(EventError::PayloadMismatch("x".into())),
            Rejection::Event(EventError::AuthorKey(KeyError::SmallOrderKey)),
            Rejection::Event(EventError::BadSignature),
            Rejection::LineTooLong { len: 9, max: 8 },
            Rejection::SeqBeyondStore { seq: 9, max: 8 },
            Rejection::Internal,
        ];
        let codes: Vec<&str> = all.iter().map(Rejection::code).collect();
        let listed: Vec<&str> = CODES.iter().map(|(c, _)| *c).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len(), "codes repeat: {codes:?}");
        let mut listed_sorted = listed.clone();
        listed_sorted.sort_unstable();
        assert_eq!(sorted, listed_sorted);
        // `prev` twice, `hash`, `payload`, `author`, `sig`: same field, different codes.
        assert_eq!(all[4].field(), Some("prev"));
        assert_eq!(all[5].field(), Some("prev"));
        assert_ne!(all[4].code(), all[5].code());
        let r = Refusal::new(7, &all[9]);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"line": 7, "code": "bad_signature", "field": "sig",
                "reason": "field `sig`: signature does not verify for the author"})
        );
    }
}
