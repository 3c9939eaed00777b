//! Terminal output: Heroku-style headers, key/value blocks and tables, coloured on
//! a terminal and plain when piped.

use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table};
use serde_json::Value;
use std::io::IsTerminal;

/// Whether stdout / stderr get ANSI colours.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub err_color: bool,
}

impl Style {
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Style {
            color: !no_color && std::io::stdout().is_terminal(),
            err_color: !no_color && std::io::stderr().is_terminal(),
        }
    }

    fn paint(on: bool, code: &str, s: &str) -> String {
        if on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// `=== title` section header.
    pub fn header(&self, title: &str) {
        // Keep the whole line bold even where a coloured app name resets styles.
        let title = title.replace("\x1b[0m", "\x1b[0m\x1b[1m");
        println!("{}", Self::paint(self.color, "1", &format!("=== {title}")));
    }

    pub fn app(&self, name: &str) -> String {
        Self::paint(self.color, "35", name)
    }

    pub fn bold(&self, s: &str) -> String {
        Self::paint(self.color, "1", s)
    }

    /// For text printed to stderr (progress, warnings).
    pub fn err_app(&self, name: &str) -> String {
        Self::paint(self.err_color, "35", name)
    }

    /// Aligned `Key: value` lines, like Heroku's `styledObject`.
    pub fn object(&self, rows: &[(&str, String)]) {
        let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
        for (k, v) in rows {
            let key = format!("{k}:");
            let mut lines = v.lines();
            let first = lines.next().unwrap_or("");
            println!(
                "{}{} {first}",
                self.bold(&key),
                " ".repeat(width - key.len())
            );
            for l in lines {
                println!("{} {l}", " ".repeat(width));
            }
        }
    }

    /// A borderless table with an underlined header row.
    pub fn table(&self, headers: &[&str], rows: Vec<Vec<String>>) {
        let mut t = Table::new();
        // Only the header separator is drawn (see comfy-table's preset layout).
        let line = if self.color { "─" } else { "-" };
        t.load_preset(&format!("     {line}             "));
        t.set_content_arrangement(ContentArrangement::Disabled);
        if self.color {
            t.enforce_styling();
            t.set_header(headers.iter().map(|h| {
                Cell::new(h)
                    .add_attribute(Attribute::Bold)
                    .fg(Color::Magenta)
            }));
        } else {
            t.force_no_tty();
            t.set_header(headers.iter().map(Cell::new));
        }
        for r in rows {
            t.add_row(r);
        }
        for line in t.to_string().lines() {
            println!("{}", line.trim_end());
        }
    }

    /// Rows without a header (release lists and the like).
    pub fn rows(&self, rows: Vec<Vec<String>>) {
        let mut t = Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_content_arrangement(ContentArrangement::Disabled);
        t.force_no_tty();
        for r in rows {
            t.add_row(r);
        }
        for line in t.to_string().lines() {
            // comfy-table pads each cell by one space on both sides.
            let l = line.strip_prefix(' ').unwrap_or(line);
            println!("{}", l.trim_end());
        }
    }
}

/// Prints a JSON value for `--json`.
pub fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{v}"),
    }
}

/// The strings of an array field (`config_vars`, `addon_plan_names`); empty if absent.
pub fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A string field at a JSON pointer, or "".
pub fn s(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `2026/11/28 10:00:00 +0000`, in local time.
pub fn format_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t
            .with_timezone(&chrono::Local)
            .format("%Y/%m/%d %H:%M:%S %z")
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// `~ 3s ago`, `~ 5m ago`, `~ 2h ago`, `~ 4d ago`.
pub fn ago(rfc3339: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return String::new();
    };
    let secs = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    let (n, unit) = if secs < 60 {
        (secs, "s")
    } else if secs < 3600 {
        (secs / 60, "m")
    } else if secs < 86400 {
        (secs / 3600, "h")
    } else {
        (secs / 86400, "d")
    };
    format!("~ {n}{unit} ago")
}

/// Single-quotes a value for `config --shell` when it needs quoting.
pub fn shell_quote(v: &str) -> String {
    let safe = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b));
    if safe {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(ago("2026-11-28T09:59:57Z", now), "~ 3s ago");
        assert_eq!(ago("2026-11-28T09:55:00Z", now), "~ 5m ago");
        assert_eq!(ago("2026-11-28T07:00:00Z", now), "~ 3h ago");
        assert_eq!(ago("2026-11-20T10:00:00Z", now), "~ 8d ago");
        assert_eq!(ago("garbage", now), "");
    }

    #[test]
    fn quoting_for_the_shell() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote("postgres://u:p@h/db"), "postgres://u:p@h/db");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
