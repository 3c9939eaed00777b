//! Build output: kept in memory while a build runs (and for a while after), streamed
//! to any number of readers from the first line, closed when the build ends.

use bytes::Bytes;
use futures::Stream;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;

pub struct BuildLog {
    lines: Mutex<Vec<String>>,
    /// (number of lines, finished)
    progress: watch::Sender<(usize, bool)>,
    /// Where every line is also appended as it comes (written under the `lines` lock,
    /// so in order), so that the output survives a crash of the daemon.
    file: Option<Mutex<std::fs::File>>,
}

impl BuildLog {
    pub fn new() -> Arc<BuildLog> {
        Arc::new(BuildLog {
            lines: Mutex::new(Vec::new()),
            progress: watch::channel((0, false)).0,
            file: None,
        })
    }

    /// A log whose lines are also appended to `path` (created with its directory)
    /// as they are pushed.
    pub fn persisted(path: &Path) -> std::io::Result<Arc<BuildLog>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Arc::new(BuildLog {
            lines: Mutex::new(Vec::new()),
            progress: watch::channel((0, false)).0,
            file: Some(Mutex::new(file)),
        }))
    }

    pub fn push(&self, line: &str) {
        let n = {
            let mut lines = self.lines.lock();
            if let Some(f) = &self.file {
                if let Err(e) = writeln!(f.lock(), "{line}") {
                    tracing::warn!(error = %e, "writing build output to disk");
                }
            }
            lines.push(line.to_string());
            lines.len()
        };
        self.progress.send_replace((n, false));
    }

    pub fn finish(&self) {
        let n = self.lines.lock().len();
        self.progress.send_replace((n, true));
    }

    pub fn text(&self) -> String {
        let lines = self.lines.lock();
        let mut s = lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    /// Every line from the first, then new ones as they come, ending with the build.
    pub fn stream(
        self: &Arc<Self>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let log = self.clone();
        let rx = self.progress.subscribe();
        futures::stream::unfold((log, rx, 0usize), |(log, mut rx, sent)| async move {
            loop {
                let (n, done) = *rx.borrow_and_update();
                if n > sent {
                    let chunk: String = log.lines.lock()[sent..n]
                        .iter()
                        .map(|l| format!("{l}\n"))
                        .collect();
                    return Some((Ok(Bytes::from(chunk)), (log, rx, n)));
                }
                if done {
                    return None;
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
    }
}

/// Build logs by build id.
#[derive(Default)]
pub struct BuildLogs {
    logs: Mutex<HashMap<String, Arc<BuildLog>>>,
}

impl BuildLogs {
    pub fn insert(&self, id: &str, log: Arc<BuildLog>) {
        let mut logs = self.logs.lock();
        // Bound memory: keep the newest 200 build logs (older ones are on disk).
        if logs.len() > 200 {
            let done: Vec<String> = logs
                .iter()
                .filter(|(_, l)| l.progress.borrow().1)
                .map(|(k, _)| k.clone())
                .take(50)
                .collect();
            for k in done {
                logs.remove(&k);
            }
        }
        logs.insert(id.to_string(), log);
    }

    pub fn get(&self, id: &str) -> Option<Arc<BuildLog>> {
        self.logs.lock().get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn readers_get_everything_from_the_start_and_the_stream_ends() {
        let log = BuildLog::new();
        log.push("one");
        let mut s = Box::pin(log.stream());
        assert_eq!(s.next().await.unwrap().unwrap(), "one\n");
        log.push("two");
        log.push("three");
        assert_eq!(s.next().await.unwrap().unwrap(), "two\nthree\n");
        log.finish();
        assert!(s.next().await.is_none());
        let all: Vec<_> = log.stream().collect().await;
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn a_persisted_log_is_on_disk_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/b.log");
        let log = BuildLog::persisted(&path).unwrap();
        log.push("one");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        log.push("two");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
    }
}
