//! Tarballs: safe unpacking of untrusted `.tar.gz`, slug packing, source packing.
//!
//! The `tar` crate's own `unpack` is not used: it skips `..` entries silently, creates
//! escaping symlinks and turns device files into regular files (DESIGN.md, Pitfalls).
//! Here every entry is checked and written through directories this code created.

use crate::error::{BuildError, IoContext};
use crate::SlugInfo;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use nix::dir::Dir;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use tar::{EntryType, Header};

/// Bounds for unpacking an untrusted archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Total bytes of regular-file contents.
    pub max_bytes: u64,
    /// Number of entries (files, directories, links).
    pub max_entries: u64,
    /// Path components of the deepest entry.
    pub max_depth: usize,
    /// Accept symlinks that point outside the tree (absolute or climbing targets).
    /// Only for slugs: their links resolve inside the dyno's container (a venv's
    /// `python3 -> /usr/bin/python3`), and extraction never follows links, so they
    /// cannot redirect writes on the host. Never for sources or buildpacks.
    pub allow_outside_symlinks: bool,
}

/// Limits used by [`unpack_slug`]: a 500 MB compressed slug may expand a lot.
pub const SLUG_UNPACK_LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: 4 << 30,
    max_entries: 1_000_000,
    max_depth: 64,
    allow_outside_symlinks: true,
};

/// Longest GNU long name / link name / PAX header accepted.
const MAX_EXTENSION_BYTES: u64 = 64 * 1024;

/// A limit of [`UnpackLimits`] an archive goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverLimit {
    pub what: &'static str,
    pub limit: u64,
}

/// Running totals of an archive against its [`UnpackLimits`]. The unpacker counts with
/// it, and so does the slug packer with [`SLUG_UNPACK_LIMITS`]: a slug that would not
/// unpack on the dyno side fails its build instead of being released.
pub(crate) struct Tally<'a> {
    limits: &'a UnpackLimits,
    entries: u64,
    bytes: u64,
}

impl<'a> Tally<'a> {
    pub(crate) fn new(limits: &'a UnpackLimits) -> Self {
        Tally {
            limits,
            entries: 0,
            bytes: 0,
        }
    }

