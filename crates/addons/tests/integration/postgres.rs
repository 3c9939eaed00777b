use std::collections::BTreeMap;
use std::path::PathBuf;

use hoist_addons::postgres::PostgresConfig;
use hoist_addons::{AddonError, Provider, ProvisionState};

use crate::{kill9, psql, registry, test_config, ServersGuard};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_provision_isolate_readopt_restart_deprovision() {
    let tmp = tempfile::tempdir().unwrap();
    let _guard = ServersGuard(tmp.path().to_path_buf());
    let reg = registry(tmp.path(), test_config());
    let pg = reg.get("postgresql").unwrap();
    let none = BTreeMap::new();

    // Two add-ons on one managed server.
    let a = pg
        .provision("postgresql-curved-11111", "mini", &none)
        .await
        .unwrap();
    let b = pg
        .provision("postgresql-round-22222", "mini", &none)
        .await
        .unwrap();
    assert_eq!(a.state, ProvisionState::Provisioned);
    let url_a = a.config["URL"].clone();
    let url_b = b.config["URL"].clone();
    assert!(
        url_a.starts_with("postgres://u") && url_a.contains("@127.0.0.1:"),
        "{}",
        a.provider_id
    );
    assert_ne!(url_a, url_b);

    let (ok, out) = psql(
        &url_a,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (42); SELECT x FROM t;",
    );
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "42");

    // a's role cannot reach b's database (nor the maintenance db), and vice versa.
    let db_b = url_b.rsplit('/').next().unwrap();
    let a_on_b = format!("{}/{db_b}", url_a.rsplit_once('/').unwrap().0);
    let (ok, out) = psql(&a_on_b, "SELECT 1");
    assert!(!ok, "a reached b's database: {out}");
    assert!(out.contains("permission denied"), "{out}");
    let a_on_postgres = format!("{}/postgres", url_a.rsplit_once('/').unwrap().0);
    assert!(!psql(&a_on_postgres, "SELECT 1").0);
    // Wrong password is refused.
    let password = url_a.split(':').nth(2).unwrap().split('@').next().unwrap();
    let wrong = url_a.replacen(&format!(":{password}@"), ":wrong@", 1);
    assert_ne!(wrong, url_a);
    let (ok, out) = psql(&wrong, "SELECT 1");
    assert!(
        !ok && out.contains("password authentication failed"),
        "{out}"
    );

    // info: facts, no credentials.
    let info = pg.info(&a.provider_id).await.unwrap();
    let text = info.to_string();
    assert!(!text.contains(password), "{text}");
    assert_eq!(info["plan"], "mini");
    assert_eq!(info["connection_limit"], 20);
    assert_eq!(info["storage_quota_mb"], 1024);
    assert_eq!(info["over_quota"], false);
    assert!(info["data_size_bytes"].as_u64().unwrap() > 1000);

    // Plan change keeps credentials and updates the limit.
    assert_eq!(
        pg.change_plan(&a.provider_id, "standard-0").await.unwrap(),
        None
    );
    let info = pg.info(&a.provider_id).await.unwrap();
    assert_eq!(
        (info["plan"].as_str(), info["connection_limit"].as_i64()),
        (Some("standard-0"), Some(120))
    );
    assert!(matches!(
        pg.change_plan(&a.provider_id, "gigantic").await,
        Err(AddonError::UnknownPlan { .. })
    ));
    assert!(reg.postgres().check_quotas().await.unwrap().is_empty());

    // Deprovision drops database and role; doing it twice is fine.
    let (ok, _) = psql(&url_b, "SELECT 1");
    assert!(ok);
    pg.deprovision(&b.provider_id).await.unwrap();
    pg.deprovision(&b.provider_id).await.unwrap();
    let (ok, out) = psql(&url_b, "SELECT 1");
    assert!(!ok, "{out}");
    assert!(matches!(
        pg.info(&b.provider_id).await,
        Err(AddonError::NotFound(_))
    ));
    assert!(matches!(
        pg.deprovision("d'; DROP").await,
        Err(AddonError::Invalid(_))
    ));

    // Daemon restart: a new registry adopts the running server (same postmaster).
    let pid = reg.postgres().server_pid().expect("server running");
    drop(pg);
    drop(reg);
    let reg = registry(tmp.path(), test_config());
    let status = reg.start_managed_servers().await;
    assert_eq!(status.postgres, Some(Ok(pid)), "re-adopted, not restarted");
    assert_eq!(psql(&url_a, "SELECT x FROM t").1.trim(), "42");

    // Killed server: started again, data kept.
    kill9(pid);
    let status = reg.start_managed_servers().await;
    let new_pid = status.postgres.clone().unwrap().unwrap();
    assert_ne!(new_pid, pid, "{status:?}");
    let (ok, out) = psql(&url_a, "SELECT x FROM t");
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "42");

    // Stop; the next start (as after a reboot) brings it back with the data.
    reg.stop_managed_servers().await.unwrap();
    assert_eq!(reg.postgres().server_pid(), None);
    assert!(!psql(&url_a, "SELECT 1").0);
    let status = reg.start_managed_servers().await;
    assert!(matches!(status.postgres, Some(Ok(_))), "{status:?}");
    assert_eq!(psql(&url_a, "SELECT x FROM t").1.trim(), "42");

    let pg = reg.get("postgresql").unwrap();
    pg.deprovision(&a.provider_id).await.unwrap();
    assert!(!psql(&url_a, "SELECT 1").0);
    reg.stop_managed_servers().await.unwrap();
}

