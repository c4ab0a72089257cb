//! `rhizome serve`: the HTTPS sync server (PROTOCOL 10).
//!
//! Owns the network side only: TLS 1.3 connections (bounded in number and handshake time),
//! HTTP/1.1 with a header size cap and a header read timeout, routing, authentication of every
//! request before its body is read ([`crate::auth`]), the per-caller rate limit, the cap on
//! concurrent syncs, body size caps and idle and total timeouts. The node, opened once per
//! request on a blocking thread, decides everything else: whether the caller is refused, what
//! a pull carries for it, and the admission of what a push brings.

// The handlers' early answers are `Err(response)`: the response is what is sent, once per
// request, so its size on the stack does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::future::Future;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rhizome_core::canonical::{parse_strict, to_canonical};
use rhizome_core::{InstanceId, SecretKey, UncheckedClock};
use rhizome_httpsig::{sign_response, AuthError, BodyHasher, ContentDigest, VerifiedRequest};
use rhizome_node::exchange::ImportOutcome;
use rhizome_node::{KeySession, Node, NodeError, Policy, StoreError, StoreLocation, Transport};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::auth::Verifier;
use crate::bridge::{ChannelBody, ChannelReader, ChannelWriter};
use crate::descriptor::Descriptor;
use crate::{paths, HttpsError, Result, BUNDLE_TYPE};

type Body = BoxBody<Bytes, std::io::Error>;

/// Push bodies up to this size (declared by `Content-Length`) are read whole and their digest
/// checked before the import starts; larger ones stream into the import (PROTOCOL 10.6).
pub const SPOOL_MAX: u64 = 8 << 20;

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// Self-signed, made from the instance key (the default): clients pin the instance id.
    InstanceKey,
    /// A CA-issued certificate chain and its key, PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
}

/// The server's bounds. Every one has a `rhizome serve` flag or a fixed documented value.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest push body, bytes (`--max-body`): 413 beyond.
    pub max_body: u64,
    /// Largest pull request body (the caller's clock), bytes.
    pub max_request_body: u64,
    /// Concurrent pulls and pushes (`--max-syncs`): 503 with `Retry-After` beyond.
    pub max_syncs: usize,
    /// Open connections; more are closed at once.
    pub max_connections: usize,
    /// Largest request head (request line and header fields), bytes: 431 beyond.
    pub max_header_bytes: usize,
    /// TLS handshake and request head must arrive within this.
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a body, either way: the peer is dropped after it.
    pub idle_timeout: Duration,
    /// Longest pull or push, end to end.
    pub request_timeout: Duration,
    /// Authenticated requests per caller per minute: 429 beyond.
    pub requests_per_minute: u32,
    /// Nonces remembered (the replay cache).
    pub replay_capacity: usize,
    /// Callers remembered by the rate limiter.
    pub rate_table: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 1 << 30,
            max_request_body: 16 << 20,
            max_syncs: 8,
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(3600),
            requests_per_minute: 120,
            replay_capacity: 100_000,
            rate_table: 100_000,
        }
    }
}

/// What `rhizome serve` is given.
pub struct ServeConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The instance served.
    pub location: StoreLocation,
    /// Its keys (the instance key signs the certificate's handshakes, manifests, responses).
    pub keys: Arc<KeySession>,
    /// Its policy (trust on first use for hubs).
    pub policy: Policy,
    /// Its certificate.
    pub tls: TlsSource,
    /// Its bounds.
    pub limits: Limits,
}

struct State {
    location: StoreLocation,
    keys: Arc<KeySession>,
    policy: Policy,
    key: SecretKey,
    descriptor: Bytes,
    verifier: Verifier,
    limits: Limits,
    syncs: Arc<Semaphore>,
    rate: Mutex<HashMap<InstanceId, (i64, u32)>>,
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    addr: SocketAddr,
    instance_id: InstanceId,
}

