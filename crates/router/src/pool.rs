//! Limits on the router's connections to dynos, for both paths: hyper's pooled
//! client in `proxy` and the fast path's own pool.

use std::time::Duration;

/// How long an idle keep-alive connection to a dyno is reused: below the 5 s
/// keep-alive of common app servers (Node), so the pool does not hand out
/// connections the dyno is about to close.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle connections kept per dyno address (per worker thread).
pub(crate) const MAX_IDLE_PER_DYNO: usize = 256;
/// Connect failures are retried on other dynos at most this many times in total.
pub(crate) const MAX_ATTEMPTS: usize = 3;
