//! Directory-tree helpers that never follow symlinks.

use crate::error::{BuildError, IoContext};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Copies `src` into the (new or empty) directory `dst`. Symlinks are copied as symlinks,
/// special files are skipped, permission bits are kept minus setuid/setgid/sticky.
/// `skip_top` names top-level entries to leave out (e.g. `.git`).
pub(crate) fn copy_tree(src: &Path, dst: &Path, skip_top: &[&str]) -> Result<(), BuildError> {
    fs::create_dir_all(dst).ctx(|| format!("creating {}", dst.display()))?;
    copy_dir_contents(src, dst, skip_top)
}

fn copy_dir_contents(src: &Path, dst: &Path, skip: &[&str]) -> Result<(), BuildError> {
    let entries = fs::read_dir(src).ctx(|| format!("reading {}", src.display()))?;
    for entry in entries {
        let entry = entry.ctx(|| format!("reading {}", src.display()))?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(&name);
        let meta = fs::symlink_metadata(&from).ctx(|| format!("inspecting {}", from.display()))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&from).ctx(|| format!("reading link {}", from.display()))?;
            std::os::unix::fs::symlink(&target, &to)
                .ctx(|| format!("creating link {}", to.display()))?;
        } else if ft.is_dir() {
            fs::create_dir(&to).ctx(|| format!("creating {}", to.display()))?;
            copy_dir_contents(&from, &to, &[])?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o777 | 0o700))
                .ctx(|| format!("chmod {}", to.display()))?;
        } else if ft.is_file() {
            copy_file(&from, &to, meta.mode() & 0o777)?;
        }
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<(), BuildError> {
    let mut input = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .ctx(|| format!("opening {}", from.display()))?;
    let mut output = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .ctx(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut input, &mut output).ctx(|| format!("copying {}", from.display()))?;
    // `mode` above is filtered by the umask; make it exact.
    output
        .set_permissions(fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {}", to.display()))?;
    Ok(())
}

/// Moves `src` to `dst` (same filesystem) or copies it when rename is impossible.
pub(crate) fn move_or_copy(src: &Path, dst: &Path, skip_top: &[&str]) -> Result<(), BuildError> {
    if fs::rename(src, dst).is_ok() {
        for s in skip_top {
            let p = dst.join(s);
            if let Ok(m) = fs::symlink_metadata(&p) {
                if m.is_dir() {
                    fs::remove_dir_all(&p).ctx(|| format!("removing {}", p.display()))?;
                } else {
                    fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
                }
            }
        }
        return Ok(());
    }
    copy_tree(src, dst, skip_top)
}

/// `lchown -R`: hands a tree we created to the sandbox user.
pub(crate) fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), BuildError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .ctx(|| format!("chown {}", path.display()))?;
    let meta = fs::symlink_metadata(path).ctx(|| format!("inspecting {}", path.display()))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).ctx(|| format!("reading {}", path.display()))? {
            let entry = entry.ctx(|| format!("reading {}", path.display()))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Reads a small file from a tree the sandbox controlled, refusing symlinks.
/// `Ok(None)` if it does not exist.
pub(crate) fn read_small_file_nofollow(
    path: &Path,
    max: u64,
) -> Result<Option<Vec<u8>>, BuildError> {
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(BuildError::io(
                format!("{} is a symlink, which is not allowed here", path.display()),
                e,
            ))
        }
        Err(e) => return Err(BuildError::io(format!("opening {}", path.display()), e)),
    };
    let meta = file
        .metadata()
        .ctx(|| format!("inspecting {}", path.display()))?;
    if !meta.is_file() {
        return Err(BuildError::io(
            format!("{} is not a regular file", path.display()),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .ctx(|| format!("reading {}", path.display()))?;
    if buf.len() as u64 > max {
        return Err(BuildError::io(
            format!("{} is larger than {max} bytes", path.display()),
            std::io::Error::from(std::io::ErrorKind::InvalidData),
        ));
    }
    Ok(Some(buf))
}

/// Checks that `uid`/`gid` may traverse every directory from `/` down to `path`.
pub(crate) fn check_reachable(path: &Path, uid: u32, gid: u32) -> Result<(), BuildError> {
    if uid == 0 {
        return Ok(());
    }
    let canonical = fs::canonicalize(path).ctx(|| format!("resolving {}", path.display()))?;
    for dir in canonical.ancestors() {
        let meta = fs::metadata(dir).ctx(|| format!("inspecting {}", dir.display()))?;
        let mode = meta.mode();
        let ok = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(BuildError::SandboxCannotReach {
                uid,
                path: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Random hex id for scratch names.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 8];
    // getrandom only fails when the OS has no entropy source at all; fall back to the
    // clock and pid, which is still unique enough for scratch directory names.
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = ((nanos as u64) ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_keeps_symlinks_and_skips_git() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join(".git/objects")).unwrap();
        fs::create_dir_all(src.join("lib")).unwrap();
        fs::write(src.join("lib/a.rb"), "puts 1").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("pw")).unwrap();
        let dst = t.path().join("dst");
        copy_tree(&src, &dst, &[".git"]).unwrap();
        assert!(!dst.join(".git").exists());
        assert_eq!(fs::read_to_string(dst.join("lib/a.rb")).unwrap(), "puts 1");
        assert!(fs::symlink_metadata(dst.join("pw"))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn small_file_reader_refuses_symlinks() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("Procfile")).unwrap();
        assert!(read_small_file_nofollow(&t.path().join("Procfile"), 100).is_err());
        assert!(read_small_file_nofollow(&t.path().join("nope"), 100)
            .unwrap()
            .is_none());
        fs::write(t.path().join("big"), vec![b'x'; 200]).unwrap();
        assert!(read_small_file_nofollow(&t.path().join("big"), 100).is_err());
    }
}
