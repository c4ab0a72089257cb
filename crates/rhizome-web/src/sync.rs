//! Syncing with another home over HTTPS from the page: a form (the address, and optionally the
//! instance id expected there), then `rhizome-https`'s client, the same call `rhizome sync`
//! makes, so pinning, first contact (held until approved) and retries behave as on the
//! command line. The answer says in plain words what came and what went.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Form};
use maud::{html, Markup};
use rhizome_core::InstanceId;
use rhizome_https::client::{self, Local, PushReport, SyncOptions, SyncReport};
use serde::Deserialize;

use crate::carry::outcome_words;
use crate::guard::{check_csrf, Session};
use crate::pages::{clean, layout, remote};
use crate::{Answer, App, Failure};

/// The sync form, shown on the carry page.
pub(crate) fn form(session: &Session) -> Markup {
    html! {
        section aria-labelledby="sync-h" {
            h2 #sync-h { "Sync over the network" }
            form method="post" action="/sync" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="sync-url" { "Address of the other home (https://…)" }
                input #sync-url type="url" name="url" required placeholder="https://hub.example:8443" autocomplete="off";
                label for="sync-peer" { "Its instance id, if you know it (only that home is accepted)" }
                div.row {
                    input #sync-peer type="text" name="peer" autocomplete="off" pattern="[0-9a-f]{32}";
                    button type="submit" { "Sync now" }
                }
            }
            p.muted { "Takes what that home has that this one lacks, then gives it what it lacks. A home met for the first time is held on the " a href="/trust" { "Trust" } " page until you approve it." }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct SyncForm {
    #[serde(default)]
    csrf: String,
    url: String,
    #[serde(default)]
    peer: String,
}

/// Runs one sync, both ways, and shows what it did.
pub(crate) async fn sync(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<SyncForm>,
) -> Answer {
    check_csrf(&session, &f.csrf)?;
    let url = f.url.trim();
    if !url.starts_with("https://") {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "The address must start with https:// (homes sync over HTTPS only).",
        ));
    }
    let peer = f.peer.trim();
    let mut opts = SyncOptions::new(url);
    if !peer.is_empty() {
        opts.pin = Some(peer.parse::<InstanceId>().map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("{peer:?} is not an instance id (32 hex characters): {e}"),
            )
        })?);
    }
    let local = Local {
        location: app.config.location.clone(),
        keys: Arc::clone(&app.config.keys),
        policy: app.config.policy,
    };
    let body = match client::sync(local, opts, Arc::new(|_| {})).await {
        Ok(report) => report_words(&report),
        Err(e) => html! {
            h1 { "Not synced" }
            p.error role="alert" { (clean(&e.to_string())) }
            p { "Every event verified before the link failed is kept; syncing again continues from there." }
        },
    };
    Ok(layout(
        "Sync",
        &session,
        "/carry",
        html! { (body) p { a href="/carry" { "Back" } " · " a href="/" { "Feed" } } },
    )
    .into_response())
}

fn report_words(r: &SyncReport) -> Markup {
    html! {
        h1 { "Synced with " (remote(&r.server.name)) }
        p { "Its key's fingerprint is " strong.fp { (r.server.fingerprint) } ", instance " code { (r.server.instance_id) } "." }
        h2 { "What came from there" }
        @match &r.pull {
            Some(outcome) => (outcome_words(outcome)),
            None => p.muted { "Nothing new: this home already had everything that one holds for it." },
        }
        h2 { "What went there" }
        @match &r.push {
            Some(p) => p { (p.events) " events sent; " (pushed_words(p)) },
            None => p.muted { "That home lacked nothing." },
        }
        @if r.retries > 0 { p.muted { "The link broke " (r.retries) " times; the sync went on where it stopped." } }
    }
}

/// The other home's answer to a push in a few words.
fn pushed_words(p: &PushReport) -> String {
    if p.held {
        "that home holds them until its keeper approves this one.".into()
    } else {
        format!("that home stored {} new ones.", p.new)
    }
}