    /// One more entry, `depth` path components below the root.
    pub(crate) fn entry(&mut self, depth: usize) -> Result<(), OverLimit> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(OverLimit {
                what: "entry count",
                limit: self.limits.max_entries,
            });
        }
        if depth > self.limits.max_depth {
            return Err(OverLimit {
                what: "directory depth",
                limit: self.limits.max_depth as u64,
            });
        }
        Ok(())
    }

    /// A regular file of `size` bytes.
    pub(crate) fn file(&mut self, size: u64) -> Result<(), OverLimit> {
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_bytes {
            return Err(OverLimit {
                what: "total unpacked size",
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    /// A path or link target stored in a GNU long-name record (with its NUL).
    pub(crate) fn long_name(len: usize) -> Result<(), OverLimit> {
        if len as u64 + 1 > MAX_EXTENSION_BYTES {
            return Err(OverLimit {
                what: "path or link length",
                limit: MAX_EXTENSION_BYTES - 1,
            });
        }
        Ok(())
    }
}

impl From<OverLimit> for BuildError {
    fn from(o: OverLimit) -> BuildError {
        BuildError::ArchiveTooLarge {
            what: o.what,
            limit: o.limit,
        }
    }
}

/// Unpacks an untrusted gzip tarball into `dest`, which must not exist (or be an empty
/// directory). Extraction happens in a fresh private temp dir next to `dest`, which is
/// renamed into place only when every entry was accepted: on error nothing appears.
///
/// Accepted: regular files, directories, symlinks whose target stays inside the tree,
/// hard links to files inside the tree. Rejected with an error: absolute paths, `..`
/// components, devices, fifos, sparse files, anything over `limits`.
/// Permission bits are kept without setuid/setgid/sticky; ownership is not restored.
pub fn unpack_tar_gz(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<(), BuildError> {
    unpack(reader, dest, limits, false)
}

/// [`unpack_tar_gz`] for app source tarballs: when the archive holds one top-level
/// directory and nothing else, as GitHub's `/tarball/` and `/archive/*.tar.gz`
/// downloads do, `dest` becomes that directory's contents (what Heroku builds from
/// such a tarball). See [`sole_top_dir`].
pub fn unpack_source_tar_gz(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<(), BuildError> {
    unpack(reader, dest, limits, true)
}

/// The directory an unpacked archive is wrapped in: `root` holds exactly one entry
/// and it is a directory (not a link to one). The one rule for unwrapping app sources
/// and buildpack tarballs.
pub fn sole_top_dir(root: &Path) -> Result<Option<PathBuf>, BuildError> {
    let mut entries = fs::read_dir(root).ctx(|| format!("reading {}", root.display()))?;
    let first = match entries.next() {
        Some(e) => e.ctx(|| format!("reading {}", root.display()))?,
        None => return Ok(None),
    };
    if entries.next().is_some() {
        return Ok(None);
    }
    let is_dir = first
        .file_type()
        .ctx(|| format!("inspecting {}", first.path().display()))?
        .is_dir();
    Ok(is_dir.then(|| first.path()))
}

fn unpack(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
    unwrap_top_dir: bool,
) -> Result<(), BuildError> {
    let parent = parent_of(dest)?;
    fs::create_dir_all(&parent).ctx(|| format!("creating {}", parent.display()))?;
    check_dest_free(dest)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unpack".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.unpack-"))
        .tempdir_in(&parent)
        .ctx(|| format!("creating a temp dir in {}", parent.display()))?;
    let mut root_mode = extract_into(GzDecoder::new(reader), tmp.path(), limits)?;
    // The tree that becomes `dest`: links are checked against it, not the wrapper
    // (`top/a -> ../b` stays inside the archive but would leave `dest`).
    let tree = if unwrap_top_dir {
        sole_top_dir(tmp.path())?
    } else {
        None
    };
    if let Some(top) = &tree {
        root_mode = (fs::symlink_metadata(top)
            .ctx(|| format!("inspecting {}", top.display()))?
            .mode()
            & 0o777)
            | 0o700;
    }
    let tree = tree.unwrap_or_else(|| tmp.path().to_path_buf());
    if !limits.allow_outside_symlinks {
        verify_symlinks(&tree, &tree)?;
    }
    fs::set_permissions(&tree, fs::Permissions::from_mode(root_mode))
        .ctx(|| format!("chmod {}", tree.display()))?;
    let tmp_path = tmp.keep();
    let moved = fs::rename(&tree, dest);
    if tree != tmp_path {
        let _ = fs::remove_dir_all(&tmp_path);
    }
    if let Err(e) = moved {
        let _ = fs::remove_dir_all(&tmp_path);
        return Err(
            if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) {
                BuildError::DestinationExists(dest.to_path_buf())
            } else {
                BuildError::io(format!("moving the unpacked tree to {}", dest.display()), e)
            },
        );
    }
    Ok(())
}

/// Unpacks a slug into `dest` (e.g. a dyno's `/app`). Idempotent: if `dest` already
/// exists it is assumed to hold this slug (slugs are immutable and content-addressed).
pub fn unpack_slug(slug: &Path, dest: &Path) -> Result<(), BuildError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Ok(());
    }
    let file = fs::File::open(slug).ctx(|| format!("opening slug {}", slug.display()))?;
    match unpack_tar_gz(io::BufReader::new(file), dest, &SLUG_UNPACK_LIMITS) {
        // Someone else unpacked the same slug concurrently.
        Err(BuildError::DestinationExists(_)) => Ok(()),
        other => other,
    }
}

fn parent_of(dest: &Path) -> Result<PathBuf, BuildError> {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p.to_path_buf()),
        Some(_) => Ok(PathBuf::from(".")),
        None => Err(BuildError::DestinationExists(dest.to_path_buf())),
    }
}

