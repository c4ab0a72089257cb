//! The reading pages (feed, thread, starred, people and circles, tags), the layout they share,
//! and the static script and style. Everything shown goes through maud, which escapes it;
//! text from other homes is also stripped of control characters and isolated for direction
//! (`<bdi>`), so a right-to-left override cannot reorder what follows it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup, DOCTYPE};
use rhizome_core::{Hash, PublicKey};
use rhizome_node::read::{when, FeedPage, Names, Shown, Thread};
use rhizome_node::{AuthorInfo, Circle, Node, Reply};
use serde::Deserialize;

use crate::guard::Session;
use crate::{Answer, App};

const SCRIPT: &str = include_str!("../static/app.js");
const STYLE: &str = include_str!("../static/app.css");
/// Feed page size.
pub(crate) const PAGE: usize = 50;

/// The static script.
pub(crate) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// The static style.
pub(crate) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// Text from anywhere, for a page: control characters (terminal escapes included) and
/// direction overrides shown visibly (ESC as `\u001b`), line breaks kept; the same rule as
/// every front-end ([`rhizome_node::text`]).
pub(crate) fn clean(text: &str) -> String {
    rhizome_node::text::printable_lines(text).into_owned()
}

/// Remote text, isolated for direction.
pub(crate) fn remote(text: &str) -> Markup {
    html! { bdi { (clean(text)) } }
}

/// A time, in UTC; the script rewrites it in local time.
pub(crate) fn time(ms: u64) -> Markup {
    html! { time datetime=(ms) { (when(ms)) " UTC" } }
}

/// The page around a body.
pub(crate) fn layout(title: &str, session: &Session, active: &str, body: Markup) -> Html<String> {
    let nav = [
        ("/", "Feed"),
        ("/starred", "Starred"),
        ("/people", "People & circles"),
        ("/tags", "Tags"),
        ("/carry", "Carry a stick"),
        ("/trust", "Trust"),
    ];
    Html(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf" content=(session.csrf);
                title { (title) " · Rhizome" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    span.brand { "Rhizome" }
                    nav aria-label="Main" {
                        ul {
                            @for (href, label) in nav {
                                li { a href=(href) aria-current=[(href == active).then_some("page")] { (label) } }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }.into_string())
}

/// An error page.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "Error · Rhizome" }
                    link rel="stylesheet" href="/static/app.css";
                }
                body {
                    main #main {
                        h1 { "Something went wrong" }
                        p.error role="alert" { (clean(message)) }
                        p.muted { "(" (status.as_u16()) ")" }
                        p { a href="/" { "Back to the feed" } }
                    }
                }
            }
        }
        .into_string(),
    )
}

/// Unknown address.
pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        error_page(StatusCode::NOT_FOUND, "No page here."),
    )
        .into_response()
}

/// The hidden fields every form carries: the CSRF token and where to come back to.
pub(crate) fn hidden(session: &Session, back: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(session.csrf);
        input type="hidden" name="back" value=(back);
    }
}

/// A select of local authors, the default first.
pub(crate) fn author_select(id: &str, authors: &[AuthorInfo]) -> Markup {
    html! {
        label for=(id) { "As" }
        select #(id) name="as" {
            @for a in authors {
                option value=(a.name) selected[a.is_default] { (clean(&a.name)) }
            }
        }
    }
}

/// What an event shows, as a block: its text, or why there is none.
fn body_of(shown: &Shown) -> Markup {
    html! {
        @if shown.missing {
            p.muted { "(this event has not arrived here yet)" }
        } @else if shown.withheld {
            p.muted { "(only for a circle this home is not in: its text stays with its members)" }
        } @else if let Some(t) = &shown.text {
            p.text { (remote(t)) }
        }
    }
}

