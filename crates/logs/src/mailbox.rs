//! The bounded queue between `push` and one consumer (a tail session or a drain).
//!
//! `offer` never waits: when the queue is full the line is dropped and counted. The
//! consumer sees the gap as a `Dropped` marker exactly where it happened, so tails can
//! print L11 and drains L10 in order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hoist_types::LogLine;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// A line as the hub stores it.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Per-app sequence number, the SSE event id.
    pub seq: u64,
    /// When the hub accepted it (for lag metrics and latency).
    pub received: Instant,
    pub line: LogLine,
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    Line(Arc<Entry>),
    Dropped { count: u64, since: DateTime<Utc> },
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    Queued,
    Dropped,
    Closed,
}

#[derive(Debug)]
pub(crate) struct Mailbox {
    state: Mutex<State>,
    notify: Notify,
    cap: usize,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Item>,
    /// `Line` items in `queue` (markers don't count against the capacity).
    lines: usize,
    dropped: u64,
    drop_since: Option<DateTime<Utc>>,
    closed: bool,
}

impl Mailbox {
    pub fn new(cap: usize) -> Arc<Mailbox> {
        Arc::new(Mailbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            cap: cap.max(1),
        })
    }

    pub fn offer(&self, entry: &Arc<Entry>) -> Offer {
        {
            let mut st = self.state.lock();
            if st.closed {
                return Offer::Closed;
            }
            if st.lines >= self.cap {
                st.dropped += 1;
                st.drop_since.get_or_insert_with(Utc::now);
                return Offer::Dropped;
            }
            if st.dropped > 0 {
                let marker = take_marker(&mut st);
                st.queue.push_back(marker);
            }
            st.queue.push_back(Item::Line(entry.clone()));
            st.lines += 1;
        }
        // One consumer per mailbox: notify_one keeps a permit if it isn't waiting yet.
        self.notify.notify_one();
        Offer::Queued
    }

    /// Waits for items and moves up to `max` of them into `out`. Returns false once the
    /// mailbox is closed and everything was delivered.
    pub async fn recv(&self, max: usize, out: &mut Vec<Item>) -> bool {
        loop {
            {
                let mut st = self.state.lock();
                if st.closed {
                    return false;
                }
                if !st.queue.is_empty() {
                    let n = st.queue.len().min(max.max(1));
                    let before = out.len();
                    out.extend(st.queue.drain(..n));
                    let taken = out[before..]
                        .iter()
                        .filter(|i| matches!(i, Item::Line(_)))
                        .count();
                    st.lines -= taken;
                    return true;
                }
                if st.dropped > 0 {
                    let marker = take_marker(&mut st);
                    out.push(marker);
                    return true;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Like `recv`, but when fewer than `max` items were ready, waits `linger` once and
    /// takes what arrived meanwhile: a busy stream then costs one write per batch
    /// instead of one per line, for at most `linger` of extra latency.
    pub async fn recv_batch(
        &self,
        max: usize,
        linger: std::time::Duration,
        out: &mut Vec<Item>,
    ) -> bool {
        let start = out.len();
        if !self.recv(max, out).await {
            return false;
        }
        let got = out.len() - start;
        if got < max {
            tokio::time::sleep(linger).await;
            let mut st = self.state.lock();
            if st.closed {
                return false;
            }
            let n = st.queue.len().min(max - got);
            let before = out.len();
            out.extend(st.queue.drain(..n));
            let taken = out[before..]
                .iter()
                .filter(|i| matches!(i, Item::Line(_)))
                .count();
            st.lines -= taken;
        }
        true
    }

    /// Stops the consumer and makes future offers report `Closed`.
    pub fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        st.queue.clear();
        st.lines = 0;
        drop(st);
        self.notify.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Queued lines and the age of the oldest one.
    pub fn lag(&self) -> (usize, f64) {
        let st = self.state.lock();
        let oldest = st.queue.iter().find_map(|i| match i {
            Item::Line(e) => Some(e.received.elapsed().as_secs_f64()),
            Item::Dropped { .. } => None,
        });
        (st.lines, oldest.unwrap_or(0.0))
    }
}

fn take_marker(st: &mut State) -> Item {
    let count = std::mem::take(&mut st.dropped);
    let since = st.drop_since.take().unwrap_or_else(Utc::now);
    Item::Dropped { count, since }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Arc<Entry> {
        Arc::new(Entry {
            seq,
            received: Instant::now(),
            line: LogLine::app("web.1", format!("line {seq}")),
        })
    }

    fn seqs(items: &[Item]) -> Vec<Option<u64>> {
        items
            .iter()
            .map(|i| match i {
                Item::Line(e) => Some(e.seq),
                Item::Dropped { .. } => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn overflow_marker_sits_at_the_gap() {
        let mb = Mailbox::new(2);
        assert_eq!(mb.offer(&entry(1)), Offer::Queued);
        assert_eq!(mb.offer(&entry(2)), Offer::Queued);
        assert_eq!(mb.offer(&entry(3)), Offer::Dropped);
        assert_eq!(mb.offer(&entry(4)), Offer::Dropped);
        let mut out = Vec::new();
        assert!(mb.recv(10, &mut out).await);
        assert_eq!(seqs(&out), vec![Some(1), Some(2)]);
        assert_eq!(mb.offer(&entry(5)), Offer::Queued);
        out.clear();
        assert!(mb.recv(10, &mut out).await);
        assert_eq!(seqs(&out), vec![None, Some(5)]);
        assert!(matches!(out[0], Item::Dropped { count: 2, .. }));
    }

    #[tokio::test]
    async fn marker_delivered_when_no_more_lines_come() {
        let mb = Mailbox::new(1);
        mb.offer(&entry(1));
        mb.offer(&entry(2));
        let mut out = Vec::new();
        mb.recv(10, &mut out).await;
        mb.recv(10, &mut out).await;
        assert_eq!(seqs(&out), vec![Some(1), None]);
        mb.close();
        assert!(!mb.recv(10, &mut out).await);
        assert_eq!(mb.offer(&entry(3)), Offer::Closed);
    }
}