fn check_dest_free(dest: &Path) -> Result<(), BuildError> {
    match fs::symlink_metadata(dest) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => {
            let empty = fs::read_dir(dest)
                .ctx(|| format!("reading {}", dest.display()))?
                .next()
                .is_none();
            if empty {
                Ok(())
            } else {
                Err(BuildError::DestinationExists(dest.to_path_buf()))
            }
        }
        Ok(_) => Err(BuildError::DestinationExists(dest.to_path_buf())),
    }
}

/// Turns an archive path into checked relative components. `..`, absolute paths and
/// empty components are errors.
fn clean_components(raw: &[u8]) -> Result<Vec<OsString>, BuildError> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    if raw.contains(&0) {
        return Err(BuildError::unsafe_entry(shown, "NUL byte in path"));
    }
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                return Err(BuildError::unsafe_entry(shown, "path contains `..`"))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(BuildError::unsafe_entry(shown, "absolute path"))
            }
        }
    }
    Ok(out)
}

fn join(root: &Path, comps: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in comps {
        p.push(c);
    }
    p
}

/// Creates the missing parent directories of an entry; every existing parent must be a
/// real directory (never a symlink), so nothing is written outside `root`.
fn ensure_parents(root: &Path, comps: &[OsString], shown: &str) -> Result<(), BuildError> {
    let mut p = root.to_path_buf();
    for c in &comps[..comps.len().saturating_sub(1)] {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(BuildError::unsafe_entry(
                    shown,
                    "a parent directory is a symlink or a file",
                ))
            }
            Err(_) => {
                fs::create_dir(&p).ctx(|| format!("creating {}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// Removes a previous non-directory entry at `p` (later entries win, as with tar).
fn clear_slot(p: &Path, shown: &str) -> Result<(), BuildError> {
    match fs::symlink_metadata(p) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => Err(BuildError::unsafe_entry(
            shown,
            "would replace a directory with a non-directory",
        )),
        Ok(_) => fs::remove_file(p).ctx(|| format!("removing {}", p.display())),
    }
}

/// Checks a symlink target lexically: relative, and not climbing above the root when
/// resolved from the link's directory.
fn check_link_target(parent_depth: usize, target: &[u8], shown: &str) -> Result<(), BuildError> {
    if target.is_empty() || target.contains(&0) {
        return Err(BuildError::unsafe_entry(
            shown,
            "empty or invalid link target",
        ));
    }
    let mut depth = parent_depth as i64;
    for c in Path::new(OsStr::from_bytes(target)).components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err(BuildError::unsafe_entry(
                    shown,
                    "symlink to an absolute path points outside the archive",
                ))
            }
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(BuildError::unsafe_entry(
                        shown,
                        "symlink target climbs out of the archive",
                    ));
                }
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
        }
    }
    Ok(())
}

