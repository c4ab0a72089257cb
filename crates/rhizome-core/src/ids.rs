//! Fixed-size identifiers: event hashes, instance ids, sequence numbers and timestamps.
//!
//! Every id has one text form (lowercase hex for byte strings) and parsing accepts only that
//! form, so an id has exactly one spelling on the wire and in signed bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Why a string or byte slice is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Wrong number of bytes or hex characters.
    #[error("expected {expected} hex characters, found {found}")]
    Length {
        /// Hex characters expected.
        expected: usize,
        /// Hex characters found.
        found: usize,
    },
    /// Not lowercase hexadecimal.
    #[error("not lowercase hexadecimal")]
    NotHex,
    /// A number out of its allowed range.
    #[error("{what} must be between {min} and {max}, found {found}")]
    Range {
        /// Which number.
        what: &'static str,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// What was given.
        found: u64,
    },
}

/// Largest integer that survives a trip through an IEEE double (RFC 8785 numbers): 2^53 - 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Appends the lowercase hex of `bytes` to `out` (hot path: event hashing and bundle lines).
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0xf) as usize]);
    }
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decodes exactly `N` bytes from lowercase hex (uppercase is refused: one spelling per id).
///
/// A table lookup per digit, the validity of all digits checked once at the end: ids are
/// decoded on every line of every bundle (five per event).
pub fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], IdError> {
    if s.len() != N * 2 {
        return Err(IdError::Length {
            expected: N * 2,
            found: s.len(),
        });
    }
    let mut out = [0u8; N];
    // Valid digits are below 16; any other byte maps to 0xff and sets the high bits here.
    let mut seen = 0u8;
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let (hi, lo) = (HEX_VALUE[pair[0] as usize], HEX_VALUE[pair[1] as usize]);
        seen |= hi | lo;
        *o = (hi << 4) | lo;
    }
    if seen >= 16 {
        return Err(IdError::NotHex);
    }
    Ok(out)
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                let mut out = Vec::with_capacity($len * 2);
                push_hex(&mut out, &self.0);
                String::from_utf8(out).unwrap_or_default()
            }
        }
        impl TryFrom<&[u8]> for $name {
            type Error = IdError;
            fn try_from(b: &[u8]) -> Result<Self, IdError> {
                <[u8; $len]>::try_from(b).map(Self).map_err(|_| IdError::Length {
                    expected: $len * 2,
                    found: b.len() * 2,
                })
            }
        }
        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                decode_hex::<$len>(s).map(Self)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

byte_id!(
    /// SHA-256 digest: an event's id, a payload commitment, a trailer checksum.
    Hash,
    32
);
byte_id!(
    /// An instance's id: the first 16 bytes (32 hex characters) of SHA-256 of its public key.
    InstanceId,
    16
);

impl Hash {
    /// SHA-256 of `data`.
    pub fn digest(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The first 8 bytes as an integer whose order is the bytes' order: a compact index key
    /// (collisions are resolved by comparing the full hash; prefixes become integer ranges).
    pub fn prefix_i64(&self) -> i64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        prefix_key(b)
    }
}

/// Maps 8 big-endian bytes to an `i64` ordered like the bytes (flips the sign bit).
pub fn prefix_key(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

impl InstanceId {
    /// Derives the id of an instance from its public key.
    pub fn of(key: &crate::PublicKey) -> Self {
        let d = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&d[..16]);
        Self(id)
    }
}

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Checks the range (`$min`..=2^53-1) and wraps.
            pub fn new(v: u64) -> Result<Self, IdError> {
                if ($min..=MAX_SAFE_INTEGER).contains(&v) {
                    Ok(Self(v))
                } else {
                    Err(IdError::Range { what: $what, min: $min, max: MAX_SAFE_INTEGER, found: v })
                }
            }
            /// The number.
            pub const fn get(self) -> u64 {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(u64::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

int_id!(
    /// Position of an event in its author's feed: 1, 2, 3, ...
    Seq,
    "seq",
    1
);
int_id!(
    /// Milliseconds since the Unix epoch, as the author's clock said.
    Timestamp,
    "timestamp",
    0
);

impl Seq {
    /// The first event of every feed.
    pub const FIRST: Seq = Seq(1);

    /// The next position. Saturates at the maximum, which `new` would refuse anyway.
    pub fn next(self) -> Seq {
        Seq((self.0 + 1).min(MAX_SAFE_INTEGER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_have_one_spelling() {
        let h = Hash::digest(b"abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h.to_hex().parse::<Hash>(), Ok(h));
        assert_eq!(
            h.to_hex().to_uppercase().parse::<Hash>(),
            Err(IdError::NotHex)
        );
        assert!(matches!("ab".parse::<Hash>(), Err(IdError::Length { .. })));
    }

    #[test]
    fn hex_decoding_accepts_exactly_lowercase_digits() {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                // Only ASCII makes a &str of two bytes; the others come in as multi-byte text.
                let text: String = [a, b].iter().map(|&c| char::from(c)).collect();
                let want = match (digit(a), digit(b)) {
                    (Some(h), Some(l)) => Ok([(h << 4) | l]),
                    _ if text.len() != 2 => Err(IdError::Length {
                        expected: 2,
                        found: text.len(),
                    }),
                    _ => Err(IdError::NotHex),
                };
                assert_eq!(decode_hex::<1>(&text), want, "{a:#04x} {b:#04x}");
                // And at every position of a longer id.
                if let Ok(ok) = want {
                    let mut long = "00".repeat(31);
                    long.insert_str(2 * usize::from(a % 32), &text);
                    let mut bytes = [0u8; 32];
                    bytes[usize::from(a % 32)] = ok[0];
                    assert_eq!(decode_hex::<32>(&long), Ok(bytes));
                }
            }
        }
        assert_eq!(decode_hex::<2>("0g00"), Err(IdError::NotHex));
        assert_eq!(decode_hex::<2>("000G"), Err(IdError::NotHex));
    }

    #[test]
    fn seq_and_timestamp_ranges() {
        assert!(Seq::new(0).is_err());
        assert!(Seq::new(1).is_ok());
        assert!(Seq::new(MAX_SAFE_INTEGER).is_ok());
        assert!(Seq::new(MAX_SAFE_INTEGER + 1).is_err());
        assert!(Timestamp::new(0).is_ok());
        assert!(serde_json::from_str::<Seq>("9007199254740992").is_err());
    }
}
