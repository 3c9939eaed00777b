use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use hoist_addons::redis::RedisConfig;
use hoist_addons::{AddonError, Provider};

use crate::{kill9, registry, run, test_config, ServersGuard};

fn cli(url: &str, args: &[&str]) -> (bool, String) {
    let (ok, out) = run(Command::new("redis-cli")
        .arg("--no-auth-warning")
        .arg("-u")
        .arg(url)
        .args(args));
    // redis-cli exits 0 even on server errors; treat an error reply as failure.
    let failed = out.contains("ERR")
        || out.contains("NOAUTH")
        || out.contains("WRONGPASS")
        || out.contains("NOPERM");
    (ok && !failed, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_provision_limits_readopt_deprovision() {
    let tmp = tempfile::tempdir().unwrap();
    let _guard = ServersGuard(tmp.path().to_path_buf());
    let reg = registry(tmp.path(), test_config());
    let redis = reg.get("redis").unwrap();
    let p = redis
        .provision("redis-curly-44444", "mini", &BTreeMap::new())
        .await
        .unwrap();
    let url = p.config["URL"].clone();
    assert!(url.starts_with("redis://default:") && url.contains("@127.0.0.1:"));

    assert_eq!(cli(&url, &["ping"]).1.trim(), "PONG");
    assert!(cli(&url, &["set", "greeting", "hello"]).0);
    assert_eq!(cli(&url, &["get", "greeting"]).1.trim(), "hello");

    // Wrong password and no password are refused.
    let port = url.rsplit(':').next().unwrap();
    let (ok, out) = cli(
        &format!("redis://default:wrong@127.0.0.1:{port}"),
        &["get", "greeting"],
    );
    assert!(!ok, "{out}");
    let (ok, out) = cli(&format!("redis://127.0.0.1:{port}"), &["get", "greeting"]);
    assert!(!ok && out.contains("NOAUTH"), "{out}");
    // The app cannot lift its own limits.
    let (ok, out) = cli(&url, &["config", "set", "maxmemory", "0"]);
    assert!(!ok && out.contains("NOPERM"), "{out}");

    let info = redis.info(&p.provider_id).await.unwrap();
    let password = url
        .trim_start_matches("redis://default:")
        .split('@')
        .next()
        .unwrap();
    assert!(!info.to_string().contains(password));
    assert_eq!(info["maxmemory_bytes"], 25 * 1024 * 1024);
    assert_eq!(info["maxmemory_policy"], "noeviction");
    assert_eq!(info["persistence"], "none");
    assert_eq!(info["status"], "available");

    // Plan change applies live and survives restarts (config file rewritten).
    assert_eq!(
        redis
            .change_plan(&p.provider_id, "premium-0")
            .await
            .unwrap(),
        None
    );
    let info = redis.info(&p.provider_id).await.unwrap();
    assert_eq!(info["maxmemory_bytes"], 50 * 1024 * 1024);
    assert_eq!(info["persistence"], "appendonly");

    // Daemon restart: re-adopted with the same pid.
    let pid = reg.redis().server_pid(&p.provider_id).unwrap();
    drop(redis);
    drop(reg);
    let reg = registry(tmp.path(), test_config());
    let status = reg.start_managed_servers().await;
    assert_eq!(status.redis, vec![(p.provider_id.clone(), Ok(pid))]);
    assert_eq!(cli(&url, &["get", "greeting"]).1.trim(), "hello");

    // Killed: started again on the same port with the same password and plan.
    assert!(cli(&url, &["set", "k", "v"]).0);
    let (_, out) = cli(&url, &["bgrewriteaof"]);
    assert!(out.contains("rewriting"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    kill9(pid);
    let status = reg.start_managed_servers().await;
    let new_pid = status.redis[0].1.clone().unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(cli(&url, &["ping"]).1.trim(), "PONG");
    assert_eq!(cli(&url, &["get", "k"]).1.trim(), "v", "AOF data survived");
    assert_eq!(
        reg.redis().info(&p.provider_id).await.unwrap()["maxmemory_bytes"],
        50 * 1024 * 1024
    );

    // The supervisor restarts a server that dies while the daemon runs.
    let reg = std::sync::Arc::new(reg);
    let supervisor = reg.supervise(std::time::Duration::from_millis(100));
    kill9(new_pid);
    let mut restarted = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        restarted = reg
            .redis()
            .server_pid(&p.provider_id)
            .filter(|&p| p != new_pid);
        if restarted.is_some() {
            break;
        }
    }
    supervisor.abort();
    assert!(restarted.is_some(), "supervisor did not restart redis");
    assert_eq!(cli(&url, &["get", "k"]).1.trim(), "v");

    // Deprovision stops the server and removes its data.
    let redis = reg.get("redis").unwrap();
    redis.deprovision(&p.provider_id).await.unwrap();
    assert!(!cli(&url, &["ping"]).0);
    assert!(!tmp
        .path()
        .join("addons/redis")
        .join(&p.provider_id)
        .exists());
    redis.deprovision(&p.provider_id).await.unwrap();
    assert!(reg.redis().instance_ids().is_empty());
}

#[tokio::test]
async fn redis_missing_binary_names_the_package() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.redis = RedisConfig {
        server_bin: PathBuf::from("/nonexistent/bin/redis-server"),
        ..cfg.redis
    };
    let reg = registry(tmp.path(), cfg);
    let err = reg
        .get("redis")
        .unwrap()
        .provision("redis-flat-55555", "mini", &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AddonError::Unavailable { package } if package == "redis-server"),
        "{err:?}"
    );
    assert!(reg.redis().instance_ids().is_empty(), "nothing left behind");
}
