//! The routing table the dyno manager publishes and the router reads.
//!
//! The router never blocks on the store: every request reads the latest published
//! [`Table`] through an `ArcSwap`, and requests held for a waking app wait on a
//! `watch` channel that ticks on every publish.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

/// One `up` web dyno of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Dyno name as it appears in the router log line, e.g. `web.2`.
    pub dyno: String,
    pub addr: SocketAddr,
}

/// What the router should do with a request for an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteStatus {
    /// Web dynos are up; `backends` lists them.
    Up,
    /// No release yet (H81).
    NotDeployed,
    /// Formation has web=0 (H14).
    NoWebDynos,
    /// No web dyno is up (H10).
    Crashed,
    /// Sleeping: the router asks the dyno manager to wake it and holds the request.
    Idle,
    /// Booting: the router holds the request until it is up or `wake_timeout` passes (H20).
    Starting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRoute {
    pub app_id: String,
    pub app_name: String,
    pub maintenance: bool,
    pub status: RouteStatus,
    pub backends: Vec<Backend>,
}

/// A complete snapshot; published as a whole.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Keyed by app name.
    pub apps: HashMap<String, AppRoute>,
    /// Lowercase hostname (no trailing dot) -> app name.
    pub custom_domains: HashMap<String, String>,
}

impl Table {
    /// Finds the app a Host value points at: `<app>.<domain>` or a custom domain.
    /// `host` may carry a port, a trailing dot and any letter case; `domain` must be
    /// normalized with [`normalize_host`].
    pub fn resolve(&self, host: &str, domain: &str) -> Option<&AppRoute> {
        let host = normalize_host(host);
        if let Some(prefix) = host.strip_suffix(domain) {
            if let Some(name) = prefix.strip_suffix('.') {
                if !name.is_empty() && !name.contains('.') {
                    if let Some(app) = self.apps.get(name) {
                        return Some(app);
                    }
                }
            }
        }
        let name = self.custom_domains.get(host.as_ref())?;
        self.apps.get(name)
    }
}

/// Lowercases, strips a `:port` and one trailing dot. IPv6 literals keep their brackets.
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) => &host[..i],
            None => host,
        }
    };
    let trimmed = without_port.strip_suffix('.').unwrap_or(without_port);
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// The published table plus a change signal.
pub struct RoutingTable {
    current: ArcSwap<Table>,
    version: watch::Sender<u64>,
}

impl RoutingTable {
    pub fn new() -> Arc<Self> {
        Arc::new(RoutingTable {
            current: ArcSwap::from_pointee(Table::default()),
            version: watch::channel(0).0,
        })
    }

    /// Replaces the whole table and wakes every request waiting for a change.
    pub fn publish(&self, table: Table) {
        self.current.store(Arc::new(table));
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn load(&self) -> Arc<Table> {
        self.current.load_full()
    }

    /// A receiver whose `changed()` resolves on the next publish after this call.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Resolves on the next publish after this call.
    pub fn changed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.subscribe();
        async move {
            // An error means the table was dropped: nothing will ever change again.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::default();
        t.apps.insert(
            "myapp".into(),
            AppRoute {
                app_id: "id-1".into(),
                app_name: "myapp".into(),
                maintenance: false,
                status: RouteStatus::Up,
                backends: vec![],
            },
        );
        t.custom_domains
            .insert("www.example.com".into(), "myapp".into());
        t
    }

    #[test]
    fn resolves_default_domain_in_any_form() {
        let t = table();
        for host in [
            "myapp.localhost",
            "MyApp.LocalHost",
            "myapp.localhost:8080",
            "myapp.localhost.",
            "myapp.localhost.:80",
        ] {
            assert_eq!(
                t.resolve(host, "localhost").map(|a| a.app_id.as_str()),
                Some("id-1"),
                "{host}"
            );
        }
        for host in [
            "other.localhost",
            "localhost",
            "a.myapp.localhost",
            "myapp.localhostx",
            ".localhost",
        ] {
            assert!(t.resolve(host, "localhost").is_none(), "{host}");
        }
    }

    #[test]
    fn resolves_custom_domains() {
        let t = table();
        assert!(t.resolve("WWW.example.com.:443", "localhost").is_some());
        assert!(t.resolve("example.com", "localhost").is_none());
    }

    #[test]
    fn normalizes_ipv6() {
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
    }

    #[tokio::test]
    async fn changed_fires_on_publish() {
        let rt = RoutingTable::new();
        let changed = rt.changed();
        rt.publish(table());
        tokio::time::timeout(std::time::Duration::from_secs(5), changed)
            .await
            .unwrap();
        assert!(rt.load().apps.contains_key("myapp"));
    }
}