impl Server {
    /// Opens the instance (its key unlocked once), makes the certificate and the descriptor,
    /// and binds the address.
    pub async fn bind(config: ServeConfig) -> Result<Server> {
        let (location, keys, policy) = (config.location, config.keys, config.policy);
        let opened = {
            let (location, keys) = (location.clone(), Arc::clone(&keys));
            tokio::task::spawn_blocking(move || -> Result<_> {
                let node = Node::open(location, keys, policy)?;
                Ok(node.describe_self()?)
            })
            .await
            .map_err(|e| HttpsError::Io(e.to_string()))??
        };
        let (me, key) = opened;
        let descriptor = Descriptor::sign(&me, &key, rhizome_node::now_ms())?;
        let tls = match &config.tls {
            TlsSource::InstanceKey => crate::tls::self_signed_server(&key)?,
            TlsSource::Files { cert, key } => crate::tls::ca_server(cert, key)?,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| HttpsError::Io(format!("cannot listen on {}: {e}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HttpsError::Io(e.to_string()))?;
        let limits = config.limits;
        let state = State {
            location,
            keys,
            policy,
            key,
            descriptor: Bytes::from(descriptor.to_bytes()?),
            verifier: Verifier::new(limits.replay_capacity),
            syncs: Arc::new(Semaphore::new(limits.max_syncs)),
            rate: Mutex::new(HashMap::new()),
            limits,
        };
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            state: Arc::new(state),
            addr,
            instance_id: me.instance_id,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The instance served.
    pub fn instance_id(&self) -> InstanceId {
        self.instance_id
    }

    /// `https://ADDR:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Serves until `shutdown` completes; then stops accepting and returns (connections in
    /// flight are cut when the runtime ends: what a pull or push stored stays stored).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let conns = Arc::new(Semaphore::new(self.state.limits.max_connections));
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                () = &mut shutdown => return Ok(()),
            };
            let Ok((tcp, _peer)) = accepted else {
                // Out of descriptors or a reset before accept: keep serving.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let Ok(permit) = Arc::clone(&conns).try_acquire_owned() else {
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let state = Arc::clone(&self.state);
            tokio::spawn(async move {
                let _permit = permit;
                let limits = &state.limits;
                let Ok(Ok(tls)) =
                    tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await
                else {
                    return;
                };
                let svc_state = Arc::clone(&state);
                let svc = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&svc_state);
                    async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .max_buf_size(limits.max_header_bytes.max(8192))
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

/// A refusal: status, `{"error": message, "reason": code}`, and `Retry-After` when given.
fn refuse(
    status: StatusCode,
    code: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response<Body> {
    let body = to_canonical(&json!({"error": message, "reason": code}));
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn auth_refusal(e: &AuthError) -> Response<Body> {
    match e {
        AuthError::ReplayCacheFull { retry_after } => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            e.code(),
            &e.to_string(),
            Some((*retry_after).max(1)),
        ),
        _ => refuse(StatusCode::UNAUTHORIZED, e.code(), &e.to_string(), None),
    }
}

fn node_refusal(e: &NodeError) -> Response<Body> {
    let (status, code) = match e {
        NodeError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
        NodeError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
        NodeError::Refused(r) => (StatusCode::FORBIDDEN, r.code()),
        NodeError::Store(StoreError::Unavailable { .. }) => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "the store is unavailable",
                Some(5),
            )
        }
        // Details of internal failures stay in the server's own output.
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    let message = match status {
        StatusCode::INTERNAL_SERVER_ERROR => "internal error".to_string(),
        _ => e.to_string(),
    };
    refuse(status, code, &message, None)
}

/// The request as the signature saw it, kept to sign the response.
struct Signed {
    method: String,
    target_uri: String,
    headers: Vec<(String, String)>,
    verified: VerifiedRequest,
}

impl Signed {
    /// Adds the server's response signature (PROTOCOL 10.7) to `resp`; with `digest` the
    /// body's `Content-Digest` is added and covered.
    fn sign(
        &self,
        key: &SecretKey,
        mut resp: Response<Body>,
        digest: Option<&ContentDigest>,
    ) -> Response<Body> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let request = rhizome_httpsig::Request {
            method: &self.method,
            target_uri: &self.target_uri,
            headers: &headers,
        };
        let Ok(nonce) = crate::auth::nonce() else {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
                None,
            );
        };
        let status = resp.status().as_u16();
        match sign_response(key, status, request, digest, crate::now_secs(), &nonce) {
            Ok(s) => {
                for (name, value) in s.headers {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        resp.headers_mut().insert(name, v);
                    }
                }
                resp
            }
            Err(_) => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
                None,
            ),
        }
    }

    fn json(
        &self,
        key: &SecretKey,
        status: StatusCode,
        value: &serde_json::Value,
    ) -> Response<Body> {
        let body = to_canonical(value);
        let digest = ContentDigest::of(&body);
        let mut r = Response::new(full(body));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.sign(key, r, Some(&digest))
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, paths::DESCRIPTOR) => {
            let mut r = Response::new(full(state.descriptor.clone()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        (Method::GET, paths::CLOCK) => clock(state, req).await,
        (Method::POST, paths::PULL) => pull(state, req).await,
        (Method::POST, paths::PUSH) => push(state, req).await,
        (_, paths::DESCRIPTOR | paths::CLOCK | paths::PULL | paths::PUSH) => refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "method not allowed here",
            None,
        ),
        _ => refuse(StatusCode::NOT_FOUND, "not-found", "no such endpoint", None),
    }
}

fn open(state: &State) -> rhizome_node::Result<Node> {
    Node::open(
        state.location.clone(),
        Arc::clone(&state.keys),
        state.policy,
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, Response<Body>> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            None,
        )
    })
}

/// Authenticates a request before its body is read (PROTOCOL 10.6): the signature, the
/// replay cache, the caller's rate, and its standing (a blocked caller gets 403). Returns the
/// node opened for it.
async fn authenticate(
    state: &Arc<State>,
    req: &Request<Incoming>,
) -> std::result::Result<(Node, Signed), Response<Body>> {
    let Some(host) = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
    else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "no-host",
            "the Host field is missing",
            None,
        ));
    };
    let target_uri = format!(
        "https://{host}{}",
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let has_body = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(http::header::TRANSFER_ENCODING);
    let method = req.method().as_str().to_string();
    let st = Arc::clone(state);
    let outcome = blocking(move || {
        let node = match open(&st) {
            Ok(n) => n,
            Err(e) => return Err(node_refusal(&e)),
        };
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let verified = st
            .verifier
            .verify(&method, &target_uri, &pairs, has_body, |id| {
                node.peer_key(id).ok().flatten()
            })
            .map_err(|e| auth_refusal(&e))?;
        match node.refusal_for(&verified.keyid) {
            Ok(None) => {}
            Ok(Some(r)) => {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    r.code(),
                    &r.to_string(),
                    None,
                ))
            }
            Err(e) => return Err(node_refusal(&e)),
        }
        Ok((
            node,
            Signed {
                method,
                target_uri,
                headers,
                verified,
            },
        ))
    })
    .await?;
    let (node, signed) = outcome?;
    rate_check(state, &signed.verified.keyid)?;
    Ok((node, signed))
}

