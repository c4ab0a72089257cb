//! The RFC 9421 and RFC 9530 vectors committed in `testdata/vectors/httpsig/` (see its README),
//! byte for byte. A missing file is a failure, never a skip.
#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rhizome_core::keys::{PublicKey, SecretKey, Signature};
use rhizome_httpsig::signature::{find_signature, sign, signature_fields, verify};
use rhizome_httpsig::{
    signature_base, BodyHasher, ContentDigest, DigestError, Message, Request, SignatureParams,
};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = format!(
        "{}/../../testdata/vectors/httpsig/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing or not a string"))
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

/// The RFC's test-key-ed25519, checked three ways: the JWK `d` is the PKCS#8 seed, the JWK `x`
/// is the SPKI key, and the seed's public key is `x`.
fn test_key(v: &Value) -> (SecretKey, PublicKey) {
    let k = &v["keys"]["test-key-ed25519"];
    let jwk = &k["jwk"];
    assert_eq!(s(jwk, "kid"), "test-key-ed25519");
    let d: [u8; 32] = URL_SAFE_NO_PAD
        .decode(s(jwk, "d"))
        .unwrap()
        .try_into()
        .unwrap();
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(s(jwk, "x"))
        .unwrap()
        .try_into()
        .unwrap();
    let pkcs8 = pem_der(s(k, "private_pem"));
    let spki = pem_der(s(k, "public_pem"));
    assert_eq!(&pkcs8[pkcs8.len() - 32..], &d, "PKCS#8 seed is the JWK d");
    assert_eq!(&spki[spki.len() - 32..], &x, "SPKI key is the JWK x");
    let secret = SecretKey::from_seed(&d);
    let public = PublicKey::from_bytes(x).unwrap();
    assert_eq!(secret.public_key(), public);
    (secret, public)
}

struct TestRequest {
    method: String,
    target_uri: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn test_request(v: &Value) -> TestRequest {
    let r = &v["test_request"];
    TestRequest {
        method: s(r, "method").into(),
        target_uri: s(r, "target_uri").into(),
        headers: r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        body: s(r, "body").into(),
    }
}

#[test]
fn rfc9421_b26_ed25519_byte_for_byte() {
    let v = vector("rfc9421.json");
    let (secret, public) = test_key(&v);
    let req = test_request(&v);
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["section"] == "B.2.6")
        .expect("B.2.6 case");
    let label = s(case, "label");
    let mut headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    // The signed message as the RFC shows it: the two fields after the others.
    headers.push(("Signature-Input", s(case, "signature_input")));
    headers.push(("Signature", s(case, "signature")));
    let msg = Message::Request(Request {
        method: &req.method,
        target_uri: &req.target_uri,
        headers: &headers,
    });

    let (params, sig) = find_signature(&headers, label).unwrap();
    let base = signature_base(&msg, &params).unwrap();
    assert_eq!(base, s(case, "signature_base"), "signature base");

    // Ed25519 is deterministic: signing the base gives the RFC's signature exactly.
    let (signed_base, mine) = sign(&msg, &params, &secret).unwrap();
    assert_eq!(signed_base, base);
    assert_eq!(mine, sig, "signature bytes");
    let (input_field, sig_field) = signature_fields(label, &params, &mine).unwrap();
    assert_eq!(input_field, s(case, "signature_input"));
    assert_eq!(sig_field, s(case, "signature"));

    verify(&msg, &params, &sig, &public).unwrap();
    // And an independent check with ed25519-dalek's strict verification on the RFC's base.
    let vk = ed25519_dalek::VerifyingKey::from_bytes(public.as_bytes()).unwrap();
    vk.verify_strict(
        s(case, "signature_base").as_bytes(),
        &ed25519_dalek::Signature::from_bytes(sig.as_bytes()),
    )
    .unwrap();

    // One bit off anywhere fails.
    let mut bad = *sig.as_bytes();
    bad[10] ^= 1;
    assert!(verify(&msg, &params, &Signature::from_bytes(bad), &public).is_err());
    let other = Request {
        method: "PUT",
        target_uri: &req.target_uri,
        headers: &headers,
    };
    assert!(verify(&Message::Request(other), &params, &sig, &public).is_err());
    assert_eq!(req.body.len(), 18, "the test-request's Content-Length");
}

#[test]
fn rfc9421_signature_bases_of_other_cases() {
    let v = vector("rfc9421.json");
    let req = test_request(&v);
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let msg = Message::Request(Request {
        method: &req.method,
        target_uri: &req.target_uri,
        headers: &headers,
    });
    let mut seen = Vec::new();
    for case in v["cases"].as_array().unwrap() {
        let label = s(case, "label");
        let input = s(case, "signature_input");
        let member = input
            .strip_prefix(label)
            .and_then(|r| r.strip_prefix('='))
            .unwrap();
        let params = SignatureParams::parse(member).unwrap();
        assert_eq!(params.serialize(), member, "{label}: re-serialization");
        assert_eq!(
            signature_base(&msg, &params).unwrap(),
            s(case, "signature_base"),
            "{label}: signature base"
        );
        // The signature field parses as RFC 8941 (its length is the algorithm's, not ours).
        let sig_b64 = s(case, "signature")
            .strip_prefix(&format!("{label}=:"))
            .and_then(|r| r.strip_suffix(':'))
            .unwrap();
        assert!(!STANDARD.decode(sig_b64).unwrap().is_empty());
        seen.push(s(case, "section").to_string());
    }
    assert_eq!(seen, ["B.2.1", "B.2.3", "B.2.5", "B.2.6"]);
}

#[test]
fn rfc9530_content_digests() {
    let v = vector("rfc9530.json");
    let digests = v["digests"].as_array().unwrap();
    assert_eq!(digests.len(), 4);
    for d in digests {
        let content = s(d, "content").as_bytes();
        let expected = s(d, "content_digest");
        let whole = ContentDigest::of(content);
        assert_eq!(whole.header_value(), expected, "{}", s(d, "section"));
        // Streamed one byte at a time, and through io::Write.
        let mut h = BodyHasher::new();
        for b in content {
            h.update(std::slice::from_ref(b));
        }
        assert_eq!(h.len(), content.len() as u64);
        assert_eq!(h.finish(), whole);
        let mut h = BodyHasher::new();
        std::io::copy(&mut &content[..], &mut h).unwrap();
        assert_eq!(h.finish(), whole);
        assert_eq!(ContentDigest::parse(expected).unwrap(), whole);
    }
    let fields = v["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 3);
    for f in fields {
        let got = ContentDigest::parse(s(f, "value"));
        match f.get("error").and_then(Value::as_str) {
            None => {
                let want: [u8; 32] = STANDARD
                    .decode(s(f, "sha256_base64"))
                    .unwrap()
                    .try_into()
                    .unwrap();
                assert_eq!(got.unwrap(), ContentDigest::from_bytes(want));
            }
            Some("no-sha-256") => assert_eq!(got, Err(DigestError::NoSha256)),
            Some("syntax") => assert!(matches!(got, Err(DigestError::Syntax(_))), "{got:?}"),
            Some(other) => panic!("unknown expectation {other}"),
        }
    }
}
