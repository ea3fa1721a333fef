//! Reporting circuit-breaker transitions: every change goes to the log and, as a security
//! event, to the bus; an opening circuit is also appended to the audit log (like emergency
//! stops, which the coordinator audits itself).

use std::sync::Arc;

use dsmil_core::monitoring::{AlertLevel, SecurityEvent};
use dsmil_core::ports::AuditSink;
use dsmil_core::{AgentId, Event, EventBus};

use crate::registry::TransitionListener;
use crate::resilience::BreakerState;
use crate::resilience::breaker::Transition;

/// The security event of one transition.
pub fn transition_event(agent: &AgentId, t: &Transition) -> SecurityEvent {
    let state = match t.to {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    };
    let mut event = SecurityEvent::new(
        format!("circuit_breaker_{state}"),
        if t.to == BreakerState::Open {
            AlertLevel::Warning
        } else {
            AlertLevel::Info
        },
        "coord",
        format!("circuit for agent {agent} is {state}: {}", t.reason),
    );
    event.affected_resources = vec![agent.to_string()];
    event.response_actions = match t.to {
        BreakerState::Open => vec!["calls refused until the open duration elapses".into()],
        BreakerState::HalfOpen => vec!["probe calls admitted".into()],
        BreakerState::Closed => Vec::new(),
    };
    event
}

/// A listener for [`AgentRegistry::from_config`](crate::registry::AgentRegistry::from_config)
/// that logs every transition, publishes it on `bus` and audits openings in `audit`.
pub fn report_transitions(
    bus: Option<EventBus>,
    audit: Option<Arc<dyn AuditSink>>,
) -> TransitionListener {
    Arc::new(move |agent, t| {
        tracing::warn!(%agent, from = ?t.from, to = ?t.to, reason = %t.reason, "circuit breaker");
        let event = transition_event(agent, &t);
        if let Some(bus) = &bus {
            bus.publish(Event::Security(event.clone()));
        }
        if t.to == BreakerState::Open
            && let Some(audit) = &audit
        {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let audit = Arc::clone(audit);
                    rt.spawn(async move {
                        if let Err(e) = audit.append(event).await {
                            tracing::error!(error = %e, "cannot audit a circuit opening");
                        }
                    });
                }
                Err(_) => tracing::error!("no runtime to audit a circuit opening on"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmil_core::ports::MemoryAuditSink;

    #[tokio::test]
    async fn openings_are_published_and_audited_others_only_published() {
        let bus = EventBus::new(16);
        let mut sub = bus.subscribe();
        let audit = Arc::new(MemoryAuditSink::new());
        let listener = report_transitions(Some(bus.clone()), Some(audit.clone()));
        let agent = AgentId::new("a").unwrap();
        for to in [BreakerState::Open, BreakerState::HalfOpen] {
            listener(
                &agent,
                Transition {
                    from: BreakerState::Closed,
                    to,
                    reason: "test".into(),
                },
            );
        }
        let mut kinds = Vec::new();
        while let Ok(Some(p)) = sub.try_recv() {
            if let Event::Security(s) = &*p.event {
                kinds.push(s.event_type.clone());
            }
        }
        assert_eq!(kinds, ["circuit_breaker_open", "circuit_breaker_half_open"]);
        for _ in 0..100 {
            if !audit.events().is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let audited: Vec<_> = audit.events().into_iter().map(|e| e.event_type).collect();
        assert_eq!(audited, ["circuit_breaker_open"]);
    }
}
