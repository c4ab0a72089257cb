//! Carrying a stick from the page: export (size shown before writing; a download or a file
//! on this machine), import (an upload streamed into the node as it arrives, or a file on this
//! machine) with live progress, and the trust page (held bundles, peers, forks).

use std::convert::Infallible;
use std::io::BufReader;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::{Extension, Form};
use futures_util::{Stream, StreamExt};
use maud::{html, Markup};
use rhizome_core::InstanceId;
use rhizome_node::exchange::{Base, ExportRequest, ImportOutcome};
use rhizome_node::{ImportReport, NodeError, Status, Transport};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::actions::back_to;
use crate::guard::{check_csrf, Session};
use crate::pages::{clean, hidden, layout, remote, time, Known};
use crate::stream::{ChannelReader, ChannelWriter, DEPTH};
use crate::{Answer, App, Failure};

/// A running import, for its progress stream.
#[derive(Default)]
pub(crate) struct Job {
    bytes: AtomicU64,
    total: AtomicU64,
    done: AtomicBool,
}

fn mib(b: u64) -> String {
    if b < 1024 * 1024 {
        format!("{:.1} KB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MB", b as f64 / (1024.0 * 1024.0))
    }
}

fn peer_id(text: &str) -> Result<Option<InstanceId>, Failure> {
    if text.is_empty() || text == "all" {
        return Ok(None);
    }
    text.parse::<InstanceId>().map(Some).map_err(|e| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!("{text:?} is not an instance id: {e}"),
        )
    })
}

fn request(peer: Option<InstanceId>, compress: bool) -> ExportRequest {
    ExportRequest {
        base: if peer.is_some() {
            Base::Acked
        } else {
            Base::Nothing
        },
        peer,
        compress,
        encrypt_to: Vec::new(),
        transport: Transport::Usb,
    }
}

