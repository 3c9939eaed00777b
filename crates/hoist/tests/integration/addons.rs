//! Add-ons with real PostgreSQL and Redis servers run by the platform.

use crate::harness::{deploy_procfile, exists_on_path, run, TestPlatform};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

#[test]
fn postgresql_and_redis_addons_attach_real_databases() {
    let p = TestPlatform::start();
    let (ok, out) = deploy_procfile(
        &p,
        "datastore",
        "web: exec python3 -m http.server $PORT\n",
        &[],
    );
    assert!(ok, "{out}");
    p.wait_for_app("datastore", Duration::from_secs(60));

    let (s, addon) = p.call(
        "POST",
        "/apps/datastore/addons",
        Some(json!({"plan": "postgresql:mini"})),
    );
    assert_eq!(s, 201, "{addon}");
    assert_eq!(addon["config_vars"], json!(["DATABASE_URL"]));
    let name = addon["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("postgresql-"), "{name}");
    let (_, cfg) = p.call("GET", "/apps/datastore/config-vars", None);
    let url = cfg["DATABASE_URL"]
        .as_str()
        .expect("DATABASE_URL set")
        .to_string();
    assert!(url.starts_with("postgres://"), "{url}");
    let out = run(Command::new("psql").arg(&url).args([
        "-tAc",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (42); SELECT x FROM t",
    ]));
    assert!(out.contains("42"), "{out}");
    let (_, rels) = p.call("GET", "/apps/datastore/releases", None);
    let last = rels.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["description"],
        format!("Attach DATABASE (@ref:{name})")
    );
    assert_eq!(last["addon_plan_names"], json!(["postgresql:mini"]));
    // The dynos restart on the new release (and so see DATABASE_URL).
    let v = last["version"].as_i64().unwrap();
    p.wait_for_dynos("datastore", Duration::from_secs(60), |d| {
        d.iter()
            .any(|x| x["release"]["version"] == v && x["state"] == "up")
    });
    // Credentials never show in add-on info.
    let (_, info) = p.call("GET", &format!("/apps/datastore/addons/{name}"), None);
    assert!(
        !info.to_string().contains(url.split('@').next().unwrap()),
        "{info}"
    );

    // Bad input: unknown service, unknown plan, a name clash; nothing half-attached.
    assert_eq!(
        p.call(
            "POST",
            "/apps/datastore/addons",
            Some(json!({"plan": "nosuch:mini"}))
        )
        .0,
        404
    );
    assert_eq!(
        p.call(
            "POST",
            "/apps/datastore/addons",
            Some(json!({"plan": "postgresql:galactic"}))
        )
        .0,
        422
    );
    let (s, body) = p.call(
        "POST",
        "/apps/datastore/addons",
        Some(json!({"plan": "postgresql:mini", "attachment": {"name": "DATABASE"}})),
    );
    assert_eq!(s, 409, "{body}");
    let (_, list) = p.call("GET", "/apps/datastore/addons", None);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (s, redis) = p.call(
        "POST",
        "/apps/datastore/addons",
        Some(json!({"plan": "redis:mini"})),
    );
    assert_eq!(s, 201, "{redis}");
    let (_, cfg) = p.call("GET", "/apps/datastore/config-vars", None);
    let rurl = cfg["REDIS_URL"].as_str().expect("REDIS_URL").to_string();
    if exists_on_path("redis-cli").is_some() {
        let out = run(Command::new("redis-cli").args(["-u", &rurl, "ping"]));
        assert!(out.contains("PONG"), "{out}");
    }

    // Share the database with a second app under another name, then detach.
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "reporting"})))
            .0,
        201
    );
    let (s, att) = p.call(
        "POST",
        "/addon-attachments",
        Some(json!({"addon": name, "app": "reporting", "name": "OTHER_DB"})),
    );
    assert_eq!(s, 201, "{att}");
    let (_, rcfg) = p.call("GET", "/apps/reporting/config-vars", None);
    assert_eq!(rcfg["OTHER_DB_URL"], url.as_str());
    assert_eq!(
        p.call(
            "DELETE",
            &format!("/addon-attachments/{}", att["id"].as_str().unwrap()),
            None
        )
        .0,
        200
    );
    assert!(p
        .call("GET", "/apps/reporting/config-vars", None)
        .1
        .get("OTHER_DB_URL")
        .is_none());

    // Destroy drops the database and removes the config var.
    let (s, gone) = p.call("DELETE", &format!("/apps/datastore/addons/{name}"), None);
    assert_eq!((s, gone["state"].as_str()), (200, Some("deprovisioned")));
    assert!(p
        .call("GET", "/apps/datastore/config-vars", None)
        .1
        .get("DATABASE_URL")
        .is_none());
    let out = Command::new("psql")
        .arg(&url)
        .args(["-tAc", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the database is gone after destroy");
    let (s, _) = p.call(
        "DELETE",
        &format!("/apps/datastore/addons/{}", redis["name"].as_str().unwrap()),
        None,
    );
    assert_eq!(s, 200);
}

/// A tiny Add-on Partner API provider: answers by plan, records what it was asked.
fn start_partner() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let body = String::from_utf8_lossy(&body).to_string();
            let first = head.lines().next().unwrap_or_default().to_string();
            log.lock().unwrap().push(format!("{first} {body}"));
            let (status, reply) = if first.starts_with("POST") && body.contains("\"evil\"") {
                (
                    "200 OK",
                    r#"{"id":"res-evil","config":{"MAILER_URL":"https://m.test/x","SNEAKY":"1"}}"#
                        .to_string(),
                )
            } else if first.starts_with("POST") && body.contains("\"async\"") {
                ("202 Accepted", r#"{"id":"res-async"}"#.to_string())
            } else if first.starts_with("POST") {
                ("200 OK", r#"{"id":"res-1","config":{"MAILER_URL":"https://m.test/u1","MAILER_API_KEY":"k1"},"message":"welcome"}"#.to_string())
            } else {
                ("200 OK", "{}".to_string())
            };
            let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}", reply.len());
        }
    });
    (base, seen)
}

