//! Keeps the worked example of `docs/PROTOCOL.md` section 10.14 true.
//!
//! Reads the document, recomputes every value twice (with `rhizome-httpsig`, and independently
//! with plain string formatting, `sha2`, `ed25519-dalek` and `base64`), and checks that the
//! documented request and response verify. Each value is the fenced block right after a marker
//! line `<!-- https-example:NAME -->`, lines joined with `\n`; the set of markers must be exactly the
//! set checked here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use rhizome_core::keys::SecretKey;
use rhizome_core::InstanceId;
use rhizome_httpsig::{
    sign_request, sign_response, verify_request, verify_response, ContentDigest, Nonce, Policy,
    Request,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");

const MARKERS: [&str; 6] = [
    "request-inputs",
    "request-signature-base",
    "request-headers",
    "response-inputs",
    "response-signature-base",
    "response-headers",
];

fn doc() -> String {
    std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("cannot read {DOC}: {e}"))
}

fn block(doc: &str, name: &str) -> String {
    let marker = format!("<!-- https-example:{name} -->");
    let lines: Vec<&str> = doc.lines().collect();
    let at: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim() == marker)
        .collect();
    assert_eq!(at.len(), 1, "marker {name} must occur exactly once");
    let open = at[0] + 1;
    assert!(lines[open].starts_with("```"), "no block after {name}");
    let close = (open + 1..lines.len())
        .find(|&i| lines[i].starts_with("```"))
        .unwrap();
    lines[open + 1..close].join("\n")
}

fn headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_string(), v.to_string())
        })
        .collect()
}

