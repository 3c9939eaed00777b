//! `~/.netrc` reading and in-place editing. Only the entry being written is touched;
//! every other byte of the file (other machines, comments, macros) is preserved.

use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `None` for the `default` entry.
    pub machine: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    /// Byte span of the whole entry in the file text.
    span: Range<usize>,
}

struct Token<'a> {
    text: &'a str,
    span: Range<usize>,
}

/// Splits netrc text into whitespace-separated tokens, skipping `#` comments and
/// `macdef` bodies (which run until the next blank line).
fn tokens(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut out: Vec<Token<'_>> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if bytes[i] == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        out.push(Token {
            text: &text[start..i],
            span: start..i,
        });
        // A macro body is free text up to a blank line: fold it into the name token.
        if out.len() >= 2 && out[out.len() - 2].text == "macdef" {
            let body_end = text[i..]
                .find("\n\n")
                .map(|p| i + p + 1)
                .unwrap_or(text.len());
            if let Some(last) = out.last_mut() {
                last.span.end = body_end;
            }
            i = body_end;
        }
    }
    out
}

/// All `machine` and `default` entries in the file text.
pub fn parse(text: &str) -> Vec<Entry> {
    let toks = tokens(text);
    let mut entries = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (machine, mut j) = match toks[i].text {
            "machine" if i + 1 < toks.len() => (Some(toks[i + 1].text.to_string()), i + 2),
            "default" => (None, i + 1),
            "macdef" => {
                i += 2;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let start = toks[i].span.start;
        let mut end = toks[j - 1].span.end;
        let mut login = None;
        let mut password = None;
        while j + 1 < toks.len() {
            match toks[j].text {
                "login" => login = Some(toks[j + 1].text.to_string()),
                "password" => password = Some(toks[j + 1].text.to_string()),
                "account" | "port" | "protocol" => {}
                _ => break,
            }
            end = toks[j + 1].span.end;
            j += 2;
        }
        entries.push(Entry {
            machine,
            login,
            password,
            span: start..end,
        });
        i = j;
    }
    entries
}

/// The entry for `machine` (exact match; the `default` entry is not used because a
/// token for another host must never be sent to ours).
pub fn lookup(text: &str, machine: &str) -> Option<Entry> {
    parse(text)
        .into_iter()
        .find(|e| e.machine.as_deref() == Some(machine))
}

fn format_entry(machine: &str, login: &str, password: &str) -> String {
    format!("machine {machine}\n  login {login}\n  password {password}")
}

/// Returns `text` with the entry for `machine` replaced (or appended).
pub fn upsert(text: &str, machine: &str, login: &str, password: &str) -> String {
    let new_entry = format_entry(machine, login, password);
    match lookup(text, machine) {
        Some(e) => {
            let mut out = String::with_capacity(text.len() + new_entry.len());
            out.push_str(&text[..e.span.start]);
            out.push_str(&new_entry);
            out.push_str(&text[e.span.end..]);
            out
        }
        None => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&new_entry);
            out.push('\n');
            out
        }
    }
}

/// Returns `text` without the entry for `machine` (and the whitespace after it).
pub fn remove(text: &str, machine: &str) -> String {
    match lookup(text, machine) {
        Some(e) => {
            let rest = &text[e.span.end..];
            let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
            let mut out = text[..e.span.start].to_string();
            out.push_str(trimmed);
            out
        }
        None => text.to_string(),
    }
}

/// `$HOME/.netrc` (or `$NETRC` when set, like curl and git).
pub fn default_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETRC").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".netrc"))
}

pub fn read(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Writes the file atomically with mode 0600: it holds credentials.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".netrc".into());
    let tmp = dir.join(format!(".{name}.hoist-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# my hosts\nmachine api.heroku.com\n  login me@x.com\n  password abc\nmachine git.heroku.com login me@x.com password abc\n\nmacdef init\ncd /tmp\nput file\n\nmachine 127.0.0.1:5000\n  login old@x\n  password oldtoken\ndefault login anon password guest\n";

    #[test]
    fn parses_entries_with_comments_macros_and_default() {
        let e = parse(SAMPLE);
        let machines: Vec<_> = e.iter().map(|e| e.machine.clone()).collect();
        assert_eq!(
            machines,
            vec![
                Some("api.heroku.com".to_string()),
                Some("git.heroku.com".to_string()),
                Some("127.0.0.1:5000".to_string()),
                None
            ]
        );
        let ours = lookup(SAMPLE, "127.0.0.1:5000").unwrap();
        assert_eq!(ours.login.as_deref(), Some("old@x"));
        assert_eq!(ours.password.as_deref(), Some("oldtoken"));
        assert!(
            lookup(SAMPLE, "127.0.0.1:5001").is_none(),
            "default entry must not match"
        );
    }

    #[test]
    fn upsert_replaces_only_our_entry() {
        let out = upsert(SAMPLE, "127.0.0.1:5000", "me@hoist", "newtoken");
        assert_eq!(
            lookup(&out, "127.0.0.1:5000").unwrap().password.as_deref(),
            Some("newtoken")
        );
        assert!(!out.contains("oldtoken"));
        // Everything else is byte-for-byte preserved.
        assert!(out
            .starts_with("# my hosts\nmachine api.heroku.com\n  login me@x.com\n  password abc\n"));
        assert!(out.contains("macdef init\ncd /tmp\nput file\n\n"));
        assert!(out.ends_with("default login anon password guest\n"));
        assert_eq!(parse(&out).len(), 4);
    }

    #[test]
    fn upsert_appends_and_remove_deletes() {
        let out = upsert("machine a login x password y", "b:1", "l", "p");
        assert_eq!(
            out,
            "machine a login x password y\nmachine b:1\n  login l\n  password p\n"
        );
        let out = upsert("", "b:1", "l", "p");
        assert_eq!(out, "machine b:1\n  login l\n  password p\n");
        let removed = remove(SAMPLE, "127.0.0.1:5000");
        assert!(lookup(&removed, "127.0.0.1:5000").is_none());
        assert_eq!(parse(&removed).len(), 3);
        assert!(removed.contains("default login anon password guest"));
        assert_eq!(remove("machine b:1\n  login l\n  password p\n", "b:1"), "");
    }

    #[test]
    fn password_named_like_a_keyword_is_a_value() {
        let text = "machine h login machine password default\nmachine other login o password q\n";
        let e = lookup(text, "h").unwrap();
        assert_eq!(e.login.as_deref(), Some("machine"));
        assert_eq!(e.password.as_deref(), Some("default"));
        assert_eq!(
            lookup(text, "other").unwrap().password.as_deref(),
            Some("q")
        );
    }

    #[test]
    fn write_creates_file_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".netrc");
        write(&p, "machine a login b password c\n").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&p).unwrap(), "machine a login b password c\n");
        assert_eq!(read(&dir.path().join("missing")).unwrap(), "");
    }
}
