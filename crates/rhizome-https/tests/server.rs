//! The server against crafted requests: real `Server`s on 127.0.0.1 ephemeral ports, real
//! TLS, real SQLite homes. Each authentication failure is a 401 with its reason code and
//! stores nothing; blocked callers get 403, oversized bodies 413, a full house 503 with
//! `Retry-After`, a caller over its rate 429; the descriptor and the responses are signed.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rhizome_core::{Clock, InstanceId, SecretKey};
use rhizome_https::client::{bytes_body, channel_body, read_body, RawConnection};
use rhizome_https::descriptor::Descriptor;
use rhizome_https::paths;
use rhizome_https::server::{Limits, ServeConfig, Server, TlsSource};
use rhizome_httpsig::{sign_request, ContentDigest, Nonce};
use rhizome_node::exchange::{Base, ExportRequest, ImportOutcome};
use rhizome_node::{
    InitRequest, KeySession, NoPassphrase, Node, Policy, Protection, StoreLocation, Transport,
};
use serde_json::Value;
use tokio::sync::oneshot;

type Headers = Vec<(String, String)>;

struct Home {
    location: StoreLocation,
    keys: Arc<KeySession>,
    key: SecretKey,
    id: InstanceId,
}

impl Home {
    fn new(dir: &Path, name: &str) -> Home {
        let location = StoreLocation::from_args(&dir.join(name), None).unwrap();
        let keys = KeySession::new(NoPassphrase);
        let req = InitRequest {
            name: name.into(),
            author: None,
            protection: Protection::Plain,
            publish_profile: true,
        };
        let (node, info) = Node::init(location.clone(), Arc::clone(&keys), &req).unwrap();
        Home {
            key: node.instance_key().unwrap(),
            id: info.instance_id,
            location,
            keys,
        }
    }

    fn node(&self) -> Node {
        Node::open(
            self.location.clone(),
            Arc::clone(&self.keys),
            Policy::default(),
        )
        .unwrap()
    }

    /// A bundle of everything it holds.
    fn bundle(&self) -> Vec<u8> {
        let mut node = self.node();
        let req = ExportRequest {
            peer: None,
            base: Base::Nothing,
            compress: false,
            encrypt_to: Vec::new(),
            transport: Transport::Https,
        };
        let prepared = node.prepare_export(&req, false).unwrap();
        let mut out = Vec::new();
        node.export(&prepared, &mut out, &mut |_| {}).unwrap();
        out
    }

    /// Events it holds.
    fn events(&self) -> u64 {
        self.node()
            .clock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.get())
            .sum()
    }
}

struct Running {
    url: String,
    id: InstanceId,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(home: &Home, limits: Limits, tofu: bool) -> Running {
    let server = Server::bind(ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        location: home.location.clone(),
        keys: Arc::clone(&home.keys),
        policy: Policy {
            trust_on_first_use: tofu,
        },
        tls: TlsSource::InstanceKey,
        limits,
    })
    .await
    .unwrap();
    let (tx, rx) = oneshot::channel();
    let (url, id) = (server.url(), server.instance_id());
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        url,
        id,
        stop: Some(tx),
    }
}

fn now() -> i64 {
    rhizome_https::now_secs()
}

fn nonce(n: u8) -> Nonce {
    let mut b = [n; 16];
    getrandom_bytes(&mut b);
    Nonce::from_bytes(&b).unwrap()
}

fn getrandom_bytes(b: &mut [u8]) {
    // Unique enough for tests: time and a counter.
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let k = N.fetch_add(1, Ordering::Relaxed);
    b[..8].copy_from_slice(&t.to_le_bytes());
    b[8..16].copy_from_slice(&k.to_le_bytes());
}

/// Signed headers for `method path` with `body`, made at `created`, by `key`.
fn signed(
    conn: &RawConnection,
    key: &SecretKey,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    created: i64,
) -> Vec<(String, String)> {
    let digest = body.map(ContentDigest::of);
    let s = sign_request(
        key,
        method,
        &conn.target_uri(path),
        digest.as_ref(),
        created,
        &nonce(1),
    )
    .unwrap();
    let mut h: Vec<(String, String)> = s
        .headers
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    if let Some(b) = body {
        h.push(("content-length".into(), b.len().to_string()));
    }
    h
}

