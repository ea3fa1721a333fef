//! Intrusion-response policies: what the bridge does for an intrusion of each severity.

use std::collections::BTreeMap;

use dsmil_core::monitoring::AlertLevel;
use serde::{Deserialize, Serialize};

/// One response step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrusionAction {
    /// Append a signed entry to the audit log.
    Log,
    /// Publish a security event (dashboards, alerting).
    Alert,
    /// Refuse configuration changes on the device (all devices when none is named).
    LockConfiguration,
    /// Extend the intrusion PCR, so secrets sealed to it become unavailable until reboot.
    ExtendPcr,
    /// Emergency: stop all work through the `Throttle` port and raise an emergency event.
    Emergency,
}

/// Actions per severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrusionPolicy {
    /// The steps for each level, in the order they run.
    pub actions: BTreeMap<AlertLevel, Vec<IntrusionAction>>,
}

impl Default for IntrusionPolicy {
    /// Info logs; warning also alerts; critical also locks configuration and extends the
    /// PCR; emergency also stops all work.
    fn default() -> Self {
        use IntrusionAction::*;
        let mut actions = BTreeMap::new();
        actions.insert(AlertLevel::Info, vec![Log]);
        actions.insert(AlertLevel::Warning, vec![Log, Alert]);
        actions.insert(
            AlertLevel::Critical,
            vec![Log, Alert, LockConfiguration, ExtendPcr],
        );
        actions.insert(
            AlertLevel::Emergency,
            vec![Log, Alert, LockConfiguration, ExtendPcr, Emergency],
        );
        Self { actions }
    }
}

impl IntrusionPolicy {
    /// The steps for `level` (none when the policy does not mention it).
    pub fn for_level(&self, level: AlertLevel) -> &[IntrusionAction] {
        self.actions.get(&level).map(Vec::as_slice).unwrap_or(&[])
    }
}
