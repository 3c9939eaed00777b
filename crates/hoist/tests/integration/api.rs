//! The Platform API over real HTTP: the happy path and every kind of bad input.

use crate::harness::{parse, TestPlatform};
use serde_json::json;

#[test]
fn first_start_writes_a_private_owner_token_and_sigterm_stops_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let mut p = TestPlatform::start();
    let meta = std::fs::metadata(p.data_dir().join("admin.token")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let (s, acct) = p.call("GET", "/account", None);
    assert_eq!(s, 200);
    assert_eq!(acct["email"], "admin@hoist.local");
    assert_eq!(p.stop(), Some(0), "{}", p.server_log());
    // A restart on the same data directory keeps the state and the token.
    p.spawn();
    assert_eq!(p.call("GET", "/account", None).0, 200);
}

#[test]
fn app_lifecycle_config_releases_and_rollback() {
    let p = TestPlatform::start();
    let (s, app) = p.call("POST", "/apps", Some(json!({"name": "demo"})));
    assert_eq!(s, 201, "{app}");
    assert_eq!(
        app["web_url"],
        format!("http://demo.localhost:{}/", p.router_port)
    );
    let (s, gen) = p.call("POST", "/apps", None);
    assert_eq!(s, 201);
    assert!(gen["name"].as_str().unwrap().len() >= 3);

    let (s, cfg) = p.call(
        "PATCH",
        "/apps/demo/config-vars",
        Some(json!({"FOO": "1", "BAR": "2"})),
    );
    assert_eq!((s, cfg.clone()), (200, json!({"FOO": "1", "BAR": "2"})));
    let (_, cfg) = p.call(
        "PATCH",
        "/apps/demo/config-vars",
        Some(json!({"FOO": null})),
    );
    assert_eq!(cfg, json!({"BAR": "2"}));

    let r = p
        .request("GET", "/apps/demo/releases", Some(&p.token))
        .header("Range", "version ..; max=10, order=desc")
        .send()
        .unwrap();
    let (s, rel) = parse(r);
    assert_eq!(s, 200);
    let descs: Vec<&str> = rel
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["description"].as_str().unwrap())
        .collect();
    assert_eq!(
        descs,
        [
            "Remove FOO config vars",
            "Set BAR, FOO config vars",
            "Initial release"
        ]
    );
    assert_eq!(rel[0]["current"], true);
    assert_eq!(rel[0]["version"], 3);

    let (s, v2cfg) = p.call("GET", "/apps/demo/releases/v2/config-vars", None);
    assert_eq!((s, v2cfg), (200, json!({"FOO": "1", "BAR": "2"})));
    let v2 = p.call("GET", "/apps/demo/releases/2", None).1;
    let (s, rb) = p.call(
        "POST",
        "/apps/demo/releases",
        Some(json!({"release": v2["id"]})),
    );
    assert_eq!(s, 201, "{rb}");
    assert_eq!(
        (rb["version"].as_i64(), rb["description"].as_str()),
        (Some(4), Some("Rollback to v2"))
    );
    assert_eq!(
        p.call("GET", "/apps/demo/config-vars", None).1,
        json!({"FOO": "1", "BAR": "2"})
    );

    let (s, _) = p.call("PATCH", "/apps/demo", Some(json!({"maintenance": true})));
    assert_eq!(s, 200);
    assert_eq!(p.call("GET", "/apps/demo", None).1["maintenance"], true);
    assert_eq!(p.call("GET", "/apps/demo/pipeline-couplings", None).0, 404);
    let (s, doms) = p.call("GET", "/apps/demo/domains", None);
    assert_eq!((s, doms[0]["kind"].as_str()), (200, Some("heroku")));
    assert_eq!(doms[0]["hostname"], "demo.localhost");
    let (s, d) = p.call(
        "POST",
        "/apps/demo/domains",
        Some(json!({"hostname": "www.example.test", "sni_endpoint": null})),
    );
    assert_eq!((s, d["kind"].as_str()), (201, Some("custom")));
    assert_eq!(
        p.call("DELETE", "/apps/demo/domains/www.example.test", None)
            .0,
        200
    );

    assert_eq!(p.call("DELETE", "/apps/demo", None).0, 200);
    assert_eq!(p.call("GET", "/apps/demo", None).0, 404);
}

