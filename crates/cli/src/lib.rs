//! The `hoist` command-line client: `hoist <topic>:<command>` with the Heroku CLI's
//! vocabulary, talking to the Platform API v3 that `hoist server` serves.
//!
//! Exit codes: 0 success, 1 local/usage errors, 2 errors returned by the API, or the
//! status of an attached one-off dyno.

mod api;
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
    match cli::run(args) {
        Ok(()) => 0,
        Err(e) => {
            e.report();
            e.exit_code()
        }
    }
}
