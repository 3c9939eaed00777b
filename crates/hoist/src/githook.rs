//! `hoist git-hook pre-receive`: runs inside `git receive-pack` for a push. It sends
//! the pushed tree to the server (which builds it) and prints the build output, which
//! git relays to the pusher as `remote:` lines. A non-zero exit rejects the push.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const STATUS_PREFIX: &str = "\u{1}hoist-push-status: ";

pub fn main(args: &[String]) -> i32 {
    if args.first().map(String::as_str) != Some("pre-receive") {
        eprintln!("usage: hoist git-hook pre-receive");
        return 2;
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(secret), Some(app), Some(user)) = (
        var("HOIST_HOOK_URL"),
        var("HOIST_HOOK_SECRET"),
        var("HOIST_APP_ID"),
        var("HOIST_USER_ID"),
    ) else {
        println!(" !     This repository only accepts pushes through the Hoist server.");
        return 1;
    };
    let mut updates = Vec::new();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [old, new, r] = parts[..] {
            updates.push((old.to_string(), new.to_string(), r.to_string()));
        }
    }
    let mut status = 0;
    for (_old, new, git_ref) in updates {
        if new.bytes().all(|b| b == b'0') {
            println!(" !     Deleting {git_ref} is not allowed on Hoist.");
            status = 1;
            continue;
        }
        // Refused here, before the tree is packed and uploaded for nothing.
        if let Some(refusal) = hoist_api::git::branch_refusal(&git_ref) {
            println!("{refusal}");
            status = 1;
            continue;
        }
        status = status.max(deploy(&url, &secret, &app, &user, &new, &git_ref));
    }
    status
}

fn deploy(url: &str, secret: &str, app: &str, user: &str, new: &str, git_ref: &str) -> i32 {
    let mut out = std::io::stdout();
    let mut archive = match Command::new("git")
        .args(["archive", "--format=tar.gz", new])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!(" !     Could not read the pushed commit: {e}");
            return 1;
        }
    };
    let Some(tar) = archive.stdout.take() else {
        return 1;
    };
    let client = match reqwest::blocking::Client::builder().timeout(None).build() {
        Ok(c) => c,
        Err(e) => {
            println!(" !     {e}");
            return 1;
        }
    };
    let resp = client
        .post(url)
        .query(&[("app", app), ("user", user), ("ref", git_ref), ("new", new)])
        .header("x-hoist-hook-secret", secret)
        .body(reqwest::blocking::Body::new(tar))
        .send();
    let _ = archive.wait();
    let resp = match resp {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            println!(
                " !     The Hoist server refused the push: HTTP {}",
                r.status()
            );
            return 1;
        }
        Err(e) => {
            println!(" !     Could not reach the Hoist server: {e}");
            return 1;
        }
    };
    let mut verdict = 1;
    for line in BufReader::new(resp).lines() {
        let Ok(line) = line else { break };
        if let Some(v) = line.strip_prefix(STATUS_PREFIX) {
            verdict = i32::from(v.trim() != "ok");
            continue;
        }
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    verdict
}
