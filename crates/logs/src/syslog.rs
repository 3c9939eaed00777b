//! RFC 5424 messages with RFC 6587 octet-counting framing, as Logplex sends them.

use chrono::{DateTime, Utc};
use hoist_types::{LogLine, LogSource};

/// Syslog PRI (facility * 8 + severity) per kind of line, as seen on Heroku drains:
/// app output local7.info, router local3.info, logplex errors local5.warning,
/// other platform lines syslog.notice.
pub(crate) fn pri(line: &LogLine) -> u8 {
    match (line.source, line.ps.as_str()) {
        (LogSource::App, _) => 190,
        (LogSource::Heroku, "router") => 158,
        (LogSource::Heroku, "logplex") => 172,
        (LogSource::Heroku, _) => 45,
    }
}

/// Appends `<len> <PRI>1 <TIME> <HOST> <APP-NAME> <PROCID> - <SD ->MSG\n` to `out`.
/// TCP/TLS drains use the drain token as HOST and `-` for STRUCTURED-DATA; HTTP drains
/// use `host` and leave STRUCTURED-DATA out entirely (Logplex's deviation).
pub(crate) fn frame(out: &mut Vec<u8>, line: &LogLine, host: &str, with_sd: bool) {
    use std::io::Write;
    let start = out.len();
    let _ = write!(out, "<{}>1 ", pri(line));
    let mut ts = [0u8; 32];
    let n = crate::write_timestamp(&line.time, &mut ts);
    out.extend_from_slice(&ts[..n]);
    for field in [host, line.source.as_str(), nil_if_empty(&line.ps), "-"] {
        out.push(b' ');
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(if with_sd { b" - " } else { b" " });
    out.extend_from_slice(line.message.as_bytes());
    out.push(b'\n');
    // Octet counting: the length prefix goes in front of what we just wrote.
    let len = out.len() - start;
    let mut prefix = [0u8; 24];
    let mut cursor = std::io::Cursor::new(&mut prefix[..]);
    let _ = write!(cursor, "{len} ");
    let plen = cursor.position() as usize;
    out.splice(start..start, prefix[..plen].iter().copied());
}

fn nil_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `heroku[logplex]: Error L10 ...`, sent once a drain delivers again after drops.
pub(crate) fn l10_line(count: u64, since: DateTime<Utc>) -> LogLine {
    LogLine::heroku(
        "logplex",
        format!(
            "Error L10 (output buffer overflow): {count} messages dropped since {}.",
            crate::timestamp(&since)
        ),
    )
}

/// `heroku[logplex]: Error L11 ...`, sent to a tail session that fell behind.
pub(crate) fn l11_line(count: u64, since: DateTime<Utc>) -> LogLine {
    LogLine::heroku(
        "logplex",
        format!(
            "Error L11 (Tail buffer overflow) -> This tail session dropped {count} messages since {}.",
            crate::timestamp(&since)
        ),
    )
}

/// Parses octet-counted frames (for tests and the benchmark's receiver): returns the
/// complete messages and how many bytes they used.
pub fn parse_frames(buf: &[u8]) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(sp) = buf[pos..].iter().position(|&b| b == b' ') {
        let Some(len) = std::str::from_utf8(&buf[pos..pos + sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        let start = pos + sp + 1;
        if buf.len() < start + len {
            break;
        }
        out.push(String::from_utf8_lossy(&buf[start..start + len]).into_owned());
        pos = start + len;
    }
    (out, pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn frames_count_octets_including_newline() {
        let line = LogLine {
            time: Utc.with_ymd_and_hms(2012, 11, 30, 6, 45, 29).unwrap(),
            source: LogSource::App,
            ps: "web.3".into(),
            message: "State changed from starting to up é".into(),
        };
        let mut out = Vec::new();
        frame(&mut out, &line, "d.abc", true);
        let s = String::from_utf8(out.clone()).unwrap();
        let msg = "<190>1 2012-11-30T06:45:29.000000+00:00 d.abc app web.3 - - State changed from starting to up é\n";
        assert_eq!(s, format!("{} {msg}", msg.len()));

        let mut http = Vec::new();
        frame(&mut http, &line, "host", false);
        let (msgs, used) = parse_frames(&http);
        assert_eq!(used, http.len());
        assert_eq!(
            msgs,
            vec!["<190>1 2012-11-30T06:45:29.000000+00:00 host app web.3 - State changed from starting to up é\n"]
        );
    }

    #[test]
    fn parse_frames_keeps_partial_tail() {
        let mut buf = Vec::new();
        frame(&mut buf, &LogLine::app("web.1", "a"), "h", true);
        frame(&mut buf, &LogLine::app("web.1", "b"), "h", true);
        let full = buf.len();
        buf.extend_from_slice(b"12 <190>1");
        let (msgs, used) = parse_frames(&buf);
        assert_eq!(msgs.len(), 2);
        assert_eq!(used, full);
    }
}
