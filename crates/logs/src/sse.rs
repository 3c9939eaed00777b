//! `GET /log-streams/{token}`: a log session as Server-Sent Events, the way the
//! Heroku CLI's EventSource reads it. The URL is the credential; there is no
//! Authorization header.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use hoist_types::LogLine;

use crate::hub::LogHub;
use crate::mailbox::{Entry, Item, Mailbox};

/// Most items formatted into one chunk of the response body.
const BATCH: usize = 512;
/// How long a tail waits for more lines before writing a small batch.
const LINGER: Duration = Duration::from_millis(2);

pub(crate) fn router(hub: LogHub) -> Router {
    Router::new()
        .route("/log-streams/{token}", get(stream))
        .with_state(hub)
}

async fn stream(
    State(hub): State<LogHub>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = hub.use_session(&token) else {
        // The CLI turns a 404 on (re)connect into "Log stream timed out".
        return (StatusCode::NOT_FOUND, "Log session not found or expired.\n").into_response();
    };
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let sub = hub.subscribe(&session, after);
    let recheck = hub.inner.cfg.access_recheck;
    let state = StreamState {
        hub,
        token,
        session,
        next_access_check: tokio::time::Instant::now() + recheck,
        revoked: false,
        history: Some(sub.history),
        live: sub.live,
        items: Vec::new(),
    };
    let body = Body::from_stream(futures::stream::unfold(state, next_chunk));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

struct StreamState {
    hub: LogHub,
    token: String,
    session: crate::hub::Session,
    next_access_check: tokio::time::Instant,
    /// The owner lost access: the session must not be renewed on drop.
    revoked: bool,
    history: Option<Vec<Arc<Entry>>>,
    live: Option<Arc<Mailbox>>,
    items: Vec<Item>,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if let Some(mb) = &self.live {
            // Detach from push() and give the CLI a full TTL to reconnect.
            mb.close();
            if !self.revoked {
                self.hub.touch_session(&self.token);
            }
        }
    }
}

async fn next_chunk(
    mut st: StreamState,
) -> Option<(Result<Bytes, std::convert::Infallible>, StreamState)> {
    if let Some(history) = st.history.take() {
        let mut buf = String::new();
        for e in &history {
            write_event(&mut buf, Some(e.seq), &e.line);
        }
        st.hub.count_sent(history.len() as u64);
        if buf.is_empty() && st.live.is_some() {
            // Something to send so the client sees the headers and "open" at once.
            buf.push_str(":ok\n\n");
        }
        if !buf.is_empty() {
            return Some((Ok(Bytes::from(buf)), st));
        }
    }
    let mb = st.live.clone()?;
    let keepalive = Duration::from_millis(st.hub.inner.keepalive_ms.load(Ordering::Relaxed));
    let keepalive_at = tokio::time::Instant::now() + keepalive;
    st.items.clear();
    loop {
        let wake = tokio::select! {
            open = mb.recv_batch(BATCH, LINGER, &mut st.items) => Wake::Lines { open },
            _ = tokio::time::sleep_until(keepalive_at) => Wake::KeepAlive,
            _ = tokio::time::sleep_until(st.next_access_check) => Wake::AccessCheck,
        };
        match wake {
            Wake::Lines { open: false } => return None,
            Wake::Lines { open: true } => {
                let buf = format_items(&st.hub, &st.items);
                return Some((Ok(Bytes::from(buf)), st));
            }
            Wake::KeepAlive => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), st)),
            Wake::AccessCheck => {
                if !st.hub.may_read(&st.session) {
                    st.revoked = true;
                    st.hub.revoke_session(&st.token);
                    return None;
                }
                st.next_access_check += st.hub.inner.cfg.access_recheck;
            }
        }
    }
}

enum Wake {
    Lines { open: bool },
    KeepAlive,
    AccessCheck,
}

fn format_items(hub: &LogHub, items: &[Item]) -> String {
    let mut buf = String::with_capacity(items.len() * 128);
    let mut sent = 0;
    for item in items {
        match item {
            Item::Line(e) => {
                write_event(&mut buf, Some(e.seq), &e.line);
                sent += 1;
            }
            Item::Dropped { count, since } => {
                // No id: the client's Last-Event-ID stays at the last real line.
                write_event(&mut buf, None, &crate::syslog::l11_line(*count, *since));
            }
        }
    }
    hub.count_sent(sent);
    buf
}

/// One `message` event per line. `data` must not contain line breaks, so a
/// multi-line message becomes several `data:` fields (the client joins them with \n).
fn write_event(buf: &mut String, id: Option<u64>, line: &LogLine) {
    use std::fmt::Write;
    if let Some(id) = id {
        let _ = writeln!(buf, "id: {id}");
    }
    let mut text = String::with_capacity(64 + line.message.len());
    crate::format_line(line, &mut text);
    for part in text.split('\n') {
        let part = part.strip_suffix('\r').unwrap_or(part);
        buf.push_str("data: ");
        if part.contains('\r') {
            buf.push_str(&part.replace('\r', " "));
        } else {
            buf.push_str(part);
        }
        buf.push('\n');
    }
    buf.push('\n');
}

impl LogHub {
    /// Serves `GET /log-streams/{token}`; merge into the API router. The session's
    /// `logplex_url` is `<public base URL>/log-streams/<token>`.
    pub fn stream_router(&self) -> Router {
        router(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_messages_become_several_data_fields() {
        let line = LogLine::app("web.1", "a\r\nb\rc");
        let mut buf = String::new();
        write_event(&mut buf, Some(7), &line);
        let lines: Vec<&str> = buf.split('\n').collect();
        assert_eq!(lines[0], "id: 7");
        assert!(lines[1].starts_with("data: ") && lines[1].ends_with("app[web.1]: a"));
        assert_eq!(lines[2], "data: b c");
        assert_eq!(&lines[3..], ["", ""]);
    }
}
