//! The one integration-test harness of dsmil-accel: every suite is a module, and a test that
//! must run per kernel path is instantiated once per forced path by [`per_path!`] (a path this
//! machine cannot run reports itself `SKIPPED` by name on stderr).

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

#[macro_use]
mod common;

mod aes;
mod chacha20;
mod engine;
mod force;
mod kernels;
mod math;
mod memory;
mod quantized;
mod sha;
