//! Every subject, stream, consumer and bucket name the cluster uses, derived from the cluster's
//! `name` prefix in one place. Ids that may hold `.` (agent and task ids) are written with `~`
//! in its place — a character no id may contain, so the mapping is reversible — because `.`
//! separates subject tokens and is not allowed in stream or consumer names.

use dsmil_core::{AgentId, TaskId, WorkflowId};

/// An id as one subject token (and a valid part of a consumer name).
pub fn token(id: &str) -> String {
    id.replace('.', "~")
}

/// The id a [`token`] stands for.
pub fn untoken(token: &str) -> String {
    token.replace('~', ".")
}

/// The names of one cluster (one `name` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix` (the `[cluster] name`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The work-queue stream of tasks.
    pub fn tasks_stream(&self) -> String {
        format!("{}_TASKS", self.prefix.to_uppercase())
    }

    /// The subject tasks for `agent` are published to.
    pub fn task_subject(&self, agent: &AgentId) -> String {
        format!("{}.tasks.{}", self.prefix, token(agent.as_str()))
    }

    /// The durable consumer every node hosting `agent` pulls its tasks through.
    pub fn task_consumer(&self, agent: &AgentId) -> String {
        format!("tasks-{}", token(agent.as_str()))
    }

    /// The journal stream.
    pub fn journal_stream(&self) -> String {
        format!("{}_JOURNAL", self.prefix.to_uppercase())
    }

    /// Every subject of workflow `id`'s journal.
    pub fn journal_all(&self, id: WorkflowId) -> String {
        format!("{}.journal.{id}.>", self.prefix)
    }

    /// The subject of workflow `id`'s creation.
    pub fn journal_created(&self, id: WorkflowId) -> String {
        format!("{}.journal.{id}.created", self.prefix)
    }

    /// The subject of workflow `id`'s state changes.
    pub fn journal_state(&self, id: WorkflowId) -> String {
        format!("{}.journal.{id}.state", self.prefix)
    }

    /// The subject of workflow `id`'s end.
    pub fn journal_finished(&self, id: WorkflowId) -> String {
        format!("{}.journal.{id}.finished", self.prefix)
    }

    /// The subject of the results of task `task` (replica `replica`) of workflow `id`.
    pub fn journal_result(&self, id: WorkflowId, task: &TaskId, replica: u32) -> String {
        format!(
            "{}.journal.{id}.result.{}.{replica}",
            self.prefix,
            token(task.as_str())
        )
    }

    /// The message id of one run's result (the dispatch's identity): duplicates are dropped.
    pub fn result_msg_id(id: WorkflowId, task: &TaskId, replica: u32, generation: u32) -> String {
        format!("r.{id}.{}.{replica}.{generation}", token(task.as_str()))
    }

    /// The message id of one run's task message.
    pub fn task_msg_id(id: WorkflowId, task: &TaskId, replica: u32, generation: u32) -> String {
        format!("t.{id}.{}.{replica}.{generation}", token(task.as_str()))
    }

    /// The index of unfinished workflows (KV bucket).
    pub fn workflows_bucket(&self) -> String {
        format!("{}-workflows", self.prefix)
    }

    /// Which node runs which delivered task (KV bucket: run claims).
    pub fn runs_bucket(&self) -> String {
        format!("{}-runs", self.prefix)
    }

    /// The workflow leases (KV bucket with a TTL).
    pub fn leases_bucket(&self) -> String {
        format!("{}-leases", self.prefix)
    }

    /// Each node's active alerts (KV bucket).
    pub fn alerts_bucket(&self) -> String {
        format!("{}-alerts", self.prefix)
    }

    /// Node heartbeats (KV bucket).
    pub fn nodes_bucket(&self) -> String {
        format!("{}-nodes", self.prefix)
    }

    /// The latest head each node published and who cosigned it (KV bucket).
    pub fn witness_bucket(&self) -> String {
        format!("{}-witness", self.prefix)
    }

    /// Cluster-wide settings in force (KV bucket: the emergency stop).
    pub fn control_bucket(&self) -> String {
        format!("{}-control", self.prefix)
    }

    /// Where the node that ran a task tells the workflow's owner `node`.
    pub fn done_subject(&self, node: &str) -> String {
        format!("{}.done.{node}", self.prefix)
    }

    /// Where node `node` is asked to cancel a workflow it owns.
    pub fn cancel_subject(&self, node: &str) -> String {
        format!("{}.cancel.{node}", self.prefix)
    }

    /// Where an abandoned task run is announced (every node listens; whoever runs it stops).
    pub fn task_cancel_subject(&self) -> String {
        format!("{}.taskcancel", self.prefix)
    }

    /// Where node `node` relays its bus events of kind `kind`.
    pub fn events_subject(&self, node: &str, kind: &str) -> String {
        format!("{}.events.{node}.{kind}", self.prefix)
    }

    /// Every relayed event.
    pub fn events_all(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// The records stream.
    pub fn records_stream(&self) -> String {
        format!("{}_RECORDS", self.prefix.to_uppercase())
    }

    /// Where node `node` publishes its performance records.
    pub fn records_subject(&self, node: &str) -> String {
        format!("{}.records.{node}", self.prefix)
    }

    /// The durable consumer through which node `node` reads every node's records.
    pub fn records_consumer(node: &str) -> String {
        format!("records-{node}")
    }

    /// Where node `node` answers consistency-proof requests.
    pub fn proof_subject(&self, node: &str) -> String {
        format!("{}.audit.proof.{node}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_ids_become_one_token_and_back() {
        let names = Names::new("dsmil");
        let agent = AgentId::new("hasher.v2:x").unwrap();
        assert_eq!(names.task_subject(&agent), "dsmil.tasks.hasher~v2:x");
        assert_eq!(names.task_consumer(&agent), "tasks-hasher~v2:x");
        assert_eq!(untoken(&token("a.b.c")), "a.b.c");
        let w = WorkflowId::new_random();
        let t = TaskId::new("t.1").unwrap();
        assert_eq!(
            names.journal_result(w, &t, 2),
            format!("dsmil.journal.{w}.result.t~1.2")
        );
        assert_ne!(
            Names::result_msg_id(w, &t, 0, 0),
            Names::result_msg_id(w, &t, 0, 1)
        );
        assert_eq!(names.tasks_stream(), "DSMIL_TASKS");
    }
}