#[test]
fn bad_input_gets_clear_json_errors_and_writes_nothing() {
    let p = TestPlatform::start();
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "ok-app"}))).0,
        201
    );
    for (name, status) in [
        ("ok-app", 409),
        ("Bad_Name", 422),
        ("ab", 422),
        ("1abc", 422),
        ("abc-", 422),
    ] {
        let (s, body) = p.call("POST", "/apps", Some(json!({"name": name})));
        assert_eq!(s, status, "{name}: {body}");
        assert!(
            body["id"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
    // Wrong types and malformed JSON.
    assert_eq!(p.call("POST", "/apps", Some(json!({"name": 42}))).0, 422);
    let (s, body) = parse(
        p.request("PATCH", "/apps/ok-app/config-vars", Some(&p.token))
            .header("Content-Type", "application/json")
            .body("{\"A\": ")
            .send()
            .unwrap(),
    );
    assert_eq!((s, body["id"].as_str()), (400, Some("bad_request")));
    for bad in [
        json!({"1BAD": "x"}),
        json!({"A-B": "x"}),
        json!({"OK": {"nested": 1}}),
        json!(["A"]),
    ] {
        let (s, body) = p.call("PATCH", "/apps/ok-app/config-vars", Some(bad.clone()));
        assert_eq!(s, 422, "{bad}: {body}");
    }
    let big = "x".repeat(33 * 1024);
    assert_eq!(
        p.call(
            "PATCH",
            "/apps/ok-app/config-vars",
            Some(json!({"GOOD": "1", "BIG": big}))
        )
        .0,
        422
    );
    let chunk = "y".repeat(30 * 1024);
    assert_eq!(
        p.call(
            "PATCH",
            "/apps/ok-app/config-vars",
            Some(json!({"A": chunk, "B": chunk}))
        )
        .0,
        200
    );
    assert_eq!(
        p.call(
            "PATCH",
            "/apps/ok-app/config-vars",
            Some(json!({"C": chunk}))
        )
        .0,
        422
    );
    let cfg = p.call("GET", "/apps/ok-app/config-vars", None).1;
    assert_eq!(cfg.as_object().unwrap().len(), 2, "nothing half-written");
    // Oversized body.
    let huge = format!("{{\"X\": \"{}\"}}", "z".repeat(2 * 1024 * 1024));
    // Its own connection: the server closes it after refusing the body.
    let r = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .patch(p.url("/apps/ok-app/config-vars"))
        .bearer_auth(&p.token)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .unwrap();
    let (s, body) = parse(r);
    assert_eq!(
        (s, body["id"].as_str()),
        (413, Some("request_entity_too_large"))
    );
    // Formation quantities: unknown type, negative, garbage.
    for q in [json!("abc"), json!(1.5), json!(true)] {
        let (s, _) = p.call(
            "PATCH",
            "/apps/ok-app/formation",
            Some(json!({"updates": [{"type": "web", "quantity": q}]})),
        );
        assert_eq!(s, 422);
    }
    let (s, body) = p.call(
        "PATCH",
        "/apps/ok-app/formation",
        Some(json!({"updates": [{"type": "web", "quantity": "1"}]})),
    );
    assert_eq!(s, 404, "no process types yet: {body}");
    // Unknown app, garbage Range, auth failures.
    assert_eq!(p.call("GET", "/apps/does-not-exist", None).0, 404);
    for range in ["id ..; max=abc", "!!", "id ..; order=sideways"] {
        let (s, body) = parse(
            p.request("GET", "/apps", Some(&p.token))
                .header("Range", range)
                .send()
                .unwrap(),
        );
        assert_eq!(s, 400, "{range}: {body}");
    }
    let (s, body) = parse(p.request("GET", "/apps", None).send().unwrap());
    assert_eq!((s, body["id"].as_str()), (401, Some("unauthorized")));
    assert_eq!(
        parse(
            p.request("GET", "/apps", Some("wrong-token"))
                .send()
                .unwrap()
        )
        .0,
        401
    );
    let r = p
        .request("GET", "/apps", None)
        .header("Authorization", "Basic !!!notbase64")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn only_owner_and_collaborators_see_an_app() {
    let p = TestPlatform::start();
    let alice = p.new_user("alice@example.test");
    let bob = p.new_user("bob@example.test");
    assert_eq!(
        p.call_as(&alice, "POST", "/apps", Some(json!({"name": "alices"})))
            .0,
        201
    );
    let (s, body) = p.call_as(&bob, "GET", "/apps/alices", None);
    assert_eq!((s, body["id"].as_str()), (403, Some("forbidden")));
    assert_eq!(
        p.call_as(
            &bob,
            "PATCH",
            "/apps/alices/config-vars",
            Some(json!({"A": "1"}))
        )
        .0,
        403
    );
    assert_eq!(p.call_as(&bob, "DELETE", "/apps/alices", None).0, 403);
    assert!(p
        .call_as(&bob, "GET", "/users/~/apps", None)
        .1
        .as_array()
        .unwrap()
        .is_empty());
    // Non-owners cannot create accounts.
    assert_eq!(
        p.call_as(
            &bob,
            "POST",
            "/accounts",
            Some(json!({"email": "x@example.test"}))
        )
        .0,
        403
    );

    let (s, c) = p.call_as(
        &alice,
        "POST",
        "/apps/alices/collaborators",
        Some(json!({"user": "bob@example.test"})),
    );
    assert_eq!(s, 201, "{c}");
    assert_eq!(p.call_as(&bob, "GET", "/apps/alices", None).0, 200);
    assert_eq!(
        p.call_as(
            &bob,
            "PATCH",
            "/apps/alices/config-vars",
            Some(json!({"A": "1"}))
        )
        .0,
        200
    );
    assert_eq!(
        p.call_as(&bob, "DELETE", "/apps/alices", None).0,
        403,
        "collaborators cannot destroy"
    );
    let (_, list) = p.call_as(&alice, "GET", "/apps/alices/collaborators", None);
    let mut roles: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(roles, ["collaborator", "owner"]);
    assert_eq!(
        p.call_as(
            &alice,
            "DELETE",
            "/apps/alices/collaborators/bob@example.test",
            None
        )
        .0,
        200
    );
    assert_eq!(p.call_as(&bob, "GET", "/apps/alices", None).0, 403);
}

#[test]
fn pagination_follows_heroku_ranges() {
    let p = TestPlatform::start();
    for i in 0..5 {
        assert_eq!(
            p.call(
                "POST",
                "/apps",
                Some(json!({"name": format!("page-app-{i}")}))
            )
            .0,
            201
        );
    }
    let r = p
        .request("GET", "/apps", Some(&p.token))
        .header("Range", "name ..; max=2")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    let next = r.headers()["next-range"].to_str().unwrap().to_string();
    assert_eq!(next, "name ]page-app-1..; max=2, order=asc");
    let mut names = Vec::new();
    let mut range = Some("name ..; max=2".to_string());
    while let Some(rg) = range.take() {
        let r = p
            .request("GET", "/apps", Some(&p.token))
            .header("Range", &rg)
            .send()
            .unwrap();
        range = r
            .headers()
            .get("next-range")
            .map(|v| v.to_str().unwrap().to_string());
        let status = r.status().as_u16();
        let (_, page) = parse(r);
        assert_eq!(
            status == 206,
            range.is_some(),
            "206 exactly when more remain"
        );
        names.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(
        names,
        (0..5).map(|i| format!("page-app-{i}")).collect::<Vec<_>>()
    );
    // Empty Range header (the CLI sends one) is the default page.
    let r = p
        .request("GET", "/apps", Some(&p.token))
        .header("Range", "")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("next-range").is_none());
}

/// A NUL byte cannot be passed in an environment variable: such a value used to be
/// stored (200) and then fail every dyno start. It is refused up front, by name.
#[test]
fn config_values_with_a_nul_byte_are_refused_naming_the_var() {
    let p = TestPlatform::start();
    assert_eq!(p.call("POST", "/apps", Some(json!({"name": "nul"}))).0, 201);
    let (s, body) = p.call(
        "PATCH",
        "/apps/nul/config-vars",
        Some(json!({"GOOD": "1", "SECRET": "a\u{0}b"})),
    );
    assert_eq!(s, 422, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("SECRET") && msg.contains("NUL"), "{msg}");
    assert_eq!(p.call("GET", "/apps/nul/config-vars", None).1, json!({}));
    // The same rule for a one-off dyno's extra env.
    let (s, body) = p.call(
        "POST",
        "/apps/nul/dynos",
        Some(json!({"command": "env", "env": {"TOKEN": "x\u{0}"}})),
    );
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("TOKEN"),
        "{body}"
    );
}

/// A custom domain that is an IP literal or one of the platform's own names would take
/// requests addressed to the router by IP, or another app's or the API's traffic.
#[test]
fn ip_literals_and_platform_names_are_refused_as_custom_domains() {
    let p = TestPlatform::start();
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "tenant"}))).0,
        201
    );
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "victim"}))).0,
        201
    );
    for (host, why) in [
        ("127.0.0.1", "IP address"),
        ("127.1", "IP address"),
        ("2130706433", "IP address"),
        ("0x7f.0.0.1", "IP address"),
        ("[::1]", "IP address"),
        ("::1", "IP address"),
        ("127.0.0.1:8080", "IP address"),
        ("victim.localhost", "platform domain"),
        ("localhost", "not a valid hostname"),
        ("www.example.test:8080", "port"),
    ] {
        let (s, body) = p.call(
            "POST",
            "/apps/tenant/domains",
            Some(json!({"hostname": host, "sni_endpoint": null})),
        );
        assert_eq!(s, 422, "{host}: {body}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(why), "{host}: {msg}");
    }
    let (_, doms) = p.call("GET", "/apps/tenant/domains", None);
    assert_eq!(
        doms.as_array().unwrap().len(),
        1,
        "only the default: {doms}"
    );
    let (s, d) = p.call(
        "POST",
        "/apps/tenant/domains",
        Some(json!({"hostname": "www.tenant.test", "sni_endpoint": null})),
    );
    assert_eq!((s, d["hostname"].as_str()), (201, Some("www.tenant.test")));
}