/// Counts the caller's requests in the current minute.
fn rate_check(state: &State, caller: &InstanceId) -> std::result::Result<(), Response<Body>> {
    let now = crate::now_secs();
    let minute = now.div_euclid(60);
    let mut table = state.rate.lock().unwrap_or_else(PoisonError::into_inner);
    if table.len() >= state.limits.rate_table && !table.contains_key(caller) {
        table.retain(|_, (m, _)| *m == minute);
        if table.len() >= state.limits.rate_table {
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many callers at once",
                Some(60),
            ));
        }
    }
    let entry = table.entry(*caller).or_insert((minute, 0));
    if entry.0 != minute {
        *entry = (minute, 0);
    }
    entry.1 += 1;
    if entry.1 > state.limits.requests_per_minute {
        let wait = (minute + 1) * 60 - now;
        return Err(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            &format!(
                "more than {} requests in a minute",
                state.limits.requests_per_minute
            ),
            Some(wait.max(1) as u64),
        ));
    }
    Ok(())
}

fn sync_permit(
    state: &State,
) -> std::result::Result<tokio::sync::OwnedSemaphorePermit, Response<Body>> {
    Arc::clone(&state.syncs).try_acquire_owned().map_err(|_| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            &format!(
                "{} syncs are running; try again later",
                state.limits.max_syncs
            ),
            Some(5),
        )
    })
}

async fn clock(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let (node, signed) = match authenticate(&state, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // A request without content: its (empty) body must match.
    if signed.verified.check_body(&ContentDigest::of(b"")).is_err() {
        return auth_refusal(&AuthError::DigestMismatch);
    }
    match blocking(move || node.clock()).await {
        Ok(Ok(clock)) => signed.json(&state.key, StatusCode::OK, &json!({"clock": clock})),
        Ok(Err(e)) => node_refusal(&e),
        Err(r) => r,
    }
}

/// Why a body was not read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFailure {
    TooLarge,
    Idle,
    Cut,
    Digest,
    Deadline,
}

