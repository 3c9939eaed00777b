//! Waiting for children, as PID 1 of a container (the dyno init, the build agent) and
//! as the shim. Orphans of a PID namespace are re-parented to its init, which must reap
//! them or they stay zombies.
//!
//! `waitpid` is called through `libc`, not `nix`: nix turns the status into its `Signal`
//! enum, which has no real-time signals, so a child killed by one (`kill -RTMIN`) would
//! be reaped and its status lost behind an `EINVAL`.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// One `waitpid(pid, flags)`: the pid and status of a child that ended, `None` with
/// `WNOHANG` while `pid` runs.
fn wait(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<(Pid, ExitStatus)>> {
    let mut raw = 0;
    // SAFETY: plain syscall with a pointer to a stack value.
    let got = unsafe { libc::waitpid(pid, &mut raw, flags) };
    match got {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        got => Ok(Some((Pid::from_raw(got), ExitStatus::from_raw(raw)))),
    }
}

/// Waits for `main` while reaping every other child that ends meanwhile (as init:
/// orphans of the namespace).
pub fn wait_reaping(main: Pid) -> io::Result<ExitStatus> {
    loop {
        match wait(-1, 0) {
            Ok(Some((pid, status))) if pid == main => return Ok(status),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The status of `child` if it has ended (reaping it), `None` while it runs.
pub fn try_wait(child: Pid) -> Option<ExitStatus> {
    match wait(child.as_raw(), libc::WNOHANG) {
        Ok(Some((pid, status))) if pid == child => Some(status),
        _ => None,
    }
}

/// Kills every other process of the caller's PID namespace and reaps them all. Only for
/// init of a namespace: anywhere else `kill(-1)` reaches every process of the user.
pub fn kill_all_and_reap() {
    // kill(-1) skips the caller.
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while matches!(wait(-1, 0), Ok(Some(_))) {}
}

/// The shell's exit code for a status: the code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
        // With a core dump.
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGSEGV | 0x80)), 139);
        // Real-time signals, which nix's `Signal` cannot name.
        assert_eq!(
            exit_code(ExitStatus::from_raw(libc::SIGRTMIN() + 1)),
            128 + libc::SIGRTMIN() + 1
        );
    }

    #[test]
    // Reaped by `try_wait`, which is what is tested.
    #[allow(clippy::zombie_processes)]
    fn a_child_killed_by_a_real_time_signal_keeps_its_status() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let sig = libc::SIGRTMIN() + 2;
        // SAFETY: plain syscall on our own child.
        assert_eq!(unsafe { libc::kill(pid.as_raw(), sig) }, 0);
        // Not wait_reaping: other tests of this process have children too.
        let status = (0..2000)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(5));
                try_wait(pid)
            })
            .expect("the child's status was lost");
        assert_eq!(status.signal(), Some(sig));
        assert_eq!(exit_code(status), 128 + sig);
    }
}
