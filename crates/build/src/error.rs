//! The one error type of this crate. Messages are shown to the user who pushed.

use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    // --- archives ---
    #[error("unsafe archive entry {path:?}: {reason}")]
    UnsafeEntry { path: String, reason: String },
    #[error("archive is too large: {what} exceeds the limit of {limit}")]
    ArchiveTooLarge { what: &'static str, limit: u64 },
    #[error("corrupt archive: {0}")]
    CorruptArchive(String),
    #[error("destination {0} already exists and is not an empty directory")]
    DestinationExists(PathBuf),

    // --- slugs ---
    #[error(
        "Compiled slug size exceeds the limit of {} MB. Add large files that the app does not \
         need at runtime to .slugignore.",
        limit / 1_000_000
    )]
    SlugTooLarge { limit: u64 },
    #[error(
        "The compiled slug could not start on a dyno: its {what} exceeds the dyno's limit of \
         {limit} (at {path}). Remove what the app does not need at runtime (e.g. with \
         .slugignore) and push again."
    )]
    SlugOverDynoLimit {
        what: &'static str,
        limit: u64,
        path: String,
    },

    // --- buildpacks ---
    #[error(
        "No default language could be detected for this app (tried {}). Set a buildpack \
         explicitly with `hoist buildpacks:set <buildpack>`.",
        tried.join(", ")
    )]
    NoBuildpackDetected { tried: Vec<String> },
    #[error(
        "App not compatible with buildpack: {buildpack} (its bin/detect did not accept the app)"
    )]
    NotCompatible { buildpack: String },
    #[error("Unknown buildpack {0:?}: use a built-in name (e.g. heroku/nodejs), an absolute path, a .tgz URL or a .git URL")]
    UnknownBuildpack(String),
    #[error("Failed to fetch buildpack {buildpack}: {reason}")]
    BuildpackFetch { buildpack: String, reason: String },
    #[error("Buildpack {buildpack} is missing bin/{script}")]
    MissingScript {
        buildpack: String,
        script: &'static str,
    },
    #[error("Failed to compile app: buildpack {buildpack} exited with {status}")]
    CompileFailed { buildpack: String, status: String },
    #[error(
        "Failed to compile app: buildpack {buildpack} ran out of memory (the build's limit is \
         {limit_mb} MB)"
    )]
    OutOfMemory { buildpack: String, limit_mb: u64 },
    #[error("Buildpack {buildpack}: bin/release exited with {status}")]
    ReleaseFailed { buildpack: String, status: String },
    #[error("Buildpack {buildpack}: bin/release printed invalid YAML: {reason}")]
    ReleaseYaml { buildpack: String, reason: String },
    #[error("Build timed out after {}", human_duration(*limit))]
    TimedOut { limit: Duration },

    // --- app input ---
    #[error("{0}. Fix the Procfile and push again.")]
    Procfile(#[from] hoist_types::ProcfileError),
    #[error("Procfile is not valid: {0}")]
    ProcfileUnreadable(String),
    #[error("Invalid config var name {name:?}: {reason}")]
    BadConfigVar { name: String, reason: String },

    // --- sandbox ---
    #[error(
        "the build sandbox user (uid {uid}) cannot reach {path}: make every parent directory \
         traversable (chmod o+x) or choose another directory"
    )]
    SandboxCannotReach { uid: u32, path: PathBuf },
    #[error("build container: {0}")]
    Container(String),
    #[error("could not start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> BuildError {
        BuildError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn unsafe_entry(path: impl Into<String>, reason: impl Into<String>) -> BuildError {
        BuildError::UnsafeEntry {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// "15 minutes", "1 minute", "2 seconds".
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        let m = secs / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else if secs >= 1 {
        format!("{secs} second{}", if secs == 1 { "" } else { "s" })
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Attach a context string to io errors: `.ctx(|| format!("reading {p:?}"))`.
pub(crate) trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T, BuildError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T, BuildError> {
        self.map_err(|e| BuildError::io(f(), e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T, BuildError> {
        self.map_err(|e| BuildError::io(f(), std::io::Error::from(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_heroku() {
        assert_eq!(human_duration(Duration::from_secs(900)), "15 minutes");
        assert_eq!(human_duration(Duration::from_secs(60)), "1 minute");
        assert_eq!(human_duration(Duration::from_secs(2)), "2 seconds");
        let e = BuildError::TimedOut {
            limit: Duration::from_secs(900),
        };
        assert_eq!(e.to_string(), "Build timed out after 15 minutes");
    }
}
