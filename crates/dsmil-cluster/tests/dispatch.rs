//! Task dispatch between nodes of one process, over the shared JetStream cluster: a task runs
//! on the node hosting its agent; tasks of an agent hosted three times spread over the three,
//! each run once; a dropped dispatch stops the run; a node whose worker dies mid-task has the
//! task delivered to another host; a task delivered twice while it runs (as JetStream does
//! when a consumer's leader changes) runs once; an agent nobody hosts any more fails the task
//! clearly; a second node with a live node's id is refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dsmil_cluster::{ClusterConfig, ClusterError, ClusterNode};
use dsmil_core::conformance::journal::{finished, spec};
use dsmil_core::ports::{
    FailureKind, HostedAgent, TaskDispatcher, TaskExecutor, TaskReport, TaskRequest,
};
use dsmil_core::{AgentId, TaskId, WorkflowId, WorkflowState};
use serde_json::json;
use tokio::time::{Instant, sleep};

use crate::support::{cleanup, config, jetstream, prefix, shared};

/// What a test executor saw: (node, task id, event) in order, event `start`, `end` or `drop`.
type Log = Arc<Mutex<Vec<(String, String, &'static str)>>>;

/// Hosts `agents` (id, capacity) on node `node`: echoes its input after `sleep_ms`.
struct TestExecutor {
    node: String,
    agents: Vec<(AgentId, usize)>,
    log: Log,
}

/// Logs `drop` when a run is dropped before it ended.
struct DropGuard {
    node: String,
    task: String,
    log: Log,
    ended: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.ended {
            let entry = (self.node.clone(), self.task.clone(), "drop");
            self.log.lock().unwrap().push(entry);
        }
    }
}

#[async_trait]
impl TaskExecutor for TestExecutor {
    fn hosted(&self) -> Vec<HostedAgent> {
        self.agents
            .iter()
            .map(|(agent_id, capacity)| HostedAgent {
                agent_id: agent_id.clone(),
                capacity: *capacity,
                in_flight: 0,
                breaker: "closed".to_owned(),
            })
            .collect()
    }

    async fn execute(&self, request: &TaskRequest) -> TaskReport {
        let task = request.task_id.to_string();
        self.log
            .lock()
            .unwrap()
            .push((self.node.clone(), task.clone(), "start"));
        let mut guard = DropGuard {
            node: self.node.clone(),
            task: task.clone(),
            log: Arc::clone(&self.log),
            ended: false,
        };
        let ms = request.input_data["sleep_ms"].as_u64().unwrap_or(0);
        sleep(Duration::from_millis(ms)).await;
        guard.ended = true;
        self.log
            .lock()
            .unwrap()
            .push((self.node.clone(), task, "end"));
        TaskReport {
            result: json!({"echo": request.input_data, "ran_on": self.node}),
            resource_usage: Default::default(),
            failure: None,
            attempts: 1,
            agent_time_us: ms * 1000,
            wall_time_us: ms * 1000,
            node: None,
            deliveries: 1,
        }
    }
}

/// A cluster of test nodes under one prefix.
struct World {
    base: ClusterConfig,
    log: Log,
}

impl World {
    fn new() -> Option<Self> {
        let (urls, token) = shared()?;
        let mut base = config(&urls, &token, &prefix());
        base.lease_seconds = 1;
        Some(Self {
            base,
            log: Log::default(),
        })
    }

    async fn node(&self, id: &str, agents: &[(&str, usize)]) -> ClusterNode {
        self.try_node(id, agents)
            .await
            .unwrap_or_else(|e| panic!("node {id}: {}", dsmil_core::report::chain(&e)))
    }

    async fn try_node(
        &self,
        id: &str,
        agents: &[(&str, usize)],
    ) -> Result<ClusterNode, ClusterError> {
        let config = ClusterConfig {
            node_id: Some(id.to_owned()),
            ..self.base.clone()
        };
        let executor = Arc::new(TestExecutor {
            node: id.to_owned(),
            agents: agents
                .iter()
                .map(|(a, c)| (AgentId::new(*a).unwrap(), *c))
                .collect(),
            log: Arc::clone(&self.log),
        });
        ClusterNode::start(&config, executor).await
    }

    fn events(&self, event: &str) -> Vec<(String, String)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.2 == event)
            .map(|e| (e.0.clone(), e.1.clone()))
            .collect()
    }

    async fn cleanup(&self) {
        let js = jetstream(&self.base).await;
        cleanup(&js, &dsmil_cluster::Names::new(&self.base.name)).await;
    }
}

