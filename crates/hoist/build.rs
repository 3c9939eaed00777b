//! Packs the repository's built-in buildpacks into the binary (modes preserved), so
//! `hoist server` can unpack them into its data directory.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .join("../../buildpacks");
    println!("cargo:rerun-if-changed={}", root.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir")).join("buildpacks.tar");
    let file = std::fs::File::create(&out).expect("create buildpacks.tar");
    let mut tar = tar::Builder::new(file);
    tar.follow_symlinks(false);
    let mut entries: Vec<_> = std::fs::read_dir(&root)
        .expect("buildpacks/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        tar.append_dir_all(e.file_name(), e.path())
            .expect("pack buildpack");
    }
    tar.finish().expect("finish buildpacks.tar");
}
