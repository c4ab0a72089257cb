//! Every external test vector in `testdata/vectors/` (committed, see its README) run against rhizome-core.
//!
//! Ed25519 vectors go through both verification paths, `PublicKey::verify` (single) and
//! `keys::verify_batch` (batch), which must give exactly the expected answer. A vector whose
//! public key `PublicKey::from_bytes` refuses, or whose signature is not 64 bytes, counts as
//! rejected by both paths: a strict verifier never gets as far as the equation.
//!
//! JCS (RFC 8785) vectors go through `canonical::to_canonical` and must match byte for byte.
//!
//! A missing vector directory is a failure, never a skip.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::Scalar;
use rhizome_core::canonical::to_canonical;
use rhizome_core::keys::{self, KeyError, PublicKey, SecretKey, Signature};
use serde_json::Value;

mod common;
use common::{challenge, read_json, secret_scalar, sig_bytes, vector_path};

// ---------------------------------------------------------------------------------------------
// Locating and reading the vectors.

fn read_bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_text(path: &Path) -> String {
    String::from_utf8(read_bytes(path))
        .unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", path.display()))
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get(name)
        .unwrap_or_else(|| panic!("field {name:?} missing in {v}"))
}

fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    field(v, name)
        .as_str()
        .unwrap_or_else(|| panic!("field {name:?} is not a string in {v}"))
}

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    let s = str_field(v, name);
    hex::decode(s).unwrap_or_else(|e| panic!("field {name:?} is not hex ({e}) in {v}"))
}

fn arr32(b: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(b).unwrap_or_else(|_| panic!("expected 32 bytes, got {}", b.len()))
}

// ---------------------------------------------------------------------------------------------
// Running a verification vector through the single and batch paths.

/// One (key, message, signature) vector with the answer a strict verifier must give.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    public_key: Vec<u8>,
    message: Vec<u8>,
    signature: Vec<u8>,
    expect: bool,
}

impl Case {
    /// The key and signature as rhizome-core types, or `None` if the key is refused or the
    /// signature has the wrong length (then both paths count as rejecting).
    fn parsed(&self) -> Option<(PublicKey, Signature)> {
        let pk = PublicKey::try_from(self.public_key.as_slice()).ok()?;
        let sig = Signature::try_from(self.signature.as_slice()).ok()?;
        Some((pk, sig))
    }

    fn single(&self) -> bool {
        self.parsed()
            .is_some_and(|(pk, sig)| pk.verify(&self.message, &sig).is_ok())
    }
}

/// Runs `cases` as one call to `verify_batch` (the parseable ones), `false` for the rest.
fn batch(cases: &[&Case]) -> Vec<bool> {
    let parsed: Vec<Option<(PublicKey, Signature)>> = cases.iter().map(|c| c.parsed()).collect();
    let mut items = Vec::new();
    let mut positions = Vec::new();
    for (i, (c, p)) in cases.iter().zip(&parsed).enumerate() {
        if let Some((pk, sig)) = p {
            items.push((*pk, c.message.as_slice(), *sig));
            positions.push(i);
        }
    }
    let answers = keys::verify_batch(&items);
    assert_eq!(
        answers.len(),
        items.len(),
        "verify_batch must answer once per item"
    );
    let mut out = vec![false; cases.len()];
    for (pos, ok) in positions.into_iter().zip(answers) {
        out[pos] = ok.is_ok();
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "accept"
    } else {
        "reject"
    }
}

/// Valid signatures made here, to put other vectors in batches of different shapes (the batch
/// path draws its random coefficients from a transcript of the whole batch).
fn companions(n: usize) -> Vec<Case> {
    (0..n)
        .map(|i| {
            let sk = SecretKey::from_seed(&[u8::try_from(i).unwrap().wrapping_add(101); 32]);
            let message = format!("companion {i}").into_bytes();
            let sig = sk.sign(&message);
            Case {
                name: format!("companion {i}"),
                public_key: sk.public_key().as_bytes().to_vec(),
                message,
                signature: sig.as_bytes().to_vec(),
                expect: true,
            }
        })
        .collect()
}

