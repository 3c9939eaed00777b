//! Packs a source directory as a gzipped tarball for `hoist deploy`, honouring
//! `.gitignore` and leaving out `.git`.

use crate::error::{CliError, CliResult};
use std::io::Write;
use std::path::Path;

/// Writes `dir`'s files (paths relative to `dir`) as tar.gz into `out`; returns the
/// number of entries.
pub fn pack<W: Write>(dir: &Path, out: W) -> CliResult<usize> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        CliError::failed(format!("Packing {}: {what}: {e}", dir.display()))
    };
    let enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(enc);
    tar.follow_symlinks(false);
    let walker = ignore::WalkBuilder::new(dir)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|e| e.file_name() != ".git" && e.file_name() != ".gitmodules")
        .build();
    let mut count = 0;
    for entry in walker {
        let entry = entry.map_err(|e| fail("walking", &e))?;
        let rel = match entry.path().strip_prefix(dir) {
            Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
            _ => continue,
        };
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if ft.is_dir() {
            tar.append_dir(&rel, entry.path())
                .map_err(|e| fail(&rel.display().to_string(), &e))?;
        } else if ft.is_file() || ft.is_symlink() {
            tar.append_path_with_name(entry.path(), &rel)
                .map_err(|e| fail(&rel.display().to_string(), &e))?;
        } else {
            continue; // sockets, fifos
        }
        count += 1;
    }
    let enc = tar.into_inner().map_err(|e| fail("finishing", &e))?;
    enc.finish().map_err(|e| fail("compressing", &e))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn honours_gitignore_and_skips_git_dir() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join(".gitignore"), "node_modules/\n*.log\n").unwrap();
        std::fs::write(d.join("Procfile"), "web: node index.js\n").unwrap();
        std::fs::write(d.join("debug.log"), "x").unwrap();
        std::fs::create_dir_all(d.join("node_modules/a")).unwrap();
        std::fs::write(d.join("node_modules/a/i.js"), "x").unwrap();
        std::fs::create_dir_all(d.join(".git/objects")).unwrap();
        std::fs::write(d.join(".git/HEAD"), "ref").unwrap();
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::write(d.join("src/app.sh"), "#!/bin/sh\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.join("src/app.sh"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::os::unix::fs::symlink("src/app.sh", d.join("run")).unwrap();

        let mut buf = Vec::new();
        pack(d, &mut buf).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(buf.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        let mut archive = tar::Archive::new(raw.as_slice());
        let mut names = Vec::new();
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            if name == "src/app.sh" {
                assert_eq!(e.header().mode().unwrap() & 0o111, 0o111, "exec bit kept");
            }
            if name == "run" {
                assert!(e.header().entry_type().is_symlink());
            }
            names.push(name);
        }
        assert_eq!(
            names,
            vec![".gitignore", "Procfile", "run", "src", "src/app.sh"]
        );
    }
}
