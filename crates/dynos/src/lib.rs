//! The dyno manager: one reconcile loop compares desired state (formation of the
//! current release, from the store) with observed dynos (from the runtime) and starts,
//! replaces, stops, restarts with back-off, idles and wakes dynos. It publishes the
//! routing table (up web dynos) and writes observed dynos to the store for the API.
//!
//! Invariant: boot, deploy, scale, restart, crash recovery and daemon restart all end in
//! `reconcile()`; there is no second way to start a formation dyno.

mod manager;
mod ports;
pub mod rules;

pub use manager::{DynoManager, ManagerConfig, OneOffRequest, OneOffStarted};
