//! Ed25519 keys and signatures with strict verification.
//!
//! A [`PublicKey`] can only be built from a canonical encoding of a point that is not of small
//! order, so a weak key never enters the system. Verification (single and batch) rejects
//! non-canonical `S`, non-canonical or small-order `R`, and agrees with ed25519-dalek's
//! `verify_strict` on every vector in `testdata/vectors/ed25519`, in single and batch form.
//!
//! [`verify_batch`] gives every item exactly the answer of `verify_strict`, one signature at a
//! time (no batch equation). What it shares between items is work on the key: an author with
//! many items in the call gets a table of multiples of `-A`, which makes the equation a sum of
//! table entries instead of a long double-and-add chain (see [`verify_batch`]).

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::traits::Identity;
use curve25519_dalek::Scalar;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha512};
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::ids::{decode_hex, IdError};

/// Why a key or signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a key or signature of the right length in lowercase hex.
    #[error("{0}")]
    Encoding(#[from] IdError),
    /// The 32 bytes do not encode a curve point in canonical form.
    #[error("public key is not a canonical Ed25519 point encoding")]
    NonCanonicalKey,
    /// The point has order 1, 2, 4 or 8: any signature would verify for it.
    #[error("public key is a small-order point")]
    SmallOrderKey,
    /// The signature does not verify (or is malleable: non-canonical S or R, small-order R).
    #[error("signature does not verify")]
    BadSignature,
}

/// A checked Ed25519 public key: canonical encoding, not of small order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// A 64-byte Ed25519 signature (R || S), not yet checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

/// A private signing key. Never printed, zeroized on drop (by ed25519-dalek).
#[derive(Clone)]
pub struct SecretKey(SigningKey);

fn is_canonical_point(bytes: &[u8; 32]) -> Option<curve25519_dalek::EdwardsPoint> {
    let point = CompressedEdwardsY(*bytes).decompress()?;
    (point.compress().as_bytes() == bytes).then_some(point)
}

impl PublicKey {
    /// Checks the encoding and the order of the point.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        let point = is_canonical_point(&bytes).ok_or(KeyError::NonCanonicalKey)?;
        if point.is_small_order() {
            return Err(KeyError::SmallOrderKey);
        }
        Ok(Self(bytes))
    }

    /// The 32-byte encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut out = Vec::with_capacity(64);
        crate::ids::push_hex(&mut out, &self.0);
        String::from_utf8(out).unwrap_or_default()
    }

    /// A short fingerprint for people to compare aloud: the first 16 hex characters.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.0[..8])
    }

    /// Wraps 32 bytes without decompressing the point (about 5 µs saved): for keys read back
    /// from the store, or parsed from an event that will be verified. Verification checks the
    /// point anyway, so an unchecked bad key can make verification fail, never pass.
    pub fn from_bytes_unchecked(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The point, re-checking encoding and order (one decompression).
    fn point(&self) -> Result<EdwardsPoint, KeyError> {
        let point = is_canonical_point(&self.0).ok_or(KeyError::NonCanonicalKey)?;
        if point.is_small_order() {
            return Err(KeyError::SmallOrderKey);
        }
        Ok(point)
    }

    /// The dalek key, re-checking encoding and order (one decompression).
    fn dalek(&self) -> Result<VerifyingKey, KeyError> {
        self.point().map(VerifyingKey::from)
    }

    /// Strict verification of `sig` over `message` (`verify_strict` semantics; see the module
    /// docs). Checks the key's encoding and order first.
    pub fn verify(&self, message: &[u8], sig: &Signature) -> Result<(), KeyError> {
        verify_with(&self.dalek()?, message, sig)
    }

    /// Checks that the bytes are a canonical point not of small order (what [`from_bytes`]
    /// checks), for keys made with [`from_bytes_unchecked`].
    ///
    /// [`from_bytes`]: PublicKey::from_bytes
    /// [`from_bytes_unchecked`]: PublicKey::from_bytes_unchecked
    pub fn check(&self) -> Result<(), KeyError> {
        self.dalek().map(|_| ())
    }
}

