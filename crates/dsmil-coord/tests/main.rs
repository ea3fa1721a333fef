//! dsmil-coord's integration tests, one harness: a module per part (agents, resilience, the
//! runner, configuration, workflows, the journal, performance recording).

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

mod breaker;
mod breaker_seed;
mod command;
mod config;
mod http;
mod https;
mod journal;
mod recording;
mod retry;
mod runner;
mod workflow;
