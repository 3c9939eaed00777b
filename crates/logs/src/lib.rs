//! Logplex-style log aggregation for Hoist.
//!
//! Every line an app produces (dyno output, platform events, router lines, API events)
//! goes through [`LogHub::push`]. The hub keeps the last `history_lines` per app (in
//! memory and on disk), fans lines out to live tail sessions served as Server-Sent
//! Events, and forwards them to the app's drains (syslog over TCP/TLS, HTTPS batches).
//!
//! Invariants:
//! - `push` never waits on a reader, a drain or the disk: every consumer has its own
//!   bounded queue and overflow is counted and reported in-band (L10 / L11).
//! - Memory per app is bounded: `history_lines` lines of at most `max_line_bytes` each,
//!   plus one bounded queue per tail session and per drain.
//! - Drain URL credentials never appear in logs, errors or API output
//!   (see [`redact_drain_url`]).

mod drain;
mod hub;
mod mailbox;
mod metrics;
mod persist;
mod splitter;
mod sse;
mod syslog;

use std::path::PathBuf;
use std::time::Duration;

use hoist_types::{LogLine, LogSource};

pub use drain::{redact_drain_url, validate_drain_url};
pub use hub::{AccessCheck, LogHub};
pub use splitter::LineSplitter;
pub use syslog::parse_frames as parse_octet_frames;

/// Tuning for a [`LogHub`]. Construct with `..Default::default()` so new knobs don't
/// break callers.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Where per-app history files live.
    pub dir: PathBuf,
    /// Lines of history kept per app (Logplex: 1500).
    pub history_lines: usize,
    /// A log session expires this long after it was last used (Logplex: 360 s).
    pub session_ttl: Duration,
    /// Messages longer than this are truncated on `push` (dyno output is split
    /// beforehand by [`LineSplitter`]).
    pub max_line_bytes: usize,
    /// Lines queued per tail session before it starts dropping (-> L11).
    pub tail_buffer: usize,
    /// Lines queued per drain before it starts dropping (-> L10).
    pub drain_buffer: usize,
    /// How often a live tail re-checks that its session's owner may still read the app.
    pub access_recheck: Duration,
    /// Where drains may connect (the platform's own addresses are refused).
    pub egress: std::sync::Arc<hoist_egress::EgressPolicy>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            dir: PathBuf::from("logs"),
            history_lines: 1500,
            session_ttl: Duration::from_secs(360),
            max_line_bytes: 10_000,
            tail_buffer: 8192,
            drain_buffer: 4096,
            access_recheck: Duration::from_secs(2),
            egress: std::sync::Arc::new(hoist_egress::EgressPolicy::strict()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("couldn't start the log writer thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The message never contains the URL itself (it may hold credentials).
    #[error("invalid drain URL: {0}")]
    InvalidDrainUrl(String),
    #[error("drain refused: {0}")]
    Egress(#[from] hoist_egress::EgressError),
}

/// Which lines a session or history query wants, with Logplex's semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogFilter {
    /// `app` or `heroku` (the syslog APP-NAME).
    pub source: Option<LogSource>,
    /// A dyno name (`web.1`) or process type (`web`): matches the ps exactly or as a
    /// prefix followed by a dot.
    pub ps: Option<String>,
}

impl LogFilter {
    pub fn matches(&self, line: &LogLine) -> bool {
        if let Some(source) = self.source {
            if line.source != source {
                return false;
            }
        }
        match self.ps.as_deref() {
            None | Some("") => true,
            Some(ps) => {
                line.ps == ps
                    || (line.ps.len() > ps.len()
                        && line.ps.starts_with(ps)
                        && line.ps.as_bytes()[ps.len()] == b'.')
            }
        }
    }
}

/// A `POST /apps/{app}/log-sessions` request, already parsed by the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRequest {
    /// Lines of history to send first (the CLI sends 100 by default).
    pub lines: usize,
    /// Keep the stream open and send new lines.
    pub tail: bool,
    pub filter: LogFilter,
}

/// One drain of an app. `Debug` redacts the URL's credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct DrainConfig {
    pub id: String,
    pub url: String,
    /// `d.<uuid>`: the syslog HOSTNAME and the `Logplex-Drain-Token` header.
    pub token: String,
}

impl std::fmt::Debug for DrainConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrainConfig")
            .field("id", &self.id)
            .field("url", &redact_drain_url(&self.url))
            .field("token", &self.token)
            .finish()
    }
}