fn verify_with(vk: &VerifyingKey, message: &[u8], sig: &Signature) -> Result<(), KeyError> {
    // verify_strict refuses S >= L, small-order R and A, and (by comparing encodings)
    // non-canonical R.
    vk.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig.0))
        .map_err(|_| KeyError::BadSignature)
}

impl Signature {
    /// Wraps 64 raw bytes.
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
    /// Lowercase hex, 128 characters.
    pub fn to_hex(&self) -> String {
        let mut out = Vec::with_capacity(128);
        crate::ids::push_hex(&mut out, &self.0);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl SecretKey {
    /// Builds a key from 32 secret bytes (the RFC 8032 seed). The caller brings the entropy.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32 secret bytes, for sealing. Handle with care.
    pub fn to_seed(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        // A key derived from a seed is a multiple of the base point: never small order.
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Ed25519 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, public {})", self.public_key())
    }
}

/// Items of one author in a [`verify_batch`] call from which a table of its key is built.
///
/// From here a table (of the width `RadixTable::width_for` picks) costs less than it saves,
/// measured by `rhizome bench verify` (BENCHMARKS.md): 25 instead of 32 µs per signature at 8
/// items, 35 instead of 34 at 4. Below it, items go through `verify_strict`.
pub const TABLE_MIN_ITEMS: usize = 8;

/// Strict verification of many signatures: for each item, exactly the answer of
/// [`PublicKey::verify`] (ed25519-dalek's `verify_strict`), with each author's decoded key
/// reused across its items.
///
/// This deliberately does not use ed25519-dalek's batch equation: it has no cofactor and
/// derives its weights from the inputs, so a key holder can grind a signature whose R (or A)
/// carries a small torsion component past the batch while `verify_strict` refuses it
/// (`tests/vectors.rs` shows both). Excluding such items needs a subgroup check of R, which
/// costs as much as verifying.
///
/// What is shared instead is work on the key. `verify_strict` computes
/// `R' = [k](-A) + [S]B` with one double-and-add chain per signature. For an author with at
/// least [`TABLE_MIN_ITEMS`] items here, a [`RadixTable`] of `-A` (built when its items are
/// reached, dropped after them) and the one of `B` (built once per process) make `R'` a sum of
/// table entries, exactly the same point: see [`verify_with_table`] for why the answer is the
/// same for every input.
pub fn verify_batch(items: &[(PublicKey, &[u8], Signature)]) -> Vec<Result<(), KeyError>> {
    verify_batch_tuned(items, TABLE_MIN_ITEMS)
}

/// How one author's items are checked in a [`verify_batch`] call.
enum Prepared {
    /// Few items: `verify_strict` with the decoded key.
    Single(VerifyingKey),
    /// Many items: a table of `-A`.
    Table(RadixTable),
    /// The key itself is refused; so is every item under it.
    Refused(KeyError),
}

/// [`verify_batch`] with the table threshold as an argument: `usize::MAX` never builds a table,
/// 1 always does. For tests and benchmarks, which must reach both paths; the answers are the
/// same whatever the threshold.
#[doc(hidden)]
pub fn verify_batch_tuned(
    items: &[(PublicKey, &[u8], Signature)],
    table_min_items: usize,
) -> Vec<Result<(), KeyError>> {
    // One author at a time (a stable sort keeps each author's items in order), so at most one
    // table is alive: memory stays at one table however many authors a call holds.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].0);
    let mut answers = vec![Err(KeyError::BadSignature); items.len()];
    for run in order.chunk_by(|&a, &b| items[a].0 == items[b].0) {
        let key = &items[run[0]].0;
        let prepared = match key.point() {
            Err(e) => Prepared::Refused(e),
            Ok(a) if run.len() >= table_min_items => {
                Prepared::Table(RadixTable::new(-a, RadixTable::width_for(run.len())))
            }
            Ok(a) => Prepared::Single(VerifyingKey::from(a)),
        };
        for &i in run {
            let (_, msg, sig) = &items[i];
            answers[i] = match &prepared {
                Prepared::Single(vk) => verify_with(vk, msg, sig),
                Prepared::Table(neg_a) => verify_with_table(neg_a, key, msg, sig),
                Prepared::Refused(e) => Err(e.clone()),
            };
        }
    }
    answers
}

/// The multiples of one point `P` that make `[x]P` a sum of at most `ceil(256 / w)` of them:
/// entry `(i, j)` is `[j * 2^(w i)]P` for each window `i` of `w` bits and `1 <= j <= 2^(w-1)`.
///
/// Unlike curve25519-dalek's `EdwardsBasepointTable`, a lookup here is a plain index: it is
/// variable-time, which is right for verification (every input is public) and saves the
/// constant-time scan of each window. Entries stay in extended coordinates, so building a
/// table needs no field inversion, only point additions: 512 of them for `w = 4`, 4,096 (and
/// 640 KiB) for `w = 8`. [`RadixTable::width_for`] picks `w` by how many multiplications the
/// table will serve.
struct RadixTable {
    width: u32,
    points: Vec<EdwardsPoint>,
}

impl RadixTable {
    fn new(p: EdwardsPoint, width: u32) -> Self {
        let (windows, half) = Self::shape(width);
        let mut points = Vec::with_capacity(windows * half);
        let mut base = p;
        for _ in 0..windows {
            let mut multiple = base;
            points.push(multiple);
            for _ in 1..half {
                multiple += base;
                points.push(multiple);
            }
            // 2^(w-1) base + 2^(w-1) base: the next window's base, 2^w base.
            base = multiple + multiple;
        }
        Self { width, points }
    }