/// The carry page: export and import forms.
pub(crate) async fn carry_page(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
) -> Answer {
    let peers = app.with_node(|node| node.peers()).await?;
    let body = html! {
        h1 { "Carry a stick" }
        section aria-labelledby="export-h" {
            h2 #export-h { "Write a stick for another home" }
            p.muted { "First see how big it will be; nothing is written until you choose where it goes." }
            form method="get" action="/export" {
                label for="export-peer" { "For" }
                select #export-peer name="peer" {
                    option value="all" { "Everything (any home)" }
                    @for p in &peers {
                        option value=(p.instance_id) { (clean(&p.name)) " (" (p.public_key.fingerprint()) ")" }
                    }
                }
                div.row.check {
                    input #export-compress type="checkbox" name="compress" value="on";
                    label for="export-compress" { "Compress (smaller, for big sticks)" }
                }
                button type="submit" { "Show the size" }
            }
        }
        section aria-labelledby="import-h" {
            h2 #import-h { "Read a stick" }
            form #upload method="post" action="/import/upload" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="import-file" { "Bundle file" }
                input #import-file type="file" name="bundle" required;
                button type="submit" { "Import" }
                progress #import-progress max="100" value="0" hidden aria-label="Import progress" {}
                p #import-status role="status" aria-live="polite" {}
            }
            form method="post" action="/import/path" {
                (hidden(&session, "/carry"))
                label for="import-path" { "Or a file on this computer (full path)" }
                div.row {
                    input #import-path type="text" name="path" required autocomplete="off";
                    button type="submit" { "Import from path" }
                }
            }
            p.muted { "Bundles from homes never approved here are held on the " a href="/trust" { "Trust" } " page until you approve them." }
        }
        (crate::sync::form(&session))
    };
    Ok(layout("Carry a stick", &session, "/carry", body).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ExportQuery {
    #[serde(default)]
    peer: String,
    #[serde(default)]
    compress: String,
}

/// The size of an export, before anything is written, and where to write it.
pub(crate) async fn export_preview(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<ExportQuery>,
) -> Answer {
    let peer = peer_id(&q.peer)?;
    let compress = q.compress == "on";
    let (preview, name) = app
        .with_node(move |node| {
            let prepared = node.prepare_export(&request(peer, compress), true)?;
            let name = prepared.peer().map(|p| p.name.clone());
            Ok((prepared.preview(), name))
        })
        .await?;
    let fields = html! {
        input type="hidden" name="peer" value=(q.peer);
        input type="hidden" name="compress" value=(q.compress);
    };
    let body = html! {
        h1 { "Export" }
        p.preview {
            "For " strong { @match &name { Some(n) => (remote(n)), None => "any home (everything)" } } ": "
            (preview.events) " events in " (preview.feeds) " feeds, "
            strong { (mib(preview.bytes)) } " before compression"
            @if preview.withheld_payloads > 0 {
                ", " (preview.withheld_payloads) " circle-only texts left out (only their signed headers travel)"
            }
            "."
        }
        form method="post" action="/export/download" {
            (hidden(&session, "/carry")) (fields)
            button type="submit" { "Download the bundle" }
        }
        form method="post" action="/export/file" {
            (hidden(&session, "/carry")) (fields)
            label for="export-path" { "Or write it to a file on this computer (full path, e.g. the stick)" }
            div.row {
                input #export-path type="text" name="path" required autocomplete="off";
                button type="submit" { "Write the file" }
            }
        }
        p { a href="/carry" { "Back" } }
    };
    Ok(layout("Export", &session, "/carry", body).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ExportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    peer: String,
    #[serde(default)]
    compress: String,
    #[serde(default)]
    path: String,
}

/// Streams the bundle to the browser as a download, as it is written.
pub(crate) async fn download(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<ExportForm>,
) -> Answer {
    check_csrf(&session, &f.csrf)?;
    let peer = peer_id(&f.peer)?;
    let compress = f.compress == "on";
    let app2 = Arc::clone(&app);
    // Planned (and the key unlocked) before the answer starts, so a refusal is a page.
    let (node, prepared) = tokio::task::spawn_blocking(move || {
        let node = app2.open_node()?;
        let prepared = node.prepare_export(&request(peer, compress), false)?;
        Ok::<_, Failure>((node, prepared))
    })
    .await
    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut node = node;
        let mut out = ChannelWriter::new(tx);
        match node.export(&prepared, &mut out, &mut |_| {}) {
            Ok(_) => {
                let _ = std::io::Write::flush(&mut out);
            }
            Err(e) => out.fail(e.to_string()),
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let file = match peer {
        Some(p) => format!("rhizome-for-{p}.bundle"),
        None => "rhizome-all.bundle".to_string(),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Writes the bundle to a file on this machine.
pub(crate) async fn export_file(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<ExportForm>,
) -> Answer {
    check_csrf(&session, &f.csrf)?;
    let peer = peer_id(&f.peer)?;
    let compress = f.compress == "on";
    let path = std::path::PathBuf::from(f.path.trim());
    if path.as_os_str().is_empty() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "Give a path to write to.",
        ));
    }
    let shown = path.display().to_string();
    let report = app
        .with_node(move |node| {
            let prepared = node.prepare_export(&request(peer, compress), false)?;
            node.export_file(&prepared, &path, &mut |_| {})
        })
        .await?;
    let body = html! {
        h1 { "Written" }
        p { "Wrote " (report.events) " events in " (report.feeds) " feeds to " code { (clean(&shown)) } "." }
        @if report.withheld_payloads > 0 { p { (report.withheld_payloads) " circle-only texts were left out." } }
        p.muted { "Checksum (SHA-256): " code { (report.sha256) } }
        p { a href="/carry" { "Back" } }
    };
    Ok(layout("Written", &session, "/carry", body).into_response())
}

/// Runs an import of what arrives on `rx` in a node of its own, and renders the outcome.
async fn import_from(
    app: &Arc<App>,
    session: &Session,
    input: Box<dyn std::io::Read + Send>,
    len: Option<u64>,
    job: Option<Arc<Job>>,
) -> Answer {
    let app2 = Arc::clone(app);
    let job2 = job.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut node = app2.open_node()?;
        let reader = Box::new(BufReader::with_capacity(1 << 16, input));
        let r = node.import(reader, len, Transport::Usb, &mut |b| {
            if let Some(j) = &job2 {
                j.bytes.store(b, Ordering::Relaxed);
            }
        });
        Ok::<_, Failure>(r)
    })
    .await
    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
    if let Some(j) = &job {
        j.done.store(true, Ordering::Relaxed);
    }
    let body = match outcome?? {
        Ok(outcome) => outcome_words(&outcome),
        Err(e) => html! {
            h1 { "Not imported" }
            p.error role="alert" { (clean(&e.to_string())) }
            p { "Nothing of this bundle was stored." }
        },
    };
    Ok(layout(
        "Import",
        session,
        "/carry",
        html! { (body) p { a href="/carry" { "Back" } " · " a href="/" { "Feed" } } },
    )
    .into_response())
}

