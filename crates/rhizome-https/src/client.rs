//! `rhizome sync`: the client side of PROTOCOL 10.
//!
//! Learns (or checks against `--peer`) the server's instance before sending anything: the TLS
//! handshake must be signed by the pinned instance key (or a trusted CA validates the
//! certificate), and the signed descriptor must name the same instance. Then it pulls (states
//! its clock, imports the streamed bundle in one pass through `Node::import`, so a cut at any
//! byte keeps every verified event) and pushes (asks the server's clock, exports what the
//! server lacks, streams it). A broken link is retried with backoff, each retry continuing
//! from the clocks as they are now.

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rhizome_core::canonical::{parse_strict, to_canonical};
use rhizome_core::{Clock, InstanceId, PublicKey, SecretKey, UncheckedClock};
use rhizome_httpsig::{verify_response, BodyHasher, ContentDigest, Policy as SigPolicy};
use rhizome_node::exchange::ImportOutcome;
use rhizome_node::{KeySession, Node, Policy, StoreLocation, Transport, Trust};
use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::bridge::{ChannelBody, ChannelReader};
use crate::descriptor::{Descriptor, MAX_DESCRIPTOR};
use crate::tls::{InstanceVerifier, Proven};
use crate::{paths, HttpsError, Result, BUNDLE_TYPE};

type Body = BoxBody<Bytes, std::io::Error>;

/// Largest JSON answer read (an import report, a clock).
const MAX_JSON: usize = 16 << 20;

/// What `rhizome sync` is given.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// `https://HOST[:PORT]`.
    pub url: String,
    /// The instance expected there (`--peer`): anything else is refused before data is sent.
    pub pin: Option<InstanceId>,
    /// Pull.
    pub pull: bool,
    /// Push.
    pub push: bool,
    /// Ask for the pulled bundle age-encrypted to this instance's key.
    pub encrypt: bool,
    /// Extra root certificates (PEM) for servers with CA-issued certificates.
    pub ca_file: Option<PathBuf>,
    /// Attempts per step on a broken link (at least 1).
    pub attempts: u32,
    /// Wait before the first retry; doubled each time.
    pub backoff: Duration,
    /// Connect timeout, and longest wait for the next piece of a body.
    pub timeout: Duration,
}

impl SyncOptions {
    /// Both ways, 4 attempts, 1 s backoff, 30 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pin: None,
            pull: true,
            push: true,
            encrypt: false,
            ca_file: None,
            attempts: 4,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Where the client's instance is.
#[derive(Clone)]
pub struct Local {
    /// Its store.
    pub location: StoreLocation,
    /// Its keys.
    pub keys: Arc<KeySession>,
    /// Its policy (trust on first use).
    pub policy: Policy,
}

impl Local {
    fn open(&self) -> rhizome_node::Result<Node> {
        Node::open(self.location.clone(), Arc::clone(&self.keys), self.policy)
    }
}

/// The server, as its descriptor and the handshake showed it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// Instance id.
    pub instance_id: InstanceId,
    /// Instance key.
    pub public_key: PublicKey,
    /// Key fingerprint, for a person to compare.
    pub fingerprint: String,
    /// Its name (remote text: escape before showing).
    pub name: String,
    /// Its standing here before this sync: `None` when never seen (first contact).
    pub standing: Option<Trust>,
    /// How its key was proven: `instance-key` (pinned TLS key) or `ca` (CA certificate,
    /// descriptor and signed responses).
    pub proven_by: &'static str,
}

/// What a push did (over all its pieces).
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Events sent.
    pub events: u64,
    /// Bundle bytes sent.
    pub bytes: u64,
    /// Bundles sent, each a piece the server checked and imported whole.
    pub pieces: u32,
    /// Events new to the server, over all pieces.
    pub new: u64,
    /// Whether the server holds what it was sent in quarantine (it has not approved this
    /// instance yet): then one piece was sent, and the rest waits for the approval.
    pub held: bool,
    /// The server's answer to the last piece: its import outcome (`Node::import`'s, as JSON).
    pub outcome: Value,
}

