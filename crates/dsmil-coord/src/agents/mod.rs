//! The three kinds of agent.

mod builtin;
mod command;
mod http;

pub use builtin::BuiltinAgent;
pub use command::{CommandAgent, MAX_STDOUT_BYTES};
pub use http::{HttpAgent, MAX_BODY_BYTES};
