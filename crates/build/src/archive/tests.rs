use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::os::unix::fs::symlink;

const LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: 10 << 20,
    max_entries: 1000,
    max_depth: 32,
    allow_outside_symlinks: false,
};

/// An entry for hand-made (possibly malicious) tarballs.
enum E<'a> {
    Dir(&'a [u8]),
    File(&'a [u8], &'a [u8]),
    Link(&'a [u8], &'a [u8]),
    Hard(&'a [u8], &'a [u8]),
    Kind(&'a [u8], EntryType),
}

fn raw_tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for e in entries {
        match e {
            E::Dir(n) => w.append(EntryType::Directory, n, None, 0o755, 0, 0, io::empty()),
            E::File(n, d) => w.append(EntryType::Regular, n, None, 0o644, 0, d.len() as u64, *d),
            E::Link(n, t) => w.append(EntryType::Symlink, n, Some(t), 0o777, 0, 0, io::empty()),
            E::Hard(n, t) => w.append(EntryType::Link, n, Some(t), 0o644, 0, 0, io::empty()),
            E::Kind(n, k) => w.append(*k, n, None, 0o644, 0, 0, io::empty()),
        }
        .unwrap();
    }
    w.finish().unwrap()
}

fn gz(tar: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(tar).unwrap();
    e.finish().unwrap()
}

/// A test area: `<t>/victim/secret` must never change, `<t>/work/dest` is the target.
struct Area {
    t: tempfile::TempDir,
}

impl Area {
    fn new() -> Area {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("victim")).unwrap();
        fs::write(t.path().join("victim/secret"), "secret").unwrap();
        fs::create_dir_all(t.path().join("work")).unwrap();
        Area { t }
    }
    fn dest(&self) -> PathBuf {
        self.t.path().join("work/dest")
    }
    fn victim(&self) -> PathBuf {
        self.t.path().join("victim")
    }
    fn unpack(&self, tar: &[u8]) -> Result<(), BuildError> {
        unpack_tar_gz(gz(tar).as_slice(), &self.dest(), &LIMITS)
    }
    /// Every path under the area except inside `dest`.
    fn outside_listing(&self) -> BTreeSet<PathBuf> {
        let mut all = BTreeSet::new();
        let mut todo = vec![self.t.path().to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p == self.dest() {
                    continue;
                }
                if fs::symlink_metadata(&p).unwrap().is_dir() {
                    todo.push(p.clone());
                }
                all.insert(p);
            }
        }
        all
    }
    fn assert_untouched(&self) {
        assert_eq!(
            fs::read_to_string(self.victim().join("secret")).unwrap(),
            "secret"
        );
        let expected: BTreeSet<PathBuf> = [
            self.t.path().join("victim"),
            self.t.path().join("victim/secret"),
            self.t.path().join("work"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            self.outside_listing(),
            expected,
            "something was written outside dest"
        );
    }
}

fn assert_unsafe(r: Result<(), BuildError>) {
    match r {
        Err(BuildError::UnsafeEntry { .. }) => {}
        other => panic!("expected UnsafeEntry, got {other:?}"),
    }
}

#[test]
fn dot_dot_entry_is_an_error_not_skipped() {
    let a = Area::new();
    let tar = raw_tar(&[
        E::File(b"./ok", b"1"),
        E::File(b"../victim/secret", b"pwned"),
    ]);
    assert_unsafe(a.unpack(&tar));
    let tar = raw_tar(&[E::File(b"a/../../victim/x", b"pwned")]);
    assert_unsafe(a.unpack(&tar));
    assert!(!a.dest().exists(), "nothing may appear on error");
    a.assert_untouched();
}

#[test]
fn absolute_path_is_an_error() {
    let a = Area::new();
    let abs = a.victim().join("secret");
    let tar = raw_tar(&[E::File(abs.as_os_str().as_bytes(), b"pwned")]);
    assert_unsafe(a.unpack(&tar));
    a.assert_untouched();
}

#[test]
fn symlink_out_then_file_through_it_is_rejected() {
    let a = Area::new();
    let victim = a.victim();
    // Absolute target (think /etc), then a file written "through" it.
    let tar = raw_tar(&[
        E::Link(b"./etc", victim.as_os_str().as_bytes()),
        E::File(b"./etc/secret", b"pwned"),
    ]);
    assert_unsafe(a.unpack(&tar));
    // Relative climb.
    let tar = raw_tar(&[
        E::Link(b"./up", b"../../victim"),
        E::File(b"./up/secret", b"pwned"),
    ]);
    assert_unsafe(a.unpack(&tar));
    a.assert_untouched();
}