/// The first pushed piece's events, in bytes: a link that breaks sooner gets smaller pieces.
const FIRST_PIECE: u64 = 1 << 20;
/// The smallest piece, and the largest (what the server checks whole before importing).
const PIECES: std::ops::RangeInclusive<u64> = (16 << 10)..=crate::server::SPOOL_MAX;

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The server.
    pub server: ServerInfo,
    /// The pull's outcome (imported or held here), if anything was pulled (`None` also when
    /// this instance lacked nothing the server holds).
    pub pull: Option<ImportOutcome>,
    /// The push, if anything was pushed (`None` also when the server lacked nothing).
    pub push: Option<PushReport>,
    /// Retries made after a broken link.
    pub retries: u32,
}

/// Progress of a sync, for bars.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Bytes of the pulled bundle received so far.
    Pulled(u64),
    /// Bytes of the pushed bundle sent so far, of the total.
    Pushed(u64, u64),
    /// A broken link: waiting this long before attempt `n`.
    Retrying(u32, Duration),
}

/// A progress callback.
pub type OnProgress = Arc<dyn Fn(Progress) + Send + Sync>;

/// The server's address, parsed once.
#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    authority: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        let bad = |why: &str| {
            HttpsError::Protocol(format!(
                "{url:?} is not a server URL ({why}): give https://HOST[:PORT]"
            ))
        };
        let uri: http::Uri = url.parse().map_err(|_| bad("unparsable"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the scheme must be https"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user information is not allowed"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("no path or query is allowed"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Target {
            host,
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_ascii_lowercase(),
        })
    }
}

/// One authenticated HTTPS exchange at a time with one server.
struct Client {
    target: Target,
    key: SecretKey,
    roots: Arc<RootCertStore>,
    pin: Option<InstanceId>,
    server_key: Option<PublicKey>,
    timeout: Duration,
}

fn link(what: &str, e: impl std::fmt::Display) -> HttpsError {
    HttpsError::Link(format!("{what}: {e}"))
}

/// A request as sent, kept to verify the response's signature.
struct Sent {
    method: &'static str,
    target_uri: String,
    headers: Vec<(String, String)>,
}

impl Client {
    /// Connects, with the handshake checked (module docs); returns what it proved.
    async fn connect(&self) -> Result<(hyper::client::conn::http1::SendRequest<Body>, Proven)> {
        let verifier = InstanceVerifier::new(self.pin, Some(Arc::clone(&self.roots)));
        let config = crate::tls::client_config(Arc::clone(&verifier))?;
        let name = ServerName::try_from(self.target.host.clone())
            .map_err(|e| HttpsError::Protocol(format!("host {:?}: {e}", self.target.host)))?;
        let addr = (self.target.host.as_str(), self.target.port);
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| link("connecting", "timed out"))?
            .map_err(|e| link(&format!("connecting to {}", self.target.authority), e))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(
            self.timeout,
            TlsConnector::from(Arc::new(config)).connect(name, tcp),
        )
        .await
        .map_err(|_| link("TLS handshake", "timed out"));
        let tls = match tls? {
            Ok(t) => t,
            Err(e) => {
                return Err(match verifier.refusal() {
                    Some(why) => HttpsError::Peer(why),
                    None => link("TLS handshake", e),
                })
            }
        };
        let proven = verifier
            .proven()
            .ok_or_else(|| HttpsError::Peer("the handshake proved nothing".into()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| link("HTTP", e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, proven))
    }