fn hex32(v: &Value, k: &str) -> [u8; 32] {
    hex::decode(v[k].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn hex16(v: &Value, k: &str) -> [u8; 16] {
    hex::decode(v[k].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn sf_b64(bytes: &[u8]) -> String {
    format!(":{}:", STANDARD.encode(bytes))
}

#[test]
fn markers_are_exactly_the_checked_ones() {
    let d = doc();
    let found: BTreeSet<&str> = d
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("<!-- https-example:")
                .and_then(|r| r.strip_suffix(" -->"))
        })
        .collect();
    assert_eq!(found, MARKERS.into_iter().collect());
}

#[test]
fn worked_request_and_response() {
    let d = doc();
    let inp: Value = serde_json::from_str(&block(&d, "request-inputs")).unwrap();
    let method = inp["method"].as_str().unwrap();
    let uri = inp["target_uri"].as_str().unwrap();
    let content = inp["content"].as_str().unwrap().as_bytes();
    let created = inp["created"].as_i64().unwrap();
    let seed = hex32(&inp, "seed");
    let nonce_bytes = hex16(&inp, "nonce_bytes");

    // Independently: the base by hand, signed with ed25519-dalek.
    let sk = SigningKey::from_bytes(&seed);
    let pk = sk.verifying_key().to_bytes();
    let keyid = hex::encode(&Sha256::digest(pk)[..16]);
    let digest = format!("sha-256={}", sf_b64(&Sha256::digest(content)));
    let nonce = URL_SAFE_NO_PAD.encode(nonce_bytes);
    let params = format!(
        "(\"@method\" \"@target-uri\" \"content-digest\");created={created};expires={};nonce=\"{nonce}\";keyid=\"{keyid}\";alg=\"ed25519\";tag=\"rhizome-request\"",
        created + 300
    );
    let base = format!(
        "\"@method\": {method}\n\"@target-uri\": {uri}\n\"content-digest\": {digest}\n\"@signature-params\": {params}"
    );
    assert_eq!(base, block(&d, "request-signature-base"));
    let sig = sk.sign(base.as_bytes()).to_bytes();
    let expected_headers = vec![
        ("content-digest".to_string(), digest.clone()),
        ("rhizome-key".to_string(), hex::encode(pk)),
        ("signature-input".to_string(), format!("rz={params}")),
        ("signature".to_string(), format!("rz={}", sf_b64(&sig))),
    ];
    assert_eq!(headers(&block(&d, "request-headers")), expected_headers);

    // With the crate.
    let key = SecretKey::from_seed(&seed);
    let body_digest = ContentDigest::of(content);
    let signed = sign_request(
        &key,
        method,
        uri,
        Some(&body_digest),
        created,
        &Nonce::from_bytes(&nonce_bytes).unwrap(),
    )
    .unwrap();
    assert_eq!(signed.signature_base, base);
    let mine: Vec<(String, String)> = signed
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    assert_eq!(mine, expected_headers);

    // The documented request verifies over the documented window, and not outside it.
    let req_h = headers(&block(&d, "request-headers"));
    let req_refs: Vec<(&str, &str)> = req_h
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let resolve = |_: &InstanceId| Some(key.public_key());
    for now in [created - 60, created, created + 299] {
        let v = verify_request(
            method,
            uri,
            &req_refs,
            true,
            now,
            &Policy::default(),
            resolve,
        )
        .unwrap();
        assert_eq!(v.keyid.to_hex(), keyid);
        v.check_body(&body_digest).unwrap();
    }
    for now in [created - 61, created + 300] {
        assert!(verify_request(
            method,
            uri,
            &req_refs,
            true,
            now,
            &Policy::default(),
            resolve
        )
        .is_err());
    }

    // The response.
    let rinp: Value = serde_json::from_str(&block(&d, "response-inputs")).unwrap();
    let status = rinp["status"].as_u64().unwrap() as u16;
    let rcontent = rinp["content"].as_str().unwrap().as_bytes();
    let rcreated = rinp["created"].as_i64().unwrap();
    let rseed = hex32(&rinp, "seed");
    let rnonce_bytes = hex16(&rinp, "nonce_bytes");
    let rsk = SigningKey::from_bytes(&rseed);
    let rpk = rsk.verifying_key().to_bytes();
    let rkeyid = hex::encode(&Sha256::digest(rpk)[..16]);
    let rdigest = format!("sha-256={}", sf_b64(&Sha256::digest(rcontent)));
    let rparams = format!(
        "(\"@status\" \"@method\";req \"@target-uri\";req \"signature-input\";req \"content-digest\");created={rcreated};expires={};nonce=\"{}\";keyid=\"{rkeyid}\";alg=\"ed25519\";tag=\"rhizome-response\"",
        rcreated + 300,
        URL_SAFE_NO_PAD.encode(rnonce_bytes)
    );
    let rbase = format!(
        "\"@status\": {status}\n\"@method\";req: {method}\n\"@target-uri\";req: {uri}\n\"signature-input\";req: rz={params}\n\"content-digest\": {rdigest}\n\"@signature-params\": {rparams}"
    );
    assert_eq!(rbase, block(&d, "response-signature-base"));
    let rsig = rsk.sign(rbase.as_bytes()).to_bytes();
    let rexpected = vec![
        ("content-digest".to_string(), rdigest),
        ("rhizome-key".to_string(), hex::encode(rpk)),
        ("signature-input".to_string(), format!("rz={rparams}")),
        ("signature".to_string(), format!("rz={}", sf_b64(&rsig))),
    ];
    assert_eq!(headers(&block(&d, "response-headers")), rexpected);

    let rkey = SecretKey::from_seed(&rseed);
    let request = Request {
        method,
        target_uri: uri,
        headers: &req_refs,
    };
    let rdig = ContentDigest::of(rcontent);
    let rsigned = sign_response(
        &rkey,
        status,
        request,
        Some(&rdig),
        rcreated,
        &Nonce::from_bytes(&rnonce_bytes).unwrap(),
    )
    .unwrap();
    assert_eq!(rsigned.signature_base, rbase);
    let rmine: Vec<(String, String)> = rsigned
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    assert_eq!(rmine, rexpected);
    let resp_h = headers(&block(&d, "response-headers"));
    let resp_refs: Vec<(&str, &str)> = resp_h
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let v = verify_response(
        status,
        &resp_refs,
        request,
        true,
        rcreated,
        &Policy::default(),
        &rkey.public_key(),
    )
    .unwrap();
    v.check_body(&rdig).unwrap();
}

#[test]
fn code_table_lists_every_code_once() {
    let d = doc();
    // The table of section 10.11 alone.
    let start = d.find("### 10.11 ").unwrap();
    let end = start + d[start..].find("### 10.12 ").unwrap();
    let codes: Vec<&str> = d[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|r| r.split_once("` |").map(|(c, _)| c))
        .filter(|c| !c.contains(' ') && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'))
        .filter(|c| {
            ![
                "signature-input",
                "signature",
                "content-digest",
                "rhizome-key",
            ]
            .contains(c)
        })
        .collect();
    assert_eq!(codes, rhizome_httpsig::AuthError::CODES.to_vec());
}
