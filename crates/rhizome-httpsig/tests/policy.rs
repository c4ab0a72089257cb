//! Rhizome's request and response profile: round trips, one test per rejection reason (each
//! error code is produced at least once, checked against `AuthError::CODES`), and a property
//! test that changing any covered component or the signature fails verification.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Mutex;

use proptest::prelude::*;
use rhizome_core::keys::{PublicKey, SecretKey};
use rhizome_core::InstanceId;
use rhizome_httpsig::policy::{KEY_HEADER, LABEL, REQUEST_TAG, RESPONSE_TAG};
use rhizome_httpsig::signature::{sign, signature_fields};
use rhizome_httpsig::{
    presented_key, sign_request, sign_response, verify_request, verify_response, AuthError,
    BodyHasher, Component, ContentDigest, Message, Nonce, Param, Policy, ReplayCache, Request,
    SignatureParams,
};

const NOW: i64 = 1_764_000_000;
const URI: &str = "https://hub.example:8443/v1/push?from=abc";

static CODES_SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

fn seen(e: &AuthError) {
    CODES_SEEN.lock().unwrap().insert(e.code());
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed(&[n; 32])
}

fn nonce(n: u8) -> Nonce {
    Nonce::from_bytes(&[n; 16]).unwrap()
}

type Owned = Vec<(String, String)>;

