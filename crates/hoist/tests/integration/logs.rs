//! The log stream across components: a syslog drain started by the test receives every
//! line of a dyno, in order, across a daemon restart.

use crate::harness::{deploy_procfile, TestPlatform};
use serde_json::json;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Collects the messages of RFC 6587 octet-counted syslog frames.
fn syslog_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let out = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(20) {
            let Ok(mut conn) = conn else { continue };
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                while let Ok(n) = conn.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // `<len> <msg>` frames.
                    while let Some(sp) = buf.iter().position(|b| *b == b' ') {
                        let Ok(len) = std::str::from_utf8(&buf[..sp])
                            .unwrap_or("x")
                            .parse::<usize>()
                        else {
                            break;
                        };
                        if buf.len() < sp + 1 + len {
                            break;
                        }
                        let msg = String::from_utf8_lossy(&buf[sp + 1..sp + 1 + len]).to_string();
                        out.lock().unwrap().push(msg);
                        buf.drain(..sp + 1 + len);
                    }
                }
            });
        }
    });
    (port, got)
}

fn lines_with(got: &Arc<Mutex<Vec<String>>>, prefix: &str) -> Vec<u32> {
    got.lock()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m.trim_end()
                .rsplit_once(' ')
                .and_then(|(_, n)| n.strip_prefix(prefix))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

fn wait_lines(got: &Arc<Mutex<Vec<String>>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines_with(got, "line-").len() < n {
        assert!(
            Instant::now() < deadline,
            "drain got {:?}",
            lines_with(got, "line-")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_syslog_drain_gets_every_line_in_order_across_a_daemon_restart() {
    let (port, got) = syslog_receiver();
    let mut p = TestPlatform::start_with(&["--allow-internal-url", "127.0.0.1"]);
    let (ok, out) = deploy_procfile(
        &p,
        "drained",
        "web: exec python3 -m http.server $PORT\n",
        &[],
    );
    assert!(ok, "{out}");
    let (s, d) = p.call(
        "POST",
        "/apps/drained/log-drains",
        Some(json!({"url": format!("syslog://127.0.0.1:{port}")})),
    );
    assert_eq!(s, 201, "{d}");
    assert!(d["token"].as_str().unwrap().starts_with("d."));
    let run = |p: &TestPlatform, from: u32, to: u32| {
        let (s, body) = p.call(
            "POST",
            "/apps/drained/dynos",
            Some(json!({"command": format!("for i in $(seq {from} {to}); do echo line-$i; done"), "attach": false})),
        );
        assert_eq!(s, 201, "{body}");
    };
    run(&p, 1, 200);
    wait_lines(&got, 200);
    p.stop();
    p.spawn();
    run(&p, 201, 400);
    wait_lines(&got, 400);
    let seen = lines_with(&got, "line-");
    assert_eq!(
        seen,
        (1..=400).collect::<Vec<_>>(),
        "every line, once, in order"
    );
    // The drain token is the syslog HOSTNAME of each frame.
    let token = d["token"].as_str().unwrap();
    assert!(got.lock().unwrap().iter().any(|m| m.contains(token)));
}

/// A log-tail URL is a capability of its creator: removing the collaborator ends their
/// live tail within seconds, and reconnecting to it does not renew it. The owner's own
/// tail goes on.
#[test]
fn a_removed_collaborators_log_tail_stops_and_is_not_renewed() {
    let p = TestPlatform::start();
    let alice = p.new_user("alice@example.test");
    let bob = p.new_user("bob@example.test");
    assert_eq!(
        p.call_as(&alice, "POST", "/apps", Some(json!({"name": "tails"})))
            .0,
        201
    );
    let (s, c) = p.call_as(
        &alice,
        "POST",
        "/apps/tails/collaborators",
        Some(json!({"user": "bob@example.test"})),
    );
    assert_eq!(s, 201, "{c}");
    let session = |token: &str| {
        let (s, body) = p.call_as(
            token,
            "POST",
            "/apps/tails/log-sessions",
            Some(json!({"tail": true, "lines": 1})),
        );
        assert_eq!(s, 201, "{body}");
        body["logplex_url"].as_str().unwrap().to_string()
    };
    let (bobs, alices) = (session(&bob), session(&alice));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut bob_stream = client.get(&bobs).send().unwrap();
    assert_eq!(bob_stream.status(), 200);
    let alice_stream = client.get(&alices).send().unwrap();
    assert_eq!(alice_stream.status(), 200);

    assert_eq!(
        p.call_as(
            &alice,
            "DELETE",
            "/apps/tails/collaborators/bob@example.test",
            None
        )
        .0,
        200
    );
    // The stream ends on its own (the read returns) well before the client's timeout.
    let mut rest = String::new();
    bob_stream
        .read_to_string(&mut rest)
        .expect("bob's tail ends cleanly");
    assert_eq!(client.get(&bobs).send().unwrap().status(), 404);
    // Alice still reads: a line she causes reaches her tail.
    p.call_as(
        &alice,
        "PATCH",
        "/apps/tails/config-vars",
        Some(json!({"MARK": "after-removal"})),
    );
    let mut alice_stream = alice_stream;
    let mut buf = [0u8; 4096];
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("MARK") && Instant::now() < deadline {
        let n = alice_stream.read(&mut buf).unwrap();
        assert!(n > 0, "alice's tail ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("MARK"), "{seen}");
}