/// One stack, named after the host's distribution everywhere; asking for another is
/// refused with a clear error instead of being ignored.
#[test]
fn the_one_stack_is_the_hosts_and_others_are_refused() {
    let p = TestPlatform::start();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let host = hoist_types::stack_name_from_os_release(&os_release);
    let (s, stacks) = p.call("GET", "/stacks", None);
    assert_eq!(s, 200);
    assert_eq!(stacks.as_array().unwrap().len(), 1, "{stacks}");
    assert_eq!(stacks[0]["name"], host.as_str());
    let (s, body) = p.call(
        "POST",
        "/apps",
        Some(json!({"name": "stacked", "stack": "heroku-24"})),
    );
    assert_eq!(s, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains(&host), "{body}");
    let (s, app) = p.call("POST", "/apps", Some(json!({"name": "stacked"})));
    assert_eq!(s, 201, "{app}");
    assert_eq!(app["stack"]["name"], host.as_str());
    assert_eq!(app["stack"]["id"], stacks[0]["id"]);
    let (s, body) = p.call(
        "PATCH",
        "/apps/stacked",
        Some(json!({"build_stack": "heroku-22"})),
    );
    assert_eq!(s, 422, "{body}");
    let (s, _) = p.call(
        "PATCH",
        "/apps/stacked",
        Some(json!({"build_stack": stacks[0]["id"]})),
    );
    assert_eq!(s, 200);
}