fn set(headers: &mut [(String, String)], name: &str, value: String) {
    for (n, v) in headers.iter_mut() {
        if n == name {
            *v = value.clone();
        }
    }
}

async fn send(
    server: &Running,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, http::HeaderMap, Vec<u8>) {
    let mut conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let resp = conn
        .send(method, path, headers, bytes_body(body))
        .await
        .unwrap();
    read_body(resp).await.unwrap()
}

/// Checks the signature on an answer to `method path` sent with `headers`, against `key`
/// (covering a `Content-Digest` unless the status is 204, which has no content).
fn check_answer(
    key: &rhizome_core::PublicKey,
    status: u16,
    answer: &http::HeaderMap,
    conn: &RawConnection,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> Result<rhizome_httpsig::VerifiedResponse, rhizome_httpsig::AuthError> {
    let rh: Vec<(String, String)> = answer
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let rh: Vec<(&str, &str)> = rh.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let qh: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let target = conn.target_uri(path);
    let request = rhizome_httpsig::Request {
        method,
        target_uri: &target,
        headers: &qh,
    };
    rhizome_httpsig::verify_response(
        status,
        &rh,
        request,
        status != 204,
        now(),
        &Default::default(),
        key,
    )
}

fn reason(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["reason"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authentication_failure_is_a_401_with_its_reason_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    let stranger = Home::new(dir.path(), "stranger");
    // Trust on first use: a request that got through would be imported at once.
    let server = start(&hub, Limits::default(), true).await;
    let before = hub.events();
    let bundle = school.bundle();
    let conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let good = || {
        signed(
            &conn,
            &school.key,
            "POST",
            paths::PUSH,
            Some(&bundle),
            now(),
        )
    };

    let mut cases: Vec<(&str, Headers, &str)> = Vec::new();
    // Unsigned.
    cases.push((
        "unsigned",
        vec![("content-length".into(), bundle.len().to_string())],
        "missing-signature",
    ));
    // Forged: one bit of the signature flipped.
    let mut forged = good();
    for (n, v) in forged.iter_mut() {
        if n == "signature" {
            let flip = if v.as_bytes()[5] == b'A' { "B" } else { "A" };
            v.replace_range(5..6, flip);
        }
    }
    cases.push(("forged", forged, "bad-signature"));
    // Expired: signed an hour ago.
    cases.push((
        "expired",
        signed(
            &conn,
            &school.key,
            "POST",
            paths::PUSH,
            Some(&bundle),
            now() - 3600,
        ),
        "expired",
    ));
    // Wrong key: the school's key id with the stranger's key presented.
    let mut wrong_key = good();
    set(
        &mut wrong_key,
        "rhizome-key",
        stranger.key.public_key().to_hex(),
    );
    cases.push(("wrong key", wrong_key, "wrong-key"));
    // Signed by the stranger, presented as the school.
    let mut other_signer = signed(
        &conn,
        &stranger.key,
        "POST",
        paths::PUSH,
        Some(&bundle),
        now(),
    );
    set(
        &mut other_signer,
        "rhizome-key",
        school.key.public_key().to_hex(),
    );
    cases.push(("other signer", other_signer, "wrong-key"));
    // Signed for another path.
    let other_path = signed(
        &conn,
        &school.key,
        "POST",
        paths::PULL,
        Some(&bundle),
        now(),
    );
    cases.push(("other path", other_path, "bad-signature"));
    for (what, headers, code) in cases {
        let (status, _, body) = send(&server, "POST", paths::PUSH, &headers, bundle.clone()).await;
        assert_eq!(status, 401, "{what}: {}", String::from_utf8_lossy(&body));
        assert_eq!(reason(&body), code, "{what}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(!v["error"].as_str().unwrap().is_empty(), "{what}");
    }
    // Wrong digest: signed over other bytes; the body is a valid bundle.
    let mut other = bundle.clone();
    other.extend_from_slice(b"\n");
    let mut headers = signed(&conn, &school.key, "POST", paths::PUSH, Some(&other), now());
    set(&mut headers, "content-length", bundle.len().to_string());
    let (status, _, body) = send(&server, "POST", paths::PUSH, &headers, bundle.clone()).await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert_eq!(reason(&body), "digest-mismatch");

    // Replayed: the same signed request twice (a clock request: no body).
    let headers = signed(&conn, &school.key, "GET", paths::CLOCK, None, now());
    let (status, _, _) = send(&server, "GET", paths::CLOCK, &headers, Vec::new()).await;
    assert_eq!(status, 200);
    let (status, _, body) = send(&server, "GET", paths::CLOCK, &headers, Vec::new()).await;
    assert_eq!(status, 401);
    assert_eq!(reason(&body), "replayed");

    // Nothing was stored: no event, no peer, nothing held.
    let node = hub.node();
    assert_eq!(hub.events(), before);
    assert!(node.pending().unwrap().is_empty());
    assert!(
        node.peers().unwrap().is_empty(),
        "{:?}",
        node.peers().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_digest_from_an_unknown_caller_leaves_nothing_held() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    let server = start(&hub, Limits::default(), false).await;
    let bundle = school.bundle();
    let conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let mut headers = signed(
        &conn,
        &school.key,
        "POST",
        paths::PUSH,
        Some(b"other bytes"),
        now(),
    );
    set(&mut headers, "content-length", bundle.len().to_string());
    let (status, _, body) = send(&server, "POST", paths::PUSH, &headers, bundle.clone()).await;
    assert_eq!((status, reason(&body).as_str()), (401, "digest-mismatch"));
    assert!(hub.node().pending().unwrap().is_empty());
    // The same bundle, signed right: held in quarantine (an unknown caller).
    let headers = signed(
        &conn,
        &school.key,
        "POST",
        paths::PUSH,
        Some(&bundle),
        now(),
    );
    let (status, _, body) = send(&server, "POST", paths::PUSH, &headers, bundle).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["outcome"], "held");
    assert_eq!(hub.node().pending().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_caller_is_refused_with_403_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    hub.node().block(&school.id).unwrap();
    let server = start(&hub, Limits::default(), true).await;
    let bundle = school.bundle();
    let conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    for (method, path, body) in [
        ("POST", paths::PUSH, Some(bundle.clone())),
        ("GET", paths::CLOCK, None),
    ] {
        let headers = signed(&conn, &school.key, method, path, body.as_deref(), now());
        let (status, _, answer) =
            send(&server, method, path, &headers, body.unwrap_or_default()).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(reason(&answer), "blocked_instance");
    }
    let pull = br#"{"clock":{},"encrypt":false}"#.to_vec();
    let headers = signed(&conn, &school.key, "POST", paths::PULL, Some(&pull), now());
    let (status, _, _) = send(&server, "POST", paths::PULL, &headers, pull).await;
    assert_eq!(status, 403);
    assert_eq!(hub.events(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413_whether_declared_or_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    let limits = Limits {
        max_body: 1000,
        ..Limits::default()
    };
    let server = start(&hub, limits, true).await;
    let bundle = school.bundle();
    assert!(bundle.len() > 1000, "the test bundle must be over the cap");
    let mut conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    // Declared.
    let headers = signed(
        &conn,
        &school.key,
        "POST",
        paths::PUSH,
        Some(&bundle),
        now(),
    );
    let (status, _, body) = send(&server, "POST", paths::PUSH, &headers, bundle.clone()).await;
    assert_eq!((status, reason(&body).as_str()), (413, "too-large"));
    // Streamed without a length (chunked).
    let mut headers = signed(
        &conn,
        &school.key,
        "POST",
        paths::PUSH,
        Some(&bundle),
        now(),
    );
    headers.retain(|(n, _)| n != "content-length");
    let (tx, body) = channel_body();
    let feed = bundle.clone();
    tokio::spawn(async move {
        for c in feed.chunks(100) {
            if tx.send(Ok(bytes::Bytes::copy_from_slice(c))).await.is_err() {
                return;
            }
        }
    });
    let resp = conn
        .send("POST", paths::PUSH, &headers, body)
        .await
        .unwrap();
    let (status, _, body) = read_body(resp).await.unwrap();
    assert_eq!((status, reason(&body).as_str()), (413, "too-large"));
    assert_eq!(hub.events(), 1);
    assert!(hub.node().peers().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_syncs_the_answer_is_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    let limits = Limits {
        max_syncs: 1,
        ..Limits::default()
    };
    let server = start(&hub, limits, true).await;
    let bundle = school.bundle();
    // A push that holds the only slot: its body stops after the first bytes.
    let mut slow = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let headers = signed(
        &slow,
        &school.key,
        "POST",
        paths::PUSH,
        Some(&bundle),
        now(),
    );
    let (tx, body) = channel_body();
    tx.send(Ok(bytes::Bytes::copy_from_slice(&bundle[..10])))
        .await
        .unwrap();
    let pending = tokio::spawn(async move { slow.send("POST", paths::PUSH, &headers, body).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let pull = br#"{"clock":{},"encrypt":false}"#.to_vec();
    let headers = signed(&conn, &school.key, "POST", paths::PULL, Some(&pull), now());
    let (status, h, body) = send(&server, "POST", paths::PULL, &headers, pull).await;
    assert_eq!((status, reason(&body).as_str()), (503, "busy"));
    assert!(h.get("retry-after").is_some());
    drop(tx);
    let _ = pending.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_its_rate_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    let limits = Limits {
        requests_per_minute: 3,
        ..Limits::default()
    };
    let server = start(&hub, limits, true).await;
    let conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let headers = signed(&conn, &school.key, "GET", paths::CLOCK, None, now());
        let (status, h, _) = send(&server, "GET", paths::CLOCK, &headers, Vec::new()).await;
        if status == 429 {
            assert!(h.get("retry-after").is_some());
        }
        statuses.push(status);
    }
    // A minute boundary may fall inside the loop: at least one 429, at most two.
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!((1..=2).contains(&limited), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_and_the_answers_are_signed_by_the_instance_key() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    let server = start(&hub, Limits::default(), true).await;
    let (status, _, body) = send(&server, "GET", paths::DESCRIPTOR, &[], Vec::new()).await;
    assert_eq!(status, 200);
    let d = Descriptor::parse(&body).unwrap();
    assert_eq!(d.instance_id, hub.id);
    assert_eq!(d.public_key, hub.key.public_key());
    assert_eq!(d.name, "hub");
    assert_eq!(d.hosts.len(), 1);
    assert!(d.age_recipient.starts_with("age1"));
    // One byte changed: refused.
    let mut bad = body.clone();
    let at = bad.windows(5).position(|w| w == b"\"hub\"").unwrap();
    bad[at + 1] = b'H';
    assert!(Descriptor::parse(&bad).is_err());
    // The clock answer: signed, covering its digest, bound to the request.
    let conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let headers = signed(&conn, &school.key, "GET", paths::CLOCK, None, now());
    let (status, h, body) = send(&server, "GET", paths::CLOCK, &headers, Vec::new()).await;
    assert_eq!(status, 200);
    let v = check_answer(
        &hub.key.public_key(),
        200,
        &h,
        &conn,
        "GET",
        paths::CLOCK,
        &headers,
    )
    .unwrap();
    v.check_body(&ContentDigest::of(&body)).unwrap();
    let clock: Value = serde_json::from_slice(&body).unwrap();
    let clock: Clock = serde_json::from_value(clock["clock"].clone()).unwrap();
    assert_eq!(clock, hub.node().clock().unwrap());
    // Checked against another key: refused.
    assert!(check_answer(
        &school.key.public_key(),
        200,
        &h,
        &conn,
        "GET",
        paths::CLOCK,
        &headers
    )
    .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_and_unknown_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let server = start(&hub, Limits::default(), true).await;
    let (status, _, _) = send(&server, "GET", "/nothing", &[], Vec::new()).await;
    assert_eq!(status, 404);
    let (status, _, _) = send(&server, "DELETE", paths::PUSH, &[], Vec::new()).await;
    assert_eq!(status, 405);
    let huge = vec![("x-filler".to_string(), "a".repeat(64 * 1024))];
    let mut conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    // hyper answers 431, or closes the connection: refused either way.
    if let Ok(resp) = conn
        .send("GET", paths::DESCRIPTOR, &huge, bytes_body(Vec::new()))
        .await
    {
        assert_eq!(resp.status().as_u16(), 431);
    }
    // The server still answers.
    let (status, _, _) = send(&server, "GET", paths::DESCRIPTOR, &[], Vec::new()).await;
    assert_eq!(status, 200);
}

/// A pull stating everything the server holds is answered 204 with no body, signed; one whose
/// clock names a feed that is no valid key (the identity point, small order) is a 400
/// `bad-request`, even though such a feed is never looked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_that_lacks_nothing_is_204_and_a_bad_clock_key_is_400() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    let server = start(&hub, Limits::default(), true).await;
    let conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let all = serde_json::json!({"clock": hub.node().clock().unwrap(), "encrypt": false});
    let body = rhizome_core::canonical::to_canonical(&all);
    let headers = signed(&conn, &school.key, "POST", paths::PULL, Some(&body), now());
    let (status, h, answer) = send(&server, "POST", paths::PULL, &headers, body).await;
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
    assert!(answer.is_empty());
    check_answer(
        &hub.key.public_key(),
        204,
        &h,
        &conn,
        "POST",
        paths::PULL,
        &headers,
    )
    .unwrap();
    // The same, less one feed: a bundle.
    let mut clock: Value = serde_json::to_value(hub.node().clock().unwrap()).unwrap();
    let first = clock.as_object().unwrap().keys().next().unwrap().clone();
    clock.as_object_mut().unwrap().remove(&first);
    let body = rhizome_core::canonical::to_canonical(
        &serde_json::json!({"clock": clock, "encrypt": false}),
    );
    let headers = signed(&conn, &school.key, "POST", paths::PULL, Some(&body), now());
    let (status, _, answer) = send(&server, "POST", paths::PULL, &headers, body).await;
    assert_eq!(status, 200);
    assert!(!answer.is_empty());
    // A feed id that is the identity point.
    let identity = format!("01{}", "00".repeat(31));
    let body = format!("{{\"clock\":{{\"{identity}\":1}},\"encrypt\":false}}").into_bytes();
    let headers = signed(&conn, &school.key, "POST", paths::PULL, Some(&body), now());
    let (status, _, answer) = send(&server, "POST", paths::PULL, &headers, body).await;
    assert_eq!(status, 400);
    assert_eq!(reason(&answer), "bad-request");
    assert!(
        String::from_utf8_lossy(&answer).contains("small-order"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// `"encrypt":true`: the pulled bundle is age-encrypted to the caller's published key (known
/// from a bundle it sent), and the caller opens and imports it with its instance key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_pull_is_sealed_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Home::new(dir.path(), "hub");
    let school = Home::new(dir.path(), "school");
    let server = start(&hub, Limits::default(), true).await;
    let conn = RawConnection::open(&server.url, Some(server.id))
        .await
        .unwrap();
    let pull = |clock: &Clock| {
        rhizome_core::canonical::to_canonical(&serde_json::json!({"clock": clock, "encrypt": true}))
    };
    // Unknown caller: its key is not known, so nothing can be sealed to it.
    let body = pull(&Clock::new());
    let headers = signed(&conn, &school.key, "POST", paths::PULL, Some(&body), now());
    let (status, _, answer) = send(&server, "POST", paths::PULL, &headers, body).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(reason(&answer), "invalid");
    // Once its bundle (which publishes its age recipient) is in, the pull is sealed.
    let pushed = school.bundle();
    let headers = signed(
        &conn,
        &school.key,
        "POST",
        paths::PUSH,
        Some(&pushed),
        now(),
    );
    let (status, _, _) = send(&server, "POST", paths::PUSH, &headers, pushed).await;
    assert_eq!(status, 200);
    let body = pull(&school.node().clock().unwrap());
    let headers = signed(&conn, &school.key, "POST", paths::PULL, Some(&body), now());
    let (status, _, sealed) = send(&server, "POST", paths::PULL, &headers, body).await;
    assert_eq!(status, 200);
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        !sealed.windows(3).any(|w| w == b"hub"),
        "the hub's name shows in clear"
    );
    // Opened with the school's instance key: a first bundle from the hub, held for approval.
    let outcome = school
        .node()
        .import(
            Box::new(std::io::Cursor::new(sealed)),
            None,
            Transport::Https,
            &mut |_| {},
        )
        .unwrap();
    let ImportOutcome::Held(held) = outcome else {
        panic!("expected a held bundle, got {outcome:?}");
    };
    assert_eq!(held.held.instance_id, hub.id);
    assert_eq!(held.check.event_lines, 1, "the hub's own post");
    assert_eq!(held.check.status, rhizome_node::Status::Complete);
}
