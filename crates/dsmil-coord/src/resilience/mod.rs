//! Resilience around each agent: bulkhead → circuit breaker → retry → timeout → agent.

pub mod breaker;
pub mod retry;

pub use breaker::{
    BreakerSettings, BreakerState, CircuitBreaker, Permit, Rejected, Transition, Window,
};
pub use retry::{Attempts, RetryBudget, RetryPolicy, retry};
