//! Builds: runs classic Heroku buildpacks (`bin/detect`, `bin/compile`, `bin/release`)
//! over an app's source and packs the result into a content-addressed slug.
//!
//! Invariants:
//! - Buildpack scripts never run as the daemon's user: they run in a runc build
//!   container ([`container`], one per build) as the configured unprivileged uid/gid,
//!   or, without runc, through the process [`sandbox`]; with time, memory and process
//!   limits either way.
//! - Files inside a build directory or an archive are never followed through symlinks
//!   from the host side: the packer walks with `openat(O_NOFOLLOW)`, the unpacker writes
//!   only through directories it created itself.
//! - Nothing is half-written: slugs and unpacked trees appear by `rename` or not at all.

pub mod agent;
mod archive;
mod buildpack;
pub mod container;
mod error;
mod runner;
pub mod sandbox;
mod slugignore;
mod tree;

pub use archive::{
    pack_slug, pack_source_dir, sole_top_dir, unpack_slug, unpack_source_tar_gz, unpack_tar_gz,
    UnpackLimits, SLUG_UNPACK_LIMITS,
};
pub use buildpack::{builtin_display_name, install_builtin_buildpacks, BUILTIN_ORDER};
pub use error::BuildError;
pub use runner::run_build;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Where builds happen and the limits they run under.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// Where the built-in buildpacks are unpacked (one subdir per name).
    pub builtin_dir: PathBuf,
    /// Scratch directories for builds (one subdirectory per build, removed afterwards).
    pub work_root: PathBuf,
    /// Content-addressed slugs: `<sha256>.tgz`.
    pub slugs_dir: PathBuf,
    /// Downloaded tarball and git buildpacks.
    pub buildpack_cache: PathBuf,
    /// Wall-clock limit for the whole build (detect + compile + release); Heroku uses 15 min.
    pub time_limit: Duration,
    /// Memory limit for the build (the container's memory cgroup; in the process
    /// sandbox a cgroup v1 memory group when available, else `RLIMIT_AS`).
    pub memory_limit_bytes: u64,
    /// Largest compressed slug accepted; Heroku's hard limit is 500 MB.
    pub max_slug_bytes: u64,
    /// Unprivileged user the buildpack scripts run as (e.g. 65534).
    /// 0 = don't drop privileges (only for non-root test runs).
    pub sandbox_uid: u32,
    pub sandbox_gid: u32,
    /// Runtimes (Node, Python, Go, Java builds from a runtime source) unpacked once and
    /// shared by the builds of all apps; given to buildpacks as `HOIST_RUNTIME_CACHE`.
    /// `None`: each app caches them in its own CACHE_DIR.
    pub runtime_cache: Option<PathBuf>,
    /// Run each build in a runc container (what `hoist server` does with the runc
    /// runtime). `None`: the process sandbox, for development without runc.
    pub container: Option<container::ContainerConfig>,
    /// Where buildpacks named by URL may be fetched from.
    pub egress: std::sync::Arc<hoist_egress::EgressPolicy>,
}

impl BuildConfig {
    /// A config with Heroku's limits and the `nobody` user, with every directory under
    /// `data_dir` laid out as DESIGN.md describes.
    pub fn with_defaults(data_dir: &std::path::Path) -> BuildConfig {
        BuildConfig {
            builtin_dir: data_dir.join("buildpacks"),
            work_root: data_dir.join("builds"),
            slugs_dir: data_dir.join("slugs"),
            buildpack_cache: data_dir.join("buildpack-cache"),
            time_limit: Duration::from_secs(15 * 60),
            memory_limit_bytes: 2 << 30,
            max_slug_bytes: 500 * 1000 * 1000,
            sandbox_uid: 65534,
            sandbox_gid: 65534,
            runtime_cache: Some(data_dir.join("runtimes")),
            container: None,
            egress: std::sync::Arc::new(hoist_egress::EgressPolicy::strict()),
        }
    }
}

/// One build of one source version of an app.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub app_name: String,
    /// A directory with the checked-out source (the builder may move/modify it).
    pub source_dir: PathBuf,
    /// Per-app persistent CACHE_DIR.
    pub cache_dir: PathBuf,
    /// The app's config vars; written to ENV_DIR. `SOURCE_VERSION`, if present, is also
    /// exported to the scripts.
    pub env: BTreeMap<String, String>,
    /// Empty = auto-detect among built-ins in Heroku's order. Otherwise each is a built-in
    /// name (`nodejs`, `heroku/nodejs`), an absolute local path, a tarball URL
    /// (`http(s)://...tgz`) or a git URL (`...git`, optional `#ref`).
    pub buildpacks: Vec<String>,
    /// e.g. `heroku-24`; exported as `STACK`.
    pub stack: String,
}

/// A slug written to the slugs directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlugInfo {
    /// sha256 (hex) of the compressed bytes; also the file name without `.tgz`.
    pub id: String,
    pub path: PathBuf,
    /// Compressed size in bytes.
    pub size: u64,
}

/// What a successful build produced.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub slug: SlugInfo,
    /// Procfile types merged over the last buildpack's `default_process_types`.
    pub process_types: BTreeMap<String, String>,
    /// Buildpacks used, in order (built-ins as `heroku/<name>`, others as given).
    pub buildpacks: Vec<String>,
    /// The last buildpack's detect output, e.g. `Node.js`.
    pub buildpack_description: String,
    /// `config_vars` from the buildpacks' release output (defaults; the app's config wins).
    pub release_config_vars: BTreeMap<String, String>,
    /// `addons` from the buildpacks' release output.
    pub addons: Vec<String>,
}
