//! The per-dyno shim (`hoist shim <dyno_dir>`) and the container init
//! (`/.hoist/init dyno-init -- <argv>`).
//!
//! The shim is single-threaded and has no async runtime: one `poll(2)` loop over the
//! child's stdio, the control socket, a pidfd for the child and (runc) an inotify watch
//! for runc's pid file. It must stay small: one runs per dyno.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::proto::{self, Decoder, Frame, Role};
use crate::reaper;
use crate::OutputStream;

/// Written by the daemon to `<dyno_dir>/shim.json` before starting the shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShimConfig {
    pub id: String,
    pub attach: bool,
    pub tty: bool,
    /// Bytes of output kept on disk while nobody reads; then output is counted as dropped.
    pub spill_limit: u64,
    /// How long an exited shim waits for the daemon to collect the exit status.
    pub collect_timeout_secs: u64,
    pub launch: Launch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Launch {
    Runc {
        runc: PathBuf,
        root: PathBuf,
        bundle: PathBuf,
        oom_file: PathBuf,
    },
    Process {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: PathBuf,
    },
}

/// Written to `<dyno_dir>/exit` once the dyno's process has ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    pub status: i32,
    pub oom_killed: bool,
    /// false when the container never started (runc failed).
    pub started: bool,
    pub finished_at: chrono::DateTime<chrono::Utc>,
}

pub(crate) const SOCKET: &str = "shim.sock";
pub(crate) const SPILL: &str = "spill";
pub(crate) const ATTACH_SPILL: &str = "attach.spill";
pub(crate) const EXIT: &str = "exit";
pub(crate) const PID: &str = "pid";
pub(crate) const SHIM_PID: &str = "shim.pid";
/// In-memory queue per client before output goes to the spill file.
const QUEUE_LIMIT: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// After the child ended, how long to keep reading output that is still buffered.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Entry point for the `hoist` binary: call first thing in `main`, before any threads or
/// async runtime exist. Returns `Some(exit code)` when argv was a shim or init
/// invocation (`hoist shim <dir>`, `hoist dyno-init -- <argv>`), `None` otherwise.
pub fn main_dispatch() -> Option<i32> {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("shim") => Some(match args.get(2) {
            Some(dir) if args.len() == 3 => run_shim(Path::new(dir)),
            Some(dynos) if args.len() == 4 && args[3] == "--spare" => {
                run_spare_shim(Path::new(dynos))
            }
            _ => {
                eprintln!("usage: hoist shim <dyno_dir> | hoist shim <dynos_dir> --spare");
                2
            }
        }),
        Some("dyno-init") => Some(run_dyno_init(&args[2..])),
        _ => None,
    }
}

/// Init of a runc dyno (PID 1 of its PID namespace): starts the command as a child so the
/// command is not PID 1 (PID 1 ignores signals it has no handler for, so SIGTERM would
/// not stop it), reaps every orphan, and exits with the command's status (128+signal).
pub fn run_dyno_init(args: &[OsString]) -> i32 {
    let argv = match args.first().and_then(|a| a.to_str()) {
        Some("--") => &args[1..],
        _ => args,
    };
    let Some((prog, rest)) = argv.split_first() else {
        eprintln!("usage: hoist dyno-init -- <command> [args...]");
        return 2;
    };
    let child = match Command::new(prog).args(rest).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hoist: cannot run {}: {e}", prog.to_string_lossy());
            return 127;
        }
    };
    match reaper::wait_reaping(nix::unistd::Pid::from_raw(child.id() as i32)) {
        Ok(status) => reaper::exit_code(status),
        Err(_) => 1,
    }
}

/// Entry point of `hoist shim <dynos_dir> --spare`: a shim started ahead of time, so that
/// exec and dynamic loading are off a dyno's start path. It reads its dyno dir (a child of
/// `dynos_dir`) as one line on stdin, sends its stderr to `<dyno_dir>/shim.log`, then goes
/// on as [`run_shim`]. EOF on stdin (the daemon dropped it or went away) ends it quietly.
/// `dynos_dir` is on the command line so that tools matching `shim <data_dir>` find it.
pub fn run_spare_shim(dynos_dir: &Path) -> i32 {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match read_fd(0, &mut byte) {
            Ok(0) => return 0,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < 4096 => line.push(byte[0]),
            Ok(_) => return 2,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return 0,
        }
    }
    let dir = PathBuf::from(OsString::from_vec(line));
    if dir.parent() != Some(dynos_dir) {
        return 2;
    }
    if let Ok(log) = File::create(dir.join("shim.log")) {
        let _ = nix::unistd::dup2(log.as_raw_fd(), 2);
    }
    if let Ok(null) = File::open("/dev/null") {
        // Lets go of the daemon's pipe.
        let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
    }
    run_shim(&dir)
}

