//! The build agent: PID 1 of a build container. The daemon starts one container per
//! build and sends the agent one buildpack script at a time, so a build pays for one
//! container start, not one per `bin/detect`, `bin/compile` and `bin/release`.
//!
//! Protocol, one line per message:
//! - daemon -> agent (stdin): a JSON [`Request`].
//! - agent -> daemon (stdout): `o <text>` a line of streamed output, `c <text>` a line
//!   of captured stdout, `e <message>` the script could not be started, `x <status>` the
//!   script ended with this raw wait status. `e` and `x` end a request.
//!
//! After a script exits, every other process in the container is killed (the agent is
//! init of the container's pid namespace, so `kill(-1)` reaches exactly the build's
//! processes) and reaped, so nothing a script left behind runs on into the next script
//! or into packing. When stdin closes (the build is over, or the daemon died) the agent
//! exits, and with it, the kernel kills whatever still runs in the container.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Longest line passed on; longer output is split (progress bars without newlines).
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// One script to run inside the container.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    /// Capture stdout (`c` lines) instead of streaming it; stderr is always streamed.
    pub capture: bool,
}

/// Runs the agent until stdin closes. Returns the process exit code.
pub fn main() -> i32 {
    // kill(-1) outside a pid namespace would reach every process of the user (of the
    // whole machine, for root).
    if std::process::id() != 1 {
        eprintln!("hoist build-agent: must run as init of a build container (pid 1)");
        return 2;
    }
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // A thread owns stdin so that EOF is seen even while a script runs: a daemon that
    // dies mid-build must not leave the build running.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        // Exiting as PID 1 makes the kernel kill the rest of the container.
        std::process::exit(0);
    });
    let out = Arc::new(Mutex::new(std::io::stdout()));
    while let Ok(line) = rx.recv() {
        if line.trim().is_empty() {
            continue;
        }
        let ended = match serde_json::from_str::<Request>(&line) {
            Ok(req) => match run(&req, &out) {
                Ok(status) => format!("x {status}"),
                Err(e) => format!("e {}: {e}", req.program),
            },
            Err(e) => format!("e bad request: {e}"),
        };
        if emit(&out, &ended).is_err() {
            return 1;
        }
    }
    0
}

fn emit(out: &Mutex<std::io::Stdout>, line: &str) -> std::io::Result<()> {
    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
    o.write_all(line.as_bytes())?;
    o.write_all(b"\n")?;
    o.flush()
}

/// Runs one script; returns its raw wait status.
fn run(req: &Request, out: &Arc<Mutex<std::io::Stdout>>) -> std::io::Result<i32> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = if req.capture {
        let (r, w) = pipe()?;
        (Some(r), w)
    } else {
        (None, out_w.try_clone()?)
    };
    let mut cmd = Command::new(&req.program);
    cmd.args(&req.args)
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&req.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .process_group(0);
    let spawned = cmd.spawn();
    // The Command holds the pipe write ends: drop it so EOF can arrive.
    drop(cmd);
    let child = spawned?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);

    let mut readers = vec![spawn_reader(
        out_r,
        if req.capture { 'c' } else { 'o' },
        out,
    )];
    if let Some(r) = err_r {
        readers.push(spawn_reader(r, 'o', out));
    }
    // As init we also reap orphans of the script while waiting for it.
    let status = hoist_runtime::reaper::wait_reaping(pid)?;
    // Nothing a script left behind runs on into the next script or into packing.
    hoist_runtime::reaper::kill_all_and_reap();
    for r in readers {
        let _ = r.join();
    }
    Ok(status.into_raw())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}

/// Forwards a pipe as tagged lines until EOF.
fn spawn_reader(
    fd: OwnedFd,
    tag: char,
    out: &Arc<Mutex<std::io::Stdout>>,
) -> std::thread::JoinHandle<()> {
    let out = out.clone();
    std::thread::spawn(move || {
        for_each_line(fd, |line| {
            emit(&out, &format!("{tag} {}", String::from_utf8_lossy(line))).is_ok()
        })
    })
}

/// Reads a pipe until EOF and calls `f` with each line (without `\n` and a trailing
/// `\r`; lines longer than [`MAX_LINE`] are split). Stops early when `f` returns false.
pub(crate) fn for_each_line(fd: OwnedFd, mut f: impl FnMut(&[u8]) -> bool) {
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut send = |line: &mut Vec<u8>| {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let more = f(line);
        line.clear();
        more
    };
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                if !send(&mut line) {
                    return;
                }
            } else {
                line.push(b);
                if line.len() >= MAX_LINE && !send(&mut line) {
                    return;
                }
            }
        }
    }
    if !line.is_empty() {
        send(&mut line);
    }
}
