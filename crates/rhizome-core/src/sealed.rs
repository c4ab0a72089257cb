//! Private keys sealed at rest: Argon2id derives a key from the passphrase, XChaCha20-Poly1305
//! encrypts the 32-byte secret. The KDF parameters, salt and nonce travel with the ciphertext,
//! so the cost can be raised later without breaking old keys. Salt and nonce come from the
//! caller (this crate reads no entropy).

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::SecretKey;

/// Why a sealed key cannot be opened or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The AEAD tag does not match: the passphrase is wrong (or the record was altered).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The record names an algorithm or parameters this version does not support.
    #[error("unsupported sealed key: {0}")]
    Unsupported(String),
}

/// Argon2id cost. The default costs about 200 ms on the reference machine (see BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

/// A secret key as stored: either sealed under a passphrase or, by explicit opt-out, plain.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme")]
pub enum StoredSecret {
    /// Argon2id + XChaCha20-Poly1305.
    #[serde(rename = "argon2id-xchacha20poly1305")]
    Sealed {
        /// KDF cost.
        kdf: KdfParams,
        /// Argon2 salt, hex.
        salt: String,
        /// AEAD nonce, hex.
        nonce: String,
        /// Ciphertext with tag, hex.
        ciphertext: String,
    },
    /// Stored without encryption (`init --no-passphrase`).
    #[serde(rename = "plain")]
    Plain {
        /// The 32 secret bytes, hex.
        seed: String,
    },
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sealed { kdf, .. } => write!(f, "StoredSecret::Sealed({kdf:?})"),
            Self::Plain { .. } => f.write_str("StoredSecret::Plain(<redacted>)"),
        }
    }
}

/// A key derived from a passphrase, reusable for every secret sealed with the same salt and
/// parameters (one KDF run per command, however many keys).
pub struct SealingKey {
    key: Zeroizing<[u8; 32]>,
    kdf: KdfParams,
    salt: [u8; 16],
}

impl SealingKey {
    /// Runs Argon2id. Costs what `kdf` says.
    pub fn derive(passphrase: &[u8], salt: [u8; 16], kdf: KdfParams) -> Result<Self, SealError> {
        let params = Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))
            .map_err(|e| SealError::Unsupported(e.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, &salt, key.as_mut())
            .map_err(|e| SealError::Unsupported(e.to_string()))?;
        Ok(Self { key, kdf, salt })
    }

    /// True when `stored` was sealed with this key's salt and parameters.
    pub fn matches(&self, stored: &StoredSecret) -> bool {
        matches!(stored, StoredSecret::Sealed { kdf, salt, .. }
            if *kdf == self.kdf && *salt == hex::encode(self.salt))
    }

    /// Seals `secret`; `aad` binds the record to its owner (e.g. the public key).
    pub fn seal(&self, secret: &SecretKey, nonce: [u8; 24], aad: &[u8]) -> StoredSecret {
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let seed = secret.to_seed();
        // Encryption into memory only fails for messages beyond the AEAD's length limit.
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: seed.as_ref(),
                    aad,
                },
            )
            .unwrap_or_default();
        StoredSecret::Sealed {
            kdf: self.kdf,
            salt: hex::encode(self.salt),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ct),
        }
    }

    /// Opens a sealed secret.
    pub fn open(&self, stored: &StoredSecret, aad: &[u8]) -> Result<SecretKey, SealError> {
        let StoredSecret::Sealed {
            nonce, ciphertext, ..
        } = stored
        else {
            return open_plain(stored);
        };
        let bad = |what: &str| SealError::Unsupported(format!("malformed {what}"));
        let nonce: [u8; 24] = crate::ids::decode_hex(nonce).map_err(|_| bad("nonce"))?;
        let ct = hex::decode(ciphertext).map_err(|_| bad("ciphertext"))?;
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let plain = Zeroizing::new(
            cipher
                .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ct, aad })
                .map_err(|_| SealError::WrongPassphrase)?,
        );
        let seed: [u8; 32] = plain.as_slice().try_into().map_err(|_| bad("secret"))?;
        Ok(SecretKey::from_seed(&seed))
    }
}

/// Stores `secret` without encryption.
pub fn plain(secret: &SecretKey) -> StoredSecret {
    StoredSecret::Plain {
        seed: hex::encode(secret.to_seed().as_ref()),
    }
}

/// Opens a plain record.
pub fn open_plain(stored: &StoredSecret) -> Result<SecretKey, SealError> {
    match stored {
        StoredSecret::Plain { seed } => {
            let seed = Zeroizing::new(
                crate::ids::decode_hex::<32>(seed)
                    .map_err(|_| SealError::Unsupported("malformed plain seed".into()))?,
            );
            Ok(SecretKey::from_seed(&seed))
        }
        StoredSecret::Sealed { .. } => Err(SealError::Unsupported(
            "key is sealed: a passphrase is needed".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn seal_open_round_trip_and_wrong_passphrase() {
        let sk = SecretKey::from_seed(&[5; 32]);
        let aad = sk.public_key().to_hex();
        let k = SealingKey::derive(b"correct horse", [1; 16], CHEAP).unwrap();
        let stored = k.seal(&sk, [2; 24], aad.as_bytes());
        let text = serde_json::to_string(&stored).unwrap();
        assert!(!text.contains(&hex::encode([5u8; 32])));
        let back = k.open(&stored, aad.as_bytes()).unwrap();
        assert_eq!(back.public_key(), sk.public_key());
        let wrong = SealingKey::derive(b"wrong", [1; 16], CHEAP).unwrap();
        assert_eq!(
            wrong.open(&stored, aad.as_bytes()).err(),
            Some(SealError::WrongPassphrase)
        );
        // A sealed record moved to another key's row does not open.
        assert_eq!(
            k.open(&stored, b"other").err(),
            Some(SealError::WrongPassphrase)
        );
        assert!(format!("{stored:?}").starts_with("StoredSecret::Sealed"));
    }
}