#[test]
fn symlink_absolute_to_etc_is_rejected() {
    let a = Area::new();
    let tar = raw_tar(&[
        E::Link(b"./etc", b"/etc"),
        E::File(b"./etc/hoist-pwned", b"x"),
    ]);
    assert_unsafe(a.unpack(&tar));
    assert!(!Path::new("/etc/hoist-pwned").exists());
}

#[test]
fn file_through_an_inside_symlink_is_rejected() {
    // Even a harmless in-tree symlink is never written through.
    let a = Area::new();
    let tar = raw_tar(&[
        E::Dir(b"./d/"),
        E::Link(b"./l", b"d"),
        E::File(b"./l/f", b"x"),
    ]);
    assert_unsafe(a.unpack(&tar));
}

#[test]
fn symlink_chains_that_escape_are_caught() {
    let a = Area::new();
    // Lexically each looks fine; resolved, `b` is the parent of the tree.
    let tar = raw_tar(&[
        E::Link(b"./a", b"."),
        E::Dir(b"./x/"),
        E::Link(b"./x/b", b"../a/.."),
    ]);
    // `x/b -> ../a/..`: ../a = a -> . = root, then .. climbs out.
    assert_unsafe(a.unpack(&tar));
    assert!(!a.dest().exists());
}

#[test]
fn device_and_fifo_entries_are_rejected() {
    for kind in [EntryType::Char, EntryType::Block, EntryType::Fifo] {
        let a = Area::new();
        let tar = raw_tar(&[E::Kind(b"./dev", kind)]);
        assert_unsafe(a.unpack(&tar));
        assert!(!a.dest().exists());
    }
}

#[test]
fn tar_bomb_over_the_byte_limit_is_rejected() {
    let a = Area::new();
    let mut w = TarWriter::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let size = 20u64 << 20;
    w.append(
        EntryType::Regular,
        b"./zeros",
        None,
        0o644,
        0,
        size,
        io::repeat(0).take(size),
    )
    .unwrap();
    let data = w.finish().unwrap().finish().unwrap();
    assert!(data.len() < 1 << 20, "the bomb is small when compressed");
    match unpack_tar_gz(data.as_slice(), &a.dest(), &LIMITS) {
        Err(BuildError::ArchiveTooLarge { what, .. }) => assert_eq!(what, "total unpacked size"),
        other => panic!("expected ArchiveTooLarge, got {other:?}"),
    }
    assert!(!a.dest().exists());
    a.assert_untouched();
}

#[test]
fn entry_count_and_depth_limits() {
    let a = Area::new();
    let names: Vec<Vec<u8>> = (0..20).map(|i| format!("./f{i}").into_bytes()).collect();
    let entries: Vec<E<'_>> = names.iter().map(|n| E::File(n, b"")).collect();
    let limits = UnpackLimits {
        max_entries: 10,
        ..LIMITS
    };
    let r = unpack_tar_gz(gz(&raw_tar(&entries)).as_slice(), &a.dest(), &limits);
    assert!(matches!(
        r,
        Err(BuildError::ArchiveTooLarge {
            what: "entry count",
            ..
        })
    ));
    let deep = format!("./{}f", "d/".repeat(40));
    let r = a.unpack(&raw_tar(&[E::File(deep.as_bytes(), b"x")]));
    assert!(matches!(
        r,
        Err(BuildError::ArchiveTooLarge {
            what: "directory depth",
            ..
        })
    ));
}

#[test]
fn huge_long_name_header_is_refused_without_reading_it() {
    let a = Area::new();
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::GNULongName);
    h.set_size(1 << 40);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0u8; 1024]);
    assert!(matches!(a.unpack(&tar), Err(BuildError::CorruptArchive(_))));
}

#[test]
fn setuid_bits_are_dropped_and_hard_links_work() {
    let a = Area::new();
    let mut w = TarWriter::new(Vec::new());
    w.append(
        EntryType::Regular,
        b"./bin/tool",
        None,
        0o4755,
        0,
        2,
        &b"#!"[..],
    )
    .unwrap();
    w.append(
        EntryType::Link,
        b"./bin/tool2",
        Some(b"./bin/tool"),
        0o755,
        0,
        0,
        io::empty(),
    )
    .unwrap();
    let tar = w.finish().unwrap();
    a.unpack(&tar).unwrap();
    let m = fs::metadata(a.dest().join("bin/tool")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755);
    assert_eq!(fs::read(a.dest().join("bin/tool2")).unwrap(), b"#!");
    // A hard link to something outside is refused.
    let b = Area::new();
    let target = b.victim().join("secret");
    let tar = raw_tar(&[E::Hard(b"./h", target.as_os_str().as_bytes())]);
    assert_unsafe(b.unpack(&tar));
    b.assert_untouched();
}