#[tokio::test]
async fn postgres_missing_binaries_name_the_package() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.postgres = PostgresConfig {
        bin_dir: Some(PathBuf::from("/nonexistent/bin")),
        ..cfg.postgres
    };
    let reg = registry(tmp.path(), cfg);
    let err = reg
        .get("postgresql")
        .unwrap()
        .provision("postgresql-flat-33333", "mini", &BTreeMap::new())
        .await
        .unwrap_err();
    match &err {
        AddonError::Unavailable { package } => assert_eq!(package, "postgresql"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("`postgresql`"), "{err}");
    assert_eq!(reg.start_managed_servers().await.postgres, None);
}

#[tokio::test]
async fn unknown_service_and_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path(), test_config());
    assert!(matches!(
        reg.resolve_plan("mysql:mini"),
        Err(AddonError::UnknownService(_))
    ));
    assert!(matches!(
        reg.resolve_plan("postgresql:huge"),
        Err(AddonError::UnknownPlan { .. })
    ));
    let (p, plan) = reg.resolve_plan("postgresql").unwrap();
    assert_eq!(
        (p.service().name.as_str(), plan.name.as_str()),
        ("postgresql", "mini")
    );
    // Unknown plan is rejected before any server is initialized.
    let err = reg
        .get("postgresql")
        .unwrap()
        .provision("x", "huge", &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, AddonError::UnknownPlan { .. }));
    assert!(!reg.postgres().server_initialized());
    let names: Vec<String> = reg.services().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["postgresql", "redis"]);
}

/// Admin connection to the managed server of a test data dir (credentials from
/// `state.json`), as an outside client: the test checks the server, not the provider.
async fn admin_client(data_dir: &std::path::Path, dbname: &str) -> tokio_postgres::Client {
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir.join("addons/postgresql/state.json")).unwrap(),
    )
    .unwrap();
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(state["port"].as_u64().unwrap() as u16)
        .user("hoist_admin")
        .password(state["admin_password"].as_str().unwrap())
        .dbname(dbname)
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Names of the add-on databases and roles on the server.
async fn addon_objects(admin: &tokio_postgres::Client) -> (Vec<String>, Vec<String>) {
    let names = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    };
    let dbs = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname ~ '^d[0-9a-f]{12}$' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let roles = admin
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname ~ '^u[0-9a-f]{12}$' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    (names(dbs), names(roles))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failed_provisioning_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let _guard = ServersGuard(tmp.path().to_path_buf());
    let reg = registry(tmp.path(), test_config());
    let pg = reg.get("postgresql").unwrap();
    let none = BTreeMap::new();
    let first = pg
        .provision("postgresql-shiny-44444", "mini", &none)
        .await
        .unwrap();
    let admin = admin_client(tmp.path(), "postgres").await;
    let before = addon_objects(&admin).await;
    assert_eq!(before.0, [first.provider_id.as_str()]);

    // A session on template1 makes CREATE DATABASE fail after CREATE ROLE succeeded:
    // the failure lands in the middle of provisioning.
    let holder = admin_client(tmp.path(), "template1").await;
    let err = pg
        .provision("postgresql-dull-55555", "mini", &none)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AddonError::Provider(m) if m.contains("template1")),
        "{err:?}"
    );
    assert_eq!(addon_objects(&admin).await, before, "half-made add-on left");

    // The same request works once template1 is free.
    drop(holder);
    let ok = pg
        .provision("postgresql-dull-55555", "mini", &none)
        .await
        .unwrap();
    assert!(psql(&ok.config["URL"], "SELECT 1").0);
    drop(admin);
    reg.stop_managed_servers().await.unwrap();
}

#[tokio::test]
async fn postgres_unreachable_server_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = std::time::Duration::from_millis(500);
    let provider = |port: u16| {
        hoist_addons::postgres::PostgresProvider::new(
            tmp.path(),
            PostgresConfig {
                external_admin_url: Some(format!(
                    "postgres://adm:secret@127.0.0.1:{port}/postgres"
                )),
                command_timeout: limit,
                ..PostgresConfig::default()
            },
        )
        .unwrap()
    };
    let none = BTreeMap::new();
    // Guards against a hang only; the provider's own limit is far shorter.
    let guard = std::time::Duration::from_secs(60);

    // Nothing listens: refused, and the message names the server.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = tokio::time::timeout(guard, provider(port).provision("pg-a", "mini", &none))
        .await
        .expect("provider hung")
        .unwrap_err();
    match &err {
        AddonError::Provider(m) => {
            assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
            assert!(!m.contains("secret"), "{m}");
        }
        other => panic!("unexpected {other:?}"),
    }

    // Something accepts but never answers: the configured limit ends the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let err = tokio::time::timeout(guard, provider(port).info("d0123456789ab"))
        .await
        .expect("provider hung")
        .unwrap_err();
    assert!(
        matches!(err, AddonError::Timeout(d) if d == limit),
        "{err:?}"
    );
    held.abort();
}
