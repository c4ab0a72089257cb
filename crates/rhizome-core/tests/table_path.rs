//! The table path of `keys::verify_batch` against `PublicKey::verify`
//! (ed25519-dalek's `verify_strict`): the two must give the same answer, error included, for
//! every input.
//!
//! `keys::verify_batch_tuned(items, 1)` builds a table for every key, `usize::MAX` for none; both
//! are compared with the single path on: every Ed25519 vector in `testdata/vectors/ed25519`
//! (alone, and all in one call), many random valid signatures, the same signatures with bits
//! flipped in R, S and the message or with S + L, signatures whose R carries a torsion
//! component, and keys with a torsion component (where strict verification accepts some
//! honest signatures and refuses others), with tables of every width (4 to 8 bits, by the
//! number of items per key). Deterministic: a fixed-seed PRNG.
#![allow(clippy::unwrap_used)]

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::Scalar;
use rhizome_core::keys::{self, KeyError, PublicKey, SecretKey, Signature};
use serde_json::Value;

mod common;
use common::{challenge, read_json, secret_scalar, sig_bytes, vector_path};

/// One input: key bytes (not necessarily a valid key), message, signature bytes.
#[derive(Clone, Debug)]
struct Item {
    name: String,
    key: [u8; 32],
    message: Vec<u8>,
    sig: [u8; 64],
}

impl Item {
    /// The key as the verifiers get it: wrapped unchecked, so a refused key reaches both
    /// paths and must give the same error in both.
    fn key(&self) -> PublicKey {
        PublicKey::from_bytes_unchecked(self.key)
    }
    fn single(&self) -> Result<(), KeyError> {
        self.key()
            .verify(&self.message, &Signature::from_bytes(self.sig))
    }
}