fn circle_mark(shown: &Shown) -> Markup {
    html! {
        @if let Some(c) = &shown.circle {
            span.circle title="Only members of this circle can read it" { "circle: " (remote(c)) }
        } @else if shown.withheld {
            span.circle { "circle only" }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct FeedQuery {
    before: Option<String>,
}

struct FeedData {
    page: FeedPage,
    names: Vec<(PublicKey, Option<String>)>,
    reshared: HashMap<Hash, Shown>,
    authors: Vec<AuthorInfo>,
    circles: Vec<String>,
    events: u64,
}

fn names_map(
    names: &Names<'_>,
    keys: impl Iterator<Item = PublicKey>,
) -> Vec<(PublicKey, Option<String>)> {
    let mut out: Vec<(PublicKey, Option<String>)> = Vec::new();
    for k in keys {
        if !out.iter().any(|(x, _)| *x == k) {
            out.push((k, names.name(&k)));
        }
    }
    out
}

/// Names looked up in a blocking thread, shown later.
pub(crate) struct Known(pub(crate) Vec<(PublicKey, Option<String>)>);

impl Known {
    pub(crate) fn who(&self, key: &PublicKey) -> Markup {
        let name = self
            .0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, n)| n.as_deref());
        html! {
            span.who {
                @if let Some(n) = name { span.name { (remote(n)) } " " }
                span.fp title=(key.to_hex()) { (key.fingerprint()) }
            }
        }
    }
}

fn all_circles(node: &Node, authors: &[AuthorInfo]) -> rhizome_node::Result<Vec<String>> {
    let mut out = Vec::new();
    for a in authors {
        for c in node.circles(Some(&a.name))?.1 {
            if !out.contains(&c.name) {
                out.push(c.name);
            }
        }
    }
    Ok(out)
}

/// The feed: posts and reshares of followed authors, newest first, 50 a page.
pub(crate) async fn feed(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<FeedQuery>,
) -> Answer {
    let before = q.before.filter(|b| !b.is_empty());
    let before2 = before.clone();
    let d = app
        .with_node(move |node| {
            let page = node.feed(None, before2.as_deref(), PAGE)?;
            let names = node.names()?;
            let mut reshared = HashMap::new();
            for i in &page.items {
                if let Some(t) = i.item.target {
                    reshared.insert(t, node.shown(&t)?);
                }
            }
            let keys = page
                .items
                .iter()
                .map(|i| i.item.author)
                .chain(reshared.values().filter_map(|s| s.author));
            let names = names_map(&names, keys);
            let authors = node.authors()?;
            let circles = all_circles(node, &authors)?;
            Ok(FeedData {
                names,
                reshared,
                circles,
                authors,
                events: node.stats()?.events,
                page,
            })
        })
        .await?;
    let known = Known(d.names);
    let body = html! {
        h1 { "Feed" }
        p #live.live role="status" aria-live="polite" data-events=(d.events) hidden {}
        @if before.is_none() {
            section.compose aria-labelledby="compose-h" {
                h2 #compose-h { "Write a post" }
                form method="post" action="/post" {
                    (hidden(&session, "/"))
                    label for="post-text" { "Text" }
                    textarea #post-text name="text" rows="3" required maxlength="10000" {}
                    div.row {
                        (author_select("post-as", &d.authors))
                        label for="post-circle" { "Who can read it" }
                        select #post-circle name="circle" {
                            option value="" { "Everyone" }
                            @for c in &d.circles { option value=(c) { "Circle: " (clean(c)) } }
                        }
                        button type="submit" { "Post" }
                    }
                }
            }
        }
        @if d.page.items.is_empty() {
            p.muted { "Nothing here yet: write a post, follow people on the People page, or import a stick." }
        }
        ol.feed {
            @for i in &d.page.items {
                li.post {
                    article {
                        div.meta {
                            (known.who(&i.item.author))
                            " · " (time(i.item.ts))
                            @if i.item.kind == "RESHARE" { " · " span.kind { "reshared" } }
                            " " (circle_mark(&i.shown))
                        }
                        (body_of(&i.shown))
                        @if let Some(t) = &i.item.target {
                            @if let Some(s) = d.reshared.get(t) {
                                blockquote.quoted {
                                    @if let Some(a) = &s.author { div.meta { (known.who(a)) } }
                                    (body_of(s))
                                    a href={"/thread/" (t)} { "Open the original" }
                                }
                            }
                        }
                        div.actions {
                            a href={"/thread/" (i.item.hash)} {
                                "Open thread"
                                span.count { " · " (i.item.replies) " replies · " (i.item.likes) " likes" }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &d.page.next {
            nav.pager aria-label="Pages" {
                a href={"/?before=" (next)} rel="next" { "Older posts" }
                " "
                @if before.is_some() { a href="/" { "Newest" } }
            }
        }
    };
    Ok(layout("Feed", &session, "/", body).into_response())
}

struct ThreadData {
    thread: Thread,
    names: Vec<(PublicKey, Option<String>)>,
    authors: Vec<AuthorInfo>,
    starred_by: Vec<String>,
}

/// Replies depth first, each below what it answers, in time order.
fn ordered(root: &Hash, replies: &[(Reply, Shown)]) -> Vec<usize> {
    let mut children: HashMap<Hash, Vec<usize>> = HashMap::new();
    for (i, (r, _)) in replies.iter().enumerate() {
        children.entry(r.target).or_default().push(i);
    }
    let mut out = Vec::with_capacity(replies.len());
    let mut stack: Vec<usize> = children
        .get(root)
        .map(|v| v.iter().rev().copied().collect())
        .unwrap_or_default();
    while let Some(i) = stack.pop() {
        out.push(i);
        if out.len() > replies.len() {
            break;
        }
        if let Some(kids) = children.get(&replies[i].0.hash) {
            stack.extend(kids.iter().rev());
        }
    }
    out
}

/// A thread: the root, who liked it, its tags, who reshared it, and the replies nested below
/// it, with the forms that answer it.
pub(crate) async fn thread(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Path(hash): Path<String>,
) -> Answer {
    let d = app
        .with_node(move |node| {
            let thread = node.thread(&hash)?;
            let names = node.names()?;
            let keys = std::iter::once(thread.root.header.author)
                .chain(thread.likers.iter().copied())
                .chain(thread.reshares.iter().map(|r| r.author))
                .chain(thread.replies.iter().map(|(r, _)| r.author));
            let names = names_map(&names, keys);
            let authors = node.authors()?;
            let mut starred_by = Vec::new();
            for a in &authors {
                let (_, list) = node.starred(Some(&a.name))?;
                if list.iter().any(|(h, _)| *h == thread.root.hash) {
                    starred_by.push(a.name.clone());
                }
            }
            Ok(ThreadData {
                thread,
                names,
                authors,
                starred_by,
            })
        })
        .await?;
    let known = Known(d.names);
    let t = &d.thread;
    let root = t.root.hash;
    let back = format!("/thread/{root}");
    let order = ordered(&root, &t.replies);
    let body = html! {
        p { a href="/" { "← Feed" } }
        article.post.root {
            div.meta {
                (known.who(&t.root.header.author)) " · " (time(t.root.header.timestamp.get()))
                " · " span.kind { (t.root.header.kind.as_str().to_lowercase()) }
                " " (circle_mark(&t.shown))
            }
            (body_of(&t.shown))
            div.facts {
                @if !t.likers.is_empty() {
                    p { "Liked by " @for (n, k) in t.likers.iter().enumerate() { @if n > 0 { ", " } (known.who(k)) } }
                }
                @if !t.tags.is_empty() {
                    div { "Tags: " ul.tags { @for tag in &t.tags { li { a href={"/tags?tag=" (urlencode(tag))} { (remote(tag)) } } } } }
                }
                @if !d.starred_by.is_empty() {
                    p { "Starred by " (clean(&d.starred_by.join(", "))) }
                }
                @if !t.reshares.is_empty() {
                    ul.plain.reshares aria-label="Reshares" {
                        @for r in &t.reshares {
                            li.reshare {
                                "Reshared by " (known.who(&r.author)) " at " (time(r.ts))
                                " · " a href={"/thread/" (r.hash)} { "Open the reshare" }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="act-h" {
            h2 #act-h { "Answer" }
            form method="post" action="/comment" {
                (hidden(&session, &back))
                input type="hidden" name="target" value=(root);
                label for="comment-text" { "Comment" }
                textarea #comment-text name="text" rows="2" required maxlength="10000" {}
                div.row { (author_select("comment-as", &d.authors)) button type="submit" { "Comment" } }
            }
            div.buttons {
                form method="post" action="/like" {
                    (hidden(&session, &back))
                    input type="hidden" name="target" value=(root);
                    (author_select("like-as", &d.authors))
                    button type="submit" { "Like" }
                }
                form method="post" action="/star" {
                    (hidden(&session, &back))
                    input type="hidden" name="target" value=(root);
                    (author_select("star-as", &d.authors))
                    label for="star-on" { "Star" }
                    select #star-on name="starred" { option value="true" { "star" } option value="false" { "unstar" } }
                    button type="submit" { "Save star" }
                }
            }
            form method="post" action="/reshare" {
                (hidden(&session, &back))
                input type="hidden" name="target" value=(root);
                label for="reshare-text" { "Reshare with a comment (optional)" }
                input #reshare-text type="text" name="comment" maxlength="10000";
                div.row { (author_select("reshare-as", &d.authors)) button type="submit" { "Reshare" } }
            }
            form method="post" action="/tag" {
                (hidden(&session, &back))
                input type="hidden" name="target" value=(root);
                label for="tag-text" { "Tag" }
                input #tag-text type="text" name="tag" required maxlength="64";
                div.row { (author_select("tag-as", &d.authors)) button type="submit" { "Add tag" } }
            }
        }
        section aria-labelledby="replies-h" {
            h2 #replies-h { "Replies (" (t.replies.len()) ")" }
            ol.replies {
                @for i in order {
                    @let (r, shown) = &t.replies[i];
                    li.reply class={"d" (r.depth.min(6))} {
                        div.meta { (known.who(&r.author)) " · " (time(r.ts)) " " (circle_mark(shown)) }
                        (body_of(shown))
                        a.small href={"/thread/" (r.hash)} { "Answer this" }
                    }
                }
            }
        }
    };
    Ok(layout("Thread", &session, "", body).into_response())
}

/// Percent-encodes a query value.
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
pub(crate) struct AsQuery {
    #[serde(rename = "as")]
    as_author: Option<String>,
    tag: Option<String>,
}

fn event_list(known: &Known, list: &[(Hash, Shown)]) -> Markup {
    html! {
        @if list.is_empty() { p.muted { "None." } }
        ol.feed {
            @for (h, s) in list {
                li.post { article {
                    div.meta { @if let Some(a) = &s.author { (known.who(a)) } " " (circle_mark(s)) }
                    (body_of(s))
                    div.actions { a href={"/thread/" (h)} { "Open thread" } }
                } }
            }
        }
    }
}

/// Starred events of a local author.
pub(crate) async fn starred(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<AsQuery>,
) -> Answer {
    let as_author = q.as_author.filter(|a| !a.is_empty());
    let (author, list, names, authors) = app
        .with_node(move |node| {
            let (author, list) = node.starred(as_author.as_deref())?;
            let names = node.names()?;
            let names = names_map(&names, list.iter().filter_map(|(_, s)| s.author));
            Ok((author.name, list, names, node.authors()?))
        })
        .await?;
    let known = Known(names);
    let body = html! {
        h1 { "Starred by " (clean(&author)) }
        form method="get" action="/starred" {
            div.row {
                label for="starred-as" { "Author" }
                select #starred-as name="as" {
                    @for a in &authors { option value=(a.name) selected[a.name == author] { (clean(&a.name)) } }
                }
                button type="submit" { "Show" }
            }
        }
        (event_list(&known, &list))
    };
    Ok(layout("Starred", &session, "/starred", body).into_response())
}

/// Tags, or the events of one tag.
pub(crate) async fn tags(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
    Query(q): Query<AsQuery>,
) -> Answer {
    let tag = q.tag.filter(|t| !t.is_empty());
    let tag2 = tag.clone();
    let (counts, list, names) = app
        .with_node(move |node| {
            let counts = node.tag_counts()?;
            let list = match &tag2 {
                Some(t) => node.tagged(t)?,
                None => Vec::new(),
            };
            let names = node.names()?;
            let names = names_map(&names, list.iter().filter_map(|(_, s)| s.author));
            Ok((counts, list, names))
        })
        .await?;
    let known = Known(names);
    let body = html! {
        h1 { "Tags" }
        @if counts.is_empty() { p.muted { "No tags yet." } }
        ul.tags {
            @for (t, n) in &counts {
                li { a href={"/tags?tag=" (urlencode(t))} { (remote(t)) } " (" (n) ")" }
            }
        }
        @if let Some(t) = &tag {
            h2 { "Tagged " (remote(t)) }
            (event_list(&known, &list))
        }
    };
    Ok(layout("Tags", &session, "/tags", body).into_response())
}

struct PeopleData {
    authors: Vec<AuthorInfo>,
    circles: Vec<(String, Vec<Circle>)>,
    follows: Vec<PublicKey>,
    names: Vec<(PublicKey, Option<String>)>,
}

/// Local authors, who is followed, and circles, with the forms that change them.
pub(crate) async fn people(
    State(app): State<Arc<App>>,
    Extension(session): Extension<Session>,
) -> Answer {
    let d = app
        .with_node(|node| {
            let authors = node.authors()?;
            let mut circles = Vec::new();
            for a in &authors {
                circles.push((a.name.clone(), node.circles(Some(&a.name))?.1));
            }
            let follows = node.store().follows()?;
            let names = node.names()?;
            let keys = follows
                .iter()
                .copied()
                .chain(authors.iter().map(|a| a.public_key))
                .chain(
                    circles
                        .iter()
                        .flat_map(|(_, cs)| cs.iter().flat_map(|c| c.members.iter().copied())),
                );
            let names = names_map(&names, keys);
            Ok(PeopleData {
                authors,
                circles,
                follows,
                names,
            })
        })
        .await?;
    let known = Known(d.names);
    let body = html! {
        h1 { "People & circles" }
        section aria-labelledby="authors-h" {
            h2 #authors-h { "Who writes here" }
            ul.plain {
                @for a in &d.authors {
                    li { (known.who(&a.public_key)) @if a.is_default { " (default)" } br; code.key { (a.public_key) } }
                }
            }
        }
        section aria-labelledby="follows-h" {
            h2 #follows-h { "Followed (" (d.follows.len()) ")" }
            p.muted { "The feed shows posts of the people followed here." }
            form method="post" action="/follow" {
                (hidden(&session, "/people"))
                input type="hidden" name="on" value="true";
                label for="follow-key" { "Follow (public key or local author name)" }
                div.row {
                    input #follow-key type="text" name="author" required maxlength="100" autocomplete="off";
                    button type="submit" { "Follow" }
                }
            }
            ul.plain {
                @for k in &d.follows {
                    li {
                        (known.who(k))
                        form.inline method="post" action="/follow" {
                            (hidden(&session, "/people"))
                            input type="hidden" name="on" value="false";
                            input type="hidden" name="author" value=(k);
                            button type="submit" aria-label={"Unfollow " (k.fingerprint())} { "Unfollow" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="circles-h" {
            h2 #circles-h { "Circles" }
            p.muted { "A post to a circle can be read only by its members' homes; others carry just its signed header." }
            @for (author, cs) in &d.circles {
                @for c in cs {
                    div.circlebox {
                        h3 { (clean(author)) ": " (remote(&c.name)) }
                        ul.plain { @for m in &c.members { li { (known.who(m)) } } }
                    }
                }
            }
            form method="post" action="/circle/create" {
                h3 { "Create a circle" }
                (hidden(&session, "/people"))
                div.row {
                    (author_select("circle-as", &d.authors))
                    label for="circle-name" { "Name" }
                    input #circle-name type="text" name="circle" required maxlength="64";
                }
                label for="circle-members" { "Members (public keys or local names, one a line)" }
                textarea #circle-members name="members" rows="2" {}
                button type="submit" { "Create circle" }
            }
            form method="post" action="/circle/add" {
                h3 { "Add a member" }
                (hidden(&session, "/people"))
                div.row {
                    (author_select("add-as", &d.authors))
                    label for="add-circle" { "Circle" }
                    input #add-circle type="text" name="circle" required maxlength="64";
                }
                label for="add-member" { "Member (public key or local name)" }
                input #add-member type="text" name="members" required maxlength="100";
                button type="submit" { "Add member" }
            }
        }
    };
    Ok(layout("People", &session, "/people", body).into_response())
}
