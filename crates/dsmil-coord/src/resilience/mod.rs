//! Resilience around each agent: bulkhead → circuit breaker → retry → timeout → agent.

pub mod breaker;
pub mod bulkhead;
pub mod retry;

pub use breaker::{
    BreakerSettings, BreakerState, CircuitBreaker, Permit, Rejected, Transition, Window,
};
pub use bulkhead::{Bulkhead, Slot};
pub use retry::{Attempts, RetryBudget, RetryPolicy, retry};
