//! Integration tests of dsmil-cluster, against real nats-server processes.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

mod credentials;
mod dispatch;
mod journal;
mod nats_server;
mod support;
