//! OCI bundle of one dyno: `config.json` written with `oci-spec`, a per-dyno rootfs dir
//! that only holds mountpoints, symlinks and the generated passwd/group, and the
//! overlay upper/work dirs that form the dyno's ephemeral writable `/app`.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    get_default_maskedpaths, get_default_readonly_paths, Capability, LinuxBuilder,
    LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use crate::{env, DynoSpec, RuntimeError, DYNO_GID, DYNO_UID};

/// Where the shim binary is mounted inside containers to act as their init.
pub const INIT_PATH: &str = "/.hoist/init";
const TMP_SIZE: &str = "size=256m";
/// Bound of the dyno's writable layer over `/app` (a tmpfs under the dyno dir).
const LAYER_SIZE: &str = "size=512m";
/// Directory (in the dyno dir) the writable layer's tmpfs is mounted on.
pub(crate) const LAYER_DIR: &str = "layer";
const NOFILE: u64 = 10000;

/// Which cgroup hierarchy the host uses, decided once per runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgroups {
    /// v1 (or hybrid); `memsw` tells whether swap accounting exists.
    V1 {
        memsw: bool,
    },
    V2,
}

impl Cgroups {
    pub fn detect() -> Cgroups {
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            Cgroups::V2
        } else {
            Cgroups::V1 {
                memsw: Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
            }
        }
    }

    pub fn path(spec: &DynoSpec) -> String {
        format!("{}/{}", Self::app_path(&spec.app_name), spec.id)
    }

    fn app_path(app_name: &str) -> String {
        format!("/hoist/{app_name}")
    }

    /// The hierarchies dyno cgroups live in.
    fn roots(self) -> Vec<PathBuf> {
        match self {
            Cgroups::V2 => vec![PathBuf::from("/sys/fs/cgroup")],
            Cgroups::V1 { .. } => fs::read_dir("/sys/fs/cgroup")
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default(),
        }
    }

    /// Removes the app's parent cgroup in every hierarchy once it is empty (runc
    /// creates it with the first dyno but only removes the dyno's own).
    pub fn remove_app_parent(self, app_name: &str) {
        let app = Self::app_path(app_name);
        for root in self.roots() {
            let _ = fs::remove_dir(root.join(app.trim_start_matches('/')));
        }
    }

    /// Removes the cgroups of a dyno known only by its id (its spec is gone), with
    /// whatever still runs in them, and its app's parent once empty. Returns whether
    /// none is left.
    pub fn remove_dyno_leftovers(self, id: &str) -> bool {
        let mut clean = true;
        for root in self.roots() {
            let Ok(apps) = fs::read_dir(root.join("hoist")) else {
                continue;
            };
            for app in apps.flatten() {
                let cg = app.path().join(id);
                if !cg.is_dir() {
                    continue;
                }
                if fs::write(cg.join("cgroup.kill"), "1").is_err() {
                    // cgroup v1: no cgroup.kill.
                    let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        // SAFETY: plain syscall; the pid is in this dyno's cgroup.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                // Killed processes take a moment to leave the cgroup.
                let gone = (0..50).any(|_| {
                    let removed = fs::remove_dir(&cg).is_ok() || !cg.exists();
                    if !removed {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    removed
                });
                clean &= gone;
                let _ = fs::remove_dir(app.path());
            }
        }
        clean
    }

    /// The dyno's anonymous memory in bytes (what Heroku reports as its memory: page
    /// cache the kernel can drop does not count), from the memory cgroup's stats.
    pub fn memory_usage(self, spec: &DynoSpec) -> Option<u64> {
        let cg = Self::path(spec);
        let (file, key) = match self {
            Cgroups::V1 { .. } => (
                format!("/sys/fs/cgroup/memory{cg}/memory.stat"),
                "total_rss ",
            ),
            Cgroups::V2 => (format!("/sys/fs/cgroup{cg}/memory.stat"), "anon "),
        };
        let stat = std::fs::read_to_string(file).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The file holding the `oom_kill N` counter of the dyno's memory cgroup.
    pub fn oom_file(self, spec: &DynoSpec) -> PathBuf {
        self.oom_file_at(&Self::path(spec))
    }

    /// The `oom_kill N` counter file of the memory cgroup at `cg` (e.g. `/hoist/a/b`).
    pub fn oom_file_at(self, cg: &str) -> PathBuf {
        match self {
            Cgroups::V1 { .. } => {
                PathBuf::from(format!("/sys/fs/cgroup/memory{cg}/memory.oom_control"))
            }
            Cgroups::V2 => PathBuf::from(format!("/sys/fs/cgroup{cg}/memory.events")),
        }
    }
}

/// `oom_kill N` from memory.oom_control (v1) or memory.events (v2).
pub fn oom_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

pub struct BundleInput<'a> {
    pub spec: &'a DynoSpec,
    pub dyno_dir: &'a Path,
    pub stack_dirs: &'a [PathBuf],
    pub shim_exe: &'a Path,
    pub cgroups: Cgroups,
}

/// Writes `<dyno_dir>/bundle` and the overlay dirs. Returns the bundle dir.
pub fn write_bundle(input: &BundleInput<'_>) -> Result<PathBuf, RuntimeError> {
    let dir = input.dyno_dir;
    let bundle = dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    let io = |what: &str, p: &Path, e| RuntimeError::io(format!("{what} {}", p.display()), e);

    prepare_rootfs(&rootfs, &["app", ".hoist"])?;

    // The writable layer lives on its own size-limited tmpfs, so a dyno that fills it
    // gets ENOSPC alone instead of filling the host's disk. Its pages are charged to
    // the dyno's memory cgroup, like those of /tmp.
    let layer = dir.join(LAYER_DIR);
    fs::create_dir_all(&layer).map_err(|e| io("creating", &layer, e))?;
    nix::mount::mount(
        Some("tmpfs"),
        &layer,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(format!("mode=0755,{LAYER_SIZE}").as_str()),
    )
    .map_err(|e| io("mounting the writable layer on", &layer, e.into()))?;
    let upper = layer.join("upper");
    let work = layer.join("work");
    for p in [&upper, &work] {
        fs::create_dir_all(p).map_err(|e| io("creating", p, e))?;
    }
    // The root of the merged /app takes its owner from the upper dir.
    std::os::unix::fs::chown(&upper, Some(DYNO_UID), Some(DYNO_GID))
        .map_err(|e| io("chown", &upper, e))?;

    let mut mounts = system_mounts(&rootfs, input.stack_dirs)?;
    mounts.push(mount(
        "/app",
        "overlay",
        "overlay",
        &[
            &format!("lowerdir={}", input.spec.slug_dir.display()),
            &format!("upperdir={}", upper.display()),
            &format!("workdir={}", work.display()),
        ],
    ));
    mounts.push(mount(
        "/tmp",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "mode=1777", TMP_SIZE],
    ));
    mounts.push(bind_ro(input.shim_exe, Path::new(INIT_PATH)));

    write_config(&bundle, &oci_spec(input, mounts)?)?;
    Ok(bundle)
}