fn request(workflow: WorkflowId, task: &str, agent: &str, sleep_ms: u64) -> TaskRequest {
    TaskRequest {
        workflow_id: workflow,
        task_id: TaskId::new(task).unwrap(),
        replica: None,
        agent_id: AgentId::new(agent).unwrap(),
        task_description: format!("test task {task}"),
        input_data: json!({"sleep_ms": sleep_ms, "task": task}),
        timeout_ms: 30_000,
        retries: 0,
        generation: 0,
    }
}

/// Waits (bounded) until `dispatcher` sees every agent of `agents` hosted.
async fn until_hosted(dispatcher: &dyn TaskDispatcher, agents: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = dispatcher.agents();
        if agents.iter().all(|a| seen.iter().any(|s| s.as_str() == *a)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agents {agents:?} never seen; saw {seen:?}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_runs_on_the_node_hosting_its_agent_and_is_journaled() {
    let Some(world) = World::new() else { return };
    let a = world.node("node-a", &[("alpha", 2)]).await;
    let b = world.node("node-b", &[("beta", 2)]).await;
    let dispatcher = a.dispatcher();
    until_hosted(dispatcher.as_ref(), &["alpha", "beta"]).await;

    let wf = WorkflowId::new_random();
    let journal = a.journal();
    journal
        .create(wf, &spec("remote"), WorkflowState::Running)
        .await
        .unwrap();
    let req = request(wf, "t1", "beta", 0);
    let done = dispatcher.dispatch(req.clone()).await.unwrap();
    assert!(done.journaled);
    assert_eq!(done.report.node.as_deref(), Some("node-b"));
    assert_eq!(done.report.result["ran_on"], "node-b");
    assert_eq!(
        world.events("end"),
        [("node-b".to_owned(), "t1".to_owned())]
    );
    // The node that ran it journaled it: any node reads it in the workflow's record.
    let record = b.journal().get(wf).await.unwrap().unwrap();
    assert_eq!(record.results, vec![done.report.agent_result(&req)]);
    assert_eq!(record.results[0].metadata["node"], "node-b");
    journal
        .finish(&finished(wf, true, record.results))
        .await
        .unwrap();

    let status = a.status();
    let members: Vec<_> = status
        .members
        .iter()
        .map(|m| m.info.node_id.as_str())
        .collect();
    assert_eq!(members, ["node-a", "node-b"]);
    assert!(status.members.iter().all(|m| m.live));
    b.shutdown().await;
    a.shutdown().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_spread_over_every_host_and_each_runs_once() {
    let Some(world) = World::new() else { return };
    let a = world.node("spread-a", &[("gamma", 2)]).await;
    let b = world.node("spread-b", &[("gamma", 2)]).await;
    let c = world.node("spread-c", &[("gamma", 2)]).await;
    let dispatcher = a.dispatcher();
    until_hosted(dispatcher.as_ref(), &["gamma"]).await;
    let wf = WorkflowId::new_random();
    let runs: Vec<_> = (0..30)
        .map(|i| {
            let dispatcher = Arc::clone(&dispatcher);
            tokio::spawn(async move {
                dispatcher
                    .dispatch(request(wf, &format!("t{i}"), "gamma", 60))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut by_node = BTreeMap::<String, usize>::new();
    for run in runs {
        let done = run.await.unwrap();
        assert!(done.report.failure.is_none(), "{:?}", done.report.failure);
        *by_node.entry(done.report.node.unwrap()).or_default() += 1;
    }
    assert_eq!(by_node.len(), 3, "every host ran some: {by_node:?}");
    let mut ended: Vec<_> = world.events("end").into_iter().map(|e| e.1).collect();
    ended.sort();
    ended.dedup();
    assert_eq!(ended.len(), 30);
    assert_eq!(world.events("end").len(), 30, "no task ran twice");
    for node in [a, b, c] {
        node.shutdown().await;
    }
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_dispatch_stops_the_run_where_it_runs() {
    let Some(world) = World::new() else { return };
    let a = world.node("drop-a", &[]).await;
    let b = world.node("drop-b", &[("slow", 1)]).await;
    let dispatcher = a.dispatcher();
    until_hosted(dispatcher.as_ref(), &["slow"]).await;
    let run = tokio::spawn({
        let dispatcher = Arc::clone(&dispatcher);
        async move {
            let _ = dispatcher
                .dispatch(request(WorkflowId::new_random(), "long", "slow", 20_000))
                .await;
        }
    });
    wait_for(|| !world.events("start").is_empty(), "the run to start").await;
    run.abort();
    wait_for(|| !world.events("drop").is_empty(), "the run to be stopped").await;
    assert!(world.events("end").is_empty());
    b.shutdown().await;
    a.shutdown().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_node_dies_mid_run_is_delivered_to_another_host() {
    let Some(world) = World::new() else { return };
    let a = world.node("die-a", &[]).await;
    let first = world.node("die-b1", &[("delta", 1)]).await;
    let dispatcher = a.dispatcher();
    until_hosted(dispatcher.as_ref(), &["delta"]).await;
    let run = tokio::spawn({
        let dispatcher = Arc::clone(&dispatcher);
        async move {
            // One retry: the run lost with its node spends it (a redelivery is an attempt).
            let mut survivor = request(WorkflowId::new_random(), "survivor", "delta", 1_500);
            survivor.retries = 1;
            dispatcher.dispatch(survivor).await.unwrap()
        }
    });
    wait_for(|| !world.events("start").is_empty(), "the run to start").await;
    let second = world.node("die-b2", &[("delta", 1)]).await;
    // The first host dies without a word: its run is dropped, nothing is acknowledged.
    drop(first);
    let done = run.await.unwrap();
    assert!(done.report.failure.is_none(), "{:?}", done.report.failure);
    assert_eq!(done.report.node.as_deref(), Some("die-b2"));
    assert_eq!(done.report.deliveries, 2);
    assert_eq!(
        world.events("end"),
        [("die-b2".to_owned(), "survivor".to_owned())]
    );
    second.shutdown().await;
    a.shutdown().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_delivered_again_while_it_runs_is_left_to_the_node_running_it() {
    let Some(world) = World::new() else { return };
    let a = world.node("twin-a", &[]).await;
    let b = world.node("twin-b", &[("twin", 1)]).await;
    let c = world.node("twin-c", &[("twin", 1)]).await;
    let dispatcher = a.dispatcher();
    until_hosted(dispatcher.as_ref(), &["twin"]).await;
    let task = request(WorkflowId::new_random(), "once", "twin", 1_500);
    let run = tokio::spawn({
        let dispatcher = Arc::clone(&dispatcher);
        let task = task.clone();
        async move { dispatcher.dispatch(task).await.unwrap() }
    });
    wait_for(|| !world.events("start").is_empty(), "the run to start").await;
    // The same task again, as a second message (what a new consumer leader delivers when the
    // first delivery was not replicated): the idle host pulls it while the run goes on.
    let names = dsmil_cluster::Names::new(&world.base.name);
    let copy = dsmil_cluster::dispatch::wire::TaskMessage {
        key: dsmil_cluster::dispatch::wire::run_key(&task),
        owner: "twin-a".to_owned(),
        request: task.clone(),
    };
    let js = jetstream(&world.base).await;
    js.publish(
        names.task_subject(&task.agent_id),
        serde_json::to_vec(&copy).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let done = run.await.unwrap();
    assert!(done.report.failure.is_none(), "{:?}", done.report.failure);
    assert_eq!(done.report.deliveries, 1);
    // The copy is settled (answered from the journal once it is delivered again) and never ran.
    let mut tasks = js.get_stream(names.tasks_stream()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = tasks.info().await.unwrap();
        if info.state.messages == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the copy was never settled: {info:?}"
        );
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(world.events("start").len(), 1, "{:?}", world.log);
    b.shutdown().await;
    c.shutdown().await;
    a.shutdown().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_nobody_hosts_any_more_fails_its_task_naming_it() {
    let Some(world) = World::new() else { return };
    let a = world.node("gone-a", &[]).await;
    let b = world.node("gone-b", &[("ephemeral", 1)]).await;
    let dispatcher = a.dispatcher();
    until_hosted(dispatcher.as_ref(), &["ephemeral"]).await;
    b.shutdown().await;
    let done = dispatcher
        .dispatch(request(WorkflowId::new_random(), "orphan", "ephemeral", 0))
        .await
        .unwrap();
    assert!(!done.journaled);
    let failure = done.report.failure.unwrap();
    assert_eq!(failure.kind, FailureKind::Failed);
    assert!(
        failure
            .message
            .contains("no live node hosts agent ephemeral"),
        "{}",
        failure.message
    );
    a.shutdown().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_node_with_a_live_nodes_id_is_refused() {
    let Some(world) = World::new() else { return };
    let first = world.node("twin", &[("echo", 1)]).await;
    let err = world
        .try_node("twin", &[("echo", 1)])
        .await
        .expect_err("a second live node with the same id must be refused");
    assert!(matches!(err, ClusterError::DuplicateNode { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("\"twin\"") && text.contains("node_id"),
        "{text}"
    );
    // Once the first has left, the id is free again.
    first.shutdown().await;
    let again = world.node("twin", &[("echo", 1)]).await;
    again.shutdown().await;
    world.cleanup().await;
}

/// Waits (bounded, so a regression fails instead of hanging) until `done`.
async fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "waited 20 s for {what}");
        sleep(Duration::from_millis(10)).await;
    }
}
