//! The guards every request passes, in order: the Host header (DNS rebinding), the access
//! token (the URL's `?token=` once, then an HttpOnly SameSite=Strict session cookie), for a
//! POST the Origin and Sec-Fetch-Site headers, a bound on requests at once, and the security
//! headers on every answer. The per-session CSRF token is checked by each form's handler
//! ([`check_csrf`]) since it travels in the form body.

use std::sync::{Arc, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{App, Failure, REQUEST_TIMEOUT};

const COOKIE: &str = "rhizome_session";
/// Sessions kept at once; the oldest is dropped past this (each browser profile is one).
const MAX_SESSIONS: usize = 64;

/// The session a request belongs to: its CSRF token.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) csrf: String,
}

const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'";

fn harden(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, "no-store");
    headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
}

/// A refusal: a tiny page and nothing else.
fn refuse(status: StatusCode, why: &'static str) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        why,
    )
        .into_response();
    harden(r.headers_mut());
    r
}

/// Compares secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cookie_session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.to_string())
}

/// The query string without its `token` parameter.
fn without_token(query: Option<&str>) -> String {
    let rest: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
        .collect();
    if rest.is_empty() {
        String::new()
    } else {
        format!("?{}", rest.join("&"))
    }
}

/// The guard middleware (see the module doc).
pub(crate) async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !app.hosts.iter().any(|h| h == host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "This page answers only to its own loopback address.\n",
        );
    }
    let query = req.uri().query();
    if let Some(token) = query_token(query) {
        if !same_secret(&token, &app.token) || req.method() != Method::GET {
            return refuse(StatusCode::FORBIDDEN, "Forbidden: wrong access token.\n");
        }
        let (id, csrf) = match (crate::random_hex(), crate::random_hex()) {
            (Ok(i), Ok(c)) => (i, c),
            _ => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "No randomness.\n"),
        };
        {
            let mut sessions = app.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            if sessions.len() >= MAX_SESSIONS {
                if let Some(k) = sessions.keys().next().cloned() {
                    sessions.remove(&k);
                }
            }
            sessions.insert(id.clone(), csrf);
        }
        let to = format!("{}{}", req.uri().path(), without_token(query));
        let mut r = Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, to)
            .header(
                header::SET_COOKIE,
                format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/"),
            )
            .body(Body::empty())
            .unwrap_or_default();
        harden(r.headers_mut());
        return r;
    }
    let session = cookie_session(req.headers()).and_then(|id| {
        let sessions = app.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .iter()
            .find(|(k, _)| same_secret(k, &id))
            .map(|(_, csrf)| Session { csrf: csrf.clone() })
    });
    let Some(session) = session else {
        return refuse(
            StatusCode::FORBIDDEN,
            "Forbidden: open the address `rhizome ui` printed (it carries the access token).\n",
        );
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok());
        let site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|h| h.to_str().ok());
        // With `Referrer-Policy: no-referrer` a browser sends `Origin: null` on its own form
        // posts; then only its Sec-Fetch-Site (which no page can set) may vouch for them.
        let same_site = site == Some("same-origin");
        let origin_ok = match origin {
            Some("null") => same_site,
            Some(o) => app.origins.iter().any(|x| x == o),
            None => false,
        };
        if !origin_ok || site.is_some_and(|s| s != "same-origin") {
            return refuse(StatusCode::FORBIDDEN, "Forbidden: cross-site request.\n");
        }
    }
    req.extensions_mut().insert(session);
    let Ok(_permit) = app.gate.acquire().await else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "Shutting down.\n");
    };
    let mut r = next.run(req).await;
    harden(r.headers_mut());
    r
}

/// Cuts requests that take longer than [`REQUEST_TIMEOUT`].
pub(crate) async fn timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => refuse(StatusCode::GATEWAY_TIMEOUT, "The request took too long.\n"),
    }
}

/// Checks a form's CSRF token against its session's.
pub(crate) fn check_csrf(session: &Session, given: &str) -> Result<(), Failure> {
    if same_secret(&session.csrf, given) {
        Ok(())
    } else {
        Err(Failure::new(
            StatusCode::FORBIDDEN,
            "This form is stale or came from another site (its CSRF token does not match); reload the page and try again. Nothing was changed.",
        ))
    }
}