    /// Sends one request on a new connection; signed unless `signed` is false.
    async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Body,
        len: u64,
        digest: Option<ContentDigest>,
        content_type: Option<&'static str>,
    ) -> Result<(Response<Incoming>, Sent)> {
        let (mut sender, _) = self.connect().await?;
        let target_uri = format!("https://{}{path}", self.target.authority);
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.target.authority);
        let mut headers = Vec::new();
        if method == "POST" {
            builder = builder.header(http::header::CONTENT_LENGTH, len);
        }
        if let Some(t) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, t);
        }
        for (name, value) in crate::auth::sign(&self.key, method, &target_uri, digest.as_ref())? {
            builder = builder.header(name, &value);
            headers.push((name.to_string(), value));
        }
        let req = builder
            .body(body)
            .map_err(|e| HttpsError::Protocol(e.to_string()))?;
        let resp = tokio::time::timeout(self.timeout, sender.send_request(req))
            .await
            .map_err(|_| link("waiting for the answer", "timed out"))?
            .map_err(|e| link("sending the request", e))?;
        Ok((
            resp,
            Sent {
                method,
                target_uri,
                headers,
            },
        ))
    }

    /// Checks the server's signature on a response (PROTOCOL 10.7).
    fn verify(
        &self,
        resp: &Response<Incoming>,
        sent: &Sent,
        digest: bool,
    ) -> Result<Option<ContentDigest>> {
        let Some(key) = self.server_key else {
            return Err(HttpsError::Peer(
                "no server key to check the answer with".into(),
            ));
        };
        let headers: Vec<(&str, &str)> = resp
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
            .collect();
        let req_headers: Vec<(&str, &str)> = sent
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let request = rhizome_httpsig::Request {
            method: sent.method,
            target_uri: &sent.target_uri,
            headers: &req_headers,
        };
        let v = verify_response(
            resp.status().as_u16(),
            &headers,
            request,
            digest,
            crate::now_secs(),
            &SigPolicy::default(),
            &key,
        )
        .map_err(|e| {
            HttpsError::Peer(format!(
                "the server's answer is not signed by its instance key: {e}"
            ))
        })?;
        Ok(v.content_digest)
    }

    /// Reads a whole small body, at most `max` bytes.
    async fn read_small(&self, body: &mut Incoming, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(self.timeout, body.frame()).await {
                Err(_) => return Err(link("reading the answer", "timed out")),
                Ok(None) => return Ok(out),
                Ok(Some(Err(e))) => return Err(link("reading the answer", e)),
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        if out.len() + d.len() > max {
                            return Err(HttpsError::Protocol("the answer is too large".into()));
                        }
                        out.extend_from_slice(&d);
                    }
                }
            }
        }
    }

    /// Turns a non-2xx answer into a refusal.
    async fn refusal(&self, resp: Response<Incoming>) -> HttpsError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut body = resp.into_body();
        let text = self
            .read_small(&mut body, 64 * 1024)
            .await
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&text).unwrap_or(Value::Null);
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut message = field("error");
        if message.is_empty() {
            message = StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("refused")
                .to_string();
        }
        HttpsError::Refused {
            status,
            code: field("reason"),
            message,
            retry_after,
        }
    }

    /// A signed JSON answer, its digest checked.
    async fn json(&self, resp: Response<Incoming>, sent: &Sent) -> Result<Value> {
        if !resp.status().is_success() {
            return Err(self.refusal(resp).await);
        }
        let digest = self.verify(&resp, sent, true)?;
        let mut body = resp.into_body();
        let bytes = self.read_small(&mut body, MAX_JSON).await?;
        if digest != Some(ContentDigest::of(&bytes)) {
            return Err(HttpsError::Peer(
                "the answer does not match its signed digest".into(),
            ));
        }
        parse_strict(&bytes)
            .map_err(|e| HttpsError::Protocol(format!("the answer is not JSON: {e}")))
    }

    /// `GET /.well-known/rhizome`, checked against the handshake and the pin.
    async fn descriptor(&self) -> Result<(Descriptor, Proven)> {
        let (mut sender, proven) = self.connect().await?;
        let req = Request::builder()
            .method("GET")
            .uri(paths::DESCRIPTOR)
            .header(http::header::HOST, &self.target.authority)
            .body(empty())
            .map_err(|e| HttpsError::Protocol(e.to_string()))?;
        let resp = tokio::time::timeout(self.timeout, sender.send_request(req))
            .await
            .map_err(|_| link("waiting for the descriptor", "timed out"))?
            .map_err(|e| link("asking for the descriptor", e))?;
        if !resp.status().is_success() {
            return Err(self.refusal(resp).await);
        }
        let mut body = resp.into_body();
        let bytes = self.read_small(&mut body, MAX_DESCRIPTOR).await?;
        let d = Descriptor::parse(&bytes)?;
        if let Proven::InstanceKey(k) = &proven {
            if *k != d.public_key {
                return Err(HttpsError::Peer(format!(
                    "the descriptor names instance {}, but the TLS key is {}'s",
                    d.instance_id,
                    InstanceId::of(k)
                )));
            }
        }
        if let Some(pin) = self.pin {
            if pin != d.instance_id {
                return Err(HttpsError::Peer(format!(
                    "wrong instance: expected {pin}, the server is {} (fingerprint {}); nothing was sent",
                    d.instance_id,
                    d.public_key.fingerprint()
                )));
            }
        }
        Ok((d, proven))
    }
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|e| match e {})
        .boxed()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HttpsError::Io(format!("a worker failed: {e}")))
}

