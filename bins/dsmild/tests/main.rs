//! dsmild end to end, in one harness: the real binary started as a child process on loopback,
//! driven over HTTP and WebSocket, with swtpm, PostgreSQL and headless Chromium where a test
//! needs them.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

mod audited;
mod cluster;
mod cluster_faults;
mod common;
mod connections;
mod contract;
mod daemon;
mod dashboard;
mod deploy;
mod emergency;
mod learn;
mod monitor;
mod schema;
mod service;
mod tpm;
mod witness;
mod workflows;