#[test]
fn dest_must_be_free() {
    let a = Area::new();
    fs::create_dir_all(a.dest()).unwrap();
    fs::write(a.dest().join("x"), "keep").unwrap();
    let r = a.unpack(&raw_tar(&[E::File(b"./y", b"1")]));
    assert!(matches!(r, Err(BuildError::DestinationExists(_))));
    assert_eq!(fs::read_to_string(a.dest().join("x")).unwrap(), "keep");
}

fn sample_app(root: &Path) {
    fs::create_dir_all(root.join(".git/objects")).unwrap();
    fs::write(root.join(".git/HEAD"), "ref: refs/heads/main").unwrap();
    fs::create_dir_all(root.join("node_modules/.bin")).unwrap();
    fs::write(root.join("Procfile"), "web: node server.js\n").unwrap();
    fs::write(root.join("server.js"), "console.log(1)").unwrap();
    let long = format!("{}/{}.js", "deep".repeat(20), "n".repeat(120));
    fs::create_dir_all(root.join(Path::new(&long).parent().unwrap())).unwrap();
    fs::write(root.join(&long), "long").unwrap();
    fs::write(root.join("node_modules/tool.js"), "#!/usr/bin/env node").unwrap();
    fs::set_permissions(
        root.join("node_modules/tool.js"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    symlink("../tool.js", root.join("node_modules/.bin/tool")).unwrap();
}

#[test]
fn slug_roundtrip_keeps_tree_and_drops_git() {
    let t = tempfile::tempdir().unwrap();
    let app = t.path().join("app");
    sample_app(&app);
    let slugs = t.path().join("slugs");
    let slug = pack_slug(&app, &slugs, 100 << 20).unwrap();
    assert_eq!(slug.path, slugs.join(format!("{}.tgz", slug.id)));
    assert_eq!(slug.size, fs::metadata(&slug.path).unwrap().len());
    let digest = hex::encode(Sha256::digest(fs::read(&slug.path).unwrap()));
    assert_eq!(digest, slug.id, "content-addressed by the compressed bytes");

    // Names are rooted at ./ and .git is absent.
    let bytes = fs::read(&slug.path).unwrap();
    let mut ar = tar::Archive::new(GzDecoder::new(bytes.as_slice()));
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect();
    assert_eq!(names[0], "./");
    assert!(names.iter().all(|n| n.starts_with("./")), "{names:?}");
    assert!(names.contains(&"./Procfile".to_string()));
    assert!(!names.iter().any(|n| n.contains(".git")), "{names:?}");

    let dest = t.path().join("unpacked");
    unpack_slug(&slug.path, &dest).unwrap();
    unpack_slug(&slug.path, &dest).unwrap(); // idempotent
    assert_eq!(
        fs::read_to_string(dest.join("Procfile")).unwrap(),
        "web: node server.js\n"
    );
    let long = format!("{}/{}.js", "deep".repeat(20), "n".repeat(120));
    assert_eq!(fs::read_to_string(dest.join(long)).unwrap(), "long");
    assert_eq!(
        fs::read_link(dest.join("node_modules/.bin/tool")).unwrap(),
        Path::new("../tool.js")
    );
    assert_eq!(
        fs::metadata(dest.join("node_modules/tool.js"))
            .unwrap()
            .mode()
            & 0o777,
        0o755
    );
    assert!(!dest.join(".git").exists());

    // Same tree, same slug id.
    let again = pack_slug(&app, &slugs, 100 << 20).unwrap();
    assert_eq!(again.id, slug.id);
}

#[test]
fn pack_never_follows_symlinks_out_of_the_app() {
    let t = tempfile::tempdir().unwrap();
    let app = t.path().join("app");
    fs::create_dir_all(&app).unwrap();
    fs::create_dir_all(t.path().join("secret")).unwrap();
    fs::write(t.path().join("secret/key"), "TOPSECRET").unwrap();
    symlink(t.path().join("secret"), app.join("s")).unwrap();
    symlink("/etc/shadow", app.join("shadow")).unwrap();
    let slug = pack_slug(&app, &t.path().join("slugs"), 1 << 20).unwrap();
    let mut plain = Vec::new();
    GzDecoder::new(fs::File::open(&slug.path).unwrap())
        .read_to_end(&mut plain)
        .unwrap();
    assert!(!plain.windows(9).any(|w| w == b"TOPSECRET"));
}

#[test]
fn slug_over_the_limit_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let app = t.path().join("app");
    fs::create_dir_all(&app).unwrap();
    // Incompressible data.
    let mut data = vec![0u8; 256 * 1024];
    getrandom::getrandom(&mut data).unwrap();
    fs::write(app.join("blob"), &data).unwrap();
    let slugs = t.path().join("slugs");
    let err = pack_slug(&app, &slugs, 100 * 1024).unwrap_err();
    assert!(matches!(err, BuildError::SlugTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("slug size exceeds"), "{err}");
    let leftovers: Vec<_> = fs::read_dir(&slugs).unwrap().collect();
    assert!(leftovers.is_empty(), "temp file must be removed");
}

#[test]
fn a_slug_the_dyno_side_would_refuse_is_never_packed() {
    let limit = SLUG_UNPACK_LIMITS.max_depth;
    let t = tempfile::tempdir().unwrap();
    let slugs = t.path().join("slugs");
    // As deep as the dyno side accepts: packs, and unpacks as a dyno would.
    let ok = t.path().join("ok");
    let deepest: PathBuf = (1..limit).map(|_| "d").collect();
    fs::create_dir_all(ok.join(&deepest)).unwrap();
    fs::write(ok.join(&deepest).join("f"), "x").unwrap();
    let slug = pack_slug(&ok, &slugs, 100 << 20).unwrap();
    unpack_slug(&slug.path, &t.path().join("unpacked")).unwrap();
    // One level deeper: the build fails with the reason, and leaves no slug behind.
    let deep = t.path().join("deep");
    let too_deep: PathBuf = (0..limit).map(|_| "d").collect();
    fs::create_dir_all(deep.join(&too_deep)).unwrap();
    fs::write(deep.join(&too_deep).join("f"), "x").unwrap();
    let before: Vec<_> = fs::read_dir(&slugs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let err = pack_slug(&deep, &slugs, 100 << 20).unwrap_err();
    assert!(
        matches!(err, BuildError::SlugOverDynoLimit { what: "directory depth", limit: l, .. } if l == limit as u64),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("could not start on a dyno"), "{msg}");
    assert!(
        msg.contains("directory depth exceeds the dyno's limit of 64"),
        "{msg}"
    );
    let after: Vec<_> = fs::read_dir(&slugs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after, "no slug or temp file is left");
}

#[test]
fn packer_and_unpacker_count_alike() {
    // One definition of the limits: what the tally lets through at the edge it also
    // lets through for the packer, and the next step fails for both.
    let limits = UnpackLimits {
        max_bytes: 10,
        max_entries: 2,
        max_depth: 2,
        allow_outside_symlinks: true,
    };
    let mut t = Tally::new(&limits);
    assert!(t.entry(2).is_ok());
    assert_eq!(t.entry(3).unwrap_err().what, "directory depth");
    assert!(t.file(10).is_ok());
    assert_eq!(t.file(1).unwrap_err().what, "total unpacked size");
    assert_eq!(t.entry(0).unwrap_err().what, "entry count");
    assert!(Tally::long_name(MAX_EXTENSION_BYTES as usize - 1).is_ok());
    assert!(Tally::long_name(MAX_EXTENSION_BYTES as usize).is_err());
}

#[test]
fn source_pack_respects_ignores() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    sample_app(&src);
    fs::write(src.join(".gitignore"), "node_modules/\n*.log\n").unwrap();
    fs::write(src.join(".slugignore"), "docs\n").unwrap();
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("docs/big.pdf"), "pdf").unwrap();
    fs::write(src.join("debug.log"), "log").unwrap();
    let dest = t.path().join("source.tgz");
    let size = pack_source_dir(&src, &dest).unwrap();
    assert_eq!(size, fs::metadata(&dest).unwrap().len());
    let out = t.path().join("out");
    unpack_tar_gz(fs::File::open(&dest).unwrap(), &out, &LIMITS).unwrap();
    assert!(out.join("Procfile").exists());
    assert!(out.join(".gitignore").exists());
    assert!(out.join(".slugignore").exists());
    assert!(!out.join(".git").exists());
    assert!(!out.join("node_modules").exists());
    assert!(!out.join("debug.log").exists());
    assert!(!out.join("docs").exists());
}

// ---------------------------------------------------------------------------------------
// Fuzz-style: random (often hostile) archives and byte mutations never write outside.
// ---------------------------------------------------------------------------------------

fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    let comp = prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("victim".to_string()),
        Just("x".repeat(60)),
    ];
    (any::<bool>(), prop::collection::vec(comp, 1..5)).prop_map(|(abs, comps)| {
        let mut s = if abs {
            "/".to_string()
        } else {
            "./".to_string()
        };
        s.push_str(&comps.join("/"));
        s.into_bytes()
    })
}