/// Entry point of `hoist shim <dyno_dir>`. Leaves the daemon's session (`setsid`, so it
/// outlives the daemon and its terminal or process group), binds `<dyno_dir>/shim.sock`,
/// writes `ok\n` to stdout once clients can connect, then runs the dyno and serves its
/// output and exit status until the daemon has collected the exit.
pub fn run_shim(dyno_dir: &Path) -> i32 {
    // Fails only if we already lead a process group, which is fine.
    let _ = nix::unistd::setsid();
    let cfg: ShimConfig = match fs::read(dyno_dir.join("shim.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hoist shim: reading {}/shim.json: {e}", dyno_dir.display());
            return 1;
        }
    };
    let sock = dyno_dir.join(SOCKET);
    let _ = fs::remove_file(&sock);
    let listener = match UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hoist shim: binding {}: {e}", sock.display());
            return 1;
        }
    };
    // Start the dyno first (the critical path), then tell the daemon it can connect.
    let shim = Shim::new(cfg, dyno_dir.to_path_buf(), listener);
    let _ = fs::write(dyno_dir.join(SHIM_PID), std::process::id().to_string());
    let _ = write_fd(1, b"ok\n");
    if let Ok(null) = File::open("/dev/null") {
        // Lets go of the daemon's pipe.
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
    }
    let code = match shim.and_then(|mut s| s.run()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hoist shim: {e}");
            1
        }
    };
    code
}

/// Output waiting for one client: an in-memory queue of frames, then a bounded spill file.
struct Outbox {
    q: VecDeque<Vec<u8>>,
    q_bytes: usize,
    /// bytes of `q.front()` already written to the current connection
    off: usize,
    spill_path: PathBuf,
    spill: Option<File>,
    spill_read: u64,
    spill_write: u64,
    limit: u64,
    dropped: u64,
}

impl Outbox {
    fn new(spill_path: PathBuf, limit: u64) -> Self {
        Outbox {
            q: VecDeque::new(),
            q_bytes: 0,
            off: 0,
            spill_path,
            spill: None,
            spill_read: 0,
            spill_write: 0,
            limit,
            dropped: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.q.is_empty() && self.spill_read == self.spill_write
    }

    fn push(&mut self, frame: Vec<u8>, connected: bool) {
        if self.dropped > 0 {
            let notice = Frame::Dropped {
                bytes: self.dropped,
            }
            .encode();
            if self.store(notice, connected) {
                self.dropped = 0;
            }
        }
        let carried = proto::carried_len(&frame) as u64;
        if !self.store(frame, connected) {
            self.dropped += carried;
        }
    }

    fn push_front(&mut self, frame: Vec<u8>) {
        debug_assert_eq!(self.off, 0);
        self.q_bytes += frame.len();
        self.q.push_front(frame);
    }

    fn store(&mut self, frame: Vec<u8>, connected: bool) -> bool {
        if connected && self.spill_read == self.spill_write && self.q_bytes < QUEUE_LIMIT {
            self.q_bytes += frame.len();
            self.q.push_back(frame);
            return true;
        }
        if self.spill_write - self.spill_read + frame.len() as u64 > self.limit {
            return false;
        }
        if self.spill.is_none() {
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.spill_path)
            {
                Ok(f) => self.spill = Some(f),
                Err(e) => {
                    eprintln!("hoist shim: opening spill file: {e}");
                    return false;
                }
            }
        }
        let Some(f) = &self.spill else { return false };
        match f.write_all_at(&frame, self.spill_write) {
            Ok(()) => {
                self.spill_write += frame.len() as u64;
                true
            }
            Err(e) => {
                eprintln!("hoist shim: writing spill file: {e}");
                false
            }
        }
    }