    /// Windows and entries per window for a width.
    fn shape(width: u32) -> (usize, usize) {
        (256_usize.div_ceil(width as usize), 1 << (width - 1))
    }

    /// The width that makes building the table and `uses` multiplications cheapest, counted in
    /// point additions (one while building costs about 1.5 of one while multiplying, by
    /// `rhizome bench verify`): 4 for a handful of uses, 8 from about 800.
    fn width_for(uses: usize) -> u32 {
        (4..=8)
            .min_by_key(|&w| {
                let (windows, half) = Self::shape(w);
                windows * half * 3 / 2 + uses * windows
            })
            .unwrap_or(8)
    }

    /// `[x]P` added to `sum`, for the scalar with little-endian bytes `x`; `None` if `x` is too
    /// large for the windows (never the case for a reduced scalar, which is below 2^253: at
    /// every width from 4 to 8 the top window then holds less than half its range, so no carry
    /// leaves it).
    ///
    /// Each window of `w` bits is recoded into a signed digit in `[-2^(w-1), 2^(w-1))`,
    /// carrying into the next, so `x = sum d_i 2^(w i)` and `[x]P = sum [d_i 2^(w i)]P`, a
    /// negated entry for `d_i < 0`.
    fn mul(&self, x: &[u8; 32], sum: &mut EdwardsPoint) -> Option<()> {
        let limbs: [u64; 4] = std::array::from_fn(|i| {
            let mut limb = [0u8; 8];
            limb.copy_from_slice(&x[i * 8..i * 8 + 8]);
            u64::from_le_bytes(limb)
        });
        let (windows, half) = Self::shape(self.width);
        let w = self.width as usize;
        // The `w` bits of `x` from bit `at` (zero beyond bit 255); they may straddle two limbs.
        let window_bits = |at: usize| -> u64 {
            let (limb, shift) = (at / 64, at % 64);
            let low = limbs.get(limb).map_or(0, |l| l >> shift);
            let high = match shift {
                0 => 0,
                _ => limbs.get(limb + 1).map_or(0, |l| l << (64 - shift)),
            };
            (low | high) & ((1 << w) - 1)
        };
        let mut carry = 0i64;
        for window in 0..windows {
            let raw = window_bits(window * w);
            let v = raw as i64 + carry;
            let digit = if v >= half as i64 {
                v - (2 * half) as i64
            } else {
                v
            };
            carry = i64::from(v >= half as i64);
            let entry = |d: i64| &self.points[window * half + d.unsigned_abs() as usize - 1];
            match digit {
                1.. => *sum += entry(digit),
                ..0 => *sum -= entry(digit),
                0 => {}
            }
        }
        (carry == 0).then_some(())
    }
}

/// The [`RadixTable`] of the base point, built on first use.
fn base_table() -> &'static RadixTable {
    static TABLE: OnceLock<RadixTable> = OnceLock::new();
    TABLE.get_or_init(|| RadixTable::new(ED25519_BASEPOINT_POINT, 8))
}