/// This instance's node, opened once per sync and used on blocking threads, one step at a time.
#[derive(Clone)]
struct Opened(Arc<std::sync::Mutex<Node>>);

impl Opened {
    async fn open(local: &Local) -> Result<Opened> {
        let l = local.clone();
        let node = blocking(move || l.open()).await??;
        Ok(Opened(Arc::new(std::sync::Mutex::new(node))))
    }

    /// Starts `f` on the node on a blocking thread at once (not when first polled).
    fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node) -> T + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        let node = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || {
            f(&mut node
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner))
        })
    }

    /// Runs `f` on the node on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node) -> T + Send + 'static,
    ) -> Result<T> {
        self.spawn(f)
            .await
            .map_err(|e| HttpsError::Io(format!("a worker failed: {e}")))
    }
}

/// Pulls once: states this instance's clock and imports the streamed answer (`None`: the
/// server answered that this instance lacks nothing).
async fn pull_once(
    client: &Client,
    home: &Opened,
    encrypt: bool,
    on: &OnProgress,
) -> Result<Option<ImportOutcome>> {
    let clock: Clock = home.with(|node| node.clock()).await??;
    let body = to_canonical(&json!({"clock": clock, "encrypt": encrypt}));
    let digest = ContentDigest::of(&body);
    let len = body.len() as u64;
    let (resp, sent) = client
        .send(
            "POST",
            paths::PULL,
            full(body),
            len,
            Some(digest),
            Some("application/json"),
        )
        .await?;
    if !resp.status().is_success() {
        return Err(client.refusal(resp).await);
    }
    client.verify(&resp, &sent, false)?;
    if resp.status() == StatusCode::NO_CONTENT {
        return Ok(None);
    }
    let (tx, reader) = ChannelReader::new();
    let report = Arc::clone(on);
    let importing = home.spawn(move |node| {
        let input = Box::new(BufReader::with_capacity(1 << 16, reader));
        node.import(input, None, Transport::Https, &mut |b| {
            report(Progress::Pulled(b))
        })
    });
    let mut body = resp.into_body();
    let mut cut = None;
    loop {
        match tokio::time::timeout(client.timeout, body.frame()).await {
            Err(_) => cut = Some("the server stopped sending".to_string()),
            Ok(Some(Err(e))) => cut = Some(e.to_string()),
            Ok(None) => break,
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    if tx.send(Ok(d)).await.is_err() {
                        break;
                    }
                }
                continue;
            }
        }
        break;
    }
    if let Some(why) = &cut {
        let _ = tx
            .send(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                why.clone(),
            )))
            .await;
    }
    drop(tx);
    let outcome = importing
        .await
        .map_err(|e| HttpsError::Io(format!("a worker failed: {e}")))?;
    match (cut, outcome) {
        (Some(why), _) => Err(link(
            "pull cut (every verified event received is kept)",
            why,
        )),
        (None, o) => Ok(Some(o?)),
    }
}

