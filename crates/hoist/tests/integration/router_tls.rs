//! The router's TLS listener (`--router-tls-addr`): a deployed app answers over HTTPS
//! with the certificate for its hostname, over HTTP/2 and HTTP/1.1.

use crate::harness::{deploy_procfile, free_port, hoist_bin, TestPlatform};
use std::process::Command;
use std::time::Duration;

fn write_cert(dir: &std::path::Path, host: &str) -> std::path::PathBuf {
    let k = rcgen::generate_simple_self_signed(vec![host.to_string()]).expect("cert");
    let crt = dir.join(format!("{host}.crt"));
    std::fs::write(&crt, k.cert.pem()).expect("write crt");
    std::fs::write(dir.join(format!("{host}.key")), k.key_pair.serialize_pem()).expect("write key");
    crt
}

/// `curl` over HTTPS to the TLS router, trusting `ca`, resolving `host` to loopback.
fn curl(ca: &std::path::Path, host: &str, port: u16, proto: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", proto, "--cacert"])
        .arg(ca)
        .args([
            "--resolve",
            &format!("{host}:{port}:127.0.0.1"),
            "-w",
            "\nhttp_version=%{http_version}",
            &format!("https://{host}:{port}/"),
        ])
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn deployed_apps_answer_over_https_with_http2_and_http1() {
    let certs = tempfile::tempdir().expect("tempdir");
    let ca = write_cert(certs.path(), "tlsapp.localhost");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = TestPlatform::start_with(&[
        "--router-tls-addr",
        &addr,
        "--router-tls-certs",
        &certs.path().to_string_lossy(),
    ]);
    let (ok, out) = deploy_procfile(
        &p,
        "tlsapp",
        "web: exec python3 -m http.server $PORT\n",
        &[("index.html", "secure hello\n")],
    );
    assert!(ok, "{out}");
    p.wait_for_app("tlsapp", Duration::from_secs(60));
    let h2 = curl(&ca, "tlsapp.localhost", port, "--http2");
    assert!(h2.contains("secure hello"), "{h2}");
    assert!(h2.contains("http_version=2"), "{h2}");
    let h1 = curl(&ca, "tlsapp.localhost", port, "--http1.1");
    assert!(h1.contains("secure hello"), "{h1}");
    assert!(h1.contains("http_version=1.1"), "{h1}");
    let log = crate::harness::wait_for_log(&p, "tlsapp", "protocol=https", Duration::from_secs(10));
    assert!(log.contains("heroku[router]: at=info method=GET"), "{log}");
}

#[test]
fn a_bad_certificate_directory_stops_the_server_with_a_clear_error() {
    let data = tempfile::tempdir().expect("tempdir");
    let certs = tempfile::tempdir().expect("tempdir");
    std::fs::write(certs.path().join("x.localhost.crt"), "not a certificate").expect("write");
    std::fs::write(certs.path().join("x.localhost.key"), "not a key").expect("write");
    let out = Command::new(hoist_bin())
        .args(["server", "--runtime", "process", "--data-dir"])
        .arg(data.path())
        .args(["--api-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--router-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--router-tls-addr", &format!("127.0.0.1:{}", free_port())])
        .arg("--router-tls-certs")
        .arg(certs.path())
        .output()
        .expect("run hoist server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading router TLS certificates"), "{err}");
    assert!(err.contains("x.localhost.crt: no PEM certificate"), "{err}");
}
