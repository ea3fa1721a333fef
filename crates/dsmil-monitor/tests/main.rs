//! The monitor's integration tests in one harness: collectors (fake sysfs trees and the real
//! machine), the alert engine and its responses, and the WebSocket hub with real clients.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

mod alerts;
mod collectors;
mod ws;