/// What an import did (imported, or held for approval), in plain words.
pub(crate) fn outcome_words(outcome: &ImportOutcome) -> Markup {
    match outcome {
        ImportOutcome::Imported(report) => report_words(report),
        ImportOutcome::Held(h) => {
            let held = &h.held;
            html! {
                h1 { "Held for your approval" }
                p {
                    "This stick comes from " strong { (remote(&held.name)) }
                    ", a home never approved here. Its key's fingerprint is "
                    strong.fp { (held.public_key.fingerprint()) } "."
                }
                p { (held.events) " events in " (held.feeds) " feeds"
                    @if held.invalid > 0 { ", " (held.invalid) " of them invalid (they would be refused)" }
                    ". Nothing of it is shown or stored yet" @if !h.new { " (this same bundle was already held)" } "." }
                p { "Check the fingerprint with the person who brought it, then approve or reject it on the "
                    a href="/trust" { "Trust page" } "." }
            }
        }
    }
}

/// An import report in plain words.
fn report_words(r: &ImportReport) -> Markup {
    let (title, note) = match &r.status {
        Status::Complete => ("Imported", None),
        Status::Truncated => (
            "Imported part of it",
            Some("The file ends early (a half-copied stick?). Every valid event read was kept; copy it again to get the rest.".to_string()),
        ),
        Status::TrailerInvalid(why) => (
            "Imported, but the end of the file does not match",
            Some(format!("Its checksum line does not match what was read ({why}). Every valid event was kept.")),
        ),
        Status::Unreadable(why) => (
            "Imported part of it",
            Some(format!("Reading failed part way ({why}). Every valid event read before was kept.")),
        ),
    };
    html! {
        h1 { (title) }
        p { "From " strong { (remote(&r.exporter.name)) } " (key " span.fp { (r.exporter.public_key.fingerprint()) } ")." }
        @if let Some(n) = note { p.error role="alert" { (clean(&n)) } }
        ul.plain {
            li { strong { (r.new) } " new events" }
            li { (r.duplicate) " already here" }
            @if r.parked > 0 { li { (r.parked) " waiting for earlier events of their feeds (another stick will bring them)" } }
            @if r.promoted > 0 { li { (r.promoted) " earlier waiting events joined their feeds" } }
            @if r.blocked > 0 { li { (r.blocked) " from blocked authors, dropped" } }
            @if r.forks > 0 { li.warn { (r.forks) " forks: an author signed two different events at one place in their feed; see Trust" } }
            @if r.refused_total > 0 { li.warn { (r.refused_total) " refused (invalid); the valid rest was kept" } }
        }
        @if !r.refused.is_empty() {
            details { summary { "Why events were refused" }
                ul { @for x in r.refused.iter().take(20) { li { "line " (x.line) ": " (clean(&x.reason)) } } }
            }
        }
        p.muted { (mib(r.bytes)) " read in " (format!("{:.1}", r.seconds)) " s." }
    }
}