fn oci_spec(input: &BundleInput<'_>, mounts: Vec<Mount>) -> Result<Spec, RuntimeError> {
    let spec = input.spec;
    let shell = env::shell(Path::new("/"));
    let args = vec![
        INIT_PATH.to_string(),
        "dyno-init".to_string(),
        "--".to_string(),
        shell.to_string(),
        "-c".to_string(),
        env::wrapper_script(&spec.command, "/app"),
    ];
    let env: Vec<String> = env::dyno_env(spec, "/app")
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // Like Heroku, a dyno may exceed its quota (logged as R14 by the dyno manager) and
    // is killed (R15) only at the size's hard limit.
    container_spec(ContainerSpec {
        args,
        env,
        cwd: "/app".into(),
        uid: DYNO_UID,
        gid: DYNO_GID,
        terminal: spec.tty,
        hostname: spec.id.clone(),
        cgroups_path: Cgroups::path(spec),
        memory_bytes: spec.size.kill_memory_mb() * 1024 * 1024,
        cpu_shares: Some(spec.size.cpu_shares()),
        pids_limit: spec.size.pids_limit(),
        cgroups: input.cgroups,
        mounts,
    })
}

/// The process and limits of one container (a dyno or a build).
pub struct ContainerSpec {
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub terminal: bool,
    pub hostname: String,
    /// Relative to each cgroup hierarchy's root, e.g. `/hoist/<app>/<dyno>`.
    pub cgroups_path: String,
    /// Hard memory limit (no swap on top).
    pub memory_bytes: u64,
    pub cpu_shares: Option<u64>,
    pub pids_limit: i64,
    pub cgroups: Cgroups,
    pub mounts: Vec<Mount>,
}

