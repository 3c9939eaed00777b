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
