//! RFC 9530 `Content-Digest` with SHA-256: an incremental hasher for bodies streamed in
//! chunks (a bundle can be hundreds of MB, so it is never held whole), and the field's
//! serialization and strict parsing.
//!
//! The field is an RFC 8941 Dictionary of algorithm to Byte Sequence. Parsing accepts any
//! valid dictionary, ignores the algorithms it does not know (RFC 9530 section 2: a recipient
//! MAY ignore digests), and requires exactly one `sha-256` member, a Byte Sequence of 32
//! bytes in canonical padded base64.

use sha2::{Digest, Sha256};

use crate::message::{field_value, Headers};
use crate::sfv::{self, BareItem, Limits, Member, SfvError};

/// Field name of `Content-Digest`, lowercase.
pub const CONTENT_DIGEST: &str = "content-digest";

/// The RFC 9530 algorithm key this crate writes and requires.
pub const SHA_256: &str = "sha-256";

const DIGEST_LIMITS: Limits = Limits {
    max_input: 4096,
    max_members: 16,
    max_inner_items: 16,
    max_params: 8,
};

/// Why a `Content-Digest` field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// Not an RFC 8941 Dictionary (or over the bounds).
    #[error("Content-Digest is not a valid dictionary: {0}")]
    Syntax(#[from] SfvError),
    /// No `sha-256` member.
    #[error("Content-Digest has no sha-256 member")]
    NoSha256,
    /// The `sha-256` member is not a Byte Sequence without parameters.
    #[error("Content-Digest sha-256 member is not a byte sequence")]
    NotByteSequence,
    /// The `sha-256` member is not 32 bytes.
    #[error("Content-Digest sha-256 member is {0} bytes, not 32")]
    WrongLength(usize),
}

/// A SHA-256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentDigest([u8; 32]);

impl ContentDigest {
    /// Wraps 32 digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest of a whole body held in memory (small bodies; stream large ones through
    /// [`BodyHasher`]).
    pub fn of(body: &[u8]) -> Self {
        Self(Sha256::digest(body).into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The field value, `sha-256=:BASE64:`.
    pub fn header_value(&self) -> String {
        let mut out = String::from("sha-256=");
        sfv::write_bare(&mut out, &BareItem::ByteSeq(self.0.to_vec()));
        out
    }

    /// Parses a `Content-Digest` field value (several field lines joined with `", "`).
    pub fn parse(value: &str) -> Result<Self, DigestError> {
        let dict = sfv::parse_dictionary(value, DIGEST_LIMITS)?;
        let member = dict
            .iter()
            .find(|(k, _)| k == SHA_256)
            .map(|(_, m)| m)
            .ok_or(DigestError::NoSha256)?;
        match member {
            Member::Item(item) if item.params.is_empty() => match &item.bare {
                BareItem::ByteSeq(b) => <[u8; 32]>::try_from(b.as_slice())
                    .map(Self)
                    .map_err(|_| DigestError::WrongLength(b.len())),
                _ => Err(DigestError::NotByteSequence),
            },
            _ => Err(DigestError::NotByteSequence),
        }
    }

    /// The digest in a message's `Content-Digest` field lines, `None` if there are none.
    pub fn from_headers(headers: Headers<'_>) -> Result<Option<Self>, crate::AuthError> {
        match field_value(headers, CONTENT_DIGEST)? {
            None => Ok(None),
            Some(v) => Self::parse(&v)
                .map(Some)
                .map_err(|e| crate::AuthError::malformed(CONTENT_DIGEST, e.to_string())),
        }
    }
}

impl std::fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentDigest({})", self.header_value())
    }
}

/// SHA-256 of a body fed in chunks, with the byte count.
#[derive(Clone, Default)]
pub struct BodyHasher {
    hasher: Sha256,
    len: u64,
}

impl BodyHasher {
    /// An empty hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.len += chunk.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> ContentDigest {
        ContentDigest(self.hasher.finalize().into())
    }
}

/// Lets a body be copied through the hasher with `std::io::copy` or a tee writer.
impl std::io::Write for BodyHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