/// Checks every case alone through the single path and as a batch of one, then all of them as
/// one batch. Returns every disagreement (the caller fails listing them all).
fn check_cases(label: &str, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let single = c.single();
        if single != c.expect {
            failures.push(format!(
                "{label}: {}: single path says {}, expected {}",
                c.name,
                verdict(single),
                verdict(c.expect)
            ));
        }
        let alone = batch(&[c])[0];
        if alone != c.expect {
            failures.push(format!(
                "{label}: {}: batch of one says {}, expected {}",
                c.name,
                verdict(alone),
                verdict(c.expect)
            ));
        }
    }

    let all: Vec<&Case> = cases.iter().collect();
    let got = batch(&all);
    for (c, ok) in cases.iter().zip(got) {
        if ok != c.expect {
            failures.push(format!(
                "{label}: {}: batch of all {} cases says {}, expected {}",
                c.name,
                cases.len(),
                verdict(ok),
                verdict(c.expect)
            ));
        }
    }

    failures
}

/// Checks each case in batches of two with each of `n` valid signatures (once before it, once
/// after it), and in one batch with all `n`. The batch path's random coefficients come from a
/// transcript of the whole batch, so each batch is a fresh draw; a batch equation without the
/// cofactor accepts a signature that misses the equation only by a torsion point for some of
/// the draws (1 in the point's order, when only R carries torsion). Deterministic: the same
/// batch always gives the same draw.
fn check_with_companions(label: &str, cases: &[Case], n: usize) -> Vec<String> {
    let mut failures = Vec::new();
    let comp = companions(n);
    for c in cases {
        let mut shapes: Vec<(String, Vec<&Case>)> = Vec::new();
        for (i, other) in comp.iter().enumerate() {
            shapes.push((format!("first, with companion {i}"), vec![c, other]));
            shapes.push((format!("last, with companion {i}"), vec![other, c]));
        }
        let mut all: Vec<&Case> = comp.iter().collect();
        all.insert(n / 2, c);
        shapes.push((format!("in the middle of all {n} companions"), all));
        for (shape, b) in shapes {
            let got = batch(&b);
            for (bc, ok) in b.iter().zip(got) {
                if ok != bc.expect {
                    failures.push(format!(
                        "{label}: {}: batch ({shape}) says {} for {}, expected {}",
                        c.name,
                        verdict(ok),
                        bc.name,
                        verdict(bc.expect)
                    ));
                }
            }
        }
    }
    failures
}

fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} disagreement(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// ed25519/rfc8032.json

#[test]
fn ed25519_rfc8032() {
    let v = read_json("ed25519/rfc8032.json");
    let rows = v.as_array().expect("rfc8032.json is an array");
    assert!(!rows.is_empty());
    let mut cases = Vec::new();
    for row in rows {
        let name = str_field(row, "name");
        let seed = arr32(&hex_field(row, "secret_key"));
        let public = hex_field(row, "public_key");
        let message = hex_field(row, "message");
        let signature = hex_field(row, "signature");

        let sk = SecretKey::from_seed(&seed);
        assert_eq!(
            sk.public_key().as_bytes().as_slice(),
            public.as_slice(),
            "{name}: derived public key"
        );
        let pk = PublicKey::from_bytes(arr32(&public)).unwrap();
        let sig = sk.sign(&message);
        assert_eq!(
            sig.as_bytes().as_slice(),
            signature.as_slice(),
            "{name}: signature"
        );
        assert_eq!(pk.verify(&message, &sig), Ok(()), "{name}: single verify");
        assert_eq!(
            keys::verify_batch(&[(pk, message.as_slice(), sig)]),
            vec![Ok(())],
            "{name}: batch verify"
        );
        cases.push(Case {
            name: name.to_owned(),
            public_key: public,
            message,
            signature,
            expect: true,
        });
    }
    let mut failures = check_cases("rfc8032", &cases);
    failures.extend(check_with_companions("rfc8032", &cases, 8));
    assert_no_failures(&failures);
    println!("rfc8032.json: {} vectors checked", cases.len());
}

// ---------------------------------------------------------------------------------------------
// ed25519/generated.jsonl

#[test]
fn ed25519_generated() {
    let path = vector_path("ed25519/generated.jsonl");
    let text = read_text(&path);
    let mut cases = Vec::new();
    let mut signed = 0usize;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: not JSON: {e}", path.display(), n + 1));
        let valid = field(&row, "valid")
            .as_bool()
            .unwrap_or_else(|| panic!("line {}: valid is not a bool", n + 1));
        let case = Case {
            name: format!("line {} ({})", n + 1, str_field(&row, "case")),
            public_key: hex_field(&row, "public_key"),
            message: hex_field(&row, "message"),
            signature: hex_field(&row, "signature"),
            expect: valid,
        };
        if let Some(seed) = field(&row, "secret_key").as_str() {
            let sk = SecretKey::from_seed(&arr32(&hex::decode(seed).unwrap()));
            assert_eq!(
                sk.public_key().as_bytes().as_slice(),
                case.public_key.as_slice(),
                "{}: derived public key",
                case.name
            );
            if valid {
                assert_eq!(
                    sk.sign(&case.message).as_bytes().as_slice(),
                    case.signature.as_slice(),
                    "{}: signing reproduces the signature",
                    case.name
                );
                signed += 1;
            }
        }
        cases.push(case);
    }
    let valid: Vec<&Case> = cases.iter().filter(|c| c.expect).collect();
    let invalid: Vec<&Case> = cases.iter().filter(|c| !c.expect).collect();
    assert_eq!(valid.len(), 256, "README: 256 valid rows");
    assert_eq!(invalid.len(), 192, "README: 192 invalid rows");
    assert_eq!(signed, 256, "every valid row has a secret key");

    // Single, batch of one, one big batch of everything (mixed), and batches with companions.
    let mut failures = check_cases("generated.jsonl", &cases);
    failures.extend(check_with_companions("generated.jsonl", &cases, 2));

    // One big batch of all valid rows: every answer true (the fast path).
    let got = batch(&valid);
    if got.iter().any(|ok| !ok) {
        failures.push(format!(
            "generated.jsonl: batch of all {} valid rows rejected {} of them",
            valid.len(),
            got.iter().filter(|ok| !**ok).count()
        ));
    }
    // One batch of all invalid rows: every answer false.
    let got = batch(&invalid);
    if got.iter().any(|ok| *ok) {
        failures.push(format!(
            "generated.jsonl: batch of all {} invalid rows accepted {} of them",
            invalid.len(),
            got.iter().filter(|ok| **ok).count()
        ));
    }
    // Mixed batches: interleave valid and invalid rows in a different order than the file.
    let mut mixed: Vec<&Case> = Vec::new();
    for i in 0..valid.len().max(invalid.len()) {
        if let Some(c) = invalid.get(i) {
            mixed.push(c);
        }
        if i < valid.len() {
            mixed.push(valid[valid.len() - 1 - i]);
        }
    }
    assert_eq!(mixed.len(), cases.len());
    let got = batch(&mixed);
    for (c, ok) in mixed.iter().zip(got) {
        if ok != c.expect {
            failures.push(format!(
                "generated.jsonl: {}: interleaved mixed batch says {}, expected {}",
                c.name,
                verdict(ok),
                verdict(c.expect)
            ));
        }
    }
    // A few invalid rows of each kind, each in a small batch of valid rows.
    let mut per_kind = std::collections::BTreeMap::<&str, usize>::new();
    for (k, bad) in invalid.iter().enumerate() {
        let kind = bad.name.split_once(" (").map_or("", |(_, kind)| kind);
        let seen = per_kind.entry(kind).or_default();
        *seen += 1;
        if *seen > 4 {
            continue;
        }
        let mut b: Vec<&Case> = valid.iter().skip(k % 200).take(7).copied().collect();
        b.insert(k % 8, bad);
        let got = batch(&b);
        for (c, ok) in b.iter().zip(got) {
            if ok != c.expect {
                failures.push(format!(
                    "generated.jsonl: {}: in a small mixed batch around {}, batch says {}, \
                     expected {}",
                    c.name,
                    bad.name,
                    verdict(ok),
                    verdict(c.expect)
                ));
            }
        }
    }
    assert_no_failures(&failures);
    println!(
        "generated.jsonl: {} rows checked ({} valid, {} re-signed; {} invalid)",
        cases.len(),
        valid.len(),
        signed,
        invalid.len()
    );
}

