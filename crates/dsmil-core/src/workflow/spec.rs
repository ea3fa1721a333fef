//! Workflow specs as submitted (TOML or JSON): the tasks, their agents and dependencies, the
//! mode's settings — and [`WorkflowSpec::validate`], which every spec passes before anything
//! starts, naming the task or field of the first problem.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use super::{ExecutionMode, MAX_REPLICAS, MAX_RETRIES, MAX_TASKS, MAX_TIMEOUT_SECONDS, Metadata};
use crate::ids::{AgentRef, TaskId};

fn default_task_timeout() -> u32 {
    30
}
fn default_retry_count() -> u32 {
    3
}
fn default_global_timeout() -> u32 {
    300
}

/// One task of a workflow spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentTask {
    /// Unique within the workflow; other tasks' `dependencies` name it.
    pub id: TaskId,
    /// The agent to run on, or `"auto"` to let the learning layer choose.
    pub agent_id: AgentRef,
    /// What the task is about, in words (also what the learning layer embeds).
    pub task_description: String,
    /// Input handed to the agent. Default: `null`.
    #[serde(default)]
    pub input_data: serde_json::Value,
    /// Per-attempt timeout. Default: 30 s.
    #[serde(default = "default_task_timeout")]
    pub timeout_seconds: u32,
    /// Retries after the first attempt. Default: 3.
    #[serde(default = "default_retry_count")]
    pub retry_count: u32,
    /// Tasks that must finish successfully first. Default: none.
    #[serde(default)]
    pub dependencies: Vec<TaskId>,
    /// Free-form metadata. Default: empty.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

/// How competitive mode picks the winning result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// The first successful result wins (the default).
    #[default]
    Fastest,
    /// The successful result with the largest numeric `score` field wins.
    HighestScore,
}

/// A workflow as submitted (TOML or JSON): what to run and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// A label for the kind of workflow (`"build"`, `"attestation"`, …).
    pub workflow_type: String,
    /// How the tasks are coordinated.
    pub execution_mode: ExecutionMode,
    /// Deadline for the whole workflow. Default: 300 s.
    #[serde(default = "default_global_timeout")]
    pub global_timeout_seconds: u32,
    /// The tasks; at least one.
    pub tasks: Vec<AgentTask>,
    /// Consensus mode: how many equal results are needed. Default: a majority of the tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Competitive mode: how the winner is chosen. Default: `fastest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<Comparator>,
    /// Redundant mode: how many replicas run each task. Default: 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Redundant mode: delay before each further replica starts (hedging), ms. Default: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge_delay_ms: Option<u64>,
    /// Consensus mode: compare only this top-level field of the results. Default: the whole
    /// result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus_field: Option<String>,
    /// Sequential mode: keep going after a failed task. Default: stop at the first failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_failure: bool,
    /// Critical workflows keep running when non-critical work is paused (thermal or CPU
    /// emergencies). Default: not critical.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// Free-form metadata. Default: empty.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

