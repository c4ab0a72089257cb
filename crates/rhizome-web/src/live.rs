//! Live updates: the feed page listens to a server-sent event stream that says when the store
//! changed (an import from the CLI, another window, a sync). The server polls the store's event
//! count once a second (one cheap query) and sends it when it moves.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use crate::App;

/// `count` events, sent when the store's event count changes (and once at the start).
pub(crate) async fn feed_events(
    State(app): State<Arc<App>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold((app, None::<u64>), |(app, last)| async move {
        loop {
            let now = app
                .with_node(|node| node.stats())
                .await
                .ok()
                .map(|s| s.events);
            if now.is_some() && now != last {
                let ev = Event::default()
                    .event("count")
                    .data(now.unwrap_or_default().to_string());
                return Some((Ok(ev), (app, now)));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
