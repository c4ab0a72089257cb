//! The forms that write: post, comment, like, reshare, star, tag, circles, follow. Each
//! checks the session's CSRF token, makes the same [`Node`](rhizome_node::Node) call as the
//! CLI, and sends the browser back to the page it came from (POST, then redirect, then GET).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use rhizome_node::write::{CircleChange, Draft};
use rhizome_node::{Node, NodeError};
use serde::Deserialize;

use crate::guard::{check_csrf, Session};
use crate::{Answer, App, Failure};

/// The fields every form has.
#[derive(Deserialize)]
pub(crate) struct Common {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
    #[serde(rename = "as", default)]
    as_author: String,
}

/// Only a path on this page: never another site.
fn local_path(back: &str) -> &str {
    let ok = back.starts_with('/')
        && !back.starts_with("//")
        && !back.contains('\\')
        && !back.chars().any(char::is_control);
    if ok {
        back
    } else {
        "/"
    }
}

pub(crate) fn back_to(back: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, local_path(back).to_string())],
    )
        .into_response()
}

/// Checks the form, runs `f` as the chosen author, and goes back.
async fn act<F>(app: &Arc<App>, session: &Session, common: Common, f: F) -> Answer
where
    F: FnOnce(&mut Node, Option<&str>) -> rhizome_node::Result<()> + Send + 'static,
{
    check_csrf(session, &common.csrf)?;
    let as_author = Some(common.as_author).filter(|a| !a.is_empty());
    app.with_node(move |node| f(node, as_author.as_deref()))
        .await?;
    Ok(back_to(&common.back))
}

fn text_of(text: &str, what: &str) -> Result<String, Failure> {
    let t = text.replace("\r\n", "\n");
    if t.trim().is_empty() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("The {what} is empty; nothing was written."),
        ));
    }
    Ok(t)
}

#[derive(Deserialize)]
pub(crate) struct PostForm {
    #[serde(flatten)]
    common: Common,
    text: String,
    #[serde(default)]
    circle: String,
}

/// Publishes a post, optionally to a circle.
pub(crate) async fn post(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<PostForm>,
) -> Answer {
    let text = text_of(&f.text, "post")?;
    let circle = Some(f.circle).filter(|c| !c.is_empty());
    act(&app, &session, f.common, move |node, who| {
        let draft = Draft::post(&text, None, None, None).in_circle(circle.as_deref());
        node.write(who, draft).map(drop)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct TargetForm {
    #[serde(flatten)]
    common: Common,
    target: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    starred: String,
}

/// Comments on an event.
pub(crate) async fn comment(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<TargetForm>,
) -> Answer {
    let text = text_of(&f.text, "comment")?;
    act(&app, &session, f.common, move |node, who| {
        let target = node.resolve_target(&f.target)?;
        node.write(who, Draft::comment(target, &text)).map(drop)
    })
    .await
}

/// Likes an event.
pub(crate) async fn like(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<TargetForm>,
) -> Answer {
    act(&app, &session, f.common, move |node, who| {
        let target = node.resolve_target(&f.target)?;
        node.write(who, Draft::like(target)).map(drop)
    })
    .await
}

/// Reshares an event, with an optional comment.
pub(crate) async fn reshare(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<TargetForm>,
) -> Answer {
    let comment = Some(f.comment.replace("\r\n", "\n")).filter(|c| !c.trim().is_empty());
    act(&app, &session, f.common, move |node, who| {
        let target = node.resolve_target(&f.target)?;
        node.write(who, Draft::reshare(target, comment.as_deref()))
            .map(drop)
    })
    .await
}

/// Stars or unstars an event.
pub(crate) async fn star(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<TargetForm>,
) -> Answer {
    let on = f.starred != "false";
    act(&app, &session, f.common, move |node, who| {
        let target = node.resolve_target(&f.target)?;
        node.write(who, Draft::star(target, on)).map(drop)
    })
    .await
}

/// Tags an event.
pub(crate) async fn tag(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<TargetForm>,
) -> Answer {
    let tag = f.tag.trim().to_string();
    act(&app, &session, f.common, move |node, who| {
        let target = node.resolve_target(&f.target)?;
        node.write(who, Draft::tag(target, &tag)).map(drop)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct CircleForm {
    #[serde(flatten)]
    common: Common,
    circle: String,
    #[serde(default)]
    members: String,
}

fn members(node: &Node, text: &str) -> rhizome_node::Result<Vec<rhizome_core::PublicKey>> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|m| !m.is_empty())
        .map(|m| node.resolve_author(m, "member"))
        .collect()
}

/// Creates a circle.
pub(crate) async fn circle_create(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<CircleForm>,
) -> Answer {
    let name = f.circle.trim().to_string();
    act(&app, &session, f.common, move |node, who| {
        let ms = members(node, &f.members)?;
        node.write(who, Draft::circle(&name, CircleChange::Create(ms)))
            .map(drop)
    })
    .await
}

/// Adds members to a circle.
pub(crate) async fn circle_add(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<CircleForm>,
) -> Answer {
    let name = f.circle.trim().to_string();
    act(&app, &session, f.common, move |node, who| {
        let ms = members(node, &f.members)?;
        if ms.is_empty() {
            return Err(NodeError::Invalid("name at least one member".into()));
        }
        node.write(who, Draft::circle(&name, CircleChange::Add(ms)))
            .map(drop)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct FollowForm {
    #[serde(flatten)]
    common: Common,
    author: String,
    on: String,
}

/// Follows or unfollows an author.
pub(crate) async fn follow(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Form(f): Form<FollowForm>,
) -> Answer {
    let on = f.on != "false";
    let author = f.author.trim().to_string();
    act(&app, &session, f.common, move |node, _| {
        node.follow(&author, on).map(drop)
    })
    .await
}