/// `verify_strict` for a key whose point `A` is canonical and not of small order (checked when
/// `neg_a`, the table of `-A`, was built), computed with [`RadixTable`]s.
///
/// `verify_strict` accepts exactly when: S < L; R decodes to a point; neither R nor A has small
/// order; and the encoding of `R' = [k](-A) + [S]B` equals the 32 bytes of R, with
/// `k = SHA-512(R || A || M) mod L` (R and A as the signature and the key encode them). Here:
/// - S < L is the same check (`from_canonical_bytes`), so `S` is the same integer;
/// - `k` is the same hash of the same bytes reduced the same way, so the same integer (A's
///   bytes are the key's, which are canonical: the encoding `verify_strict` hashes);
/// - `R'` is the same point: the sum of table entries is exact group arithmetic (the
///   extended-coordinate addition law is complete, so it holds for points with a torsion
///   component too) and both scalars are below L < 2^253, so `[k](-A) + [S]B` does not depend
///   on how it is computed;
/// - the encodings are compared as before (`compress` gives the one canonical encoding of a
///   point, whatever its coordinates). When they are equal, R is the canonical encoding of
///   `R'`, so R decodes, to `R'`, and "R has small order" is "`R'` has small order", which is
///   checked. When they differ, `verify_strict` refuses too (whether or not R decodes, and a
///   non-canonical R never equals an encoding made by `compress`).
fn verify_with_table(
    neg_a: &RadixTable,
    key: &PublicKey,
    message: &[u8],
    sig: &Signature,
) -> Result<(), KeyError> {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig.0[..32]);
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig.0[32..]);
    let s =
        Option::<Scalar>::from(Scalar::from_canonical_bytes(s)).ok_or(KeyError::BadSignature)?;
    let mut h = Sha512::new();
    h.update(r);
    h.update(key.as_bytes());
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let mut expected = EdwardsPoint::identity();
    neg_a
        .mul(k.as_bytes(), &mut expected)
        .and_then(|()| base_table().mul(s.as_bytes(), &mut expected))
        .ok_or(KeyError::BadSignature)?;
    if expected.compress().as_bytes() == &r && !expected.is_small_order() {
        Ok(())
    } else {
        Err(KeyError::BadSignature)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_bytes(decode_hex::<32>(s)?)
    }
}
impl FromStr for Signature {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Ok(Self(decode_hex::<64>(s)?))
    }
}
impl TryFrom<&[u8]> for PublicKey {
    type Error = KeyError;
    fn try_from(b: &[u8]) -> Result<Self, KeyError> {
        let arr = <[u8; 32]>::try_from(b).map_err(|_| IdError::Length {
            expected: 64,
            found: b.len() * 2,
        })?;
        Self::from_bytes(arr)
    }
}
impl TryFrom<&[u8]> for Signature {
    type Error = KeyError;
    fn try_from(b: &[u8]) -> Result<Self, KeyError> {
        <[u8; 64]>::try_from(b).map(Self).map_err(|_| {
            KeyError::Encoding(IdError::Length {
                expected: 128,
                found: b.len() * 2,
            })
        })
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

macro_rules! serde_hex {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_hex!(PublicKey);
serde_hex!(Signature);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_debug_hides_the_secret() {
        let sk = SecretKey::from_seed(&[7u8; 32]);
        let shown = format!("{sk:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode([7u8; 32])));
    }

    #[test]
    fn sign_then_verify_single_and_batch() {
        let sk = SecretKey::from_seed(&[1u8; 32]);
        let pk = sk.public_key();
        let sig = sk.sign(b"hello");
        assert!(pk.verify(b"hello", &sig).is_ok());
        assert_eq!(pk.verify(b"hellp", &sig), Err(KeyError::BadSignature));
        let out = verify_batch(&[(pk, b"hello", sig), (pk, b"hellp", sig)]);
        assert_eq!(out, vec![Ok(()), Err(KeyError::BadSignature)]);
    }

    /// `[x]P` for `x` as an integer below 2^256, not reduced mod L (a torsion component of `P`
    /// sees the difference): `x = lo + 2^128 hi`, both halves below L.
    fn integer_multiple(p: EdwardsPoint, x: &[u8; 32]) -> EdwardsPoint {
        let half = |bytes: &[u8]| {
            let mut b = [0u8; 32];
            b[..16].copy_from_slice(bytes);
            Scalar::from_canonical_bytes(b).expect("below 2^128, so below L")
        };
        let mut two_128 = [0u8; 32];
        two_128[16] = 1;
        let two_128 = Scalar::from_canonical_bytes(two_128).expect("below L");
        p * half(&x[..16]) + (p * two_128) * half(&x[16..])
    }

    /// Table multiplication, at every width, against curve25519-dalek's variable-base one, on
    /// scalars whose signed digits hit every edge (zero, carries, long carry chains, L - 1,
    /// 2^253 - 1), for the base point and for points with a torsion component. Scalars beyond
    /// 2^253 (never given by verification) get the right answer or `None`, never a wrong point.
    #[test]
    fn radix_table_multiplies_exactly() {
        let torsion = CompressedEdwardsY([
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10,
            0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77,
            0x92, 0xac, 0x03, 0x7a,
        ])
        .decompress()
        .expect("a point of order 8");
        let twice = torsion + torsion;
        assert_ne!(twice + twice, EdwardsPoint::identity(), "order 8, not less");
        let mixed = ED25519_BASEPOINT_POINT * Scalar::from(12345u64) + torsion;
        let mut reduced: Vec<[u8; 32]> =
            vec![[0; 32], *Scalar::ONE.as_bytes(), *(-Scalar::ONE).as_bytes()];
        for fill in [0x0f, 0x10, 0x1f, 0x20, 0x7f, 0x80, 0x81, 0xff] {
            let mut x = [fill; 32];
            x[31] = 0x1f; // below 2^253
            reduced.push(x);
        }
        for i in 0..32u8 {
            let mut x = [0u8; 32];
            x[usize::from(i)] = if i == 31 { 0x1f } else { 0x80 };
            reduced.push(x);
            let wide = [i.wrapping_mul(37) ^ 0x5a; 64];
            reduced.push(*Scalar::from_bytes_mod_order_wide(&wide).as_bytes());
        }
        let large: Vec<[u8; 32]> = [0x20, 0x40, 0x7f, 0x80, 0xff]
            .iter()
            .map(|&top| {
                let mut x = [0xff; 32];
                x[31] = top;
                x
            })
            .collect();
        for width in 4..=8 {
            for point in [ED25519_BASEPOINT_POINT, mixed, -mixed] {
                let table = RadixTable::new(point, width);
                for x in reduced.iter().chain(&large) {
                    let mut got = EdwardsPoint::identity();
                    let want = integer_multiple(point, x).compress();
                    match table.mul(x, &mut got) {
                        Some(()) => {
                            assert_eq!(got.compress(), want, "w {width}, x {}", hex::encode(x))
                        }
                        None => assert!(large.contains(x), "w {width} refused {}", hex::encode(x)),
                    }
                }
            }
        }
        assert_eq!(RadixTable::width_for(1), 4);
        assert_eq!(RadixTable::width_for(1_000), 8);
    }

    #[test]
    fn identity_point_is_refused_as_key() {
        let mut id = [0u8; 32];
        id[0] = 1;
        assert_eq!(PublicKey::from_bytes(id), Err(KeyError::SmallOrderKey));
    }
}