/// Reads the archive into `root`; returns the mode for the root directory.
fn extract_into(reader: impl Read, root: &Path, limits: &UnpackLimits) -> Result<u32, BuildError> {
    let mut archive = tar::Archive::new(reader);
    let corrupt = |e: io::Error| BuildError::CorruptArchive(e.to_string());
    // Raw mode: extension headers come to us, so their size is bounded here instead of
    // being read into memory unbounded by the tar crate.
    let entries = archive.entries().map_err(corrupt)?.raw(true);
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut tally = Tally::new(limits);
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let mut root_mode = 0o755;

    for entry in entries {
        let mut entry = entry.map_err(corrupt)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let size = header.entry_size().map_err(corrupt)?;

        if kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions() {
            if size > MAX_EXTENSION_BYTES {
                return Err(BuildError::CorruptArchive(
                    "extension header is too large".into(),
                ));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut data).map_err(corrupt)?;
            if kind.is_pax_local_extensions() {
                for ext in tar::PaxExtensions::new(&data) {
                    let ext = ext.map_err(corrupt)?;
                    match ext.key_bytes() {
                        b"path" => set_once(&mut long_name, ext.value_bytes().to_vec())?,
                        b"linkpath" => set_once(&mut long_link, ext.value_bytes().to_vec())?,
                        // Raw mode would not apply these; refuse instead of misparsing.
                        b"size" => {
                            return Err(BuildError::CorruptArchive(
                                "PAX size headers are not supported".into(),
                            ))
                        }
                        k if k.starts_with(b"GNU.sparse") => {
                            return Err(BuildError::CorruptArchive(
                                "sparse files are not supported".into(),
                            ))
                        }
                        _ => {}
                    }
                }
            } else {
                while data.last() == Some(&0) {
                    data.pop();
                }
                if kind.is_gnu_longname() {
                    set_once(&mut long_name, data)?;
                } else {
                    set_once(&mut long_link, data)?;
                }
            }
            continue;
        }
        if kind.is_pax_global_extensions() {
            // e.g. git-archive's commit comment; nothing in it matters for unpacking.
            if size > MAX_EXTENSION_BYTES {
                return Err(BuildError::CorruptArchive(
                    "extension header is too large".into(),
                ));
            }
            continue;
        }

        let raw_path = long_name
            .take()
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let raw_link = long_link
            .take()
            .or_else(|| header.link_name_bytes().map(|b| b.into_owned()));
        let shown = String::from_utf8_lossy(&raw_path).into_owned();

        let comps = clean_components(&raw_path)?;
        tally.entry(comps.len())?;
        let mode = header.mode().map_err(corrupt)? & 0o777;
        let target = join(root, &comps);

        // Pre-POSIX tars mark directories only with a trailing slash.
        let kind = if kind == EntryType::Regular && raw_path.ends_with(b"/") && size == 0 {
            EntryType::Directory
        } else {
            kind
        };
        match kind {
            EntryType::Directory => {
                if comps.is_empty() {
                    root_mode = mode | 0o700;
                    continue;
                }
                ensure_parents(root, &comps, &shown)?;
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(BuildError::unsafe_entry(
                            &shown,
                            "directory would replace a file or symlink",
                        ))
                    }
                    Err(_) => {
                        fs::create_dir(&target).ctx(|| format!("creating {}", target.display()))?
                    }
                }
                dir_modes.push((target, mode | 0o700));
            }
            EntryType::Regular | EntryType::Continuous => {
                if comps.is_empty() {
                    return Err(BuildError::unsafe_entry(
                        &shown,
                        "file entry without a name",
                    ));
                }
                tally.file(size)?;
                ensure_parents(root, &comps, &shown)?;
                clear_slot(&target, &shown)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .ctx(|| format!("creating {}", target.display()))?;
                let copied = io::copy(&mut entry, &mut file).map_err(corrupt)?;
                if copied != size {
                    return Err(BuildError::CorruptArchive(format!(
                        "{shown}: archive ends in the middle of the file"
                    )));
                }
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .ctx(|| format!("chmod {}", target.display()))?;
            }
            EntryType::Symlink => {
                if comps.is_empty() {
                    return Err(BuildError::unsafe_entry(&shown, "symlink without a name"));
                }
                let link = raw_link.unwrap_or_default();
                if !limits.allow_outside_symlinks {
                    check_link_target(comps.len() - 1, &link, &shown)?;
                } else if link.is_empty() || link.contains(&0) {
                    return Err(BuildError::unsafe_entry(
                        &shown,
                        "empty or invalid link target",
                    ));
                }
                no_data(size, &shown)?;
                ensure_parents(root, &comps, &shown)?;
                clear_slot(&target, &shown)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target)
                    .ctx(|| format!("creating symlink {}", target.display()))?;
            }
            EntryType::Link => {
                let link = raw_link.unwrap_or_default();
                let link_comps = clean_components(&link).map_err(|_| {
                    BuildError::unsafe_entry(&shown, "hard link target outside the archive")
                })?;
                no_data(size, &shown)?;
                let source = join(root, &link_comps);
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_file() && !link_comps.is_empty() => {}
                    _ => {
                        return Err(BuildError::unsafe_entry(
                            &shown,
                            "hard link must point to a regular file earlier in the archive",
                        ))
                    }
                }
                if comps.is_empty() {
                    return Err(BuildError::unsafe_entry(&shown, "hard link without a name"));
                }
                ensure_parents(root, &comps, &shown)?;
                clear_slot(&target, &shown)?;
                fs::hard_link(&source, &target)
                    .ctx(|| format!("creating hard link {}", target.display()))?;
            }
            other => {
                return Err(BuildError::unsafe_entry(
                    &shown,
                    format!(
                        "entry type {other:?} is not allowed (only files, directories and links)"
                    ),
                ))
            }
        }
    }
    if long_name.is_some() || long_link.is_some() {
        return Err(BuildError::CorruptArchive(
            "extension header without a following entry".into(),
        ));
    }
    // Deepest first, so a read-only directory does not block its children.
    dir_modes.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (dir, mode) in dir_modes {
        // Open without following: the path was created as a directory by us.
        let handle = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY)
            .open(&dir)
            .ctx(|| format!("opening {}", dir.display()))?;
        handle
            .set_permissions(fs::Permissions::from_mode(mode))
            .ctx(|| format!("chmod {}", dir.display()))?;
    }
    Ok(root_mode)
}

