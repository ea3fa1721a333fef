//! One journal entry as it is stored (JSON), and how a workflow's entries fold into its
//! [`WorkflowRecord`].

use chrono::{DateTime, Utc};
use dsmil_core::ports::TaskReport;
use dsmil_core::ports::{JournalTransition, WorkflowRecord};
use dsmil_core::{AgentResult, WorkflowId, WorkflowResult, WorkflowSpec, WorkflowState};
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;

/// One entry of a workflow's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum Entry {
    /// The workflow was accepted as `state`.
    Created {
        /// What was submitted.
        spec: WorkflowSpec,
        /// Pending or running.
        state: WorkflowState,
        /// When.
        at: DateTime<Utc>,
    },
    /// A state change.
    State {
        /// The state entered.
        state: WorkflowState,
        /// Why.
        detail: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A task's result.
    Result {
        /// The result.
        result: AgentResult,
        /// Which run it came from, when a node ran it for the workflow's owner.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<Run>,
    },
    /// The workflow's end.
    Finished {
        /// The final result.
        result: WorkflowResult,
        /// When.
        at: DateTime<Utc>,
    },
}

/// The run a result came from: written by the node that ran the task, so an owner (or the
/// owner that took over) finds the outcome of a dispatch in the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The dispatch's generation ([`dsmil_core::ports::TaskRequest::generation`]).
    pub generation: u32,
    /// The node that ran it.
    pub node: String,
    /// What running it came to.
    pub report: TaskReport,
}

impl Entry {
    /// Decodes one stored entry.
    pub fn decode(payload: &[u8]) -> Result<Self, ClusterError> {
        serde_json::from_slice(payload).map_err(ClusterError::codec("decode a journal entry"))
    }
}

/// Folds a workflow's entries (in stream order) into its record; `None` when there are none.
/// Entries before the creation entry cannot exist (it is written first); a journal that does
/// not start with one is reported, not guessed at.
pub fn record(id: WorkflowId, entries: Vec<Entry>) -> Result<Option<WorkflowRecord>, ClusterError> {
    let mut entries = entries.into_iter();
    let Some(first) = entries.next() else {
        return Ok(None);
    };
    let Entry::Created { spec, state, at } = first else {
        return Err(ClusterError::Corrupt {
            workflow: id.to_string(),
            reason: "its first entry is not its creation".to_owned(),
        });
    };
    let mut record = WorkflowRecord {
        workflow_id: id,
        spec,
        state,
        created_at: at,
        results: Vec::new(),
        history: vec![JournalTransition {
            at,
            state,
            detail: "accepted".to_owned(),
        }],
        result: None,
    };
    for entry in entries {
        match entry {
            Entry::Created { .. } => {
                return Err(ClusterError::Corrupt {
                    workflow: id.to_string(),
                    reason: "it was created twice".to_owned(),
                });
            }
            Entry::State { state, detail, at } => {
                record.state = state;
                record.history.push(JournalTransition { at, state, detail });
            }
            Entry::Result { result, .. } => record.results.push(result),
            Entry::Finished { result, at } => {
                record.state = result.state;
                record.history.push(JournalTransition {
                    at,
                    state: result.state,
                    detail: finish_detail(&result),
                });
                record.result = Some(result);
            }
        }
    }
    Ok(Some(record))
}

/// The history line of a workflow's end (the words the SQLite journal writes).
fn finish_detail(result: &WorkflowResult) -> String {
    if result.success {
        "finished successfully".to_owned()
    } else {
        "finished unsuccessfully".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmil_core::conformance::journal::{finished, result, spec};

    #[test]
    fn entries_fold_into_a_record_and_a_bad_start_is_reported() {
        let id = WorkflowId::new_random();
        assert!(record(id, Vec::new()).unwrap().is_none());
        let at = Utc::now();
        let created = Entry::Created {
            spec: spec("fold"),
            state: WorkflowState::Running,
            at,
        };
        let a = result("a", Some(2), true);
        assert_eq!(a.replica(), 2);
        let entries = vec![
            created.clone(),
            Entry::Result {
                result: a.clone(),
                run: None,
            },
            Entry::Finished {
                result: finished(id, true, vec![a.clone()]),
                at,
            },
        ];
        let r = record(id, entries).unwrap().unwrap();
        assert_eq!(r.results, vec![a]);
        assert_eq!(r.state, WorkflowState::Completed);
        assert_eq!(r.history.len(), 2);
        let encoded = serde_json::to_vec(&created).unwrap();
        assert_eq!(Entry::decode(&encoded).unwrap(), created);
        assert!(Entry::decode(b"{\"entry\":\"nope\"}").is_err());

        let err = record(
            id,
            vec![Entry::Result {
                result: result("a", None, true),
                run: None,
            }],
        );
        assert!(err.unwrap_err().to_string().contains("first entry"));
        let err = record(id, vec![created.clone(), created]).unwrap_err();
        assert!(err.to_string().contains("created twice"));
    }
}
