//! Helpers shared by the Ed25519 vector tests (`vectors.rs`, `table_path.rs`): where the
//! external vectors are, and the pieces of RFC 8032 needed to build signatures by hand.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

use curve25519_dalek::Scalar;
use serde_json::Value;
use sha2::{Digest, Sha512};

/// `testdata/vectors/` in the repository: required, never skipped.
pub fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors"
    ));
    assert!(
        dir.is_dir(),
        "test vector directory {} is missing: the external vectors are committed under \
         testdata/vectors and required; these tests never skip",
        dir.display()
    );
    dir
}

/// A vector file by its path below `testdata/vectors/`.
pub fn vector_path(rel: &str) -> PathBuf {
    let path = vectors_dir().join(rel);
    assert!(path.exists(), "test vector {} is missing", path.display());
    path
}

/// A JSON vector file by its path below `testdata/vectors/`.
pub fn read_json(rel: &str) -> Value {
    let path = vector_path(rel);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The clamped secret scalar `a` of a seed (RFC 8032 section 5.1.5), with `A = [a]B`.
pub fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

/// `k = SHA-512(R || A || M) mod L`.
pub fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(message);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// The 64 signature bytes `R || S`.
pub fn sig_bytes(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(r);
    sig[32..].copy_from_slice(s);
    sig
}