/// Display format, without `Display`'s per-call format-string parsing (hot path).
pub(crate) fn format_line(line: &LogLine, out: &mut String) {
    let mut ts = [0u8; 32];
    let n = write_timestamp(&line.time, &mut ts);
    out.reserve(n + line.ps.len() + line.message.len() + 16);
    out.push_str(std::str::from_utf8(&ts[..n]).unwrap_or_default());
    out.push(' ');
    out.push_str(line.source.as_str());
    out.push('[');
    out.push_str(&line.ps);
    out.push_str("]: ");
    out.push_str(&line.message);
}

/// RFC 3339 with microseconds and `+00:00`, as Logplex prints it.
pub(crate) fn timestamp(t: &chrono::DateTime<chrono::Utc>) -> String {
    let mut buf = [0u8; 32];
    let n = write_timestamp(t, &mut buf);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `timestamp` without allocating or parsing a format (every line needs one per
/// consumer). Returns the bytes written: 32 for years 0..=9999.
pub(crate) fn write_timestamp(t: &chrono::DateTime<chrono::Utc>, buf: &mut [u8; 32]) -> usize {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        let s = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        let n = s.len().min(32);
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        return n;
    }
    fn put(buf: &mut [u8], mut v: u32) {
        for b in buf.iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    put(&mut buf[0..4], year as u32);
    buf[4] = b'-';
    put(&mut buf[5..7], t.month());
    buf[7] = b'-';
    put(&mut buf[8..10], t.day());
    buf[10] = b'T';
    put(&mut buf[11..13], t.hour());
    buf[13] = b':';
    put(&mut buf[14..16], t.minute());
    buf[16] = b':';
    put(&mut buf[17..19], t.second());
    buf[19] = b'.';
    // Leap seconds show up as nanosecond values >= 1e9; keep six digits.
    put(&mut buf[20..26], (t.nanosecond() / 1000) % 1_000_000);
    buf[26..32].copy_from_slice(b"+00:00");
    32
}

/// Cut `s` to at most `max` bytes on a char boundary.
pub(crate) fn truncate_at_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn line(source: LogSource, ps: &str) -> LogLine {
        LogLine {
            time: Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
                + chrono::Duration::microseconds(123456),
            source,
            ps: ps.into(),
            message: "hello".into(),
        }
    }

    #[test]
    fn fast_format_matches_display() {
        for l in [
            line(LogSource::App, "web.1"),
            line(LogSource::Heroku, "router"),
            LogLine::app("run.42", "now ünïcode"),
        ] {
            let mut s = String::new();
            format_line(&l, &mut s);
            assert_eq!(s, l.to_string());
        }
        let mut s = String::new();
        format_line(&line(LogSource::App, "web.1"), &mut s);
        assert_eq!(s, "2026-11-28T10:00:00.123456+00:00 app[web.1]: hello");
    }

    #[test]
    fn fast_timestamp_matches_chrono() {
        let mut t = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
        for step in [1, 999, 1_000_001, 86_399_999_999] {
            t += chrono::Duration::microseconds(step);
            assert_eq!(
                timestamp(&t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
            );
        }
        let now = Utc::now();
        assert_eq!(
            timestamp(&now),
            now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
        );
    }

    #[test]
    fn filter_prefix_semantics() {
        let ps = |p: &str| LogFilter {
            source: None,
            ps: Some(p.into()),
        };
        assert!(ps("web").matches(&line(LogSource::App, "web.1")));
        assert!(ps("web").matches(&line(LogSource::App, "web.12")));
        assert!(ps("web").matches(&line(LogSource::App, "web")));
        assert!(!ps("web").matches(&line(LogSource::App, "webhook.1")));
        assert!(!ps("web").matches(&line(LogSource::App, "worker.1")));
        assert!(ps("web.1").matches(&line(LogSource::App, "web.1")));
        assert!(!ps("web.1").matches(&line(LogSource::App, "web.10")));
        assert!(ps("router").matches(&line(LogSource::Heroku, "router")));
        assert!(!ps("route").matches(&line(LogSource::Heroku, "router")));

        let src = LogFilter {
            source: Some(LogSource::Heroku),
            ps: Some("web".into()),
        };
        assert!(src.matches(&line(LogSource::Heroku, "web.1")));
        assert!(!src.matches(&line(LogSource::App, "web.1")));
        assert!(LogFilter::default().matches(&line(LogSource::App, "anything")));
    }

    #[test]
    fn drain_config_debug_hides_credentials() {
        let d = DrainConfig {
            id: "1".into(),
            url: "https://user:s3cret@logs.example.com/x".into(),
            token: "d.1".into(),
        };
        let dbg = format!("{d:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(!dbg.contains("user"), "{dbg}");
    }
}