#[test]
fn app_scoped_sources_give_an_upload_slot_to_the_apps_users_only() {
    let p = TestPlatform::start();
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "sourced"}))).0,
        201
    );
    let (s, src) = p.call("POST", "/apps/sourced/sources", None);
    assert_eq!(s, 201, "{src}");
    let put = src["source_blob"]["put_url"].as_str().unwrap();
    let get = src["source_blob"]["get_url"].as_str().unwrap();
    let client = reqwest::blocking::Client::new();
    assert!(client
        .put(put)
        .body("tarball bytes")
        .send()
        .unwrap()
        .status()
        .is_success());
    assert_eq!(
        client.get(get).send().unwrap().text().unwrap(),
        "tarball bytes"
    );
    // Someone without access to the app gets no slot through it; no app, no slot.
    let stranger = p.new_user("stranger@example.test");
    let (s, body) = p.call_as(&stranger, "POST", "/apps/sourced/sources", None);
    assert_eq!(s, 403, "{body}");
    assert_eq!(p.call("POST", "/apps/nope/sources", None).0, 404);
}

/// `PUT /sources/{id}` takes only ids `POST /sources` issued, up to the size declared,
/// and leaves nothing behind when it refuses; a full disk is a 507 that says so.
#[test]
fn source_uploads_need_an_issued_slot_and_fit_its_size() {
    let p = TestPlatform::start();
    let client = reqwest::blocking::Client::new();
    let sources = p.data_dir().join("sources");
    let files = || std::fs::read_dir(&sources).map(|d| d.count()).unwrap_or(0);
    // Any 64 hex digits used to be accepted, without a token, up to 1 GB each.
    let forged = p.url(&format!("/sources/{}", "ab".repeat(32)));
    let r = client.put(&forged).body("x".repeat(1000)).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(client.get(&forged).send().unwrap().status(), 404);
    assert_eq!(files(), 0);

    let (s, src) = p.call("POST", "/sources", Some(json!({"size": 10})));
    assert_eq!(s, 201, "{src}");
    assert!(src["source_blob"]["expires_at"].is_string(), "{src}");
    let put = src["source_blob"]["put_url"].as_str().unwrap();
    let r = client.put(put).body("x".repeat(11)).send().unwrap();
    assert_eq!(r.status(), 413);
    // Without Content-Length (chunked), the limit holds while streaming.
    let chunks = chunked_body(vec![b"123456".to_vec(), b"789012".to_vec()]);
    let r = client.put(put).body(chunks).send().unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(files(), 0, "a refused upload leaves nothing");
    assert_eq!(
        client.put(put).body("0123456789").send().unwrap().status(),
        200
    );
    assert_eq!(
        client.get(put).send().unwrap().text().unwrap(),
        "0123456789"
    );
    let (s, body) = p.call("POST", "/sources", Some(json!({"size": 2_000_000_000u64})));
    assert_eq!(s, 422, "{body}");

    // A full disk: the sources dir on a 64 KB tmpfs (root only, as in CI).
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&sources)
        .status()
        .unwrap();
    assert!(mounted.success());
    let (_, big) = p.call("POST", "/sources", None);
    let r = client
        .put(big["source_blob"]["put_url"].as_str().unwrap())
        .body(vec![7u8; 1 << 20])
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().unwrap();
    let _ = std::process::Command::new("umount").arg(&sources).status();
    assert_eq!(status, 507, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("disk is full"),
        "{body}"
    );
}

/// A request body with no Content-Length, sent chunk by chunk.
fn chunked_body(chunks: Vec<Vec<u8>>) -> reqwest::blocking::Body {
    struct Chunks(std::collections::VecDeque<Vec<u8>>, Vec<u8>);
    impl std::io::Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1.is_empty() {
                match self.0.pop_front() {
                    Some(c) => self.1 = c,
                    None => return Ok(0),
                }
            }
            let n = buf.len().min(self.1.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }
    reqwest::blocking::Body::new(Chunks(chunks.into(), Vec::new()))
}
