//! `.slugignore`: gitignore-like patterns (without `!` negation) naming files that are
//! deleted from the build directory before the buildpacks run, as Heroku's slug
//! compiler does.

use crate::error::{BuildError, IoContext};
use crate::tree::read_small_file_nofollow;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::fs;
use std::path::Path;

const MAX_SLUGIGNORE: u64 = 64 * 1024;

/// Deletes what the top-level `.slugignore` matches; returns how many paths were removed.
pub(crate) fn apply_slugignore(build_dir: &Path) -> Result<usize, BuildError> {
    let Some(bytes) = read_small_file_nofollow(&build_dir.join(".slugignore"), MAX_SLUGIGNORE)?
    else {
        return Ok(0);
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut builder = GitignoreBuilder::new(build_dir);
    for line in text.lines() {
        let line = line.trim_end();
        // Heroku does not support negation; such lines are ignored.
        if line.trim_start().starts_with('!') {
            continue;
        }
        // A bad glob is skipped rather than failing the build, like git does.
        let _ = builder.add_line(None, line);
    }
    let matcher = builder.build().map_err(|e| {
        BuildError::io(
            "reading .slugignore",
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    let mut removed = 0;
    remove_matches(&matcher, build_dir, &mut removed)?;
    Ok(removed)
}

fn remove_matches(matcher: &Gitignore, dir: &Path, removed: &mut usize) -> Result<(), BuildError> {
    for entry in fs::read_dir(dir).ctx(|| format!("reading {}", dir.display()))? {
        let path = entry.ctx(|| format!("reading {}", dir.display()))?.path();
        let meta = fs::symlink_metadata(&path).ctx(|| format!("inspecting {}", path.display()))?;
        let is_dir = meta.is_dir();
        if matcher.matched(&path, is_dir).is_ignore() {
            if is_dir {
                fs::remove_dir_all(&path).ctx(|| format!("removing {}", path.display()))?;
            } else {
                fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            }
            *removed += 1;
        } else if is_dir {
            remove_matches(matcher, &path, removed)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_matches_and_ignores_negation() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("spec/models")).unwrap();
        fs::create_dir_all(d.join("lib/spec")).unwrap();
        fs::create_dir_all(d.join("docs")).unwrap();
        fs::write(d.join("spec/models/a_spec.rb"), "").unwrap();
        fs::write(d.join("lib/spec/keep.rb"), "").unwrap();
        fs::write(d.join("design.psd"), "").unwrap();
        fs::write(d.join("docs/keep.psd"), "").unwrap();
        fs::write(d.join("app.rb"), "").unwrap();
        fs::write(
            d.join(".slugignore"),
            "# comment\n/spec\n*.psd\n!docs/keep.psd\n",
        )
        .unwrap();
        assert_eq!(apply_slugignore(d).unwrap(), 3);
        assert!(!d.join("spec").exists());
        assert!(d.join("lib/spec/keep.rb").exists(), "anchored pattern");
        assert!(!d.join("design.psd").exists());
        assert!(
            !d.join("docs/keep.psd").exists(),
            "negation is not supported"
        );
        assert!(d.join("app.rb").exists());
    }

    #[test]
    fn no_slugignore_is_fine() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(apply_slugignore(t.path()).unwrap(), 0);
    }
}