/// The OCI config every Hoist container gets: a read-only root, no capabilities,
/// `no_new_privs`, no device access, its own pid/mount/uts/ipc namespaces, masked and
/// read-only kernel paths, and memory/pids (and cpu) limits in its own cgroup.
pub fn container_spec(c: ContainerSpec) -> Result<Spec, RuntimeError> {
    let oci =
        |e: oci_spec::OciSpecError| RuntimeError::InvalidSpec(format!("building OCI spec: {e}"));
    let no_caps: HashSet<Capability> = HashSet::new();
    let process = ProcessBuilder::default()
        .terminal(c.terminal)
        .user(
            UserBuilder::default()
                .uid(c.uid)
                .gid(c.gid)
                .build()
                .map_err(oci)?,
        )
        .args(c.args)
        .env(c.env)
        .cwd(c.cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(no_caps.clone())
                .effective(no_caps.clone())
                .inheritable(no_caps.clone())
                .permitted(no_caps.clone())
                .ambient(no_caps)
                .build()
                .map_err(oci)?,
        )
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(NOFILE)
            .soft(NOFILE)
            .build()
            .map_err(oci)?])
        .no_new_privileges(true)
        .build()
        .map_err(oci)?;

    let mem = i64::try_from(c.memory_bytes).unwrap_or(i64::MAX);
    let mut memory = LinuxMemoryBuilder::default().limit(mem);
    // swap == limit means "no swap" for runc on both hierarchies; without swap
    // accounting on v1 runc would refuse the setting.
    if !matches!(c.cgroups, Cgroups::V1 { memsw: false }) {
        memory = memory.swap(mem);
    }
    let mut resources = LinuxResourcesBuilder::default()
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(oci)?])
        .memory(memory.build().map_err(oci)?)
        .pids(
            LinuxPidsBuilder::default()
                .limit(c.pids_limit)
                .build()
                .map_err(oci)?,
        );
    if let Some(shares) = c.cpu_shares {
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .shares(shares)
                .build()
                .map_err(oci)?,
        );
    }
    let resources = resources.build().map_err(oci)?;
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
    .collect::<Result<Vec<_>, _>>()
    .map_err(oci)?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(c.cgroups_path))
        .resources(resources)
        .masked_paths(get_default_maskedpaths())
        .readonly_paths(get_default_readonly_paths())
        .build()
        .map_err(oci)?;
    SpecBuilder::default()
        .version("1.0.2-dev")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(true)
                .build()
                .map_err(oci)?,
        )
        .hostname(c.hostname)
        .process(process)
        .mounts(c.mounts)
        .linux(linux)
        .build()
        .map_err(oci)
}

/// Writes `<bundle>/config.json`.
pub fn write_config(bundle: &Path, spec: &Spec) -> Result<(), RuntimeError> {
    let config = bundle.join("config.json");
    let json =
        serde_json::to_vec(spec).map_err(|e| RuntimeError::io("encoding config.json", e.into()))?;
    fs::write(&config, json)
        .map_err(|e| RuntimeError::io(format!("writing {}", config.display()), e))
}

/// Creates a container root of mountpoints: `etc` (with a generated passwd/group),
/// `tmp`, `proc`, `dev`, `sys` and the given extra dirs. Nothing else of the host
/// appears unless mounted.
pub fn prepare_rootfs(rootfs: &Path, extra_dirs: &[&str]) -> Result<(), RuntimeError> {
    let io = |what: &str, p: &Path, e| RuntimeError::io(format!("{what} {}", p.display()), e);
    for sub in ["etc", "tmp", "proc", "dev", "sys"]
        .iter()
        .chain(extra_dirs)
    {
        let p = rootfs.join(sub);
        fs::create_dir_all(&p).map_err(|e| io("creating", &p, e))?;
    }
    fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755))
        .map_err(|e| io("chmod", rootfs, e))?;
    // runc gives a tmpfs the mode of the dir it is mounted on.
    let tmp = rootfs.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777))
        .map_err(|e| io("chmod", &tmp, e))?;
    let passwd = format!(
        "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n\
         dyno:x:{DYNO_UID}:{DYNO_GID}:dyno:/app:/bin/bash\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    );
    let group = format!("root:x:0:\ndyno:x:{DYNO_GID}:\nnogroup:x:65534:\n");
    for (name, text) in [("passwd", passwd), ("group", group)] {
        let p = rootfs.join("etc").join(name);
        fs::write(&p, text).map_err(|e| io("writing", &p, e))?;
    }
    Ok(())
}