#[derive(Debug, Clone)]
enum Gen {
    Dir(Vec<u8>),
    File(Vec<u8>, Vec<u8>),
    Link(Vec<u8>, Vec<u8>),
    Hard(Vec<u8>, Vec<u8>),
    Special(Vec<u8>, u8),
}

fn entry_strategy() -> impl Strategy<Value = Gen> {
    prop_oneof![
        name_strategy().prop_map(Gen::Dir),
        (name_strategy(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(n, d)| Gen::File(n, d)),
        (name_strategy(), name_strategy()).prop_map(|(n, t)| Gen::Link(n, t)),
        (name_strategy(), name_strategy()).prop_map(|(n, t)| Gen::Hard(n, t)),
        (
            name_strategy(),
            prop_oneof![Just(b'3'), Just(b'4'), Just(b'6'), Just(b'S'), Just(b'V')]
        )
            .prop_map(|(n, k)| Gen::Special(n, k)),
    ]
}

fn build_generated(entries: &[Gen], victim: &Path) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    let fix = |n: &[u8]| -> Vec<u8> {
        // Some absolute names point straight at the victim directory.
        String::from_utf8_lossy(n)
            .replace("/victim", &victim.to_string_lossy())
            .into_bytes()
    };
    for e in entries {
        let r = match e {
            Gen::Dir(n) => w.append(
                EntryType::Directory,
                &fix(n),
                None,
                0o755,
                0,
                0,
                io::empty(),
            ),
            Gen::File(n, d) => w.append(
                EntryType::Regular,
                &fix(n),
                None,
                0o644,
                0,
                d.len() as u64,
                d.as_slice(),
            ),
            Gen::Link(n, t) => w.append(
                EntryType::Symlink,
                &fix(n),
                Some(&fix(t)),
                0o777,
                0,
                0,
                io::empty(),
            ),
            Gen::Hard(n, t) => w.append(
                EntryType::Link,
                &fix(n),
                Some(&fix(t)),
                0o644,
                0,
                0,
                io::empty(),
            ),
            Gen::Special(n, k) => {
                w.append(EntryType::new(*k), &fix(n), None, 0o644, 0, 0, io::empty())
            }
        };
        r.unwrap();
    }
    w.finish().unwrap()
}

