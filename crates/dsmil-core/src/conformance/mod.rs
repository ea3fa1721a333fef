//! Conformance suites: one set of checks every implementation of a port must pass, run by each
//! implementation's own tests (feature `testenv`). A suite function panics with a message naming
//! the broken expectation, like any test assertion.

pub mod journal;