/// `/proc`, `/dev`, `/sys`, the stack's system dirs read-only (symlinks such as
/// `/bin -> usr/bin` recreated in `rootfs`), the stack's part of `/etc`
/// ([`STACK_ETC`]) and the host's resolver and time zone files read-only.
pub fn system_mounts(rootfs: &Path, stack_dirs: &[PathBuf]) -> Result<Vec<Mount>, RuntimeError> {
    let io = |what: &str, p: &Path, e| RuntimeError::io(format!("{what} {}", p.display()), e);
    let mut mounts = base_mounts();
    let mut seen = HashSet::new();
    for host in stack_dirs {
        let Ok(meta) = host.symlink_metadata() else {
            continue;
        };
        let Some(rel) = host
            .strip_prefix("/")
            .ok()
            .filter(|r| !r.as_os_str().is_empty())
        else {
            continue;
        };
        if !seen.insert(rel.to_path_buf()) {
            continue;
        }
        if meta.file_type().is_symlink() {
            // merged-/usr hosts: /bin -> usr/bin; recreate the link instead of mounting.
            let target = fs::read_link(host).map_err(|e| io("reading link", host, e))?;
            let link = rootfs.join(rel);
            if let Some(parent) = link.parent() {
                fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
            }
            symlink(&target, &link).map_err(|e| io("creating link", &link, e))?;
        } else if meta.is_dir() {
            mounts.push(bind_ro(host, host));
        }
    }
    // Read once: it only changes when packages are installed, and every dyno start
    // would otherwise list /etc again.
    static STACK_ETC_ENTRIES: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    for p in STACK_ETC_ENTRIES.get_or_init(|| stack_etc_entries(Path::new("/etc"))) {
        mounts.push(bind_ro(p, p));
    }
    for f in [
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/nsswitch.conf",
        "/etc/localtime",
    ] {
        let p = Path::new(f);
        match p.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() && f == "/etc/localtime" => {
                // points into /usr/share/zoneinfo, which the container sees.
                let target = fs::read_link(p).map_err(|e| io("reading link", p, e))?;
                let link = rootfs.join("etc/localtime");
                symlink(&target, &link).map_err(|e| io("creating link", &link, e))?;
            }
            Ok(_) => {
                if let Ok(real) = fs::canonicalize(p) {
                    if real.is_file() {
                        mounts.push(bind_ro(&real, p));
                    }
                }
            }
            Err(_) => {}
        }
    }
    Ok(mounts)
}

/// The parts of `/etc` that belong to the stack rather than to the host: CA
/// certificates, Debian's alternatives (symlinks that route /usr/bin/java, php, ...)
/// and the configuration the distribution's toolchains read: the JDK's security files
/// (its `java.security` is a symlink into /etc), Maven's `m2.conf`, PHP's ini files
/// (which load its extensions), Python's, and npm's and pip's global config. Nothing
/// else of the host's /etc (accounts, keys, service configs) enters a container.
const STACK_ETC: &[&str] = &[
    "ssl",
    "ca-certificates",
    "alternatives",
    "java-*",
    "maven",
    "php",
    "python3*",
    "npmrc",
    "pip.conf",
    "mime.types",
    "fonts",
];

/// The entries of `etc` matching [`STACK_ETC`] (a `*` matches any rest of the name).
fn stack_etc_entries(etc: &Path) -> Vec<PathBuf> {
    let mut names: Vec<String> = fs::read_dir(etc)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    STACK_ETC.iter().any(|pat| match pat.strip_suffix('*') {
                        Some(prefix) => n.starts_with(prefix),
                        None => n == pat,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.into_iter().map(|n| etc.join(n)).collect()
}

pub fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("all mount fields are set") // invariant: the builder has no required fields left unset
}

pub fn bind_ro(source: &Path, dest: &Path) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(["bind", "ro", "nosuid", "nodev"].map(String::from).to_vec())
        .build()
        .expect("all mount fields are set")
}

/// A read-write bind mount (no setuid, no devices).
pub fn bind_rw(source: &Path, dest: &Path) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(["bind", "nosuid", "nodev"].map(String::from).to_vec())
        .build()
        .expect("all mount fields are set")
}

fn base_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stacks_part_of_etc_enters_containers() {
        let t = tempfile::tempdir().unwrap();
        for d in [
            "java-17-openjdk",
            "php",
            "python3.11",
            "ssh",
            "postgresql",
            "ssl",
        ] {
            fs::create_dir(t.path().join(d)).unwrap();
        }
        for f in ["shadow", "passwd", "npmrc", "pip.conf", "java"] {
            fs::write(t.path().join(f), "").unwrap();
        }
        let got: Vec<String> = stack_etc_entries(t.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "java-17-openjdk",
                "npmrc",
                "php",
                "pip.conf",
                "python3.11",
                "ssl"
            ]
        );
    }
}