impl BodyFailure {
    fn response(self, max: u64) -> Response<Body> {
        match self {
            BodyFailure::TooLarge => refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                &format!("the body is over {max} bytes"),
                None,
            ),
            BodyFailure::Idle => refuse(
                StatusCode::REQUEST_TIMEOUT,
                "idle",
                "the body stopped arriving",
                None,
            ),
            BodyFailure::Deadline => refuse(
                StatusCode::REQUEST_TIMEOUT,
                "too-slow",
                "the body took longer than allowed",
                None,
            ),
            BodyFailure::Cut => refuse(StatusCode::BAD_REQUEST, "cut", "the body was cut", None),
            BodyFailure::Digest => auth_refusal(&AuthError::DigestMismatch),
        }
    }

    fn io(self) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            match self {
                BodyFailure::TooLarge => "body over its cap",
                BodyFailure::Idle | BodyFailure::Deadline => "body timed out",
                BodyFailure::Cut => "body cut",
                BodyFailure::Digest => "body does not match its Content-Digest",
            },
        )
    }
}

fn declared_len(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads a body chunk by chunk into `sink`, hashing it, within the caps; at the end compares
/// its digest with the signed one. Returns the failure, if any (already sent into `sink`).
async fn pump(
    body: &mut Incoming,
    max: u64,
    limits: &Limits,
    verified: &VerifiedRequest,
    sink: &mut (dyn FnMut(Bytes) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send),
) -> Option<BodyFailure> {
    let deadline = Instant::now() + limits.request_timeout;
    let mut hasher = BodyHasher::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Some(BodyFailure::Deadline);
        }
        let frame = match tokio::time::timeout(limits.idle_timeout.min(left), body.frame()).await {
            Err(_) if left <= limits.idle_timeout => return Some(BodyFailure::Deadline),
            Err(_) => return Some(BodyFailure::Idle),
            Ok(None) => {
                return verified
                    .check_body(&hasher.finish())
                    .err()
                    .map(|_| BodyFailure::Digest)
            }
            Ok(Some(Err(_))) => return Some(BodyFailure::Cut),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if hasher.len() + data.len() as u64 > max {
            return Some(BodyFailure::TooLarge);
        }
        hasher.update(&data);
        if !sink(data).await {
            // The reader stopped (the node refused the stream): nothing more is needed.
            return None;
        }
    }
}

/// Reads a whole (small) body into memory, within the caps, its digest checked.
async fn collect(
    body: &mut Incoming,
    max: u64,
    limits: &Limits,
    verified: &VerifiedRequest,
) -> std::result::Result<Vec<u8>, BodyFailure> {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let sink_buf = Arc::clone(&collected);
    let mut sink = move |b: Bytes| -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> {
        sink_buf
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(&b);
        Box::pin(async { true })
    };
    if let Some(f) = pump(body, max, limits, verified, &mut sink).await {
        return Err(f);
    }
    drop(sink);
    let out = std::mem::take(&mut *collected.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(out)
}

async fn pull(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let (node, signed) = match authenticate(&state, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let max = state.limits.max_request_body;
    if declared_len(&req).is_some_and(|n| n > max) {
        return BodyFailure::TooLarge.response(max);
    }
    let body = match collect(req.body_mut(), max, &state.limits, &signed.verified).await {
        Ok(b) => b,
        Err(f) => return f.response(max),
    };
    let (stated, encrypt) = match parse_pull(&body) {
        Ok(x) => x,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, "bad-request", &why, None),
    };
    let permit = match sync_permit(&state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let caller = signed.verified.keyid;
    let (tx, body) = ChannelBody::new();
    // Ok(false): the caller lacks nothing (no event, no fork evidence); Err: the refusal.
    let (ready_tx, ready_rx) = oneshot::channel::<std::result::Result<bool, Response<Body>>>();
    let handle = tokio::runtime::Handle::current();
    let limits = state.limits.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut node = node;
        let stated = match node.clock().map(|ours| stated.check_against(&ours)) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let why = format!("`clock` names a feed that is not a valid key: {e}");
                let _ = ready_tx.send(Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    &why,
                    None,
                )));
                return;
            }
            Err(e) => {
                let _ = ready_tx.send(Err(node_refusal(&e)));
                return;
            }
        };
        let prepared = match node.prepare_pull(&caller, stated, encrypt) {
            Ok(p) => p,
            Err(e) => {
                let _ = ready_tx.send(Err(node_refusal(&e)));
                return;
            }
        };
        // Nothing to send: no bundle (its manifest alone carries two whole clocks), nothing
        // recorded on either side.
        let lacks = !prepared.is_empty();
        let _ = ready_tx.send(Ok(lacks));
        if !lacks {
            return;
        }
        let deadline = Instant::now() + limits.request_timeout;
        let mut out = ChannelWriter::new(tx.clone(), handle.clone(), limits.idle_timeout, deadline);
        let written = node
            .export(&prepared, &mut out, &mut |_| {})
            .and_then(|_| std::io::Write::flush(&mut out).map_err(NodeError::from));
        if written.is_err() {
            // Cut the body: the caller sees a bundle without its trailer, never a whole one.
            let _ = handle.block_on(tx.send(Err(std::io::Error::other("export failed"))));
        }
    });
    match ready_rx.await {
        Ok(Ok(false)) => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            signed.sign(&state.key, r, None)
        }
        Ok(Ok(true)) => {
            let mut r = Response::new(body.boxed());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(BUNDLE_TYPE),
            );
            signed.sign(&state.key, r, None)
        }
        Ok(Err(refusal)) => refusal,
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            None,
        ),
    }
}

