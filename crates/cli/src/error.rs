//! What can go wrong in a CLI command, and the exit code each case maps to:
//! 1 for local problems (usage, files, network), 2 for errors the API returned
//! (like the Heroku CLI), or an explicit code passed through from a dyno.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Wrong arguments or missing local context (no app, no token).
    #[error("{0}")]
    Usage(String),
    /// The API answered with an error.
    #[error("{}", .0)]
    Api(ApiFailure),
    /// Anything else that failed locally: I/O, network, git.
    #[error("{0}")]
    Failed(String),
    /// Exit quietly with this code (the message, if any, was already printed).
    #[error("exit status {0}")]
    Exit(i32),
}

/// An error response from the Platform API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: u16,
    /// The `id` field of the error body (`not_found`, `invalid_params`, ...).
    pub id: Option<String>,
    pub message: String,
    pub app: Option<String>,
    pub url: Option<String>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl CliError {
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }
    pub fn failed(msg: impl Into<String>) -> Self {
        CliError::Failed(msg.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Failed(_) => 1,
            CliError::Api(_) => 2,
            CliError::Exit(code) => *code,
        }
    }

    /// The API error id, when this is an API error.
    pub fn api_id(&self) -> Option<&str> {
        match self {
            CliError::Api(a) => a.id.as_deref(),
            _ => None,
        }
    }

    /// Prints the error the way the Heroku CLI does: message, then details.
    pub fn report(&self) {
        match self {
            CliError::Exit(_) => {}
            CliError::Api(a) => {
                eprintln!(" !    {}", a.message.replace('\n', "\n !    "));
                if let Some(id) = &a.id {
                    eprintln!(" !    Error ID: {id}");
                }
                if let Some(app) = &a.app {
                    eprintln!(" !    App: {app}");
                }
                if let Some(url) = &a.url {
                    eprintln!(" !    See {url} for more information.");
                }
            }
            other => eprintln!(" !    {}", other.to_string().replace('\n', "\n !    ")),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Failed(e.to_string())
    }
}

impl From<serde_json::Error> for CliError {
    fn from(e: serde_json::Error) -> Self {
        CliError::Failed(format!("Invalid JSON: {e}"))
    }
}

pub type CliResult<T> = Result<T, CliError>;