fn set_once(slot: &mut Option<Vec<u8>>, value: Vec<u8>) -> Result<(), BuildError> {
    if slot.is_some() {
        return Err(BuildError::CorruptArchive(
            "two long-name headers for one entry".into(),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn no_data(size: u64, shown: &str) -> Result<(), BuildError> {
    if size != 0 {
        return Err(BuildError::unsafe_entry(shown, "link entry carries data"));
    }
    Ok(())
}

/// Resolves every symlink in the finished tree the way the kernel would, following
/// links inside the tree, and fails if one leads outside `root`. The per-entry lexical
/// check cannot see chains such as `a -> .` plus `b -> a/..`.
fn verify_symlinks(root: &Path, dir: &Path) -> Result<(), BuildError> {
    for entry in fs::read_dir(dir).ctx(|| format!("reading {}", dir.display()))? {
        let entry = entry.ctx(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .ctx(|| format!("inspecting {}", path.display()))?;
        if ft.is_dir() {
            verify_symlinks(root, &path)?;
        } else if ft.is_symlink() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if !link_stays_inside(root, &rel)? {
                return Err(BuildError::unsafe_entry(
                    rel.to_string_lossy(),
                    "symlink resolves outside the archive",
                ));
            }
        }
    }
    Ok(())
}

fn link_stays_inside(root: &Path, link_rel: &Path) -> Result<bool, BuildError> {
    let mut stack: Vec<OsString> = link_rel
        .parent()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_os_string())
                .collect()
        })
        .unwrap_or_default();
    let target =
        fs::read_link(root.join(link_rel)).ctx(|| format!("reading {}", link_rel.display()))?;
    let mut todo: VecDeque<OsString> = VecDeque::new();
    if target.is_absolute() {
        return Ok(false);
    }
    todo.extend(target.components().map(|c| c.as_os_str().to_os_string()));
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == "." {
            continue;
        }
        if c == ".." {
            if stack.pop().is_none() {
                return Ok(false);
            }
            continue;
        }
        stack.push(c);
        let here = join(root, &stack);
        if let Ok(m) = fs::symlink_metadata(&here) {
            if m.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return Ok(false);
                }
                let next = fs::read_link(&here).ctx(|| format!("reading {}", here.display()))?;
                if next.is_absolute() {
                    return Ok(false);
                }
                stack.pop();
                for c in next.components().rev() {
                    todo.push_front(c.as_os_str().to_os_string());
                }
            }
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// Packing
// ---------------------------------------------------------------------------------------

const SLUG_LIMIT_MSG: &str = "slug size limit reached";

/// Counts and hashes the compressed bytes, and stops at the size limit.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, SLUG_LIMIT_MSG));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes tar entries with exact `./`-rooted names (the tar crate's `set_path` drops
/// the leading `./`), using GNU long-name records for long paths.
struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarWriter<W> {
    fn new(w: W) -> Self {
        TarWriter {
            builder: tar::Builder::new(w),
        }
    }

    fn header(kind: EntryType, name: &[u8], mode: u32, mtime: u64, size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode & 0o777);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        if let Some(gnu) = h.as_gnu_mut() {
            let n = name.len().min(gnu.name.len());
            gnu.name = [0; 100];
            gnu.name[..n].copy_from_slice(&name[..n]);
        }
        h
    }

    fn long_record(&mut self, kind: EntryType, value: &[u8]) -> io::Result<()> {
        let mut data = value.to_vec();
        data.push(0);
        let mut h = Self::header(kind, b"././@LongLink", 0o644, 0, data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, data.as_slice())
    }

    // One parameter per tar header field keeps call sites readable.
    #[allow(clippy::too_many_arguments)]
    fn append(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: Option<&[u8]>,
        mode: u32,
        mtime: u64,
        size: u64,
        data: impl Read,
    ) -> io::Result<()> {
        if name.len() > 100 {
            self.long_record(EntryType::GNULongName, name)?;
        }
        let mut h = Self::header(kind, name, mode, mtime, size);
        if let Some(link) = link {
            if link.len() > 100 {
                self.long_record(EntryType::GNULongLink, link)?;
            }
            if let Some(gnu) = h.as_gnu_mut() {
                let n = link.len().min(gnu.linkname.len());
                gnu.linkname = [0; 100];
                gnu.linkname[..n].copy_from_slice(&link[..n]);
            }
        }
        h.set_cksum();
        self.builder.append(&h, data)
    }

    fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

/// Reads exactly `size` bytes: a file that shrank while packing is padded with zeros so
/// the tar stays well-formed.
fn exact_reader(file: fs::File, size: u64) -> impl Read {
    file.take(size).chain(io::repeat(0)).take(size)
}

/// Packs the contents of `app_dir` (without a top-level `.git`) into a gzip tarball
/// rooted at `./`, writes it to `<slugs_dir>/<sha256>.tgz` atomically and returns it.
/// Symlinks are stored as symlinks and never followed; special files are left out.
pub fn pack_slug(app_dir: &Path, slugs_dir: &Path, max_bytes: u64) -> Result<SlugInfo, BuildError> {
    fs::create_dir_all(slugs_dir).ctx(|| format!("creating {}", slugs_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".slug-")
        .suffix(".tmp")
        .tempfile_in(slugs_dir)
        .ctx(|| format!("creating a temp file in {}", slugs_dir.display()))?;
    let out = HashingWriter {
        inner: BufWriter::with_capacity(
            256 * 1024,
            tmp.as_file()
                .try_clone()
                .ctx(|| "opening the slug temp file".into())?,
        ),
        hasher: Sha256::new(),
        written: 0,
        limit: max_bytes,
    };
    let mut tar = TarWriter::new(GzEncoder::new(out, Compression::new(SLUG_GZIP_LEVEL)));

    let root_fd = open_dir_nofollow(None, app_dir)?;
    let mut tally = Tally::new(&SLUG_UNPACK_LIMITS);
    let result = (|| -> Result<HashingWriter<BufWriter<fs::File>>, io::Error> {
        let st = nix::sys::stat::fstat(root_fd.as_raw_fd())?;
        within_dyno_limits(&mut tally, b"./", None, None)?;
        tar.append(
            EntryType::Directory,
            b"./",
            None,
            st.st_mode,
            st.st_mtime as u64,
            0,
            io::empty(),
        )?;
        pack_dir_fd(&mut tar, &mut tally, root_fd, b"./", true)?;
        tar.finish()?.finish()
    })();
    let mut out = match result.map_err(build_error_in) {
        Ok(out) => out,
        Err(Ok(e)) => return Err(e),
        Err(Err(e)) => {
            if e.kind() == io::ErrorKind::FileTooLarge || e.to_string().contains(SLUG_LIMIT_MSG) {
                return Err(BuildError::SlugTooLarge { limit: max_bytes });
            }
            return Err(BuildError::io(format!("packing {}", app_dir.display()), e));
        }
    };
    out.flush().ctx(|| "writing the slug".into())?;
    let size = out.written;
    let id = hex::encode(out.hasher.finalize());
    drop(out.inner);
    tmp.as_file().sync_all().ctx(|| "syncing the slug".into())?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
        .ctx(|| "chmod slug".into())?;
    let path = slugs_dir.join(format!("{id}.tgz"));
    tmp.persist(&path)
        .map_err(|e| BuildError::io(format!("writing {}", path.display()), e.error))?;
    Ok(SlugInfo { id, path, size })
}

/// zlib-rs level 2: on the mixed 100 MB tree of examples/pack_bench.rs it packs ~1.9x
/// faster than `tar | gzip -1` with a 1% smaller result (level 1: 2.1x but 9% larger;
/// level 4: 1.0x, 3% smaller; level 6: 0.7x, 5% smaller).
const SLUG_GZIP_LEVEL: u32 = 2;

fn open_dir_nofollow(dir: Option<RawFd>, name: &Path) -> Result<OwnedFd, BuildError> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("opening directory {}", name.display()))?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The [`BuildError`] an io::Error carries, or the io::Error itself.
fn build_error_in(e: io::Error) -> Result<BuildError, io::Error> {
    let kind = e.kind();
    match e.into_inner() {
        Some(inner) => match inner.downcast::<BuildError>() {
            Ok(b) => Ok(*b),
            Err(other) => Err(io::Error::new(kind, other)),
        },
        None => Err(io::Error::from(kind)),
    }
}

/// Checks one slug entry against what the dyno side's [`unpack_slug`] accepts, so that
/// a slug that could never start fails its build. The error travels as an io::Error
/// holding the [`BuildError`].
fn within_dyno_limits(
    tally: &mut Tally<'_>,
    path: &[u8],
    file_size: Option<u64>,
    link: Option<&[u8]>,
) -> io::Result<()> {
    let depth = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .count();
    let checked = tally
        .entry(depth)
        .and_then(|()| file_size.map_or(Ok(()), |s| tally.file(s)))
        .and_then(|()| Tally::long_name(path.len()))
        .and_then(|()| link.map_or(Ok(()), |l| Tally::long_name(l.len())));
    checked.map_err(|o| {
        let shown = String::from_utf8_lossy(path);
        io::Error::other(BuildError::SlugOverDynoLimit {
            what: o.what,
            limit: o.limit,
            path: shown.chars().take(200).collect(),
        })
    })
}

/// Walks a directory through file descriptors only (`openat` with `O_NOFOLLOW`), so a
/// symlink swapped in by a leftover build process cannot redirect the walk.
fn pack_dir_fd<W: Write>(
    tar: &mut TarWriter<W>,
    tally: &mut Tally<'_>,
    dir_fd: OwnedFd,
    prefix: &[u8],
    top: bool,
) -> io::Result<()> {
    // Dir takes ownership of the fd (and closes it on error too).
    let mut dir = Dir::from_fd(dir_fd.into_raw_fd())?;
    let mut names: Vec<CString> = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        if top && name.to_bytes() == b".git" {
            continue;
        }
        names.push(name.to_owned());
    }
    names.sort();
    let dfd = dir.as_raw_fd();
    for name in names {
        let mut path = prefix.to_vec();
        path.extend_from_slice(name.to_bytes());
        pack_one(tar, tally, dfd, &name, path)?;
    }
    Ok(())
}