/// Applies byte mutations, then repairs header checksums so mutated headers are parsed
/// rather than rejected up front.
fn mutate(mut tar: Vec<u8>, mutations: &[(usize, u8)]) -> Vec<u8> {
    let header_offsets: Vec<usize> = {
        let mut ar = tar::Archive::new(tar.as_slice());
        ar.entries()
            .unwrap()
            .raw(true)
            .filter_map(|e| e.ok().map(|e| e.raw_header_position() as usize))
            .collect()
    };
    if tar.is_empty() {
        return tar;
    }
    for &(off, byte) in mutations {
        let i = off % tar.len();
        tar[i] = byte;
    }
    for off in header_offsets {
        if off + 512 <= tar.len() {
            let mut h = Header::new_old();
            h.as_mut_bytes().copy_from_slice(&tar[off..off + 512]);
            h.set_cksum();
            tar[off..off + 512].copy_from_slice(h.as_bytes());
        }
    }
    tar
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn random_archives_never_write_outside_dest(
        entries in prop::collection::vec(entry_strategy(), 1..8),
        mutations in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
    ) {
        let a = Area::new();
        let tar = mutate(build_generated(&entries, &a.victim()), &mutations);
        let result = a.unpack(&tar);
        a.assert_untouched();
        match result {
            Ok(()) => {
                // Every symlink inside must resolve inside.
                let mut todo = vec![a.dest()];
                while let Some(d) = todo.pop() {
                    for e in fs::read_dir(&d).unwrap() {
                        let p = e.unwrap().path();
                        let m = fs::symlink_metadata(&p).unwrap();
                        prop_assert!(m.file_type().is_dir() || m.file_type().is_file() || m.file_type().is_symlink());
                        prop_assert_eq!(m.mode() & 0o7000, 0);
                        if m.is_dir() {
                            todo.push(p);
                        } else if m.file_type().is_symlink() {
                            let rel = p.strip_prefix(a.dest()).unwrap().to_path_buf();
                            prop_assert!(link_stays_inside(&a.dest(), &rel).unwrap());
                        }
                    }
                }
            }
            Err(_) => prop_assert!(!a.dest().exists()),
        }
    }
}