    /// Moves the next spilled frame into the queue.
    fn refill(&mut self) {
        let Some(f) = &self.spill else { return };
        if self.spill_read == self.spill_write {
            return;
        }
        let mut head = [0u8; proto::HEADER];
        let frame = f.read_exact_at(&mut head, self.spill_read).and_then(|()| {
            let len = proto::payload_len(&head);
            let mut frame = vec![0u8; proto::HEADER + len];
            f.read_exact_at(&mut frame, self.spill_read).map(|()| frame)
        });
        match frame {
            Ok(frame) => {
                self.spill_read += frame.len() as u64;
                self.q_bytes += frame.len();
                self.q.push_back(frame);
            }
            Err(e) => {
                eprintln!("hoist shim: reading spill file: {e}; discarding it");
                self.spill_read = self.spill_write;
            }
        }
        if self.spill_read == self.spill_write {
            let _ = f.set_len(0);
            self.spill_read = 0;
            self.spill_write = 0;
        }
    }

    /// Writes as much as the socket takes. Err means the connection is broken.
    fn flush(&mut self, conn: &UnixStream) -> io::Result<()> {
        loop {
            if self.q.is_empty() {
                self.refill();
            }
            let Some(front) = self.q.front() else {
                return Ok(());
            };
            match send(conn.as_raw_fd(), &front[self.off..]) {
                Ok(n) => {
                    self.off += n;
                    if self.off == front.len() {
                        self.q_bytes -= front.len();
                        self.q.pop_front();
                        self.off = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps everything unsent in the spill file so a later daemon can pick it up.
    fn persist(&mut self) {
        if self.q.is_empty() {
            return;
        }
        let mut bytes: Vec<u8> = self.q.drain(..).flatten().collect();
        if let Some(f) = &self.spill {
            let mut rest = vec![0u8; (self.spill_write - self.spill_read) as usize];
            if f.read_exact_at(&mut rest, self.spill_read).is_ok() {
                bytes.extend(rest);
            }
        }
        let _ = fs::write(&self.spill_path, bytes);
    }
}

/// R15: the dyno's process was killed (SIGKILL) and the memory cgroup killed something
/// since the dyno started. A process of the dyno OOM-killed earlier, while the dyno
/// went on running, does not make a later ordinary stop (e.g. 143 on SIGTERM) an R15.
fn stopped_by_oom_kill(status: i32, kills_at_start: u64, kills_at_exit: u64) -> bool {
    status == 128 + libc::SIGKILL && kills_at_exit > kills_at_start
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for its length; MSG_NOSIGNAL avoids SIGPIPE on a closed peer.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

enum PendingState {
    Waiting,
    Gone,
    Hello(Role),
}

struct Conn {
    stream: UnixStream,
    dec: Decoder,
    exit_sent: bool,
}

impl Conn {
    fn new(stream: UnixStream) -> Self {
        Conn {
            stream,
            dec: Decoder::new(),
            exit_sent: false,
        }
    }
}

struct Shim {
    cfg: ShimConfig,
    dir: PathBuf,
    listener: UnixListener,
    pending: Vec<Conn>,
    daemon: Option<Conn>,
    attach: Option<Conn>,
    daemon_box: Outbox,
    attach_box: Outbox,
    /// stdout pipe, or the pty master
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    stdin_eof: bool,
    /// the tty master, kept for resizes
    master: Option<OwnedFd>,
    child_pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    /// Polled only until the pid file appears, but closed only when the shim exits:
    /// closing an inotify fd waits for an SRCU grace period (tens of ms on a busy
    /// host), which must not delay the dyno's first output.
    inotify: Option<OwnedFd>,
    inotify_wd: libc::c_int,
    /// host pid of the container init / process
    pid: Option<u32>,
    /// The memory cgroup's `oom_kill` count when the container started.
    oom_kills_at_start: u64,
    child_status: Option<i32>,
    drain_deadline: Option<Instant>,
    exit: Option<(i32, bool)>,
    collect_deadline: Option<Instant>,
    acked: bool,
    /// An attach client received the exit status (attached dynos wait for one).
    attach_served: bool,
}

impl Shim {
    fn new(cfg: ShimConfig, dir: PathBuf, listener: UnixListener) -> io::Result<Shim> {
        listener.set_nonblocking(true)?;
        let daemon_box = Outbox::new(dir.join(SPILL), cfg.spill_limit);
        let attach_box = Outbox::new(dir.join(ATTACH_SPILL), cfg.spill_limit);
        let mut shim = Shim {
            cfg,
            dir,
            listener,
            pending: Vec::new(),
            daemon: None,
            attach: None,
            daemon_box,
            attach_box,
            out: None,
            err: None,
            stdin: None,
            stdin_buf: Vec::new(),
            stdin_eof: false,
            master: None,
            child_pid: 0,
            pidfd: None,
            inotify: None,
            inotify_wd: -1,
            pid: None,
            oom_kills_at_start: 0,
            child_status: None,
            drain_deadline: None,
            exit: None,
            collect_deadline: None,
            acked: false,
            attach_served: false,
        };
        if let Err(e) = shim.launch() {
            // Report like a failed container start: message on stderr, status 127.
            let msg = format!("hoist shim: cannot start dyno: {e}\n");
            shim.output(false, msg.as_bytes());
            shim.child_status = Some(127);
            shim.finish();
        }
        Ok(shim)
    }

    fn launch(&mut self) -> io::Result<()> {
        let cfg = self.cfg.clone();
        let mut cmd;
        let mut slave: Option<OwnedFd> = None;
        match &cfg.launch {
            Launch::Runc {
                runc, root, bundle, ..
            } => {
                // The pid file tells us the container has started.
                // SAFETY: plain syscalls; the fd is owned right away.
                let ino = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
                if ino < 0 {
                    return Err(io::Error::last_os_error());
                }
                let ino = unsafe { OwnedFd::from_raw_fd(ino) };
                let dir_c = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in dyno dir"))?;
                // SAFETY: valid fd and C string.
                let wd = unsafe {
                    libc::inotify_add_watch(
                        ino.as_raw_fd(),
                        dir_c.as_ptr(),
                        libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE,
                    )
                };
                if wd < 0 {
                    return Err(io::Error::last_os_error());
                }
                self.inotify = Some(ino);
                self.inotify_wd = wd;
                cmd = Command::new(runc);
                cmd.arg("--root")
                    .arg(root)
                    .arg("run")
                    .arg("--keep")
                    .arg("--bundle")
                    .arg(bundle);
                cmd.arg("--pid-file").arg(self.dir.join(PID)).arg(&cfg.id);
                cmd.env_clear().env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                );
            }
            Launch::Process { argv, env, cwd } => {
                let (prog, args) = argv
                    .split_first()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
                cmd = Command::new(prog);
                cmd.args(args).env_clear().envs(env).current_dir(cwd);
                if !cfg.tty {
                    // Own process group so a signal reaches every process of the dyno.
                    cmd.process_group(0);
                }
            }
        }
        if cfg.tty {
            // Foreground `runc run` with `terminal: true` proxies the container's pty to
            // its own stdio, which must be a terminal: give it (or the plain process) the
            // slave of a pty whose master the shim owns. SIGWINCH from resizes reaches
            // runc as the session leader and runc resizes the inner pty.
            let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
            let s = pty.slave;
            cmd.stdin(Stdio::from(s.try_clone()?));
            cmd.stdout(Stdio::from(s.try_clone()?));
            cmd.stderr(Stdio::from(s.try_clone()?));
            slave = Some(s);
            self.attach_master(pty.master)?;
            // SAFETY: only async-signal-safe syscalls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        } else {
            cmd.stdin(if cfg.attach {
                Stdio::piped()
            } else {
                Stdio::null()
            });
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn()?;
        drop(slave);
        self.child_pid = child.id() as libc::pid_t;
        if let Some(s) = child.stdin.take() {
            let fd: OwnedFd = s.into();
            set_nonblocking(fd.as_raw_fd());
            self.stdin = Some(fd);
        }
        if let Some(s) = child.stdout.take() {
            let fd: OwnedFd = s.into();
            set_nonblocking(fd.as_raw_fd());
            self.out = Some(fd);
        }
        if let Some(s) = child.stderr.take() {
            let fd: OwnedFd = s.into();
            set_nonblocking(fd.as_raw_fd());
            self.err = Some(fd);
        }
        // SAFETY: pidfd_open on our own child; the fd is owned right away.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.child_pid, 0) };
        if pidfd < 0 {
            return Err(io::Error::last_os_error());
        }
        self.pidfd = Some(unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) });
        if matches!(cfg.launch, Launch::Process { .. }) {
            self.set_pid(self.child_pid as u32);
        }
        Ok(())
    }

    fn attach_master(&mut self, master: OwnedFd) -> io::Result<()> {
        set_nonblocking(master.as_raw_fd());
        if self.cfg.attach {
            self.stdin = Some(master.try_clone()?);
        }
        self.out = Some(master.try_clone()?);
        self.master = Some(master);
        Ok(())
    }

    fn set_pid(&mut self, pid: u32) {
        if self.pid.is_some() {
            return;
        }
        self.pid = Some(pid);
        self.oom_kills_at_start = self.oom_kills();
        let frame = Frame::Status {
            pid: std::num::NonZeroU32::new(pid),
        }
        .encode();
        let connected = self.daemon.is_some();
        self.daemon_box.push(frame, connected);
    }

    /// Queues output read from the dyno just now, stamped with that time so that lines
    /// spilled while no daemon is connected keep it.
    fn output(&mut self, stdout: bool, data: &[u8]) {
        let stream = if stdout {
            OutputStream::Stdout
        } else {
            OutputStream::Stderr
        };
        let frame = proto::output_frame(stream, Some(now_micros()), data);
        if self.cfg.attach {
            let c = self.attach.is_some();
            self.attach_box.push(frame, c);
        } else {
            let c = self.daemon.is_some();
            self.daemon_box.push(frame, c);
        }
    }

    fn run(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if self.exit.is_some() && self.done() {
                break;
            }
            // Build the poll set; tags say what each entry is.
            #[derive(Clone, Copy)]
            enum Tag {
                Listener,
                Pending(usize),
                Daemon,
                Attach,
                Out,
                Err,
                Stdin,
                Pidfd,
                Inotify,
            }
            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(12);
            let mut tags: Vec<Tag> = Vec::with_capacity(12);
            let mut add = |fd: RawFd, events: libc::c_short, tag: Tag| {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                tags.push(tag);
            };
            add(self.listener.as_raw_fd(), libc::POLLIN, Tag::Listener);
            for (i, c) in self.pending.iter().enumerate() {
                add(c.stream.as_raw_fd(), libc::POLLIN, Tag::Pending(i));
            }
            if let Some(c) = &self.daemon {
                let ev = if self.daemon_box.is_empty() {
                    libc::POLLIN
                } else {
                    libc::POLLIN | libc::POLLOUT
                };
                add(c.stream.as_raw_fd(), ev, Tag::Daemon);
            }
            if let Some(c) = &self.attach {
                let mut ev = if self.attach_box.is_empty() {
                    0
                } else {
                    libc::POLLOUT
                };
                if self.stdin_buf.len() < QUEUE_LIMIT {
                    ev |= libc::POLLIN;
                }
                add(c.stream.as_raw_fd(), ev, Tag::Attach);
            }
            if let Some(fd) = &self.out {
                add(fd.as_raw_fd(), libc::POLLIN, Tag::Out);
            }
            if let Some(fd) = &self.err {
                add(fd.as_raw_fd(), libc::POLLIN, Tag::Err);
            }
            if let Some(fd) = &self.stdin {
                if !self.stdin_buf.is_empty() {
                    add(fd.as_raw_fd(), libc::POLLOUT, Tag::Stdin);
                }
            }
            if let Some(fd) = &self.pidfd {
                add(fd.as_raw_fd(), libc::POLLIN, Tag::Pidfd);
            }
            if let Some(fd) = self.inotify.as_ref().filter(|_| self.pid.is_none()) {
                add(fd.as_raw_fd(), libc::POLLIN, Tag::Inotify);
            }
            let now = Instant::now();
            let deadline = [self.drain_deadline, self.collect_deadline]
                .into_iter()
                .flatten()
                .min();
            let timeout = deadline.map_or(-1, |d| {
                d.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1
            });
            // SAFETY: fds is a valid array of pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut done_pending = Vec::new();
            for (pfd, tag) in fds.iter().zip(tags) {
                let rev = pfd.revents;
                if rev == 0 {
                    continue;
                }
                let readable = rev & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
                match tag {
                    Tag::Listener => self.accept(),
                    Tag::Pending(i) => match self.read_pending(i, &mut buf) {
                        PendingState::Waiting => {}
                        PendingState::Gone => done_pending.push((i, None)),
                        PendingState::Hello(role) => done_pending.push((i, Some(role))),
                    },
                    Tag::Daemon => {
                        if readable && !self.read_client(Role::Daemon, &mut buf) {
                            self.drop_client(Role::Daemon);
                        }
                    }
                    Tag::Attach => {
                        if readable && !self.read_client(Role::Attach, &mut buf) {
                            self.drop_client(Role::Attach);
                        }
                    }
                    Tag::Out => self.read_output(true, &mut buf),
                    Tag::Err => self.read_output(false, &mut buf),
                    Tag::Stdin => self.write_stdin(),
                    Tag::Pidfd => self.reap(),
                    Tag::Inotify => {
                        let _ = read_fd(pfd.fd, &mut buf);
                        self.check_pid_file();
                    }
                }
            }
            // Indices of pending conns are only valid before any removal: remove back to front.
            done_pending.sort_unstable_by_key(|(i, _)| *i);
            for (i, role) in done_pending.into_iter().rev() {
                if i < self.pending.len() {
                    let conn = self.pending.remove(i);
                    if let Some(role) = role {
                        self.promote(conn, role);
                    }
                }
            }
            if self.child_status.is_some() && self.exit.is_none() {
                let drained = self.out.is_none() && self.err.is_none();
                if drained || self.drain_deadline.is_some_and(|d| Instant::now() >= d) {
                    self.finish();
                }
            }
            self.flush_clients();
        }
        Ok(())
    }

    /// Whether the shim may exit: the daemon collected the exit (or the wait timed out),
    /// and an attached client got everything (or is gone).
    fn done(&mut self) -> bool {
        let timed_out = self.collect_deadline.is_some_and(|d| Instant::now() >= d);
        if timed_out {
            self.daemon_box.persist();
            self.attach_box.persist();
            return true;
        }
        let attach_done = self
            .attach
            .as_ref()
            .is_none_or(|c| c.exit_sent && self.attach_box.is_empty());
        // An attached dyno's client may connect after the command already ended
        // (`heroku run 'echo hi'`): keep its output until one has been served.
        let attach_served = !self.cfg.attach || self.attach_served;
        self.acked && attach_done && attach_served
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_ok() {
                        self.pending.push(Conn::new(s));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Reads until the HELLO frame.
    fn read_pending(&mut self, i: usize, buf: &mut [u8]) -> PendingState {
        let Some(c) = self.pending.get_mut(i) else {
            return PendingState::Gone;
        };
        match (&c.stream).read(buf) {
            Ok(0) => return PendingState::Gone,
            Ok(n) => c.dec.feed(&buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return PendingState::Waiting
            }
            Err(_) => return PendingState::Gone,
        }
        match c.dec.next_frame() {
            Ok(None) => PendingState::Waiting,
            Ok(Some(Frame::Hello(role))) => PendingState::Hello(role),
            _ => PendingState::Gone,
        }
    }

    /// A client said hello: it replaces any earlier client of the same role.
    fn promote(&mut self, conn: Conn, role: Role) {
        if role == Role::Daemon {
            self.daemon_box.off = 0;
            let pid = self.pid.and_then(std::num::NonZeroU32::new);
            self.daemon_box.push_front(Frame::Status { pid }.encode());
            self.daemon = Some(conn);
        } else {
            self.attach_box.off = 0;
            self.attach = Some(conn);
        }
        // Frames that arrived together with HELLO.
        if !self.handle_frames(role) {
            self.drop_client(role);
        }
    }

    fn client(&mut self, role: Role) -> Option<&mut Conn> {
        if role == Role::Daemon {
            self.daemon.as_mut()
        } else {
            self.attach.as_mut()
        }
    }

    fn drop_client(&mut self, role: Role) {
        if role == Role::Daemon {
            self.daemon = None;
            self.daemon_box.off = 0;
        } else {
            self.attach = None;
            self.attach_box.off = 0;
        }
    }

    fn read_client(&mut self, role: Role, buf: &mut [u8]) -> bool {
        let Some(c) = self.client(role) else {
            return true;
        };
        match (&c.stream).read(buf) {
            Ok(0) => return false,
            Ok(n) => c.dec.feed(&buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return true
            }
            Err(_) => return false,
        }
        self.handle_frames(role)
    }

    fn handle_frames(&mut self, role: Role) -> bool {
        loop {
            let Some(c) = self.client(role) else {
                return true;
            };
            let frame = match c.dec.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return true,
                Err(e) if e.is_fatal() => return false,
                Err(_) => continue,
            };
            match frame {
                Frame::ExitAck if role == Role::Daemon && self.exit.is_some() => self.acked = true,
                Frame::Stdin(data) if self.stdin.is_some() => {
                    self.stdin_buf.extend_from_slice(&data)
                }
                Frame::StdinEof => {
                    self.stdin_eof = true;
                    if self.stdin_buf.is_empty() && self.master.is_none() {
                        self.stdin = None;
                    }
                }
                Frame::Resize { cols, rows } => {
                    if let Some(m) = &self.master {
                        let ws = libc::winsize {
                            ws_col: cols,
                            ws_row: rows,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        // SAFETY: valid fd and winsize pointer.
                        unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    }
                }
                // Only while the child is unreaped, so its pid (= process group) is still ours.
                Frame::Signal(sig)
                    if self.child_status.is_none()
                        && matches!(self.cfg.launch, Launch::Process { .. }) =>
                {
                    // Raw kill: any number the client sends, including real-time
                    // signals, which nix's `Signal` cannot name.
                    // SAFETY: plain syscall.
                    unsafe { libc::kill(-self.child_pid, sig) };
                }
                _ => {}
            }
        }
    }

    fn read_output(&mut self, stdout: bool, buf: &mut [u8]) {
        let fd = if stdout { &self.out } else { &self.err };
        let Some(fd) = fd.as_ref().map(|f| f.as_raw_fd()) else {
            return;
        };
        // Bounded per wakeup so one chatty stream cannot starve the loop; poll() reports
        // the stream again if the budget runs out.
        let mut eof = false;
        for _ in 0..16 {
            match read_fd(fd, buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    self.output(stdout, &buf[..n]);
                    if n < buf.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EIO: the pty's last slave was closed.
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if !eof {
            return;
        }
        if stdout {
            self.out = None;
            if self.master.is_some() {
                self.stdin = None;
                self.master = None;
            }
        } else {
            self.err = None;
        }
    }

    fn write_stdin(&mut self) {
        let Some(fd) = self.stdin.as_ref().map(|f| f.as_raw_fd()) else {
            self.stdin_buf.clear();
            return;
        };
        while !self.stdin_buf.is_empty() {
            match write_fd(fd, &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // The process closed its stdin.
                    self.stdin_buf.clear();
                    self.stdin = None;
                    return;
                }
            }
        }
        if self.stdin_eof && self.master.is_none() {
            self.stdin = None;
        }
    }

    fn check_pid_file(&mut self) {
        if self.pid.is_some() {
            return;
        }
        if let Ok(s) = fs::read_to_string(self.dir.join(PID)) {
            if let Ok(pid) = s.trim().parse::<u32>() {
                self.set_pid(pid);
                // No more wakeups for the files we write to the dir; unlike close(),
                // removing the watch does not wait for the grace period.
                if let Some(fd) = &self.inotify {
                    // SAFETY: plain syscall on our own fd and watch.
                    unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), self.inotify_wd) };
                }
            }
        }
    }

    fn reap(&mut self) {
        let child = nix::unistd::Pid::from_raw(self.child_pid);
        let Some(status) = reaper::try_wait(child) else {
            return;
        };
        self.pidfd = None;
        self.child_status = Some(reaper::exit_code(status));
        if matches!(self.cfg.launch, Launch::Process { .. }) {
            // The dyno ends with its main process; stragglers would keep the pipes open.
            // The group was created for this dyno.
            let _ = nix::sys::signal::killpg(child, nix::sys::signal::Signal::SIGKILL);
        }
        self.drain_deadline = Some(Instant::now() + DRAIN_TIME);
    }

    /// The child is gone and its output drained: record the exit.
    fn finish(&mut self) {
        let status = self.child_status.unwrap_or(1);
        self.out = None;
        self.err = None;
        self.stdin = None;
        self.master = None;
        let mut oom = false;
        if matches!(self.cfg.launch, Launch::Runc { .. }) {
            self.check_pid_file();
        }
        if let Launch::Runc { runc, root, .. } = &self.cfg.launch {
            oom = stopped_by_oom_kill(status, self.oom_kills_at_start, self.oom_kills());
            // `run --keep` left the stopped container (and its cgroup) for the OOM check.
            let _ = Command::new(runc)
                .arg("--root")
                .arg(root)
                .arg("delete")
                .arg("--force")
                .arg(&self.cfg.id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let record = ExitRecord {
            status,
            oom_killed: oom,
            started: self.pid.is_some(),
            finished_at: chrono::Utc::now(),
        };
        if let Ok(json) = serde_json::to_vec(&record) {
            let tmp = self.dir.join("exit.tmp");
            if fs::write(&tmp, json).is_ok() {
                let _ = fs::rename(&tmp, self.dir.join(EXIT));
            }
        }
        self.exit = Some((status, oom));
        self.collect_deadline =
            Some(Instant::now() + Duration::from_secs(self.cfg.collect_timeout_secs));
        self.drain_deadline = None;
    }

    /// The `oom_kill` count of the dyno's memory cgroup (0 without one).
    fn oom_kills(&self) -> u64 {
        let Launch::Runc { oom_file, .. } = &self.cfg.launch else {
            return 0;
        };
        fs::read_to_string(oom_file)
            .ok()
            .as_deref()
            .and_then(crate::bundle::oom_kills)
            .unwrap_or(0)
    }

    fn flush_clients(&mut self) {
        for role in [Role::Daemon, Role::Attach] {
            let exit = self.exit;
            let (conn, outbox) = if role == Role::Daemon {
                (&mut self.daemon, &mut self.daemon_box)
            } else {
                (&mut self.attach, &mut self.attach_box)
            };
            let Some(c) = conn else { continue };
            // Flush first: the exit may only be queued once all output is out, and
            // nothing else wakes the loop to queue it later (a client that sends
            // nothing would wait for the poll timeout).
            let mut ok = outbox.flush(&c.stream).is_ok();
            if let Some((status, oom)) = exit.filter(|_| ok) {
                // The exit goes last, after all output, once per connection.
                if outbox.is_empty() && !c.exit_sent {
                    if outbox.dropped > 0 {
                        let n = std::mem::take(&mut outbox.dropped);
                        outbox.push(Frame::Dropped { bytes: n }.encode(), true);
                    }
                    let exited = Frame::Exited {
                        status,
                        oom_killed: oom,
                    };
                    outbox.push(exited.encode(), true);
                    c.exit_sent = true;
                    if role == Role::Attach {
                        self.attach_served = true;
                    }
                    ok = outbox.flush(&c.stream).is_ok();
                }
            }
            if !ok {
                *conn = None;
                outbox.off = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oom_counters() {
        use crate::bundle::oom_kills;
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(oom_kills("nothing\n"), None);
    }

    #[test]
    fn only_a_kill_with_a_new_oom_kill_is_an_oom_stop() {
        // Killed while the cgroup counted a new OOM kill: R15.
        assert!(stopped_by_oom_kill(137, 0, 1));
        assert!(stopped_by_oom_kill(137, 1, 2));
        // A child was OOM-killed earlier; the dyno then stopped normally on SIGTERM.
        assert!(!stopped_by_oom_kill(143, 0, 1));
        assert!(!stopped_by_oom_kill(0, 0, 1));
        // Killed (e.g. SIGKILL after the grace period) without a new OOM kill.
        assert!(!stopped_by_oom_kill(137, 1, 1));
        assert!(!stopped_by_oom_kill(137, 0, 0));
    }

    #[test]
    fn outbox_spills_when_disconnected_and_replays_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob = Outbox::new(dir.path().join("spill"), 1024);
        let out = |data: &[u8]| proto::output_frame(OutputStream::Stdout, None, data);
        ob.push(out(b"one"), false);
        ob.push(out(b"two"), false);
        // Over the limit: counted, not stored.
        ob.push(out(&[b'x'; 2000]), false);
        ob.push(out(b"three"), false);
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        ob.flush(&a).unwrap();
        assert!(ob.is_empty());
        drop(a);
        let mut bytes = Vec::new();
        (&b).read_to_end(&mut bytes).unwrap();
        let mut d = Decoder::from_bytes(bytes);
        let mut got = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            got.push(f);
        }
        let out = |data: &[u8]| Frame::Output {
            stream: OutputStream::Stdout,
            read_at_micros: None,
            data: data.to_vec(),
        };
        assert_eq!(
            got,
            [
                out(b"one"),
                out(b"two"),
                Frame::Dropped { bytes: 2000 },
                out(b"three")
            ]
        );
    }
}