fn pack_one<W: Write>(
    tar: &mut TarWriter<W>,
    tally: &mut Tally<'_>,
    dfd: RawFd,
    name: &CStr,
    path: Vec<u8>,
) -> io::Result<()> {
    let st = match fstatat(Some(dfd), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let mtime = st.st_mtime.max(0) as u64;
    if kind == SFlag::S_IFDIR {
        let fd = openat(
            Some(dfd),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: fresh fd from openat.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut dir_name = path;
        dir_name.push(b'/');
        within_dyno_limits(tally, &dir_name, None, None)?;
        tar.append(
            EntryType::Directory,
            &dir_name,
            None,
            st.st_mode,
            mtime,
            0,
            io::empty(),
        )?;
        pack_dir_fd(tar, tally, fd, &dir_name, false)
    } else if kind == SFlag::S_IFREG {
        let fd = openat(
            Some(dfd),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )?;
        // SAFETY: fresh fd from openat.
        let file = unsafe { fs::File::from_raw_fd(fd) };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(());
        }
        let size = meta.len();
        within_dyno_limits(tally, &path, Some(size), None)?;
        tar.append(
            EntryType::Regular,
            &path,
            None,
            meta.mode(),
            mtime,
            size,
            exact_reader(file, size),
        )
    } else if kind == SFlag::S_IFLNK {
        let target = readlinkat(Some(dfd), name)?;
        within_dyno_limits(tally, &path, None, Some(target.as_bytes()))?;
        tar.append(
            EntryType::Symlink,
            &path,
            Some(target.as_bytes()),
            0o777,
            mtime,
            0,
            io::empty(),
        )
    } else {
        // Sockets, fifos and devices have no place in a slug.
        Ok(())
    }
}

/// Packs a source directory for `hoist deploy`: gzip tarball rooted at `./`, honouring
/// `.gitignore` and `.slugignore`, without `.git`. Written atomically to `dest`;
/// returns the compressed size.
pub fn pack_source_dir(dir: &Path, dest: &Path) -> Result<u64, BuildError> {
    let parent = parent_of(dest)?;
    let tmp = tempfile::Builder::new()
        .prefix(".source-")
        .tempfile_in(&parent)
        .ctx(|| format!("creating a temp file in {}", parent.display()))?;
    let out = HashingWriter {
        inner: BufWriter::new(
            tmp.as_file()
                .try_clone()
                .ctx(|| "opening the source temp file".into())?,
        ),
        hasher: Sha256::new(),
        written: 0,
        limit: u64::MAX,
    };
    let mut tar = TarWriter::new(GzEncoder::new(out, Compression::new(6)));
    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .hidden(false)
        .git_ignore(true)
        .require_git(false)
        .parents(false)
        .add_custom_ignore_filename(".slugignore")
        .follow_links(false)
        .filter_entry(|e| !(e.depth() == 1 && e.file_name() == ".git"))
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let err = |e: io::Error| BuildError::io(format!("packing {}", dir.display()), e);
    let root_meta = fs::metadata(dir).ctx(|| format!("reading {}", dir.display()))?;
    tar.append(
        EntryType::Directory,
        b"./",
        None,
        root_meta.mode(),
        root_meta.mtime() as u64,
        0,
        io::empty(),
    )
    .map_err(err)?;
    for entry in walker {
        let entry = entry.map_err(|e| {
            BuildError::io(format!("walking {}", dir.display()), io::Error::other(e))
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let mut name = b"./".to_vec();
        name.extend_from_slice(rel.as_os_str().as_bytes());
        let meta = fs::symlink_metadata(entry.path())
            .ctx(|| format!("inspecting {}", entry.path().display()))?;
        let mtime = meta.mtime().max(0) as u64;
        let ft = meta.file_type();
        if ft.is_dir() {
            name.push(b'/');
            tar.append(
                EntryType::Directory,
                &name,
                None,
                meta.mode(),
                mtime,
                0,
                io::empty(),
            )
            .map_err(err)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(entry.path())
                .ctx(|| format!("reading {}", entry.path().display()))?;
            tar.append(
                EntryType::Symlink,
                &name,
                Some(target.as_os_str().as_bytes()),
                0o777,
                mtime,
                0,
                io::empty(),
            )
            .map_err(err)?;
        } else if ft.is_file() {
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(entry.path())
                .ctx(|| format!("opening {}", entry.path().display()))?;
            let size = meta.len();
            tar.append(
                EntryType::Regular,
                &name,
                None,
                meta.mode(),
                mtime,
                size,
                exact_reader(file, size),
            )
            .map_err(err)?;
        }
    }
    let mut out = tar.finish().and_then(|gz| gz.finish()).map_err(err)?;
    out.flush().map_err(err)?;
    let size = out.written;
    drop(out.inner);
    tmp.persist(dest)
        .map_err(|e| BuildError::io(format!("writing {}", dest.display()), e.error))?;
    Ok(size)
}

#[cfg(test)]
mod tests;