/// Why the text of a spec did not parse; the parser's message names the field and position.
#[derive(Debug, Error)]
pub enum ParseError {
    /// Not a TOML spec.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// Not a JSON spec.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Why a workflow spec was rejected. Each variant names the offending task or field.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The text is not valid TOML/JSON for a spec (the source names the field and position).
    #[error("invalid workflow spec")]
    Parse(#[source] ParseError),
    /// No tasks.
    #[error("workflow has no tasks; at least one is required")]
    NoTasks,
    /// Too many tasks.
    #[error("workflow has {0} tasks; at most {MAX_TASKS} are allowed")]
    TooManyTasks(usize),
    /// A field has an invalid value.
    #[error("{field}: {reason}")]
    InvalidField {
        /// Path of the field, e.g. `tasks[2].timeout_seconds`.
        field: String,
        /// What was wrong and what is expected.
        reason: String,
    },
    /// Two tasks share an id.
    #[error("task id {0:?} is used by more than one task")]
    DuplicateTask(String),
    /// A dependency names no task of this workflow.
    #[error("task {task:?} depends on {missing:?}, which is not a task of this workflow")]
    UnknownDependency {
        /// The task declaring the dependency.
        task: String,
        /// The unknown task id.
        missing: String,
    },
    /// The dependencies form a cycle.
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

impl WorkflowSpec {
    /// Parses a TOML spec and validates it.
    pub fn from_toml_str(text: &str) -> Result<Self, SpecError> {
        let spec: WorkflowSpec = toml::from_str(text).map_err(|e| SpecError::Parse(e.into()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses a JSON spec and validates it.
    pub fn from_json_str(text: &str) -> Result<Self, SpecError> {
        let spec: WorkflowSpec =
            serde_json::from_str(text).map_err(|e| SpecError::Parse(e.into()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks everything that can be checked without knowing the registered agents:
    /// task count, timeouts, retries, unique ids, known dependencies, no cycles, and that mode
    /// settings belong to the chosen mode and are in range.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.workflow_type.trim().is_empty() {
            return Err(invalid("workflow_type", "must not be empty"));
        }
        if self.tasks.is_empty() {
            return Err(SpecError::NoTasks);
        }
        if self.tasks.len() > MAX_TASKS {
            return Err(SpecError::TooManyTasks(self.tasks.len()));
        }
        if self.global_timeout_seconds == 0 || self.global_timeout_seconds > MAX_TIMEOUT_SECONDS {
            return Err(invalid(
                "global_timeout_seconds",
                format!(
                    "is {}; expected 1..={MAX_TIMEOUT_SECONDS}",
                    self.global_timeout_seconds
                ),
            ));
        }
        for (i, task) in self.tasks.iter().enumerate() {
            if task.task_description.trim().is_empty() {
                return Err(invalid(
                    format!("tasks[{i}].task_description"),
                    "must not be empty",
                ));
            }
            if task.timeout_seconds == 0 || task.timeout_seconds > self.global_timeout_seconds {
                return Err(invalid(
                    format!("tasks[{i}].timeout_seconds"),
                    format!(
                        "is {}; expected 1..={} (the global timeout)",
                        task.timeout_seconds, self.global_timeout_seconds
                    ),
                ));
            }
            if task.retry_count > MAX_RETRIES {
                return Err(invalid(
                    format!("tasks[{i}].retry_count"),
                    format!(
                        "is {}; at most {MAX_RETRIES} retries are allowed",
                        task.retry_count
                    ),
                ));
            }
        }
        self.validate_mode_settings()?;
        self.topological_order().map(|_| ())
    }

    fn validate_mode_settings(&self) -> Result<(), SpecError> {
        let mode = self.execution_mode;
        let only_for = |field: &str, wanted: ExecutionMode| {
            invalid(
                field,
                format!(
                    "is only used by {} mode, but the workflow runs in {} mode",
                    mode_name(wanted),
                    mode_name(mode)
                ),
            )
        };
        if let Some(quorum) = self.quorum {
            if mode != ExecutionMode::Consensus {
                return Err(only_for("quorum", ExecutionMode::Consensus));
            }
            if quorum == 0 || quorum as usize > self.tasks.len() {
                return Err(invalid(
                    "quorum",
                    format!(
                        "is {quorum}; expected 1..={} (the number of tasks)",
                        self.tasks.len()
                    ),
                ));
            }
        }
        if self.comparator.is_some() && mode != ExecutionMode::Competitive {
            return Err(only_for("comparator", ExecutionMode::Competitive));
        }
        if matches!(
            mode,
            ExecutionMode::Pipeline | ExecutionMode::Consensus | ExecutionMode::Competitive
        ) && let Some(i) = self.tasks.iter().position(|t| !t.dependencies.is_empty())
        {
            return Err(invalid(
                format!("tasks[{i}].dependencies"),
                format!(
                    "are only used by sequential, parallel and redundant modes; {} mode runs its tasks {}",
                    mode_name(mode),
                    if mode == ExecutionMode::Pipeline {
                        "in the order given"
                    } else {
                        "all at once"
                    }
                ),
            ));
        }
        if self.hedge_delay_ms.is_some() && mode != ExecutionMode::Redundant {
            return Err(only_for("hedge_delay_ms", ExecutionMode::Redundant));
        }
        if let Some(field) = &self.consensus_field {
            if mode != ExecutionMode::Consensus {
                return Err(only_for("consensus_field", ExecutionMode::Consensus));
            }
            if field.trim().is_empty() {
                return Err(invalid("consensus_field", "must name a field"));
            }
        }
        if self.continue_on_failure && mode != ExecutionMode::Sequential {
            return Err(only_for("continue_on_failure", ExecutionMode::Sequential));
        }
        if let Some(replicas) = self.replicas {
            if mode != ExecutionMode::Redundant {
                return Err(only_for("replicas", ExecutionMode::Redundant));
            }
            if replicas == 0 || replicas > MAX_REPLICAS {
                return Err(invalid(
                    "replicas",
                    format!("is {replicas}; expected 1..={MAX_REPLICAS}"),
                ));
            }
        }
        Ok(())
    }

    /// Consensus quorum in effect: the configured one or a strict majority.
    pub fn effective_quorum(&self) -> usize {
        self.quorum
            .map(|q| q as usize)
            .unwrap_or(self.tasks.len() / 2 + 1)
    }

    /// Indexes of the tasks in an order where every task comes after its dependencies
    /// (ties keep declaration order). Fails on duplicate ids, unknown dependencies and cycles.
    pub fn topological_order(&self) -> Result<Vec<usize>, SpecError> {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(self.tasks.len());
        for (i, task) in self.tasks.iter().enumerate() {
            if index.insert(task.id.as_str(), i).is_some() {
                return Err(SpecError::DuplicateTask(task.id.to_string()));
            }
        }
        let n = self.tasks.len();
        let mut indegree = vec![0usize; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, task) in self.tasks.iter().enumerate() {
            for dep in &task.dependencies {
                let Some(&d) = index.get(dep.as_str()) else {
                    return Err(SpecError::UnknownDependency {
                        task: task.id.to_string(),
                        missing: dep.to_string(),
                    });
                };
                indegree[i] += 1;
                dependents[d].push(i);
            }
        }
        // Kahn's algorithm with a min-heap on the index keeps declaration order among ready tasks.
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = indegree
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == 0)
            .map(|(i, _)| std::cmp::Reverse(i))
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &j in &dependents[i] {
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.push(std::cmp::Reverse(j));
                }
            }
        }
        if order.len() == n {
            Ok(order)
        } else {
            Err(SpecError::Cycle(self.find_cycle(&index, &indegree)))
        }
    }

    /// Walks dependencies from a task left in the cycle until one repeats; returns that loop.
    fn find_cycle(&self, index: &HashMap<&str, usize>, indegree: &[usize]) -> Vec<String> {
        let Some(start) = indegree.iter().position(|d| *d > 0) else {
            return Vec::new();
        };
        let mut path: Vec<usize> = Vec::new();
        let mut seen_at: HashMap<usize, usize> = HashMap::new();
        let mut current = start;
        loop {
            if let Some(&pos) = seen_at.get(&current) {
                let mut cycle: Vec<String> = path[pos..]
                    .iter()
                    .map(|&i| self.tasks[i].id.to_string())
                    .collect();
                cycle.push(self.tasks[current].id.to_string());
                return cycle;
            }
            seen_at.insert(current, path.len());
            path.push(current);
            // Follow a dependency that is itself still blocked (every blocked task has one).
            let next = self.tasks[current]
                .dependencies
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .find(|&d| indegree[d] > 0);
            match next {
                Some(n) => current = n,
                None => return path.iter().map(|&i| self.tasks[i].id.to_string()).collect(),
            }
        }
    }
}

fn mode_name(mode: ExecutionMode) -> &'static str {
    match mode {
        ExecutionMode::Sequential => "sequential",
        ExecutionMode::Parallel => "parallel",
        ExecutionMode::Pipeline => "pipeline",
        ExecutionMode::Consensus => "consensus",
        ExecutionMode::Competitive => "competitive",
        ExecutionMode::Redundant => "redundant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(toml_tasks: &str, mode: &str) -> String {
        format!("workflow_type = \"t\"\nexecution_mode = \"{mode}\"\n{toml_tasks}")
    }

    fn task(id: &str, deps: &[&str]) -> String {
        let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
        format!(
            "[[tasks]]\nid = \"{id}\"\nagent_id = \"auto\"\ntask_description = \"do {id}\"\ndependencies = [{}]\n",
            deps.join(",")
        )
    }

    #[test]
    fn toml_spec_parses_with_defaults() {
        let s = WorkflowSpec::from_toml_str(&spec(&task("a", &[]), "parallel")).unwrap();
        assert_eq!(s.global_timeout_seconds, 300);
        assert_eq!(s.tasks[0].timeout_seconds, 30);
        assert_eq!(s.tasks[0].retry_count, 3);
        assert_eq!(s.tasks[0].agent_id, AgentRef::Auto);
    }

    #[test]
    fn check_rejections() {
        let check = |text: String, expected: &str| {
            let err = crate::report::chain(&WorkflowSpec::from_toml_str(&text).unwrap_err());
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        };
        check(spec("tasks = []", "parallel"), "no tasks");
        check(spec(&task("a", &[]), "quantum"), "execution_mode");
        check(
            spec(&(task("a", &[]) + &task("a", &[])), "parallel"),
            "\"a\" is used by more than one",
        );
        check(spec(&task("a", &["zz"]), "parallel"), "depends on \"zz\"");
        check(
            spec(
                &(task("a", &["c"]) + &task("b", &["a"]) + &task("c", &["b"])),
                "parallel",
            ),
            "dependency cycle: a -> c -> b -> a",
        );
        check(
            spec(&task("a", &["a"]), "parallel"),
            "dependency cycle: a -> a",
        );
        check(
            format!("quorum = 2\n{}", spec(&task("a", &[]), "parallel")),
            "quorum: is only used by consensus",
        );
        check(
            format!(
                "quorum = 3\n{}",
                spec(&(task("a", &[]) + &task("b", &[])), "consensus")
            ),
            "quorum: is 3",
        );
        check(
            format!("replicas = 0\n{}", spec(&task("a", &[]), "redundant")),
            "replicas: is 0",
        );
        check(
            spec(&(task("a", &[]) + &task("b", &["a"])), "pipeline"),
            "tasks[1].dependencies: are only used by",
        );
        check(
            format!("hedge_delay_ms = 5\n{}", spec(&task("a", &[]), "parallel")),
            "hedge_delay_ms: is only used by redundant",
        );
        check(
            format!(
                "consensus_field = \"\"\n{}",
                spec(&task("a", &[]), "consensus")
            ),
            "consensus_field: must name a field",
        );
        check(
            format!(
                "continue_on_failure = true\n{}",
                spec(&task("a", &[]), "pipeline")
            ),
            "continue_on_failure: is only used by sequential",
        );
        check(
            spec(
                &task("a", &[])
                    .replace("task_description", "timeout_seconds = 0\ntask_description"),
                "parallel",
            ),
            "tasks[0].timeout_seconds",
        );
        check(
            spec(&task("a", &[]).replace("agent_id", "agnet_id"), "parallel"),
            "agnet_id",
        );
        check(
            format!(
                "global_timeout_seconds = 10\n{}",
                spec(&task("a", &[]), "parallel")
            ),
            "tasks[0].timeout_seconds: is 30; expected 1..=10",
        );
    }

    #[test]
    fn topological_order_respects_dependencies_and_declaration_order() {
        let s = WorkflowSpec::from_toml_str(&spec(
            &(task("a", &["c"]) + &task("b", &[]) + &task("c", &[]) + &task("d", &["a", "b"])),
            "sequential",
        ))
        .unwrap();
        assert_eq!(s.topological_order().unwrap(), vec![1, 2, 0, 3]);
    }

    #[test]
    fn state_machine_allows_only_forward_transitions() {
        use crate::workflow::WorkflowState::*;
        assert!(Pending.can_transition_to(Running));
        assert!(Running.can_transition_to(Recovering));
        assert!(Recovering.can_transition_to(Running));
        for terminal in [Completed, Failed, Cancelled] {
            assert!(terminal.is_terminal());
            for next in [Pending, Running, Completed, Failed, Cancelled, Recovering] {
                assert!(!terminal.can_transition_to(next));
            }
        }
    }

    #[test]
    fn json_and_toml_agree() {
        let toml_spec = WorkflowSpec::from_toml_str(&spec(&task("a", &[]), "consensus")).unwrap();
        let json = serde_json::to_string(&toml_spec).unwrap();
        assert_eq!(WorkflowSpec::from_json_str(&json).unwrap(), toml_spec);
    }

    proptest! {
        /// Random DAGs (edges only to earlier tasks) always validate, and the order respects
        /// every edge.
        #[test]
        fn random_dags_order_correctly(edges in proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..4), 1..30)) {
            let mut text = String::new();
            for (i, deps) in edges.iter().enumerate() {
                let deps: Vec<String> = if i == 0 { vec![] } else {
                    let mut d: Vec<usize> = deps.iter().map(|x| x.index(i)).collect();
                    d.sort_unstable();
                    d.dedup();
                    d.into_iter().map(|d| format!("t{d}")).collect()
                };
                let refs: Vec<&str> = deps.iter().map(String::as_str).collect();
                text += &task(&format!("t{i}"), &refs);
            }
            let s = WorkflowSpec::from_toml_str(&spec(&text, "parallel")).unwrap();
            let order = s.topological_order().unwrap();
            let pos: HashMap<usize, usize> = order.iter().enumerate().map(|(p, &i)| (i, p)).collect();
            for (i, t) in s.tasks.iter().enumerate() {
                for d in &t.dependencies {
                    let j = s.tasks.iter().position(|x| &x.id == d).unwrap();
                    prop_assert!(pos[&j] < pos[&i]);
                }
            }
        }

        /// A chain closed back onto itself is always reported as a cycle naming every task.
        #[test]
        fn closed_chains_are_cycles(n in 1usize..20) {
            let mut text = task("t0", &[&format!("t{}", n - 1)]);
            for i in 1..n {
                text += &task(&format!("t{i}"), &[&format!("t{}", i - 1)]);
            }
            match WorkflowSpec::from_toml_str(&spec(&text, "parallel")) {
                Err(SpecError::Cycle(path)) => prop_assert_eq!(path.len(), n + 1),
                other => prop_assert!(false, "expected a cycle, got {:?}", other),
            }
        }
    }
}