/// An upload as a multipart form (the page without its script): the CSRF field first, then
/// the file, streamed into the import as it arrives.
pub(crate) async fn upload_multipart(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    mut form: Multipart,
) -> Answer {
    let bad = |m: &str| Failure::new(StatusCode::BAD_REQUEST, m.to_string());
    let first = form
        .next_field()
        .await
        .map_err(|e| bad(&format!("reading the upload: {e}")))?;
    let csrf = match first {
        Some(f) if f.name() == Some("csrf") => f
            .text()
            .await
            .map_err(|e| bad(&format!("reading the upload: {e}")))?,
        _ => String::new(),
    };
    check_csrf(&session, &csrf)?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(DEPTH);
    tokio::spawn(async move {
        loop {
            match form.next_field().await {
                Ok(Some(mut field)) if field.name() == Some("bundle") => loop {
                    match field.chunk().await {
                        Ok(Some(c)) => {
                            if tx.send(Ok(c)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string())).await;
                            return;
                        }
                    }
                },
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    return;
                }
            }
        }
    });
    import_from(&app, &session, Box::new(ChannelReader::new(rx)), None, None).await
}

#[derive(Deserialize)]
pub(crate) struct JobQuery {
    #[serde(default)]
    job: String,
}

fn job_id(text: &str) -> Option<String> {
    (text.len() <= 64 && !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| text.to_string())
}

/// An upload as the raw request body (the page's script sends it so), with a job id for its
/// progress stream; the CSRF token comes in the `X-CSRF-Token` header.
pub(crate) async fn upload_raw(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<JobQuery>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let csrf = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    check_csrf(&session, csrf)?;
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let job = job_id(&q.job).map(|id| {
        let job = Arc::new(Job::default());
        job.total.store(len.unwrap_or(0), Ordering::Relaxed);
        let mut jobs = app.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if jobs.len() > 64 {
            jobs.retain(|_, j| !j.done.load(Ordering::Relaxed));
        }
        jobs.insert(id, Arc::clone(&job));
        job
    });
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(DEPTH);
    tokio::spawn(async move {
        let mut data = body.into_data_stream();
        while let Some(chunk) = data.next().await {
            let item = chunk.map_err(|e| e.to_string());
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                return;
            }
        }
    });
    let answer = import_from(&app, &session, Box::new(ChannelReader::new(rx)), len, job).await;
    if let Some(id) = job_id(&q.job) {
        // Left a moment for the progress stream to see the end.
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            app.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        });
    }
    answer
}