#[test]
fn partner_addons_provision_over_the_partner_api() {
    let (base, seen) = start_partner();
    let mut p = TestPlatform::start_with(&["--addon-provision-timeout", "3"]);
    // The administrator registers the provider's manifest; it is read at start.
    let dir = p.data_dir().join("addons/partners");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({
        "id": "mailer", "name": "Mailer",
        "plans": [{"name": "test"}, {"name": "evil"}, {"name": "async"}],
        "api": {"config_vars": ["MAILER_URL", "MAILER_API_KEY"], "password": "partner-secret",
                "sso_salt": "salt", "production": {"base_url": format!("{base}/")}, "requires": []}
    });
    std::fs::write(dir.join("mailer.json"), manifest.to_string()).unwrap();
    p.stop();
    p.spawn();
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "mailing"}))).0,
        201
    );

    let (s, a) = p.call(
        "POST",
        "/apps/mailing/addons",
        Some(json!({"plan": "mailer:test"})),
    );
    assert_eq!(s, 201, "{a}");
    let (_, cfg) = p.call("GET", "/apps/mailing/config-vars", None);
    assert_eq!(cfg["MAILER_URL"], "https://m.test/u1", "{cfg}");
    assert_eq!(cfg["MAILER_API_KEY"], "k1");
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.starts_with("POST /heroku/resources") && r.contains("heroku_id")));

    // Undeclared config vars fail the provisioning cleanly.
    let (s, body) = p.call(
        "POST",
        "/apps/mailing/addons",
        Some(json!({"plan": "mailer:evil", "attachment": {"name": "EVIL"}})),
    );
    assert!(s >= 400, "{body}");
    let (_, cfg) = p.call("GET", "/apps/mailing/config-vars", None);
    assert!(
        cfg.get("EVIL_URL").is_none() && cfg.get("SNEAKY").is_none(),
        "{cfg}"
    );
    assert_eq!(
        p.call("GET", "/apps/mailing/addons", None)
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Asynchronous provisioning: the provider calls back with the config later.
    let (s, a2) = p.call(
        "POST",
        "/apps/mailing/addons",
        Some(json!({"plan": "mailer:async", "attachment": {"name": "LATER"}})),
    );
    assert_eq!(
        (s, a2["state"].as_str()),
        (201, Some("provisioning")),
        "{a2}"
    );
    let name = a2["name"].as_str().unwrap();
    let cb = reqwest::blocking::Client::new();
    let r = cb
        .post(p.url(&format!("/addon-callbacks/{name}")))
        .basic_auth("mailer", Some("wrong"))
        .json(&json!({"config": {"MAILER_URL": "https://m.test/late"}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = cb
        .post(p.url(&format!("/addon-callbacks/{name}")))
        .basic_auth("mailer", Some("partner-secret"))
        .json(&json!({"config": {"MAILER_URL": "https://m.test/late"}}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let (_, cfg) = p.call("GET", "/apps/mailing/config-vars", None);
    assert_eq!(cfg["LATER_URL"], "https://m.test/late", "{cfg}");
    assert_eq!(
        p.call("GET", &format!("/apps/mailing/addons/{name}"), None)
            .1["state"],
        "provisioned"
    );

    // A partner that never calls back: the add-on is removed after the timeout.
    let (s, a3) = p.call(
        "POST",
        "/apps/mailing/addons",
        Some(json!({"plan": "mailer:async", "attachment": {"name": "NEVER"}})),
    );
    assert_eq!(s, 201, "{a3}");
    let never = a3["name"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while p
        .call("GET", &format!("/apps/mailing/addons/{never}"), None)
        .0
        == 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a never-provisioned add-on was not removed"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.starts_with("DELETE /heroku/resources/res-async")));

    // Destroy deprovisions at the provider.
    let first = a["name"].as_str().unwrap();
    assert_eq!(
        p.call("DELETE", &format!("/apps/mailing/addons/{first}"), None)
            .0,
        200
    );
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.starts_with("DELETE /heroku/resources/res-1")));
}