/// A bundle spooled for a push: its file, size, digest and event count.
struct Spooled {
    file: std::fs::File,
    len: u64,
    digest: ContentDigest,
    events: u64,
}

struct HashingWriter<W> {
    inner: W,
    hasher: BodyHasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One pushed piece: what was sent and the server's answer.
struct Piece {
    events: u64,
    bytes: u64,
    /// The server's clock it was planned from.
    base: Clock,
    /// The server lacks more than this piece.
    partial: bool,
    outcome: Value,
}

/// Pushes one piece: asks the server's clock, exports at most `max` bytes of the events it
/// lacks into a spool file (its digest is signed before the body is sent), streams it.
/// `None` when the server lacks nothing, or nothing more than when `after` was its clock.
async fn push_piece(
    client: &Client,
    home: &Opened,
    server: InstanceId,
    max: u64,
    after: Option<&Clock>,
    on: &OnProgress,
) -> Result<Option<Piece>> {
    let (resp, sent) = client
        .send("GET", paths::CLOCK, empty(), 0, None, None)
        .await?;
    let v = client.json(resp, &sent).await?;
    let stated: UncheckedClock = v
        .get("clock")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .ok_or_else(|| HttpsError::Protocol("the clock answer has no valid `clock`".into()))?;
    let after = after.cloned();
    let spooled = home
        .with(move |node| -> Result<Option<(Spooled, bool, Clock)>> {
            let theirs = stated.check_against(&node.clock()?).map_err(|e| {
                HttpsError::Protocol(format!(
                    "the clock answer names a feed that is not a valid key: {e}"
                ))
            })?;
            // A piece delivered without moving the server's clock (it refuses an author, say)
            // would be sent again forever.
            if after.as_ref() == Some(&theirs) {
                return Ok(None);
            }
            let prepared = node.prepare_push(&server, theirs.clone(), max)?;
            if prepared.is_empty() {
                return Ok(None);
            }
            let file =
                tempfile::tempfile().map_err(|e| HttpsError::Io(format!("spool file: {e}")))?;
            let mut w = HashingWriter {
                inner: std::io::BufWriter::with_capacity(1 << 20, file),
                hasher: BodyHasher::new(),
            };
            let report = node.export(&prepared, &mut w, &mut |_| {})?;
            w.flush()
                .map_err(|e| HttpsError::Io(format!("spool file: {e}")))?;
            let len = w.hasher.len();
            let digest = w.hasher.finish();
            let mut file = w
                .inner
                .into_inner()
                .map_err(|e| HttpsError::Io(format!("spool file: {e}")))?;
            std::io::Seek::rewind(&mut file)
                .map_err(|e| HttpsError::Io(format!("spool file: {e}")))?;
            let spooled = Spooled {
                file,
                len,
                digest,
                events: report.events,
            };
            Ok(Some((spooled, prepared.partial(), theirs)))
        })
        .await??;
    let Some((spooled, partial, theirs)) = spooled else {
        return Ok(None);
    };
    let (tx, body) = ChannelBody::new();
    let total = spooled.len;
    let report = Arc::clone(on);
    let mut file = spooled.file;
    // The reader stops when the connection does (the channel closes).
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; crate::bridge::CHUNK];
        let mut sent = 0u64;
        loop {
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                    sent += n as u64;
                    report(Progress::Pushed(sent, total));
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let (resp, sent) = client
        .send(
            "POST",
            paths::PUSH,
            body.boxed(),
            total,
            Some(spooled.digest),
            Some(BUNDLE_TYPE),
        )
        .await?;
    let outcome = client.json(resp, &sent).await?;
    Ok(Some(Piece {
        events: spooled.events,
        bytes: total,
        base: theirs,
        partial,
        outcome,
    }))
}

/// Pushes everything the server lacks, in pieces: each a whole bundle the server checks and
/// imports on its own, so a link that breaks every N bytes still moves every piece smaller
/// than N. A piece the link broke is planned again a quarter the size; a delivered one lets
/// the next grow twice as large (within [`PIECES`]). Each piece has its own attempts.
async fn push(
    client: &Client,
    home: &Opened,
    server: InstanceId,
    opts: &SyncOptions,
    on: &OnProgress,
    retries: &mut u32,
) -> Result<Option<PushReport>> {
    let max = std::sync::atomic::AtomicU64::new(FIRST_PIECE);
    let mut after: Option<Clock> = None;
    let mut total: Option<PushReport> = None;
    loop {
        let piece = with_retries(opts, on, retries, || async {
            let size = max.load(Ordering::Relaxed);
            let piece = push_piece(client, home, server, size, after.as_ref(), on).await;
            if let Err(HttpsError::Link(_)) = &piece {
                max.store((size / 4).max(*PIECES.start()), Ordering::Relaxed);
            }
            piece
        })
        .await?;
        let Some(piece) = piece else {
            return Ok(total);
        };
        let held = piece.outcome.get("outcome").and_then(Value::as_str) == Some("held");
        let new = piece
            .outcome
            .get("new")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let t = total.get_or_insert(PushReport {
            events: 0,
            bytes: 0,
            pieces: 0,
            new: 0,
            held,
            outcome: Value::Null,
        });
        t.events += piece.events;
        t.bytes += piece.bytes;
        t.pieces += 1;
        t.new += new;
        t.held |= held;
        t.outcome = piece.outcome;
        // What a quarantine holds waits for its approval: more pieces would only queue there.
        if !piece.partial || held {
            return Ok(total);
        }
        after = Some(piece.base);
        let size = max.load(Ordering::Relaxed);
        max.store((size * 2).min(*PIECES.end()), Ordering::Relaxed);
    }
}

/// Runs `step` until it succeeds, fails for a reason other than the link, or runs out of
/// attempts; waits `backoff`, doubled each time, between attempts.
async fn with_retries<T, F, Fut>(
    opts: &SyncOptions,
    on: &OnProgress,
    retries: &mut u32,
    mut step: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut wait = opts.backoff;
    let mut attempt = 1;
    loop {
        match step().await {
            Err(HttpsError::Link(why)) if attempt < opts.attempts.max(1) => {
                attempt += 1;
                *retries += 1;
                on(Progress::Retrying(attempt, wait));
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
                let _ = why;
            }
            Err(HttpsError::Refused {
                status: 503,
                retry_after,
                ..
            }) if attempt < opts.attempts.max(1) => {
                attempt += 1;
                *retries += 1;
                let w = retry_after.map_or(wait, |s| Duration::from_secs(s.min(60)));
                on(Progress::Retrying(attempt, w));
                tokio::time::sleep(w).await;
                wait = wait.saturating_mul(2);
            }
            other => return other,
        }
    }
}

/// Syncs this instance with the server at `opts.url`: pull, then push (as asked).
pub async fn sync(local: Local, opts: SyncOptions, on: OnProgress) -> Result<SyncReport> {
    let target = Target::parse(&opts.url)?;
    let roots = Arc::new(crate::tls::roots_from(opts.ca_file.as_deref())?);
    let home = Opened::open(&local).await?;
    let key = home.with(|node| node.instance_key()).await??;
    let mut client = Client {
        target,
        key,
        roots,
        pin: opts.pin,
        server_key: None,
        timeout: opts.timeout,
    };
    let mut retries = 0;
    let (d, proven) = with_retries(&opts, &on, &mut retries, || client.descriptor()).await?;
    let proven_by = match proven {
        Proven::InstanceKey(_) => "instance-key",
        Proven::Ca => "ca",
    };
    // From now on every connection must be to this instance.
    client.pin = Some(d.instance_id);
    client.server_key = Some(d.public_key);
    let id = d.instance_id;
    let standing = home.with(move |node| node.standing(&id)).await??;
    let server = ServerInfo {
        instance_id: d.instance_id,
        public_key: d.public_key,
        fingerprint: d.public_key.fingerprint(),
        name: d.name.clone(),
        standing,
        proven_by,
    };
    if standing == Some(Trust::Blocked) {
        return Err(HttpsError::Peer(format!(
            "instance {id} is blocked here (`rhizome unblock {id}` to sync with it); nothing was sent"
        )));
    }
    let pull = if opts.pull {
        with_retries(&opts, &on, &mut retries, || {
            pull_once(&client, &home, opts.encrypt, &on)
        })
        .await?
    } else {
        None
    };
    let push = if opts.push {
        push(&client, &home, id, &opts, &on, &mut retries).await?
    } else {
        None
    };
    Ok(SyncReport {
        server,
        pull,
        push,
        retries,
    })
}

/// A bare connection for tests and tools: sends a request exactly as given (no signature
/// added), over TLS checked as [`sync`] does (pinned to `pin` when given).
pub struct RawConnection {
    sender: hyper::client::conn::http1::SendRequest<Body>,
    authority: String,
}

impl RawConnection {
    /// Connects to `url` (`https://HOST:PORT`).
    pub async fn open(url: &str, pin: Option<InstanceId>) -> Result<RawConnection> {
        let target = Target::parse(url)?;
        let client = Client {
            target: target.clone(),
            key: SecretKey::from_seed(&[0; 32]),
            roots: Arc::new(RootCertStore::empty()),
            pin,
            server_key: None,
            timeout: Duration::from_secs(30),
        };
        let (sender, _) = client.connect().await?;
        Ok(RawConnection {
            sender,
            authority: target.authority,
        })
    }

