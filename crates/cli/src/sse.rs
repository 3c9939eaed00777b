//! A Server-Sent Events parser (the WHATWG event-stream format) for log sessions.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far (what a reconnect sends as `Last-Event-ID`).
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub struct Parser {
    data: Vec<String>,
    event: Option<String>,
    last_id: Option<String>,
    /// The server's `retry:` reconnection delay in milliseconds.
    pub retry_ms: Option<u64>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// The connection dropped: an event without its blank line is discarded, the
    /// last id and retry delay are kept for the reconnect.
    pub fn reset_event(&mut self) {
        self.data.clear();
        self.event = None;
    }

    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds one line (without its line terminator; a trailing `\r` is removed).
    /// Returns an event when the line is the blank line that ends one.
    pub fn line(&mut self, line: &str) -> Option<Event> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            let event = self.event.take();
            if self.data.is_empty() {
                return None;
            }
            let data = std::mem::take(&mut self.data).join("\n");
            return Some(Event {
                event: event.unwrap_or_else(|| "message".to_string()),
                data,
                id: self.last_id.clone(),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut Parser, text: &str) -> Vec<Event> {
        text.split('\n').filter_map(|l| p.line(l)).collect()
    }

    #[test]
    fn single_and_multi_line_events_with_ids() {
        let mut p = Parser::new();
        let evs = feed(
            &mut p,
            "id: 1\ndata: 2026-11-28T10:00:00Z app[web.1]: hello\n\n: keepalive\n\nid: 2\ndata: line one\ndata:line two\n\n",
        );
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].data, "2026-11-28T10:00:00Z app[web.1]: hello");
        assert_eq!(evs[0].id.as_deref(), Some("1"));
        assert_eq!(evs[1].data, "line one\nline two");
        assert_eq!(evs[1].id.as_deref(), Some("2"));
        assert_eq!(evs[1].event, "message");
        assert_eq!(p.last_event_id(), Some("2"));
    }

    #[test]
    fn crlf_retry_event_names_and_incomplete_events() {
        let mut p = Parser::new();
        let evs = feed(
            &mut p,
            "retry: 1500\r\nevent: end\r\ndata\r\n\r\nid: 9\r\n\r\ndata: pending",
        );
        assert_eq!(p.retry_ms, Some(1500));
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event, "end");
        assert_eq!(evs[0].data, "");
        // An id-only block updates the id without dispatching; unterminated data waits.
        assert_eq!(p.last_event_id(), Some("9"));
        assert!(p
            .line("")
            .is_some_and(|e| e.data == "pending" && e.id.as_deref() == Some("9")));
        assert!(p.line("retry: soon").is_none());
        assert_eq!(p.retry_ms, Some(1500));
    }
}