// ---------------------------------------------------------------------------------------------
// ed25519/wycheproof/ed25519_test.json

#[test]
fn ed25519_wycheproof() {
    let v = read_json("ed25519/wycheproof/ed25519_test.json");
    assert_eq!(str_field(&v, "algorithm"), "EDDSA");
    let declared = field(&v, "numberOfTests").as_u64().unwrap();
    let mut cases = Vec::new();
    let mut acceptable = Vec::new();
    for group in field(&v, "testGroups").as_array().unwrap() {
        assert_eq!(str_field(group, "type"), "EddsaVerify");
        let key = field(group, "publicKey");
        assert_eq!(str_field(key, "curve"), "edwards25519");
        let public_key = hex_field(key, "pk");
        for t in field(group, "tests").as_array().unwrap() {
            let id = field(t, "tcId").as_u64().unwrap();
            let case = Case {
                name: format!(
                    "tcId {id} ({}; {})",
                    str_field(t, "comment"),
                    field(t, "flags")
                ),
                public_key: public_key.clone(),
                message: hex_field(t, "msg"),
                signature: hex_field(t, "sig"),
                expect: false,
            };
            match str_field(t, "result") {
                "valid" => cases.push(Case {
                    expect: true,
                    ..case
                }),
                "invalid" => cases.push(case),
                // "acceptable" means either answer is allowed. None are in this file; if some
                // appear, the strict answer is recorded and single and batch must agree.
                "acceptable" => acceptable.push(case),
                other => panic!("tcId {id}: unknown result {other:?}"),
            }
        }
    }
    assert_eq!(
        u64::try_from(cases.len() + acceptable.len()).unwrap(),
        declared,
        "numberOfTests"
    );
    let mut failures = check_cases("wycheproof", &cases);
    failures.extend(check_with_companions("wycheproof", &cases, 4));
    for c in &acceptable {
        let single = c.single();
        let alone = batch(&[c])[0];
        println!(
            "wycheproof: acceptable {}: strict single says {}, batch says {}",
            c.name,
            verdict(single),
            verdict(alone)
        );
        if single != alone {
            failures.push(format!(
                "wycheproof: acceptable {}: single says {}, batch says {}",
                c.name,
                verdict(single),
                verdict(alone)
            ));
        }
    }
    assert_no_failures(&failures);
    println!(
        "wycheproof ed25519_test.json: {} cases checked ({} valid, {} invalid, {} acceptable)",
        cases.len() + acceptable.len(),
        cases.iter().filter(|c| c.expect).count(),
        cases.iter().filter(|c| !c.expect).count(),
        acceptable.len()
    );
}

// ---------------------------------------------------------------------------------------------
// ed25519/speccheck/cases_annotated.json

#[test]
fn ed25519_speccheck() {
    let v = read_json("ed25519/speccheck/cases_annotated.json");
    let mut cases = Vec::new();
    for c in field(&v, "cases").as_array().unwrap() {
        let expect = match str_field(c, "strict_expected") {
            "accept" => true,
            "reject" => false,
            other => panic!("unknown strict_expected {other:?} in {c}"),
        };
        cases.push(Case {
            name: format!("case {} ({})", field(c, "index"), str_field(c, "comment")),
            public_key: hex_field(c, "pub_key"),
            message: hex_field(c, "message"),
            signature: hex_field(c, "signature"),
            expect,
        });
    }
    assert_eq!(cases.len(), 12, "README: 12 cases");
    let accepted: Vec<usize> = (0..cases.len()).filter(|&i| cases[i].expect).collect();
    assert_eq!(accepted, vec![3], "README: strict accepts only case 3");

    // The mixed-order cases depend on the batch's random coefficients, which ed25519-dalek
    // draws from a transcript of the batch: try each case in batches of many shapes.
    let mut failures = check_cases("speccheck", &cases);
    failures.extend(check_with_companions("speccheck", &cases, 64));
    assert_no_failures(&failures);
    println!(
        "speccheck cases_annotated.json: {} cases checked",
        cases.len()
    );
}

// ---------------------------------------------------------------------------------------------
// ed25519/small_order_points.json

