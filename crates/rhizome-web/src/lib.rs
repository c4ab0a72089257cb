//! Rhizome's local web page: read, write and carry a stick from a browser, for people who
//! never open a terminal. It listens on loopback only, on its own listener (not the HTTPS sync
//! server: that one faces strangers authenticated by instance signatures, this one serves one
//! local person authenticated by a random token; see ARCHITECTURE.md).
//!
//! What this crate owns: the listener and its guards ([`guard`]: Host, token, session cookie,
//! CSRF, security headers, limits), the pages ([`pages`], server-rendered with maud, which
//! escapes every value), the forms that change things ([`actions`]), carrying bundles and
//! trust ([`carry`]), syncing with a home over HTTPS ([`sync`], through `rhizome-https`'s client, as `rhizome sync` does) and live updates ([`live`]). Every action is a [`Node`] call, exactly as
//! the CLI makes it; the page holds no policy of its own.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod actions;
mod carry;
mod guard;
mod live;
mod pages;
mod stream;
mod sync;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rhizome_node::{KeySession, Node, NodeError, Policy, StoreLocation};
use tokio::sync::Semaphore;

/// What can go wrong starting the page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The listen address is not a loopback address.
    #[error("the page listens on loopback only (127.0.0.1, ::1); {0} is not a loopback address")]
    NotLoopback(SocketAddr),
    /// Binding or serving failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The system's random source failed.
    #[error("no randomness for the access token: {0}")]
    Random(String),
    /// Opening the instance failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// What the page serves.
pub struct Config {
    /// The instance.
    pub location: StoreLocation,
    /// Its key session (unlocked once at start when keys are sealed).
    pub keys: Arc<KeySession>,
    /// Its import policy.
    pub policy: Policy,
}

/// Form bodies are small; uploads stream and have no size limit of their own (a bundle is
/// bounded line by line by the importer).
const FORM_LIMIT: usize = 256 * 1024;
/// A page or form answer that takes longer than this is cut.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests served at once; more wait.
const CONCURRENCY: usize = 32;

/// State shared by every request.
pub(crate) struct App {
    pub(crate) config: Config,
    /// The access token printed in the URL (hex of 32 random bytes).
    pub(crate) token: String,
    /// Hosts accepted in the Host header (DNS rebinding).
    pub(crate) hosts: Vec<String>,
    /// Origins accepted on POST.
    pub(crate) origins: Vec<String>,
    /// Session cookie value -> its CSRF token.
    pub(crate) sessions: Mutex<HashMap<String, String>>,
    /// One node for ordinary requests, opened on first use.
    pub(crate) node: Mutex<Option<Node>>,
    /// Long imports, by job id, for their progress stream.
    pub(crate) jobs: Mutex<HashMap<String, Arc<carry::Job>>>,
    pub(crate) gate: Semaphore,
}

/// Error answers of handlers: a short page saying what went wrong, in plain words.
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Failure {
        let status = match &e {
            NodeError::Invalid(_) | NodeError::Rejected(_) => StatusCode::BAD_REQUEST,
            NodeError::Passphrase(_) | NodeError::Refused(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, pages::error_page(self.status, &self.message)).into_response()
    }
}

pub(crate) type Answer = std::result::Result<Response, Failure>;

impl App {
    /// Runs `f` on the shared node in a blocking thread (the node is synchronous).
    pub(crate) async fn with_node<T, F>(self: &Arc<Self>, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&mut Node) -> rhizome_node::Result<T> + Send + 'static,
    {
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut slot = app.node.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(app.open_node()?);
            }
            match slot.as_mut() {
                Some(node) => f(node).map_err(Failure::from),
                None => Err(Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "no node")),
            }
        })
        .await
        .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    }

    /// A node of its own, for long work (imports, exports) that must not hold up the pages.
    pub(crate) fn open_node(&self) -> Result<Node, Failure> {
        Ok(Node::open(
            self.config.location.clone(),
            Arc::clone(&self.config.keys),
            self.config.policy,
        )?)
    }
}

/// A bound, not yet serving, page.
pub struct Bound {
    listener: std::net::TcpListener,
    app: Arc<App>,
    addr: SocketAddr,
}

/// 32 random bytes, hex.
pub(crate) fn random_hex() -> Result<String, WebError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| WebError::Random(e.to_string()))?;
    Ok(hex::encode(b))
}

/// Binds the page's listener on a loopback address (port 0: any free port) and makes its
/// access token. Checks the instance opens first.
pub fn bind(config: Config, addr: SocketAddr) -> Result<Bound, WebError> {
    if !addr.ip().is_loopback() {
        return Err(WebError::NotLoopback(addr));
    }
    let node = Node::open(
        config.location.clone(),
        Arc::clone(&config.keys),
        config.policy,
    )?;
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| WebError::Listen { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| WebError::Listen { addr, source })?;
    let port = addr.port();
    let host = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let hosts = vec![format!("{host}:{port}"), format!("localhost:{port}")];
    let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
    let app = Arc::new(App {
        config,
        token: random_hex()?,
        hosts,
        origins,
        sessions: Mutex::default(),
        node: Mutex::new(Some(node)),
        jobs: Mutex::default(),
        gate: Semaphore::new(CONCURRENCY),
    });
    Ok(Bound {
        listener,
        app,
        addr,
    })
}

impl Bound {
    /// The URL to open: it carries the access token.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.app.hosts[0], self.app.token)
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends (or the listener fails).
    pub async fn run(self) -> Result<(), WebError> {
        let addr = self.addr;
        let io = |source| WebError::Listen { addr, source };
        self.listener.set_nonblocking(true).map_err(io)?;
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(io)?;
        axum::serve(listener, router(self.app)).await.map_err(io)
    }
}

fn router(app: Arc<App>) -> Router {
    // Uploads stream without a body limit or an overall timeout (the importer bounds lines).
    let uploads = Router::new()
        .route("/import/upload", post(carry::upload_multipart))
        .route("/import/raw", post(carry::upload_raw))
        .route("/export/download", post(carry::download))
        .route("/events/feed", get(live::feed_events))
        .route("/events/import", get(carry::import_events))
        .layer(DefaultBodyLimit::disable());
    let pages = Router::new()
        .route("/", get(pages::feed))
        .route("/thread/{hash}", get(pages::thread))
        .route("/starred", get(pages::starred))
        .route("/people", get(pages::people))
        .route("/tags", get(pages::tags))
        .route("/carry", get(carry::carry_page))
        .route("/export", get(carry::export_preview))
        .route("/trust", get(carry::trust_page))
        .route("/static/app.js", get(pages::script))
        .route("/static/app.css", get(pages::style))
        .route("/post", post(actions::post))
        .route("/comment", post(actions::comment))
        .route("/like", post(actions::like))
        .route("/reshare", post(actions::reshare))
        .route("/star", post(actions::star))
        .route("/tag", post(actions::tag))
        .route("/circle/create", post(actions::circle_create))
        .route("/circle/add", post(actions::circle_add))
        .route("/follow", post(actions::follow))
        .route("/export/file", post(carry::export_file))
        .route("/import/path", post(carry::import_path))
        .route("/trust/decide", post(carry::decide))
        .route("/sync", post(sync::sync))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(axum::middleware::from_fn(guard::timeout));
    pages
        .merge(uploads)
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            guard::guard,
        ))
        .with_state(app)
}
