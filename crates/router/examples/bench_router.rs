//! The Hoist router with a static table, for benchmarks.
//! Usage: bench_router <listen-port> <backend-addr>[,<backend-addr>...]
//! Routes `bench.localhost` to the backends.

use std::net::SocketAddr;
use std::sync::Arc;

use hoist_router::{
    AppRoute, Backend, NoHooks, RouteStatus, Router, RouterConfig, RoutingTable, Table,
};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(18082);
    let backends: Vec<Backend> = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .split(',')
        .enumerate()
        .filter_map(|(i, a)| {
            let addr: SocketAddr = a.parse().ok()?;
            Some(Backend {
                dyno: format!("web.{}", i + 1),
                addr,
            })
        })
        .collect();
    let table = RoutingTable::new();
    let mut t = Table::default();
    t.apps.insert(
        "bench".into(),
        AppRoute {
            app_id: "bench-id".into(),
            app_name: "bench".into(),
            maintenance: false,
            status: RouteStatus::Up,
            backends,
        },
    );
    table.publish(t);
    // The acceptor needs one thread; the router runs its own worker threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // ROUTER_WORKERS=n overrides the worker thread count (default: one per CPU).
        let workers = std::env::var("ROUTER_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let cfg = RouterConfig {
            workers,
            ..RouterConfig::default()
        };
        let router = Router::new(cfg, table, Arc::new(NoHooks));
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("bench_router listening on 127.0.0.1:{port}");
        router
            .serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })
}