/// The encodings of small_order_points.json: (kind, hex, bytes).
fn small_order_points() -> Vec<(&'static str, String, [u8; 32])> {
    let v = read_json("ed25519/small_order_points.json");
    let mut points = Vec::new();
    for kind in ["canonical", "non_canonical"] {
        for p in field(&v, kind).as_array().unwrap() {
            let hex_str = p.as_str().unwrap();
            points.push((
                kind,
                hex_str.to_owned(),
                arr32(&hex::decode(hex_str).unwrap()),
            ));
        }
    }
    assert_eq!(points.len(), 14);
    points
}

/// The signer of the hand-made signatures: its secret scalar `a` and public key `A = [a]B`.
fn hand_signer() -> (Scalar, [u8; 32]) {
    let seed = [42u8; 32];
    let a = secret_scalar(&seed);
    let pk_bytes = *SecretKey::from_seed(&seed).public_key().as_bytes();
    assert_eq!(
        (ED25519_BASEPOINT_POINT * a).compress().to_bytes(),
        pk_bytes,
        "secret scalar derivation"
    );
    (a, pk_bytes)
}

/// The nonce `r` of the hand-made signatures.
fn hand_nonce() -> Scalar {
    Scalar::from(123_456_789u64)
}

#[test]
fn ed25519_small_order_points() {
    let points = small_order_points();
    let (a, pk_bytes) = hand_signer();

    // Sanity check of the hand-made signatures: R = [r]B, S = r + k a is a valid signature.
    let message = b"small order R".to_vec();
    let r = hand_nonce();
    let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
    let honest = Case {
        name: "hand-made honest signature".into(),
        public_key: pk_bytes.to_vec(),
        message: message.clone(),
        signature: sig_bytes(
            &big_r,
            (r + challenge(&big_r, &pk_bytes, &message) * a).as_bytes(),
        )
        .to_vec(),
        expect: true,
    };
    let mut cases = vec![honest];

    for (kind, hex_str, bytes) in &points {
        // Refused as a key, whatever the reason.
        let refused = PublicKey::from_bytes(*bytes);
        assert!(
            matches!(
                refused,
                Err(KeyError::SmallOrderKey | KeyError::NonCanonicalKey)
            ),
            "{kind} small-order point {hex_str} accepted as a public key: {refused:?}"
        );
        // Only points that decode at all are real small-order points.
        if let Some(p) = CompressedEdwardsY(*bytes).decompress() {
            assert!(p.is_small_order(), "{hex_str} is not of small order");
        }

        // As R: with S = 0, with S = 1, and with S = k a, which satisfies the cofactorless
        // equation [S]B = R' + [k]A for R' the identity (and the cofactored one for every
        // small-order R): a verifier without the small-order R check accepts it.
        let k = challenge(bytes, &pk_bytes, &message);
        for (what, s) in [
            ("S = 0", Scalar::ZERO),
            ("S = 1", Scalar::ONE),
            ("S = k a", k * a),
        ] {
            cases.push(Case {
                name: format!("{kind} R = {hex_str}, {what}"),
                public_key: pk_bytes.to_vec(),
                message: message.clone(),
                signature: sig_bytes(bytes, s.as_bytes()).to_vec(),
                expect: false,
            });
        }
        // And the point as key together with R = the same point, S = 0 (any message verifies
        // under the cofactored equation): the key is refused, so both paths reject.
        cases.push(Case {
            name: format!("{kind} A = R = {hex_str}, S = 0"),
            public_key: bytes.to_vec(),
            message: message.clone(),
            signature: sig_bytes(bytes, Scalar::ZERO.as_bytes()).to_vec(),
            expect: false,
        });
    }
    let mut failures = check_cases("small_order_points", &cases);
    failures.extend(check_with_companions("small_order_points", &cases[..1], 4));
    assert_no_failures(&failures);
    println!(
        "small_order_points.json: {} encodings refused as keys; {} signatures with a \
         small-order R checked",
        points.len(),
        cases.len() - 1
    );
}

