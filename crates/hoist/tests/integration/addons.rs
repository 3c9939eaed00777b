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

/// The pid of the Redis server behind an add-on, from its instance directory.
fn redis_pid(p: &TestPlatform) -> i32 {
    let root = p.data_dir().join("addons").join("redis");
    let mut pids: Vec<i32> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("redis.pid")).ok())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "one Redis add-on in {}", root.display());
    pids.pop().unwrap()
}

/// Whether a process is alive (a zombie is not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Whether a client can still get in with `url`.
fn redis_answers(url: &str) -> bool {
    let out = Command::new("redis-cli")
        .args(["-u", url, "ping"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("PONG")
}

fn psql_ok(url: &str, sql: &str) -> (bool, String) {
    let out = Command::new("psql")
        .arg(url)
        .args(["-tAc", sql])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string()
            + &String::from_utf8_lossy(&out.stderr),
    )
}

/// (database, role) of a `postgres://role:pw@host:port/database` URL.
fn db_and_role(url: &str) -> (String, String) {
    let rest = url.strip_prefix("postgres://").unwrap();
    let role = rest.split(':').next().unwrap().to_string();
    let db = rest.rsplit('/').next().unwrap().to_string();
    (db, role)
}

/// Creates `app` with a redis:mini and a postgresql:mini add-on; returns their URLs.
fn app_with_datastores(p: &TestPlatform, app: &str) -> (String, String) {
    assert_eq!(p.call("POST", "/apps", Some(json!({ "name": app }))).0, 201);
    for plan in ["redis:mini", "postgresql:mini"] {
        let (s, body) = p.call(
            "POST",
            &format!("/apps/{app}/addons"),
            Some(json!({ "plan": plan })),
        );
        assert_eq!(s, 201, "{body}");
    }
    let (_, cfg) = p.call("GET", &format!("/apps/{app}/config-vars"), None);
    let redis = cfg["REDIS_URL"].as_str().unwrap().to_string();
    let db = cfg["DATABASE_URL"].as_str().unwrap().to_string();
    assert!(redis_answers(&redis), "Redis add-on answers before destroy");
    assert!(psql_ok(&db, "SELECT 1").0, "database works before destroy");
    (redis, db)
}

/// Nothing of a destroyed app's add-ons may still work: no Redis server, no database,
/// no role that can log in.
fn assert_datastores_gone(redis_url: &str, redis_pid: i32, db_url: &str, witness_db: &str) {
    assert!(!alive(redis_pid), "redis-server {redis_pid} still runs");
    assert!(!redis_answers(redis_url), "old REDIS_URL still answers");
    let (ok, out) = psql_ok(db_url, "SELECT 1");
    assert!(!ok, "old DATABASE_URL still connects: {out}");
    // Any login can read the catalogs: ask through a database that is still there.
    let (db, role) = db_and_role(db_url);
    let (ok, out) = psql_ok(
        witness_db,
        &format!(
            "SELECT (SELECT count(*) FROM pg_database WHERE datname = '{db}') + \
                    (SELECT count(*) FROM pg_roles WHERE rolname = '{role}')"
        ),
    );
    assert!(ok, "{out}");
    assert_eq!(out, "0", "database {db} or role {role} still exists");
}

#[test]
fn destroying_an_app_deprovisions_its_addons_and_detaches_shared_ones() {
    let p = TestPlatform::start();
    let (redis_url, db_url) = app_with_datastores(&p, "doomed");
    let pid = redis_pid(&p);
    assert!(alive(pid));
    // A bystander app shares doomed's database and lends doomed its own.
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "bystander"})))
            .0,
        201
    );
    let (s, theirs) = p.call(
        "POST",
        "/apps/bystander/addons",
        Some(json!({"plan": "postgresql:mini"})),
    );
    assert_eq!(s, 201, "{theirs}");
    let theirs_name = theirs["name"].as_str().unwrap();
    let (_, doomed_addons) = p.call("GET", "/apps/doomed/addons", None);
    let doomed_db = doomed_addons
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["addon_service"]["name"] == "postgresql")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    for (addon, app, name) in [
        (doomed_db.as_str(), "bystander", "SHARED_DB"),
        (theirs_name, "doomed", "LENT_DB"),
    ] {
        let (s, body) = p.call(
            "POST",
            "/addon-attachments",
            Some(json!({"addon": addon, "app": app, "name": name})),
        );
        assert_eq!(s, 201, "{body}");
    }
    let (_, cfg) = p.call("GET", "/apps/bystander/config-vars", None);
    let own_db = cfg["DATABASE_URL"].as_str().unwrap().to_string();
    assert_eq!(cfg["SHARED_DB_URL"], db_url.as_str());

    let (s, body) = p.call("DELETE", "/apps/doomed", None);
    assert_eq!(s, 200, "{body}");

    assert_datastores_gone(&redis_url, pid, &db_url, &own_db);
    // The bystander lost the shared database (with a release saying so) and kept its own,
    // which doomed had only attached.
    let (_, cfg) = p.call("GET", "/apps/bystander/config-vars", None);
    assert!(cfg.get("SHARED_DB_URL").is_none(), "{cfg}");
    assert_eq!(cfg["DATABASE_URL"], own_db.as_str());
    assert!(
        psql_ok(&own_db, "SELECT 1").0,
        "the lent database still works"
    );
    let (_, rels) = p.call("GET", "/apps/bystander/releases", None);
    let last = rels.as_array().unwrap().last().unwrap();
    assert_eq!(
        last["description"],
        format!("Remove {doomed_db} (postgresql:mini) add-on")
    );
    let (_, all) = p.call("GET", "/addons", None);
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![theirs_name]);
    let (_, atts) = p.call(
        "GET",
        &format!("/addons/{theirs_name}/addon-attachments"),
        None,
    );
    assert_eq!(atts.as_array().unwrap().len(), 1, "{atts}");
}

#[test]
fn an_app_destroy_cut_short_by_a_crash_is_finished_at_start() {
    let mut p = TestPlatform::start();
    let (redis_url, db_url) = app_with_datastores(&p, "halfgone");
    let (s, witness) = p.call("POST", "/apps", Some(json!({"name": "witness"})));
    assert_eq!(s, 201, "{witness}");
    assert_eq!(
        p.call(
            "POST",
            "/apps/witness/addons",
            Some(json!({"plan": "postgresql:mini"}))
        )
        .0,
        201
    );
    let witness_db = p.call("GET", "/apps/witness/config-vars", None).1["DATABASE_URL"]
        .as_str()
        .unwrap()
        .to_string();
    let pid = redis_pid(&p);

    // The daemon dies right after the destroy's transaction committed, before any
    // provider call: that is the store's state after this.
    p.kill9();
    {
        let store = hoist_store::Store::open(&p.data_dir().join("state.db")).unwrap();
        let app = store.app("halfgone").unwrap();
        store.destroy_app(&app.id, &app.owner_id).unwrap();
        assert_eq!(store.pending_deprovisions().unwrap().len(), 2);
    }
    assert!(alive(pid), "the Redis server outlived the daemon");
    assert!(redis_answers(&redis_url));

    p.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let store = hoist_store::Store::open(&p.data_dir().join("state.db")).unwrap();
        if store.pending_deprovisions().unwrap().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pending deprovisions not finished after start:\n{}",
            p.server_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_datastores_gone(&redis_url, pid, &db_url, &witness_db);
    assert_eq!(p.call("GET", "/apps/halfgone", None).0, 404);
}
