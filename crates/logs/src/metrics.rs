//! Counters shared by the hub, the SSE streams, the drains and the disk writer.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub lines_in: AtomicU64,
    pub lines_truncated: AtomicU64,
    pub dropped_tail_overflow: AtomicU64,
    pub dropped_drain_overflow: AtomicU64,
    pub dropped_drain_delivery: AtomicU64,
    pub dropped_persist_backlog: AtomicU64,
    pub drain_delivered: AtomicU64,
    pub drain_connect_errors: AtomicU64,
    pub sessions_created: AtomicU64,
    pub sse_lines_sent: AtomicU64,
    pub persist_errors: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