#[test]
fn slugs_may_link_outside_but_sources_may_not() {
    // A venv's python3 -> /usr/bin/python3 resolves inside the dyno's container.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "python3", "/usr/bin/python3")
        .unwrap();
    let raw = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(unpack_tar_gz(gz(&raw).as_slice(), &dir.path().join("src"), &LIMITS).is_err());
    unpack_tar_gz(
        gz(&raw).as_slice(),
        &dir.path().join("slug"),
        &crate::SLUG_UNPACK_LIMITS,
    )
    .unwrap();
    let link = std::fs::read_link(dir.path().join("slug/python3")).unwrap();
    assert_eq!(link, std::path::Path::new("/usr/bin/python3"));
}

#[test]
fn a_source_wrapped_in_one_top_level_dir_is_unwrapped() {
    // GitHub's `/tarball/<ref>`: `owner-repo-sha/` holds the tree (plus a global
    // pax header, which is no entry).
    let a = Area::new();
    let tar = raw_tar(&[
        E::Dir(b"owner-repo-0123abc/"),
        E::File(b"owner-repo-0123abc/Procfile", b"web: x\n"),
        E::Dir(b"owner-repo-0123abc/src/"),
        E::File(b"owner-repo-0123abc/src/main.go", b"package main\n"),
        E::Link(b"owner-repo-0123abc/link", b"src/main.go"),
    ]);
    unpack_source_tar_gz(gz(&tar).as_slice(), &a.dest(), &LIMITS).unwrap();
    assert_eq!(
        fs::read_to_string(a.dest().join("Procfile")).unwrap(),
        "web: x\n"
    );
    assert!(a.dest().join("src/main.go").is_file());
    assert!(a.dest().join("link").is_file());
    assert!(!a.dest().join("owner-repo-0123abc").exists());
    a.assert_untouched();
    // The plain unpack keeps the wrapper (buildpacks look for bin/ themselves).
    let b = Area::new();
    b.unpack(&tar).unwrap();
    assert!(b.dest().join("owner-repo-0123abc/Procfile").is_file());
}

#[test]
fn sources_with_more_than_one_top_level_entry_are_kept_as_they_are() {
    let a = Area::new();
    let tar = raw_tar(&[
        E::Dir(b"./app/"),
        E::File(b"./app/x", b"1"),
        E::File(b"./Procfile", b"p"),
    ]);
    unpack_source_tar_gz(gz(&tar).as_slice(), &a.dest(), &LIMITS).unwrap();
    assert!(a.dest().join("app/x").is_file() && a.dest().join("Procfile").is_file());
    // A lone top-level file or symlink is not a wrapper either.
    let b = Area::new();
    let tar = raw_tar(&[E::Dir(b"./d/"), E::Link(b"./l", b"d")]);
    unpack_source_tar_gz(gz(&tar).as_slice(), &b.dest(), &LIMITS).unwrap();
    assert!(b.dest().join("d").is_dir());
    let c = Area::new();
    let tar = raw_tar(&[E::Link(b"./l", b".")]);
    unpack_source_tar_gz(gz(&tar).as_slice(), &c.dest(), &LIMITS).unwrap();
    assert!(fs::symlink_metadata(c.dest().join("l"))
        .unwrap()
        .is_symlink());
}

#[test]
fn unwrapping_never_lets_a_link_leave_the_unwrapped_tree() {
    // Inside the archive `top/l -> ../top/f` stays in; in `dest` it would point out.
    let a = Area::new();
    let tar = raw_tar(&[
        E::Dir(b"top/"),
        E::File(b"top/f", b"x"),
        E::Link(b"top/l", b"../top/f"),
    ]);
    assert_unsafe(unpack_source_tar_gz(
        gz(&tar).as_slice(),
        &a.dest(),
        &LIMITS,
    ));
    assert!(!a.dest().exists());
    a.assert_untouched();
}
