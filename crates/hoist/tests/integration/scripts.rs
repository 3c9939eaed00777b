//! The README's own scripts, run as a newcomer would.

use crate::harness::{hoist_bin, repo_root};
use std::process::Command;

/// `scripts/start` puts `hoist` where a shell finds it (README item of the correctness
/// sweep): links that run the build, never a replaced foreign file, and the exact PATH
/// line when the directory cannot be written.
#[test]
fn install_bins_links_the_binaries_onto_the_path() {
    let bin_dir = hoist_bin().parent().unwrap().to_path_buf();
    let dest = tempfile::tempdir().unwrap();
    let foreign = dest.path().join("hoist-shim");
    std::fs::write(&foreign, "#!/bin/sh\necho not ours\n").unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/install-bins"))
        .arg(dest.path())
        .env("HOIST_BIN_DIR", &bin_dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let link = dest.path().join("hoist");
    assert_eq!(std::fs::read_link(&link).unwrap(), bin_dir.join("hoist"));
    let version = Command::new(&link).arg("--version").output().unwrap();
    assert!(version.status.success(), "{version:?}");
    // Someone else's file stays, and the script says so.
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "#!/bin/sh\necho not ours\n"
    );
    assert!(text.contains("left alone"), "{text}");
    // A directory that cannot be used gets the PATH line instead.
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/install-bins"))
        .arg(dest.path().join("missing"))
        .env("HOIST_BIN_DIR", &bin_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains(&format!("export PATH=\"{}:$PATH\"", bin_dir.display())),
        "{text}"
    );
}
