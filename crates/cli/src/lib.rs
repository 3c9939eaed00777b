//! The `hoist` command-line client: `hoist <topic>:<command>` with the Heroku CLI's
//! vocabulary, talking to the Platform API v3 that `hoist server` serves.
//!
//! Exit codes: 0 success, 1 local/usage errors, 2 errors returned by the API, or the
//! status of an attached one-off dyno.

mod api;
mod ca;
mod cli;
mod cmd;
mod ctx;
mod error;
mod git;
mod netrc;
mod output;
mod pack;
mod rendezvous;
mod sse;

pub use error::{ApiFailure, CliError};

/// Runs the CLI with `args` (`args[0]` is the program name) and returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    quiet_on_closed_pipe();
    match cli::run(args) {
        Ok(()) => 0,
        Err(e) => {
            e.report();
            e.exit_code()
        }
    }
}

/// `hoist releases | head -1`: once the reader is gone, output is pointless. Rust
/// ignores SIGPIPE, which turns every later `println!` into a panic on EPIPE; the
/// default action ends the CLI quietly instead, like any Unix filter. Sockets are not
/// affected: Rust writes to them with `MSG_NOSIGNAL` and gets EPIPE as an error.
fn quiet_on_closed_pipe() {
    // SAFETY: setting a signal disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