/// Progress of an upload's import, as server-sent events: `bytes/total` about five times a
/// second, then `done`.
pub(crate) async fn import_events(
    State(app): State<Arc<App>>,
    Query(q): Query<JobQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = job_id(&q.job).unwrap_or_default();
    let stream = futures_util::stream::unfold((app, id, false), |(app, id, ended)| async move {
        if ended {
            return None;
        }
        // The upload may start a moment after the stream: wait for its job a few seconds.
        let mut job = None;
        for _ in 0..50 {
            job = app
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&id)
                .cloned();
            if job.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(job) = job else {
            return Some((
                Ok(Event::default().event("done").data("unknown")),
                (app, id, true),
            ));
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = job.done.load(Ordering::Relaxed);
        let data = format!(
            "{}/{}",
            job.bytes.load(Ordering::Relaxed),
            job.total.load(Ordering::Relaxed)
        );
        let ev = Event::default()
            .event(if done { "done" } else { "progress" })
            .data(data);
        Some((Ok(ev), (app, id, done)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
pub(crate) struct PathForm {
    #[serde(default)]
    csrf: String,
    path: String,
}

/// Imports a bundle file on this machine.
pub(crate) async fn import_path(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<PathForm>,
) -> Answer {
    check_csrf(&session, &f.csrf)?;
    let path = f.path.trim().to_string();
    let file = std::fs::File::open(&path)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("cannot open {path}: {e}")))?;
    let len = file.metadata().ok().map(|m| m.len());
    import_from(&app, &session, Box::new(file), len, None).await
}

/// Held bundles, peers and forks.
pub(crate) async fn trust_page(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
) -> Answer {
    let (held, peers, forks, names) = app
        .with_node(|node| {
            let forks = node.forks()?;
            let names = node.names()?;
            let names = forks
                .iter()
                .map(|f| (f.author, names.name(&f.author)))
                .collect();
            Ok((node.pending()?, node.peers()?, forks, names))
        })
        .await?;
    let known = Known(names);
    let body = html! {
        h1 { "Trust" }
        @if !forks.is_empty() {
            section.warnbox role="alert" aria-labelledby="forks-h" {
                h2 #forks-h { "Warning: forked feeds" }
                p { "These authors signed two different events at the same place in their feed. Someone may have copied their key, or restored an old backup. Both versions are kept as evidence." }
                ul { @for f in &forks {
                    li { (known.who(&f.author)) " at event " (f.seq) " (" (f.kind) ")"
                        @if let Some(c) = f.carrier { ", carried by " code { (c) } } }
                } }
            }
        }
        section aria-labelledby="held-h" {
            h2 #held-h { "Waiting for approval (" (held.len()) ")" }
            @if held.is_empty() { p.muted { "No bundle is waiting." } }
            @for h in &held {
                div.heldbox {
                    p { strong { (remote(&h.name)) } " · fingerprint " strong.fp { (h.public_key.fingerprint()) } }
                    p.muted { (h.events) " events in " (h.feeds) " feeds"
                        @if h.invalid > 0 { ", " (h.invalid) " invalid" }
                        " · arrived " (time(h.arrived_at)) " · instance " code { (h.instance_id) } }
                    div.buttons {
                        @for (action, label) in [("approve", "Approve and import"), ("reject", "Reject (discard)"), ("block", "Block this home")] {
                            form method="post" action="/trust/decide" {
                                (hidden(&session, "/trust"))
                                input type="hidden" name="id" value=(h.id);
                                input type="hidden" name="instance" value=(h.instance_id);
                                input type="hidden" name="action" value=(action);
                                button type="submit" class=(action) aria-label={(label) " the bundle from " (clean(&h.name))} { (label) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="peers-h" {
            h2 #peers-h { "Homes met (" (peers.len()) ")" }
            @if peers.is_empty() { p.muted { "None yet: import a stick from another home." } }
            @if !peers.is_empty() { div.tablewrap {
                table {
                    thead { tr { th scope="col" { "Home" } th scope="col" { "Trust" } th scope="col" { "They have" } th scope="col" { "Sent them" } th scope="col" { "Last exchange" } } }
                    tbody {
                        @for p in &peers {
                            tr {
                                td { (remote(&p.name)) br; span.fp { (p.public_key.fingerprint()) } }
                                td { (p.trust.as_str()) }
                                td { (p.acked.iter().map(|(_, s)| s.get()).sum::<u64>()) " events, " (p.acked.len()) " feeds" }
                                td { (p.sent.iter().map(|(_, s)| s.get()).sum::<u64>()) " events, " (p.sent.len()) " feeds" }
                                td {
                                    @if let Some(t) = p.last_exchange_at { (time(t)) } @else { "never" }
                                    @if let Some(d) = &p.last_direction { " · " (d) }
                                    @if let Some(m) = &p.last_method { " by " (m) }
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    Ok(layout("Trust", &session, "/trust", body).into_response())
}

#[derive(Deserialize)]
pub(crate) struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
    id: String,
    instance: String,
    action: String,
}

/// Approves, rejects or blocks a held bundle's home.
pub(crate) async fn decide(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<DecideForm>,
) -> Answer {
    check_csrf(&session, &f.csrf)?;
    let action = f.action.clone();
    let id = f.id.clone();
    let instance = f.instance.clone();
    let report = app
        .with_node(move |node| match action.as_str() {
            "approve" => node.approve(&id, &mut |_| {}).map(Some),
            "reject" => node.reject(&id).map(|_| None),
            "block" => {
                let iid = instance
                    .parse::<InstanceId>()
                    .map_err(|e| NodeError::Invalid(format!("instance {instance:?}: {e}")))?;
                node.block(&iid).map(|_| None)
            }
            other => Err(NodeError::Invalid(format!("unknown action {other:?}"))),
        })
        .await?;
    match report {
        Some(r) => Ok(layout(
            "Approved",
            &session,
            "/trust",
            html! { (report_words(&r)) p { a href="/" { "See the feed" } " · " a href="/trust" { "Back to Trust" } } },
        )
        .into_response()),
        None => Ok(back_to(&f.back)),
    }
}