    /// The absolute target URI of `path` on this server, as a signature covers it.
    pub fn target_uri(&self, path: &str) -> String {
        format!("https://{}{path}", self.authority)
    }

    /// Sends `method path` with `headers` (a `Host` is added) and `body`.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Body,
    ) -> Result<Response<Incoming>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.authority);
        for (n, v) in headers {
            b = b.header(n.as_str(), v.as_str());
        }
        let req = b
            .body(body)
            .map_err(|e| HttpsError::Protocol(e.to_string()))?;
        self.sender
            .send_request(req)
            .await
            .map_err(|e| link("sending", e))
    }
}

/// A body from bytes, for [`RawConnection::send`].
pub fn bytes_body(bytes: Vec<u8>) -> Body {
    full(bytes)
}

/// A body fed chunk by chunk through the returned sender, for [`RawConnection::send`].
pub fn channel_body() -> (tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, Body) {
    let (tx, body) = ChannelBody::new();
    (tx, body.boxed())
}

/// Reads a whole response body (at most 16 MiB).
pub async fn read_body(resp: Response<Incoming>) -> Result<(u16, http::HeaderMap, Vec<u8>)> {
    let status = resp.status().as_u16();
    let (parts, mut body) = resp.into_parts();
    let mut out = Vec::new();
    while let Some(f) = body.frame().await {
        let f = f.map_err(|e| link("reading", e))?;
        if let Ok(d) = f.into_data() {
            if out.len() + d.len() > MAX_JSON {
                return Err(HttpsError::Protocol("the answer is too large".into()));
            }
            out.extend_from_slice(&d);
        }
    }
    Ok((status, parts.headers, out))
}