/// Runs `items` through `verify_batch_tuned` as one call with both thresholds, and each item
/// alone with both thresholds; every answer must equal the single path's. Returns how many
/// items the single path accepted.
fn assert_agree(label: &str, items: &[Item]) -> usize {
    let expected: Vec<Result<(), KeyError>> = items.iter().map(Item::single).collect();
    let args: Vec<(PublicKey, &[u8], Signature)> = items
        .iter()
        .map(|i| (i.key(), i.message.as_slice(), Signature::from_bytes(i.sig)))
        .collect();
    let mut failures = Vec::new();
    for threshold in [1, usize::MAX] {
        let all = keys::verify_batch_tuned(&args, threshold);
        assert_eq!(all.len(), items.len());
        for ((item, want), got) in items.iter().zip(&expected).zip(&all) {
            if want != got {
                failures.push(format!(
                    "{label}: {} (threshold {threshold}, all in one call): single {want:?}, batch {got:?}",
                    item.name
                ));
            }
            let alone = keys::verify_batch_tuned(
                &[(
                    item.key(),
                    item.message.as_slice(),
                    Signature::from_bytes(item.sig),
                )],
                threshold,
            );
            if alone != vec![want.clone()] {
                failures.push(format!(
                    "{label}: {} (threshold {threshold}, alone): single {want:?}, batch {alone:?}",
                    item.name
                ));
            }
        }
    }
    // The default threshold too, as the import uses it.
    let default = keys::verify_batch(&args);
    for ((item, want), got) in items.iter().zip(&expected).zip(&default) {
        if want != got {
            failures.push(format!(
                "{label}: {} (default threshold): single {want:?}, batch {got:?}",
                item.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    expected.iter().filter(|r| r.is_ok()).count()
}

// ---------------------------------------------------------------------------------------------
// Inputs made here.

/// splitmix64.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        out
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// L, the order of the base point, little-endian (RFC 8032 section 5.1).
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The 8 points of small order (the torsion subgroup), from the canonical encodings in
/// small_order_points.json.
fn torsion_points() -> Vec<EdwardsPoint> {
    let small = read_json("ed25519/small_order_points.json");
    let points: Vec<EdwardsPoint> = small["canonical"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let bytes: [u8; 32] = hex::decode(p.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            CompressedEdwardsY(bytes).decompress().unwrap()
        })
        .collect();
    assert_eq!(points.len(), 8);
    assert!(points.iter().all(|p| p.is_small_order()));
    points
}

/// `n` signers, each with `per` honest signatures over random messages of random lengths.
fn honest(rng: &mut Prng, n: usize, per: usize) -> Vec<Item> {
    let mut out = Vec::new();
    for i in 0..n {
        let sk = SecretKey::from_seed(&rng.bytes::<32>());
        for j in 0..per {
            let len = rng.below(200);
            let message: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            out.push(Item {
                name: format!("signer {i} message {j}"),
                key: *sk.public_key().as_bytes(),
                sig: *sk.sign(&message).as_bytes(),
                message,
            });
        }
    }
    out
}

#[test]
fn random_valid_signatures_agree() {
    let mut rng = Prng(1);
    let items = honest(&mut rng, 12, 40);
    let accepted = assert_agree("random valid", &items);
    assert_eq!(accepted, items.len(), "every honest signature verifies");
}

#[test]
fn mutated_signatures_agree() {
    let mut rng = Prng(2);
    let base = honest(&mut rng, 6, 20);
    let mut items = Vec::new();
    for (n, item) in base.iter().enumerate() {
        // A flipped bit in R, in S (low and high bytes), and in the message.
        for (what, byte) in [
            ("R", rng.below(32)),
            ("S", 32 + rng.below(32)),
            ("S top byte", 63),
            ("R top byte", 31),
        ] {
            let mut m = item.clone();
            m.sig[byte] ^= 1 << rng.below(8);
            m.name = format!("{} with a bit of {what} flipped", item.name);
            items.push(m);
        }
        let mut m = item.clone();
        if m.message.is_empty() {
            m.message.push(0);
        } else {
            let i = rng.below(m.message.len());
            m.message[i] ^= 1 << rng.below(8);
        }
        m.name = format!("{} with a bit of the message flipped", item.name);
        items.push(m);
        // S + L: the same point, a non-canonical scalar.
        let mut wide = [0u8; 32];
        let mut carry = 0u16;
        for (i, w) in wide.iter_mut().enumerate() {
            let sum = u16::from(item.sig[32 + i]) + u16::from(L[i]) + carry;
            *w = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        let mut m = item.clone();
        m.sig[32..].copy_from_slice(&wide);
        m.name = format!("{} with S + L", item.name);
        items.push(m);
        // Another signer's key.
        let mut m = item.clone();
        m.key = base[(n + 20) % base.len()].key;
        m.name = format!("{} under another key", item.name);
        items.push(m);
    }
    let accepted = assert_agree("mutated", &items);
    println!(
        "mutated: {} signatures checked, {accepted} accepted",
        items.len()
    );
}

/// The signature `(R, S = r + k a)` by secret scalar `a` under `key`, with `k` the challenge of
/// `R`, `key` and `message`: what an honest signer computes, but with `R` chosen by the caller
/// (`[r]B` plus a torsion point, or `[r]B` under a key that is not `[a]B`).
fn signature_with(
    a: Scalar,
    key: &[u8; 32],
    r: Scalar,
    big_r: EdwardsPoint,
    message: &[u8],
) -> [u8; 64] {
    let big_r = big_r.compress().to_bytes();
    let k = challenge(&big_r, key, message);
    sig_bytes(&big_r, (r + k * a).as_bytes())
}

#[test]
fn torsion_in_r_and_in_a_agrees() {
    let torsion = torsion_points();
    let mut rng = Prng(3);
    let mut items = Vec::new();
    for signer in 0..4 {
        let seed = rng.bytes::<32>();
        let a = secret_scalar(&seed);
        let big_a = ED25519_BASEPOINT_POINT * a;
        assert_eq!(
            big_a.compress().to_bytes(),
            *SecretKey::from_seed(&seed).public_key().as_bytes()
        );
        for (ti, t) in torsion.iter().enumerate() {
            for j in 0..12 {
                let message = format!("torsion {signer} {ti} {j}").into_bytes();
                let r = Scalar::from_bytes_mod_order_wide(&rng.bytes::<64>());
                // R = [r]B + T, S = r + k a: off by T in the cofactorless equation.
                let key = big_a.compress().to_bytes();
                let rb = ED25519_BASEPOINT_POINT * r;
                items.push(Item {
                    name: format!("signer {signer}: R = [r]B + T{ti}, message {j}"),
                    key,
                    sig: signature_with(a, &key, r, rb + t, &message),
                    message: message.clone(),
                });
                // A' = A + T (a mixed-order key): R = [r]B, S = r + k a. Strict verification
                // accepts exactly when [k]T is the identity, so some of these verify.
                let key_t = (big_a + t).compress().to_bytes();
                items.push(Item {
                    name: format!("signer {signer}: A + T{ti}, message {j}"),
                    key: key_t,
                    sig: signature_with(a, &key_t, r, rb, &message),
                    message,
                });
            }
        }
    }
    let accepted = assert_agree("torsion", &items);
    // The honest ones (T = identity) and some mixed-order keys verify; no torsion R does.
    assert!(accepted > 4 * 2 * 12, "only {accepted} accepted");
    assert!(accepted < items.len());
    println!(
        "torsion: {} signatures checked, {accepted} accepted",
        items.len()
    );
}

/// Tables of every width (`verify_batch` picks 4 to 8 bits by the items per author: 45, 100,
/// 300 and 600 items reach 5, 6, 7 and 8) on one key's honest signatures, the same with a bit
/// flipped in R or S, and signatures whose R carries a torsion component.
#[test]
fn every_table_width_agrees() {
    let torsion = torsion_points();
    let mut rng = Prng(4);
    for per in [45, 100, 300, 600] {
        let seed = rng.bytes::<32>();
        let a = secret_scalar(&seed);
        let big_a = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        let sk = SecretKey::from_seed(&seed);
        let mut items = Vec::new();
        for j in 0..per {
            let message = format!("width test {per} {j}").into_bytes();
            let mut sig = *sk.sign(&message).as_bytes();
            let name = match j % 4 {
                1 => {
                    sig[rng.below(64)] ^= 1 << rng.below(8);
                    "a bit flipped"
                }
                2 => {
                    let r = Scalar::from_bytes_mod_order_wide(&rng.bytes::<64>());
                    let t = torsion[1 + j % (torsion.len() - 1)];
                    sig = signature_with(a, &big_a, r, ED25519_BASEPOINT_POINT * r + t, &message);
                    "R = [r]B + T"
                }
                _ => "honest",
            };
            items.push(Item {
                name: format!("{per} items: {j}, {name}"),
                key: big_a,
                message,
                sig,
            });
        }
        let accepted = assert_agree(&format!("{per} items of one key"), &items);
        assert!(
            accepted >= per / 2 && accepted < per,
            "{per}: {accepted} accepted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The vector files.

fn hex_of(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

/// An item from raw vector fields, or `None` when the key or signature has the wrong length
/// (a strict verifier never gets to the equation; vectors.rs counts them as rejected).
fn item(name: String, key: &[u8], message: Vec<u8>, sig: &[u8]) -> Option<Item> {
    Some(Item {
        name,
        key: key.try_into().ok()?,
        message,
        sig: sig.try_into().ok()?,
    })
}

#[test]
fn every_vector_agrees() {
    let mut items = Vec::new();
    for row in read_json("ed25519/rfc8032.json").as_array().unwrap() {
        items.extend(item(
            format!("rfc8032 {}", row["name"]),
            &hex_of(row, "public_key"),
            hex_of(row, "message"),
            &hex_of(row, "signature"),
        ));
    }
    let text = std::fs::read_to_string(vector_path("ed25519/generated.jsonl")).unwrap();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: Value = serde_json::from_str(line).unwrap();
        items.extend(item(
            format!("generated.jsonl line {}", n + 1),
            &hex_of(&row, "public_key"),
            hex_of(&row, "message"),
            &hex_of(&row, "signature"),
        ));
    }
    let wycheproof = read_json("ed25519/wycheproof/ed25519_test.json");
    for group in wycheproof["testGroups"].as_array().unwrap() {
        let key = hex_of(&group["publicKey"], "pk");
        for t in group["tests"].as_array().unwrap() {
            items.extend(item(
                format!("wycheproof tcId {}", t["tcId"]),
                &key,
                hex_of(t, "msg"),
                &hex_of(t, "sig"),
            ));
        }
    }
    let speccheck = read_json("ed25519/speccheck/cases_annotated.json");
    let mut strict_accepts = Vec::new();
    for c in speccheck["cases"].as_array().unwrap() {
        let it = item(
            format!("speccheck case {}", c["index"]),
            &hex_of(c, "pub_key"),
            hex_of(c, "message"),
            &hex_of(c, "signature"),
        )
        .unwrap();
        if it.single().is_ok() {
            strict_accepts.push(c["index"].as_u64().unwrap());
        }
        items.push(it);
    }
    assert_eq!(
        strict_accepts,
        vec![3],
        "speccheck: strict accepts only case 3"
    );
    // Small-order points as R under an honest key, with S = 0, S = 1 and S = k a (which
    // satisfies the cofactorless equation when R is the identity: only the small-order check
    // refuses it), and as key and R together.
    let seed = [42; 32];
    let a = secret_scalar(&seed);
    let honest_key = *SecretKey::from_seed(&seed).public_key().as_bytes();
    let small = read_json("ed25519/small_order_points.json");
    let message = b"small order R".to_vec();
    for kind in ["canonical", "non_canonical"] {
        for p in small[kind].as_array().unwrap() {
            let bytes: [u8; 32] = hex::decode(p.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let k = challenge(&bytes, &honest_key, &message);
            for (what, s) in [("0", Scalar::ZERO), ("1", Scalar::ONE), ("k a", k * a)] {
                items.push(Item {
                    name: format!("{kind} small-order R {p}, S = {what}"),
                    key: honest_key,
                    message: message.clone(),
                    sig: sig_bytes(&bytes, s.as_bytes()),
                });
            }
            items.push(Item {
                name: format!("{kind} small-order A = R = {p}"),
                key: bytes,
                message: b"small order A".to_vec(),
                sig: sig_bytes(&bytes, Scalar::ZERO.as_bytes()),
            });
        }
    }
    let accepted = assert_agree("vectors", &items);
    println!(
        "vectors: {} items checked, {accepted} accepted",
        items.len()
    );
}