fn owned(h: &[(&'static str, String)]) -> Owned {
    h.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
}

fn refs(h: &Owned) -> Vec<(&str, &str)> {
    h.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
}

fn resolver(k: &SecretKey) -> impl FnOnce(&InstanceId) -> Option<PublicKey> {
    let pk = k.public_key();
    move |id| (InstanceId::of(&pk) == *id).then_some(pk)
}

/// A signed push request: (headers, body).
fn push(k: &SecretKey, created: i64) -> (Owned, Vec<u8>) {
    let body = b"{\"hello\": \"world\"}\n".to_vec();
    let d = ContentDigest::of(&body);
    let s = sign_request(k, "POST", URI, Some(&d), created, &nonce(7)).unwrap();
    (owned(&s.headers), body)
}

fn check(
    headers: &Owned,
    has_body: bool,
    now: i64,
) -> Result<rhizome_httpsig::VerifiedRequest, AuthError> {
    let h = refs(headers);
    let r = verify_request(
        "POST",
        URI,
        &h,
        has_body,
        now,
        &Policy::default(),
        resolver(&key(1)),
    );
    if let Err(e) = &r {
        seen(e);
    }
    r
}

/// Signs arbitrary components and parameters for key(1) (to build requests the profile
/// would not make).
fn custom(method: &str, extra: &Owned, components: &[&str], params: Vec<Param>) -> Owned {
    let k = key(1);
    let comps = components
        .iter()
        .map(|c| Component::new(c).unwrap())
        .collect();
    let p = SignatureParams::new(comps, params).unwrap();
    let h = refs(extra);
    let msg = Message::Request(Request {
        method,
        target_uri: URI,
        headers: &h,
    });
    let (_, sig) = sign(&msg, &p, &k).unwrap();
    let (i, s) = signature_fields(LABEL, &p, &sig).unwrap();
    let mut out = extra.clone();
    out.push(("Signature-Input".into(), i));
    out.push(("Signature".into(), s));
    out
}

fn good_params(created: i64, expires: i64) -> Vec<Param> {
    vec![
        Param::Created(created),
        Param::Expires(expires),
        Param::Nonce(nonce(3).as_str().into()),
        Param::KeyId(InstanceId::of(&key(1).public_key()).to_hex()),
        Param::Alg("ed25519".into()),
        Param::Tag(REQUEST_TAG.into()),
    ]
}

fn without(mut p: Vec<Param>, name: &str) -> Vec<Param> {
    p.retain(|x| x.name() != name);
    p
}

fn replace(p: Vec<Param>, new: Param) -> Vec<Param> {
    p.into_iter()
        .map(|x| {
            if x.name() == new.name() {
                new.clone()
            } else {
                x
            }
        })
        .collect()
}

#[test]
fn request_round_trip_body_and_replay() {
    let (h, body) = push(&key(1), NOW);
    let v = check(&h, true, NOW + 10).unwrap();
    assert_eq!(v.keyid, InstanceId::of(&key(1).public_key()));
    assert_eq!(v.key, key(1).public_key());
    assert_eq!((v.created, v.expires), (NOW, NOW + 300));
    assert_eq!(v.nonce, nonce(7).as_str());
    let mut hasher = BodyHasher::new();
    for chunk in body.chunks(5) {
        hasher.update(chunk);
    }
    v.check_body(&hasher.finish()).unwrap();
    let e = v.check_body(&ContentDigest::of(b"other")).unwrap_err();
    assert_eq!(e, AuthError::DigestMismatch);
    seen(&e);

    let mut cache = ReplayCache::new(16);
    v.check_replay(&mut cache, NOW + 10).unwrap();
    let again = check(&h, true, NOW + 20).unwrap();
    let e = again.check_replay(&mut cache, NOW + 20).unwrap_err();
    assert_eq!(e, AuthError::Replayed);
    seen(&e);

    // A GET without a body verifies too, and accepts only an empty body.
    let s = sign_request(&key(1), "GET", URI, None, NOW, &nonce(8)).unwrap();
    let h = owned(&s.headers);
    let v = verify_request(
        "GET",
        URI,
        &refs(&h),
        false,
        NOW,
        &Policy::default(),
        resolver(&key(1)),
    )
    .unwrap();
    assert_eq!(v.content_digest, None);
    v.check_body(&ContentDigest::of(b"")).unwrap();
    assert!(v.check_body(&ContentDigest::of(b"x")).is_err());
}

#[test]
fn replay_cache_full_is_reported() {
    let mut cache = ReplayCache::new(1);
    let (h, _) = push(&key(1), NOW);
    check(&h, true, NOW)
        .unwrap()
        .check_replay(&mut cache, NOW)
        .unwrap();
    let s = sign_request(
        &key(1),
        "POST",
        URI,
        Some(&ContentDigest::of(b"x")),
        NOW,
        &nonce(9),
    )
    .unwrap();
    let v = verify_request(
        "POST",
        URI,
        &refs(&owned(&s.headers)),
        true,
        NOW,
        &Policy::default(),
        resolver(&key(1)),
    )
    .unwrap();
    let e = v.check_replay(&mut cache, NOW + 100).unwrap_err();
    assert_eq!(e, AuthError::ReplayCacheFull { retry_after: 200 });
    assert_eq!(e.http_status(), 503);
    assert_eq!(AuthError::Replayed.http_status(), 401);
    seen(&e);
}

#[test]
fn header_names_are_case_insensitive_and_other_labels_are_ignored() {
    let (h, _) = push(&key(1), NOW);
    let mut upper: Owned = h
        .iter()
        .map(|(n, v)| (n.to_ascii_uppercase(), v.clone()))
        .collect();
    check(&upper, true, NOW).unwrap();
    // A second signature (say, a proxy's) in separate field lines.
    upper.push((
        "Signature-Input".into(),
        "proxy=(\"@method\");created=1".into(),
    ));
    upper.push(("Signature".into(), "proxy=:AAAA:".into()));
    check(&upper, true, NOW).unwrap();
    // A label in one field only is an error (RFC 9421 section 4).
    upper.push(("Signature-Input".into(), "lone=();created=1".into()));
    let e = check(&upper, true, NOW).unwrap_err();
    assert_eq!(e.code(), "malformed", "{e}");
}

#[test]
fn each_rejection_reason() {
    let (good, _) = push(&key(1), NOW);
    let strip = |name: &str| -> Owned {
        good.iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .cloned()
            .collect()
    };
    let set = |name: &str, value: &str| -> Owned {
        good.iter()
            .map(|(n, v)| {
                if n.eq_ignore_ascii_case(name) {
                    (n.clone(), value.to_string())
                } else {
                    (n.clone(), v.clone())
                }
            })
            .collect()
    };
    let code = |r: Result<_, AuthError>| r.unwrap_err().code();

    assert_eq!(
        code(check(&strip("signature-input"), true, NOW)),
        "missing-signature"
    );
    assert_eq!(
        code(check(&strip("signature"), true, NOW)),
        "missing-signature"
    );
    assert_eq!(code(check(&Vec::new(), false, NOW)), "missing-signature");

    let input = good
        .iter()
        .find(|(n, _)| n == "signature-input")
        .unwrap()
        .1
        .clone();
    let sig = good
        .iter()
        .find(|(n, _)| n == "signature")
        .unwrap()
        .1
        .clone();
    let relabel = set("signature-input", &input.replacen("rz=", "xx=", 1));
    let relabel: Owned = relabel
        .into_iter()
        .map(|(n, v)| {
            if n == "signature" {
                (n, sig.replacen("rz=", "xx=", 1))
            } else {
                (n, v)
            }
        })
        .collect();
    assert_eq!(code(check(&relabel, true, NOW)), "missing-label");

    assert_eq!(
        code(check(&strip("content-digest"), true, NOW)),
        "missing-header"
    );
    assert_eq!(
        code(check(&set("signature-input", "rz=(\"@method\""), true, NOW)),
        "malformed"
    );
    assert_eq!(
        code(check(&set("signature", "rz=:AAAA:"), true, NOW)),
        "malformed"
    );
    assert_eq!(
        code(check(&set("content-digest", "sha-256=:AAAA:"), true, NOW)),
        "malformed"
    );
    let huge = format!("rz=(\"@method\");nonce=\"{}\"", "a".repeat(9000));
    assert_eq!(
        code(check(&set("signature-input", &huge), true, NOW)),
        "too-large"
    );
    let many = (0..40)
        .map(|i| format!("\"x-h{i}\""))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(
        code(check(
            &set("signature-input", &format!("rz=({many})")),
            true,
            NOW
        )),
        "too-large"
    );
    assert_eq!(
        code(check(
            &set("signature-input", "rz=(\"@query-param\";name=\"a\")"),
            true,
            NOW
        )),
        "unsupported-component"
    );
    assert_eq!(
        code(check(
            &set("signature-input", "rz=(\"@method\");foo=1"),
            true,
            NOW
        )),
        "unsupported-param"
    );

    let digest_h: Owned = vec![(
        "content-digest".into(),
        ContentDigest::of(b"{\"hello\": \"world\"}\n").header_value(),
    )];
    let comps = ["@method", "@target-uri", "content-digest"];
    let p = good_params(NOW, NOW + 300);
    for name in ["alg", "keyid", "created", "expires", "nonce", "tag"] {
        let h = custom("POST", &digest_h, &comps, without(p.clone(), name));
        let e = check(&h, true, NOW).unwrap_err();
        assert_eq!(
            e,
            AuthError::MissingParam {
                param: name_static(name)
            }
        );
    }
    let h = custom(
        "POST",
        &digest_h,
        &comps,
        replace(p.clone(), Param::Alg("rsa-pss-sha512".into())),
    );
    assert_eq!(code(check(&h, true, NOW)), "unsupported-alg");
    let h = custom(
        "POST",
        &digest_h,
        &comps,
        replace(p.clone(), Param::Tag(RESPONSE_TAG.into())),
    );
    assert_eq!(code(check(&h, true, NOW)), "wrong-tag");
    let h = custom(
        "POST",
        &digest_h,
        &comps,
        replace(p.clone(), Param::KeyId("not-hex".into())),
    );
    assert_eq!(code(check(&h, true, NOW)), "malformed");
    let h = custom(
        "POST",
        &digest_h,
        &comps,
        replace(p.clone(), Param::Nonce("short".into())),
    );
    assert_eq!(code(check(&h, true, NOW)), "malformed");

    let h = custom("POST", &digest_h, &comps, good_params(NOW, NOW + 301));
    assert_eq!(
        check(&h, true, NOW).unwrap_err(),
        AuthError::WindowTooLong {
            window: 301,
            max: 300
        }
    );
    let h = custom("POST", &digest_h, &comps, good_params(NOW, NOW - 1));
    assert_eq!(code(check(&h, true, NOW)), "window-too-long");
    // created may be up to the skew (60 s) ahead.
    check(&good, true, NOW - 60).unwrap();
    assert_eq!(
        check(&good, true, NOW - 61).unwrap_err(),
        AuthError::NotYetValid {
            created: NOW,
            now: NOW - 61
        }
    );
    check(&good, true, NOW + 299).unwrap();
    assert_eq!(
        check(&good, true, NOW + 300).unwrap_err(),
        AuthError::Expired {
            expires: NOW + 300,
            now: NOW + 300
        }
    );

    for (comps, missing) in [
        (&["@target-uri", "content-digest"][..], "\"@method\""),
        (&["@method", "content-digest"][..], "\"@target-uri\""),
        (&["@method", "@target-uri"][..], "\"content-digest\""),
    ] {
        let h = custom("POST", &digest_h, comps, p.clone());
        assert_eq!(
            check(&h, true, NOW).unwrap_err(),
            AuthError::NotCovered {
                component: missing.into()
            }
        );
    }
    // Without a body, content-digest need not be covered.
    let h = custom("POST", &digest_h, &["@method", "@target-uri"], p.clone());
    check(&h, false, NOW).unwrap();

    let h = refs(&good);
    let e = verify_request("POST", URI, &h, true, NOW, &Policy::default(), |_| None).unwrap_err();
    assert_eq!(e.code(), "unknown-key");
    seen(&e);
    let e = verify_request("POST", URI, &h, true, NOW, &Policy::default(), |_| {
        Some(key(2).public_key())
    })
    .unwrap_err();
    assert_eq!(e.code(), "wrong-key");
    seen(&e);
    let e = verify_request(
        "PUT",
        URI,
        &h,
        true,
        NOW,
        &Policy::default(),
        resolver(&key(1)),
    )
    .unwrap_err();
    assert_eq!(e, AuthError::BadSignature);
    seen(&e);
    // Signed by another key that claims key(1)'s id: the right key does not verify it.
    let (forged, _) = push(&key(2), NOW);
    let forged: Owned = forged
        .into_iter()
        .map(|(n, v)| {
            if n == "signature-input" {
                let other = InstanceId::of(&key(2).public_key()).to_hex();
                let mine = InstanceId::of(&key(1).public_key()).to_hex();
                (n, v.replace(&other, &mine))
            } else {
                (n, v)
            }
        })
        .collect();
    assert_eq!(
        check(&forged, true, NOW).unwrap_err(),
        AuthError::BadSignature
    );
}

fn name_static(name: &str) -> &'static str {
    ["alg", "keyid", "created", "expires", "nonce", "tag"]
        .into_iter()
        .find(|n| *n == name)
        .unwrap()
}

#[test]
fn presented_key_field() {
    let (h, _) = push(&key(1), NOW);
    assert_eq!(presented_key(&refs(&h)).unwrap(), Some(key(1).public_key()));
    assert_eq!(presented_key(&[]).unwrap(), None);
    assert!(presented_key(&[(KEY_HEADER, "zz")]).is_err());
    // A verifier that meets the caller for the first time takes the key from the field: it
    // must hash to the key id.
    let hr = refs(&h);
    let k = presented_key(&hr).unwrap();
    verify_request("POST", URI, &hr, true, NOW, &Policy::default(), |_| k).unwrap();
}

#[test]
fn response_round_trip_and_binding_to_its_request() {
    let server = key(5);
    let (req_h, _) = push(&key(1), NOW);
    let req_refs = refs(&req_h);
    let req = Request {
        method: "POST",
        target_uri: URI,
        headers: &req_refs,
    };
    let body = br#"{"imported":1}"#;
    let d = ContentDigest::of(body);
    let s = sign_response(&server, 200, req, Some(&d), NOW + 1, &nonce(11)).unwrap();
    assert!(s.signature_base.contains("\"signature-input\";req: rz=("));
    let h = owned(&s.headers);
    let hr = refs(&h);
    let v = verify_response(
        200,
        &hr,
        req,
        true,
        NOW + 2,
        &Policy::default(),
        &server.public_key(),
    )
    .unwrap();
    v.check_body(&d).unwrap();
    assert_eq!(
        v.check_body(&ContentDigest::of(b"x")),
        Err(AuthError::DigestMismatch)
    );

    // Another status, another expected key, another request (another nonce): all refused.
    let p = Policy::default();
    let e = verify_response(500, &hr, req, true, NOW + 2, &p, &server.public_key()).unwrap_err();
    assert_eq!(e, AuthError::BadSignature);
    let e = verify_response(200, &hr, req, true, NOW + 2, &p, &key(6).public_key()).unwrap_err();
    assert_eq!(e.code(), "wrong-key");
    let s2 = sign_request(
        &key(1),
        "POST",
        URI,
        Some(&ContentDigest::of(b"{\"hello\": \"world\"}\n")),
        NOW,
        &nonce(99),
    )
    .unwrap();
    let other_h = owned(&s2.headers);
    let other_refs = refs(&other_h);
    let other = Request {
        method: "POST",
        target_uri: URI,
        headers: &other_refs,
    };
    let e = verify_response(200, &hr, other, true, NOW + 2, &p, &server.public_key()).unwrap_err();
    assert_eq!(e, AuthError::BadSignature);
    // A response signature is not a request signature (tag), and vice versa.
    let e = verify_request("POST", URI, &hr, false, NOW + 2, &p, |_| {
        Some(server.public_key())
    })
    .unwrap_err();
    assert!(matches!(e.code(), "not-covered" | "wrong-tag"), "{e}");
    let e = verify_response(
        200,
        &req_refs,
        req,
        false,
        NOW + 2,
        &p,
        &key(1).public_key(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "wrong-tag");
}

#[test]
fn zz_every_code_is_produced() {
    // Runs the others' checks again so the set is complete whatever the test order.
    request_round_trip_body_and_replay();
    replay_cache_full_is_reported();
    each_rejection_reason();
    let seen = CODES_SEEN.lock().unwrap().clone();
    let all: BTreeSet<&str> = AuthError::CODES.into_iter().collect();
    assert_eq!(seen, all);
}

// ---------------------------------------------------------------------------------------------
// Property: any change to a covered component, a signature parameter or the signature fails.

#[derive(Debug, Clone)]
enum Mutation {
    Method(String),
    Scheme,
    Authority(String),
    Path(String),
    Query(String),
    Digest(Vec<u8>),
    Body(Vec<u8>),
    Created(i64),
    Nonce(u8),
    KeyId,
    SignatureBit(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        "(GET|PUT|DELETE|PATCH|post)".prop_map(Mutation::Method),
        Just(Mutation::Scheme),
        "[a-z]{1,8}\\.example(:[0-9]{2,4})?".prop_map(Mutation::Authority),
        "/[a-z0-9/]{0,12}".prop_map(Mutation::Path),
        "[a-z0-9=&]{0,12}".prop_map(Mutation::Query),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Mutation::Digest),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Mutation::Body),
        (-30i64..30)
            .prop_filter("a change", |d| *d != 0)
            .prop_map(Mutation::Created),
        any::<u8>().prop_map(Mutation::Nonce),
        Just(Mutation::KeyId),
        (0usize..512).prop_map(Mutation::SignatureBit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutating_anything_covered_fails(
        seed in any::<[u8; 32]>(),
        path in "/[a-z0-9/]{0,12}",
        query in proptest::option::of("[a-z0-9=&]{0,12}"),
        body in proptest::collection::vec(any::<u8>(), 0..64),
        nonce_byte in any::<u8>(),
        m in mutation(),
    ) {
        let k = SecretKey::from_seed(&seed);
        let uri = match &query {
            Some(q) => format!("https://hub.example:8443{path}?{q}"),
            None => format!("https://hub.example:8443{path}"),
        };
        let d = ContentDigest::of(&body);
        let s = sign_request(&k, "POST", &uri, Some(&d), NOW, &Nonce::from_bytes(&[nonce_byte; 16]).unwrap()).unwrap();
        let mut h = owned(&s.headers);
        let pk = k.public_key();
        let run = |method: &str, uri: &str, h: &Owned, body: &[u8]| -> Result<(), AuthError> {
            let hr = refs(h);
            let v = verify_request(method, uri, &hr, true, NOW + 5, &Policy::default(), |_| Some(pk))?;
            v.check_body(&ContentDigest::of(body))
        };
        prop_assert_eq!(run("POST", &uri, &h, &body), Ok(()));

        let set_input = |h: &mut Owned, f: &dyn Fn(&str) -> String| {
            for (n, v) in h.iter_mut() {
                if n == "signature-input" {
                    *v = f(v);
                }
            }
        };
        let (method, uri2, body2) = match &m {
            Mutation::Method(x) => (x.clone(), uri.clone(), body.clone()),
            Mutation::Scheme => ("POST".into(), uri.replacen("https", "http", 1), body.clone()),
            Mutation::Authority(a) => ("POST".into(), uri.replacen("hub.example:8443", a, 1), body.clone()),
            Mutation::Path(p) => {
                let q = query.as_ref().map(|q| format!("?{q}")).unwrap_or_default();
                ("POST".into(), format!("https://hub.example:8443{p}{q}"), body.clone())
            }
            Mutation::Query(q) => ("POST".into(), format!("https://hub.example:8443{path}?{q}"), body.clone()),
            Mutation::Digest(other) => {
                for (n, v) in h.iter_mut() {
                    if n == "content-digest" {
                        *v = ContentDigest::of(other).header_value();
                    }
                }
                ("POST".into(), uri.clone(), body.clone())
            }
            Mutation::Body(other) => ("POST".into(), uri.clone(), other.clone()),
            Mutation::Created(delta) => {
                let delta = *delta;
                set_input(&mut h, &|v| v.replace(&format!("created={NOW}"), &format!("created={}", NOW + delta))
                    .replace(&format!("expires={}", NOW + 300), &format!("expires={}", NOW + delta + 300)));
                ("POST".into(), uri.clone(), body.clone())
            }
            Mutation::Nonce(b) => {
                let old = Nonce::from_bytes(&[nonce_byte; 16]).unwrap();
                let new = Nonce::from_bytes(&[*b; 16]).unwrap();
                set_input(&mut h, &|v| v.replace(old.as_str(), new.as_str()));
                ("POST".into(), uri.clone(), body.clone())
            }
            Mutation::KeyId => {
                let id = InstanceId::of(&pk).to_hex();
                let mut other = id.clone().into_bytes();
                other[0] = if other[0] == b'0' { b'1' } else { b'0' };
                let other = String::from_utf8(other).unwrap();
                set_input(&mut h, &|v| v.replace(&id, &other));
                ("POST".into(), uri.clone(), body.clone())
            }
            Mutation::SignatureBit(bit) => {
                let pk_sig = {
                    let (_, v) = h.iter().find(|(n, _)| n == "signature").unwrap();
                    let b64 = v.strip_prefix("rz=:").unwrap().strip_suffix(':').unwrap();
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
                };
                let mut flipped = pk_sig.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                use base64::Engine as _;
                let text = format!("rz=:{}:", base64::engine::general_purpose::STANDARD.encode(&flipped));
                for (n, v) in h.iter_mut() {
                    if n == "signature" {
                        *v = text.clone();
                    }
                }
                ("POST".into(), uri.clone(), body.clone())
            }
        };
        // A mutation that happens to produce the same message is not a change.
        let unchanged = method == "POST" && uri2 == uri && body2 == body && h == owned(&s.headers);
        prop_assume!(!unchanged);
        let r = run(&method, &uri2, &h, &body2);
        prop_assert!(r.is_err(), "{:?} still verified", m);
        if let Mutation::KeyId = m {
            prop_assert_eq!(r.unwrap_err().code(), "wrong-key");
        } else if let Mutation::Body(_) = m {
            prop_assert_eq!(r.unwrap_err(), AuthError::DigestMismatch);
        } else {
            prop_assert_eq!(r.unwrap_err(), AuthError::BadSignature);
        }
    }
}
