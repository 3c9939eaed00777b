use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn internal_ranges_are_classified() {
    for (addr, class) in [
        ("127.0.0.1", Internal::Loopback),
        ("127.255.0.2", Internal::Loopback),
        ("0.0.0.0", Internal::Unspecified),
        ("169.254.169.254", Internal::LinkLocal),
        ("10.1.2.3", Internal::Private),
        ("172.16.0.1", Internal::Private),
        ("172.31.255.255", Internal::Private),
        ("192.168.1.1", Internal::Private),
        ("100.64.0.1", Internal::SharedCgnat),
        ("224.0.0.1", Internal::Multicast),
        ("255.255.255.255", Internal::Reserved),
        ("::1", Internal::Loopback),
        ("::", Internal::Unspecified),
        ("fe80::1", Internal::LinkLocal),
        ("fd00::1", Internal::Private),
        ("ff02::1", Internal::Multicast),
        ("::ffff:127.0.0.1", Internal::Loopback),
        ("::ffff:169.254.169.254", Internal::LinkLocal),
        ("64:ff9b::a9fe:a9fe", Internal::LinkLocal),
    ] {
        assert_eq!(classify(ip(addr)), Some(class), "{addr}");
    }
}

#[test]
fn public_addresses_pass() {
    for addr in [
        "1.1.1.1",
        "8.8.8.8",
        "172.32.0.1",
        "100.128.0.1",
        "2606:4700::1111",
        "::ffff:1.1.1.1",
    ] {
        assert_eq!(classify(ip(addr)), None, "{addr}");
    }
}

#[test]
fn platform_subnets_are_refused() {
    let p = EgressPolicy::strict().deny_subnet(Subnet {
        addr: ip("203.0.113.0"),
        prefix: 24,
    });
    assert_eq!(p.classify(ip("203.0.113.77")), Some(Internal::Platform));
    assert_eq!(p.classify(ip("203.0.114.1")), None);
    let odd = Subnet {
        addr: ip("198.51.100.64"),
        prefix: 26,
    };
    assert!(odd.contains(ip("198.51.100.127")));
    assert!(!odd.contains(ip("198.51.100.128")));
    assert!(!odd.contains(ip("::1")));
}

#[test]
fn allowances_are_by_host() {
    let p = EgressPolicy::strict()
        .allow("127.0.0.1")
        .unwrap()
        .allow("https://Logs.Internal:6514/x")
        .unwrap()
        .allow("[::1]")
        .unwrap();
    assert!(p.check("127.0.0.1", ip("127.0.0.1")).is_ok());
    assert!(p.check("logs.internal.", ip("10.0.0.5")).is_ok());
    assert!(p.check("::1", ip("::1")).is_ok());
    // A name that resolves to an allowed address is still refused: trust is per host.
    let err = p.check("evil.example", ip("127.0.0.1")).unwrap_err();
    assert!(err.to_string().contains("--allow-internal-url"), "{err}");
    for bad in ["", "a b", "http://", "host:5000", "x/y"] {
        assert!(EgressPolicy::strict().allow(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn literal_urls_are_checked_without_dns() {
    let p = EgressPolicy::strict();
    for bad in [
        "http://127.0.0.1:5000/sources/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/",
        "http://[::ffff:7f00:1]/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0/",
    ] {
        let url = Url::parse(bad).unwrap();
        assert!(p.check_literal(&url).is_err(), "{bad}");
    }
    assert!(p
        .check_literal(&Url::parse("https://github.com/x.tgz").unwrap())
        .is_ok());
}

#[tokio::test]
async fn names_are_checked_after_resolution() {
    let p = EgressPolicy::strict();
    let err = p.resolve("localhost", 80).await.unwrap_err();
    assert!(
        matches!(
            err,
            EgressError::Refused {
                class: Internal::Loopback,
                ..
            }
        ),
        "{err}"
    );
    let url = Url::parse("http://localhost:1/").unwrap();
    assert!(p.check_url(&url).await.is_err());
    let allowed = EgressPolicy::strict().allow("localhost").unwrap();
    assert!(!allowed.resolve("localhost", 80).await.unwrap().is_empty());
}

/// A real request on loopback: refused when strict, served when the host is allowed,
/// and a redirect from an allowed host to a literal internal one is refused.
#[tokio::test]
async fn http_clients_enforce_the_policy() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let resp = if req.starts_with("GET /redirect") {
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:9/\r\nContent-Length: 0\r\n\r\n"
                    .to_string()
            } else {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string()
            };
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    let strict = Arc::new(EgressPolicy::strict());
    let client = strict.http_client().build().unwrap();
    // By name: the resolver refuses.
    let by_name = client.get(format!("http://localhost:{port}/")).send().await;
    assert!(by_name.is_err(), "{by_name:?}");
    let allowed = Arc::new(EgressPolicy::strict().allow("localhost").unwrap());
    let client = allowed.http_client().build().unwrap();
    let ok = client
        .get(format!("http://localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.text().await.unwrap(), "ok");
    let redirected = client
        .get(format!("http://localhost:{port}/redirect"))
        .send()
        .await;
    let err = redirected.expect_err("redirect to 127.0.0.2 must be refused");
    assert!(err.is_redirect(), "{err:?}");
}