/// Derived from small_order_points.json: each small-order point T added to an honest R,
/// R = [r]B + T, S = r + k a, under a proper key (no torsion). The cofactorless equation misses
/// R by T, so a strict verifier (`verify_strict`) rejects it, though the cofactored one accepts
/// it. R is of mixed order, not small order, so no encoding check catches it: only the
/// equation, which the batch path must apply exactly as the single path does.
#[test]
fn ed25519_torsion_in_r_is_rejected_by_single_and_batch() {
    let points = small_order_points();
    let (a, pk_bytes) = hand_signer();
    let message = b"torsion in R".to_vec();
    let r = hand_nonce();
    let mut torsion_r = Vec::new();
    for (kind, hex_str, bytes) in &points {
        let Some(t) = CompressedEdwardsY(*bytes).decompress() else {
            continue;
        };
        if *kind != "canonical" || t == curve25519_dalek::EdwardsPoint::default() {
            continue;
        }
        let big_r = (ED25519_BASEPOINT_POINT * r + t).compress().to_bytes();
        let k = challenge(&big_r, &pk_bytes, &message);
        torsion_r.push(Case {
            name: format!("R = [r]B + {hex_str}, S = r + k a"),
            public_key: pk_bytes.to_vec(),
            message: message.clone(),
            signature: sig_bytes(&big_r, (r + k * a).as_bytes()).to_vec(),
            expect: false,
        });
    }
    assert_eq!(
        torsion_r.len(),
        7,
        "the 7 canonical points other than the identity"
    );
    let mut failures = check_cases("torsion in R", &torsion_r);
    failures.extend(check_with_companions("torsion in R", &torsion_r, 64));
    assert_no_failures(&failures);
    println!(
        "torsion in R: {} signatures checked, each in {} batches",
        torsion_r.len(),
        2 + 2 * 64 + 1
    );
}

// ---------------------------------------------------------------------------------------------
// jcs/

#[test]
fn jcs_input_output() {
    let dir = vector_path("jcs/input");
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "jcs/input holds 6 vectors");
    for input in &names {
        let stem = input.file_stem().unwrap().to_str().unwrap();
        // serde_json::from_slice, not parse_strict: these inputs need not respect Rhizome's
        // ±(2^53-1) limit (1E30 is one); only canonicalization is under test here.
        let value: Value = serde_json::from_slice(&read_bytes(input))
            .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        let got = to_canonical(&value);
        let expected = read_bytes(&vector_path(&format!("jcs/output/{stem}.json")));
        let expected_hex = read_text(&vector_path(&format!("jcs/outhex/{stem}.txt")));
        let expected_from_hex = hex::decode(
            expected_hex
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>(),
        )
        .unwrap_or_else(|e| panic!("outhex/{stem}.txt: {e}"));
        assert_eq!(
            expected, expected_from_hex,
            "{stem}: output/ and outhex/ disagree"
        );
        assert_eq!(
            got,
            expected,
            "{stem}: canonical bytes differ\n got: {}\nwant: {}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected)
        );
    }
    println!("jcs input/output: {} vectors checked", names.len());
}

#[test]
fn jcs_numbers() {
    let path = vector_path("jcs/numbers.csv");
    let text = read_text(&path);
    let mut checked = 0usize;
    let mut not_json = 0usize;
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (bits, expected) = line
            .split_once(',')
            .unwrap_or_else(|| panic!("{}:{}: no comma", path.display(), n + 1));
        let bits = u64::from_str_radix(bits, 16)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
        let f = f64::from_bits(bits);
        if !f.is_finite() {
            // NaN and ±Infinity are not JSON numbers (RFC 8785 section 3.2.2.3 makes them an
            // error); a serde_json Value cannot hold them. None are in the file today.
            not_json += 1;
            continue;
        }
        let got = to_canonical(&Value::from(f));
        if got != expected.as_bytes() {
            failures.push(format!(
                "line {}: {bits:016x} ({f:e}) canonicalizes to {:?}, expected {expected:?}",
                n + 1,
                String::from_utf8_lossy(&got)
            ));
        }
        checked += 1;
    }
    assert!(checked >= 30_000, "only {checked} numbers in numbers.csv");
    assert!(
        failures.is_empty(),
        "{} of {checked} numbers differ:\n{}",
        failures.len(),
        failures
            .iter()
            .take(50)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("jcs numbers.csv: {checked} numbers checked, {not_json} non-finite skipped");
}
