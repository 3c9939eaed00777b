//! History on disk: per app an append-only `<name>.log`, rotated to `<name>.log.1`
//! when it holds `history_lines` lines. The two files together always contain at least
//! the last `history_lines` lines and at most twice that, with no rewriting.
//!
//! One thread owns all files; `push` hands it lines through a queue and never touches
//! the disk itself.
//!
//! Line format: `<unix secs>.<nanos>\t<a|h>\t<ps>\t<message>\n`, with `\\`, `\t`, `\n`, `\r`
//! escaped in ps and message.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hoist_types::{LogLine, LogSource};
use tokio::sync::{mpsc, oneshot};

use crate::mailbox::Entry;
use crate::metrics::{inc, Metrics};

/// Bytes of lines that may wait for the writer before `push` starts dropping them
/// from disk (they stay in memory history).
const BACKLOG_BYTES: usize = 32 * 1024 * 1024;
/// Open files kept at once; beyond this all are closed and reopened on demand.
const MAX_OPEN: usize = 128;

pub(crate) enum Msg {
    Line(Arc<str>, Arc<Entry>),
    Forget(String),
    Flush(oneshot::Sender<()>),
}

pub(crate) struct Persister {
    tx: mpsc::UnboundedSender<Msg>,
    backlog: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Persister {
    pub fn start(
        dir: PathBuf,
        history_lines: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Persister> {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            dir,
            history_lines: history_lines.max(1),
            files: HashMap::new(),
            metrics,
            backlog: backlog.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("hoist-logs-disk".into())
            .spawn(move || writer.run(rx))?;
        Ok(Persister {
            tx,
            backlog,
            thread: Some(thread),
        })
    }

    /// Queues a line for disk; false if the writer is too far behind.
    pub fn line(&self, app: Arc<str>, entry: Arc<Entry>) -> bool {
        let size = cost(&entry);
        if self.backlog.fetch_add(size, Ordering::Relaxed) >= BACKLOG_BYTES {
            self.backlog.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        if let Err(mpsc::error::SendError(Msg::Line(_, entry))) =
            self.tx.send(Msg::Line(app, entry))
        {
            self.backlog.fetch_sub(cost(&entry), Ordering::Relaxed);
        }
        true
    }

    pub fn forget(&self, app: &str) {
        let _ = self.tx.send(Msg::Forget(app.to_owned()));
    }

    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.await;
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        // Closing the channel makes the writer flush and exit; wait so a reopen in the
        // same process sees every line.
        let (closed_tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.tx, closed_tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a queued line counts against the backlog.
fn cost(entry: &Entry) -> usize {
    entry.line.message.len() + entry.line.ps.len() + 64
}

struct OpenFile {
    out: BufWriter<File>,
    lines: usize,
    dirty: bool,
}

struct Writer {
    dir: PathBuf,
    history_lines: usize,
    files: HashMap<Arc<str>, OpenFile>,
    metrics: Arc<Metrics>,
    backlog: Arc<AtomicUsize>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut buf = String::new();
        let mut batch = Vec::new();
        let mut per_app: HashMap<Arc<str>, (usize, usize)> = HashMap::new();
        while let Some(msg) = rx.blocking_recv() {
            // Take what's queued and flush once: batches writes under load, and writes
            // each line promptly when idle.
            batch.push(msg);
            while batch.len() < 65_536 {
                match rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            // When far behind, lines followed by `history_lines` newer lines of the same
            // app in this batch would only be rotated away: skip writing them.
            per_app.clear();
            for msg in &batch {
                if let Msg::Line(app, _) = msg {
                    per_app.entry(app.clone()).or_default().0 += 1;
                }
            }
            for msg in batch.drain(..) {
                let skip = match &msg {
                    Msg::Line(app, _) => per_app.get_mut(app).is_some_and(|(total, seen)| {
                        *seen += 1;
                        *total - (*seen - 1) > self.history_lines
                    }),
                    _ => false,
                };
                if skip {
                    if let Msg::Line(_, entry) = &msg {
                        self.backlog.fetch_sub(cost(entry), Ordering::Relaxed);
                    }
                } else {
                    self.handle(msg, &mut buf);
                }
            }
            self.flush_dirty(false);
        }
        self.flush_dirty(true);
    }

    fn handle(&mut self, msg: Msg, buf: &mut String) {
        match msg {
            Msg::Line(app, entry) => {
                self.backlog.fetch_sub(cost(&entry), Ordering::Relaxed);
                buf.clear();
                encode(&entry.line, buf);
                if let Err(e) = self.append(&app, buf.as_bytes()) {
                    inc(&self.metrics.persist_errors);
                    tracing::warn!(app = %app, error = %e, "couldn't write log history");
                    self.files.remove(&app);
                }
            }
            Msg::Forget(app) => {
                self.files.remove(app.as_str());
                let path = file_path(&self.dir, &app);
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(rotated(&path));
            }
            Msg::Flush(ack) => {
                self.flush_dirty(true);
                let _ = ack.send(());
            }
        }
    }

    fn append(&mut self, app: &Arc<str>, bytes: &[u8]) -> std::io::Result<()> {
        if !self.files.contains_key(app) {
            if self.files.len() >= MAX_OPEN {
                self.flush_dirty(false);
                self.files.clear();
            }
            let path = file_path(&self.dir, app);
            let lines = count_lines(&path);
            let out = BufWriter::with_capacity(
                64 * 1024,
                OpenOptions::new().create(true).append(true).open(&path)?,
            );
            self.files.insert(
                app.clone(),
                OpenFile {
                    out,
                    lines,
                    dirty: false,
                },
            );
        }
        let history_lines = self.history_lines;
        let Some(f) = self.files.get_mut(app) else {
            return Ok(());
        };
        if f.lines >= history_lines {
            f.out.flush()?;
            let path = file_path(&self.dir, app);
            std::fs::rename(&path, rotated(&path))?;
            f.out = BufWriter::with_capacity(
                64 * 1024,
                OpenOptions::new().create(true).append(true).open(&path)?,
            );
            f.lines = 0;
        }
        f.out.write_all(bytes)?;
        f.lines += 1;
        f.dirty = true;
        Ok(())
    }

    fn flush_dirty(&mut self, sync: bool) {
        for (app, f) in self.files.iter_mut() {
            if f.dirty {
                f.dirty = false;
                let res = f.out.flush().and_then(|()| {
                    if sync {
                        f.out.get_ref().sync_data()
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = res {
                    inc(&self.metrics.persist_errors);
                    tracing::warn!(app = %app, error = %e, "couldn't flush log history");
                }
            }
        }
    }
}

/// Reads every app's history from `dir`, keeping the last `history_lines` per app.
pub(crate) fn load(
    dir: &Path,
    history_lines: usize,
) -> std::io::Result<Vec<(String, Vec<LogLine>)>> {
    let mut apps = Vec::new();
    for dirent in std::fs::read_dir(dir)? {
        let dirent = dirent?;
        let name = dirent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        let Some(app) = decode_name(stem) else {
            continue;
        };
        let path = dirent.path();
        let mut lines = VecDeque::with_capacity(history_lines.min(4096));
        for p in [rotated(&path), path] {
            let Ok(f) = File::open(&p) else { continue };
            for raw in BufReader::new(f).split(b'\n') {
                let Ok(raw) = raw else { break };
                if let Some(line) = decode(&String::from_utf8_lossy(&raw)) {
                    if lines.len() == history_lines {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
            }
        }
        apps.push((app, lines.into()));
    }
    Ok(apps)
}

fn count_lines(path: &Path) -> usize {
    match File::open(path) {
        Ok(f) => BufReader::new(f).split(b'\n').count(),
        Err(_) => 0,
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// App ids become file names; anything that isn't plainly safe is hex-encoded.
fn file_path(dir: &Path, app: &str) -> PathBuf {
    let safe = !app.is_empty()
        && app.len() <= 128
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let stem = if safe {
        format!("a-{app}")
    } else {
        format!("x-{}", hex::encode(app))
    };
    dir.join(format!("{stem}.log"))
}

fn decode_name(stem: &str) -> Option<String> {
    if let Some(app) = stem.strip_prefix("a-") {
        Some(app.to_owned())
    } else if let Some(h) = stem.strip_prefix("x-") {
        String::from_utf8(hex::decode(h).ok()?).ok()
    } else {
        None
    }
}

fn encode(line: &LogLine, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{}.{:09}\t{}\t",
        line.time.timestamp(),
        line.time.timestamp_subsec_nanos(),
        match line.source {
            LogSource::App => 'a',
            LogSource::Heroku => 'h',
        }
    );
    escape(&line.ps, out);
    out.push('\t');
    escape(&line.message, out);
    out.push('\n');
}

fn escape(s: &str, out: &mut String) {
    if !s
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn decode(raw: &str) -> Option<LogLine> {
    let mut parts = raw.splitn(4, '\t');
    let (secs, nanos) = parts.next()?.split_once('.')?;
    let time = DateTime::<Utc>::from_timestamp(secs.parse().ok()?, nanos.parse().ok()?)?;
    let source = match parts.next()? {
        "a" => LogSource::App,
        "h" => LogSource::Heroku,
        _ => return None,
    };
    let ps = unescape(parts.next()?);
    let message = unescape(parts.next()?);
    Some(LogLine {
        time,
        source,
        ps,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_roundtrip() {
        let line = LogLine::heroku("web.1", "tab\there\nnew\\line\r");
        let mut s = String::new();
        encode(&line, &mut s);
        assert_eq!(s.matches('\n').count(), 1);
        let back = decode(s.trim_end_matches('\n')).unwrap();
        assert_eq!(back, line);
        assert!(decode("garbage").is_none());
    }

    #[test]
    fn file_names_roundtrip() {
        for app in ["my-app", "8f2d0c1e-uuid_ok", "../etc/passwd", "ünï", "a/b"] {
            let p = file_path(Path::new("/d"), app);
            assert_eq!(p.parent(), Some(Path::new("/d")));
            let name = p.file_name().unwrap().to_str().unwrap();
            let stem = name.strip_suffix(".log").unwrap();
            assert_eq!(decode_name(stem).as_deref(), Some(app));
        }
    }
}
