//! Slug packing throughput: `pack_slug` vs `tar -c | gzip -1` on the same tree.
//!
//! Run: `cargo run --release -p hoist-build --example pack_bench [-- <MB> [<dir>]]`
//! Generates a ~100 MB tree of mixed files (source-like text, JSON, already-compressed
//! random blobs, many tiny files), packs it three times with each method and prints the
//! best time, throughput, output size and the ratio.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Deterministic xorshift so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

const WORDS: &[&str] = &[
    "function",
    "return",
    "const",
    "require",
    "module",
    "exports",
    "class",
    "def",
    "end",
    "import",
    "from",
    "self",
    "this",
    "value",
    "if",
    "else",
    "for",
    "while",
    "true",
    "false",
    "null",
    "undefined",
    "string",
    "number",
    "async",
    "await",
    "=>",
    "{",
    "}",
];

fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut s = String::with_capacity(n + 32);
    while s.len() < n {
        s.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        s.push(if rng.next().is_multiple_of(9) {
            '\n'
        } else {
            ' '
        });
    }
    s.truncate(n);
    s.into_bytes()
}

fn generate(root: &Path, target_bytes: u64) -> (u64, u64) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut total, mut files) = (0u64, 0u64);
    let mut i = 0u64;
    while total < target_bytes {
        let dir = root.join(format!("node_modules/pkg{}/lib/sub{}", i % 97, i % 7));
        fs::create_dir_all(&dir).unwrap();
        let jitter = rng.next() as usize;
        let (name, data) = match i % 10 {
            // 50% small source files
            0..=4 => (format!("f{i}.js"), text(&mut rng, 200 + jitter % 8000)),
            // 20% tiny files (package.json, READMEs)
            5 | 6 => (format!("f{i}.json"), text(&mut rng, 40 + jitter % 400)),
            // 20% medium text
            7 | 8 => (
                format!("f{i}.rb"),
                text(&mut rng, 20_000 + jitter % 100_000),
            ),
            // 10% incompressible blobs (images, .gz, native binaries)
            _ => (format!("f{i}.bin"), rng.bytes(50_000 + jitter % 400_000)),
        };
        total += data.len() as u64;
        files += 1;
        fs::write(dir.join(name), data).unwrap();
        i += 1;
    }
    (total, files)
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        last = Some(v);
    }
    (best, last.expect("runs > 0"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100);
    let scratch = tempfile::tempdir().unwrap();
    let root: PathBuf = match args.get(2) {
        Some(d) => PathBuf::from(d),
        None => {
            let r = scratch.path().join("app");
            let (bytes, files) = generate(&r, mb << 20);
            println!(
                "generated {files} files, {:.1} MB",
                bytes as f64 / 1048576.0
            );
            r
        }
    };
    let input_bytes: u64 = walk_size(&root);
    let mb_in = input_bytes as f64 / 1048576.0;
    let slugs = scratch.path().join("slugs");

    let (ours, slug) = best_of(3, || {
        let _ = fs::remove_dir_all(&slugs);
        hoist_build::pack_slug(&root, &slugs, u64::MAX).unwrap()
    });
    let out = scratch.path().join("baseline.tgz");
    let (base, base_size) = best_of(3, || {
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C '{}' -cf - . | gzip -1 > '{}'",
                root.display(),
                out.display()
            ))
            .status()
            .unwrap();
        assert!(st.success());
        fs::metadata(&out).unwrap().len()
    });
    let thr = |d: Duration| mb_in / d.as_secs_f64();
    println!("input: {mb_in:.1} MB");
    println!(
        "pack_slug        : {:>7.3} s  {:>7.1} MB/s  -> {:.1} MB",
        ours.as_secs_f64(),
        thr(ours),
        slug.size as f64 / 1048576.0
    );
    println!(
        "tar -c | gzip -1 : {:>7.3} s  {:>7.1} MB/s  -> {:.1} MB",
        base.as_secs_f64(),
        thr(base),
        base_size as f64 / 1048576.0
    );
    println!(
        "ratio (pack_slug throughput / baseline throughput): {:.2}x; size ratio {:.2}",
        base.as_secs_f64() / ours.as_secs_f64(),
        slug.size as f64 / base_size as f64
    );
}

fn walk_size(p: &Path) -> u64 {
    let m = fs::symlink_metadata(p).unwrap();
    if m.is_dir() {
        fs::read_dir(p)
            .unwrap()
            .map(|e| walk_size(&e.unwrap().path()))
            .sum()
    } else {
        m.len()
    }
}