/// The pull request body: `{"clock": CLOCK, "encrypt": BOOL}` (PROTOCOL 10.4). The clock's
/// keys are checked later, against the store's own clock.
fn parse_pull(body: &[u8]) -> std::result::Result<(UncheckedClock, bool), String> {
    let v = parse_strict(body).map_err(|e| format!("the body is not strict JSON: {e}"))?;
    let obj = v
        .as_object()
        .filter(|o| o.len() == 2)
        .ok_or("the body must be an object of exactly `clock` and `encrypt`")?;
    let encrypt = obj
        .get("encrypt")
        .and_then(serde_json::Value::as_bool)
        .ok_or("`encrypt` must be true or false")?;
    let clock: UncheckedClock = obj
        .get("clock")
        .cloned()
        .ok_or("`clock` is missing")
        .and_then(|c| serde_json::from_value(c).map_err(|_| "`clock` is not a clock"))?;
    Ok((clock, encrypt))
}

async fn push(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let (node, signed) = match authenticate(&state, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let max = state.limits.max_body;
    if declared_len(&req).is_some_and(|n| n > max) {
        return BodyFailure::TooLarge.response(max);
    }
    let permit = match sync_permit(&state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if declared_len(&req).is_some_and(|n| n <= SPOOL_MAX) {
        // Small enough to hold: the digest is checked before the node sees a byte, so a
        // failed body stores nothing at all.
        let body = match collect(req.body_mut(), max, &state.limits, &signed.verified).await {
            Ok(b) => b,
            Err(f) => return f.response(max),
        };
        let imported = blocking(move || {
            let _permit = permit;
            let mut node = node;
            node.import(
                Box::new(std::io::Cursor::new(body)),
                None,
                Transport::Https,
                &mut |_| {},
            )
        })
        .await;
        return match imported {
            Ok(outcome) => answer_push(&state, &signed, outcome),
            Err(r) => r,
        };
    }
    let (tx, reader) = ChannelReader::new();
    let importing = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut node = node;
        let input = Box::new(BufReader::with_capacity(1 << 16, reader));
        let outcome = node.import(input, None, Transport::Https, &mut |_| {});
        (node, outcome)
    });
    let feed = tx.clone();
    let mut sink = move |b: Bytes| -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> {
        let feed = feed.clone();
        Box::pin(async move { feed.send(Ok(b)).await.is_ok() })
    };
    let failure = pump(
        req.body_mut(),
        max,
        &state.limits,
        &signed.verified,
        &mut sink,
    )
    .await;
    drop(sink);
    if let Some(f) = failure {
        let _ = tx.send(Err(f.io())).await;
    }
    drop(tx);
    let Ok((mut node, outcome)) = importing.await else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            None,
        );
    };
    if let Some(f) = failure {
        // A held copy of a body that failed is not kept (nothing unauthenticated stays).
        if let Ok(ImportOutcome::Held(h)) = &outcome {
            if h.new {
                let id = h.held.id.clone();
                let _ = blocking(move || node.reject(&id)).await;
            }
        }
        return f.response(max);
    }
    answer_push(&state, &signed, outcome)
}

/// The answer to a push: the import outcome as JSON, or why it was refused.
fn answer_push(
    state: &State,
    signed: &Signed,
    outcome: rhizome_node::Result<ImportOutcome>,
) -> Response<Body> {
    match outcome {
        Ok(o) => match serde_json::to_value(&o) {
            Ok(v) => signed.json(&state.key, StatusCode::OK, &v),
            Err(_) => refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
                None,
            ),
        },
        Err(NodeError::Refused(why)) => {
            refuse(StatusCode::FORBIDDEN, why.code(), &why.to_string(), None)
        }
        Err(e) => node_refusal(&e),
    }
}
