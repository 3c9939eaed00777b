//! One line of an app's log stream, in Logplex's model: a source (`app` or
//! `heroku`), a process id (`web.1`, `router`, `api`) and a message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// Dyno output and API events (`app[web.1]`, `app[api]`).
    App,
    /// Platform events (`heroku[web.1]`, `heroku[router]`).
    Heroku,
}

impl LogSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::App => "app",
            LogSource::Heroku => "heroku",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub time: DateTime<Utc>,
    pub source: LogSource,
    /// The process id: `web.1`, `run.4711`, `router`, `api`, `build`.
    pub ps: String,
    pub message: String,
}

impl LogLine {
    pub fn now(source: LogSource, ps: impl Into<String>, message: impl Into<String>) -> Self {
        LogLine {
            time: Utc::now(),
            source,
            ps: ps.into(),
            message: message.into(),
        }
    }

    pub fn app(ps: impl Into<String>, message: impl Into<String>) -> Self {
        Self::now(LogSource::App, ps, message)
    }

    pub fn heroku(ps: impl Into<String>, message: impl Into<String>) -> Self {
        Self::now(LogSource::Heroku, ps, message)
    }

    /// RFC 3339 with microseconds and `+00:00`, as Logplex prints it.
    pub fn timestamp(&self) -> String {
        self.time.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// Heroku's display format: `2026-11-28T10:00:00.123456+00:00 app[web.1]: hello`.
impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}[{}]: {}",
            self.timestamp(),
            self.source.as_str(),
            self.ps,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_like_logplex() {
        let line = LogLine {
            time: Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap()
                + chrono::Duration::microseconds(123456),
            source: LogSource::App,
            ps: "web.1".into(),
            message: "hello".into(),
        };
        assert_eq!(
            line.to_string(),
            "2026-11-28T10:00:00.123456+00:00 app[web.1]: hello"
        );
    }
}
