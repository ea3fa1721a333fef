//! The thin async driver: feeds bus events into [`EventRates`] and the [`AlertEngine`], and
//! re-evaluates the rates on a timer so rate alerts also resolve when traffic stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dsmil_core::events::RecvError;
use dsmil_core::{Event, EventBus, Subscriber};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::engine::{ActiveAlert, AlertEngine, AlertTransition, AlertsSnapshot};
use crate::collect::{DEFAULT_RATE_WINDOW, EventCounters, EventRates, NoRuntime, RatesSnapshot};

/// Driver settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertDriverOptions {
    /// Length of the rate window. Default: 60 s.
    pub rates_window: Duration,
    /// How often the rates are evaluated. Default: 1 s (raised to at least 1 ms).
    pub evaluate_every: Duration,
}

impl Default for AlertDriverOptions {
    fn default() -> Self {
        Self {
            rates_window: DEFAULT_RATE_WINDOW,
            evaluate_every: Duration::from_secs(1),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere mid-update; the data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared read access to a running engine and its rates, for request handlers and the
/// Prometheus exporter. Cheap to clone. Locks are held only for the copy.
#[derive(Debug, Clone)]
pub struct AlertsView {
    engine: Arc<Mutex<AlertEngine>>,
    rates: Arc<Mutex<EventRates>>,
    lagged: Arc<AtomicU64>,
}

impl AlertsView {
    /// Everything `/api/alerts` shows.
    pub fn snapshot(&self) -> AlertsSnapshot {
        lock(&self.engine).snapshot()
    }

    /// Active alerts.
    pub fn active(&self) -> Vec<ActiveAlert> {
        lock(&self.engine).active()
    }

    /// The active alerts as a [`Hub`](crate::ws::Hub)'s source after it fell behind the bus
    /// ([`Hub::set_alert_source`](crate::ws::Hub::set_alert_source)).
    pub fn alert_source(&self) -> crate::ws::AlertSource {
        let view = self.clone();
        Arc::new(move || view.active().into_iter().map(|a| a.alert).collect())
    }

    /// Past transitions, oldest first.
    pub fn history(&self) -> Vec<AlertTransition> {
        lock(&self.engine).history()
    }

    /// The rates over the window ending now.
    pub fn rates(&self) -> RatesSnapshot {
        lock(&self.rates).snapshot(Instant::now().into_std())
    }

    /// Bus events seen since start, by kind.
    pub fn event_counters(&self) -> EventCounters {
        lock(&self.rates).counters().clone()
    }

    /// Bus events the driver missed because it fell behind.
    pub fn lagged_events(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    /// Runs `f` with the engine locked (for anything the other accessors do not cover).
    /// Do not block inside `f`.
    pub fn with_engine<R>(&self, f: impl FnOnce(&AlertEngine) -> R) -> R {
        f(&lock(&self.engine))
    }

    /// Waits until every audit entry submitted so far has reached the sink.
    pub async fn flush_audit(&self) {
        let writer = lock(&self.engine).audit_writer().cloned();
        if let Some(w) = writer {
            w.flush().await;
        }
    }
}

/// Owns the driver task. Stop it with [`AlertEngineTask::shutdown`]; dropping it stops the
/// task too, so keep it for as long as alerts should be evaluated.
#[derive(Debug)]
#[must_use = "dropping the task handle stops the alert engine"]
pub struct AlertEngineTask {
    view: AlertsView,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl AlertEngineTask {
    /// Shared read access for request handlers.
    pub fn view(&self) -> AlertsView {
        self.view.clone()
    }

    /// Asks the task to stop and waits until it has.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(task) = task else { return };
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "the alert engine task ended abnormally");
        }
    }
}

/// Subscribes to `bus` (before returning, so nothing published afterwards is missed) and
/// starts the driver: every `SystemHealth` event is evaluated at once; agent activity and
/// security events feed the rate window, which is evaluated every `evaluate_every`. A lagged
/// subscription is logged and counted, and the driver carries on. The engine normally
/// publishes its alerts on the same bus ([`AlertEngine::with_bus`]).
pub fn spawn_alert_engine(
    engine: AlertEngine,
    bus: &EventBus,
    options: AlertDriverOptions,
) -> Result<AlertEngineTask, NoRuntime> {
    spawn_alert_engine_on(engine, bus.subscribe(), options)
}

/// Like [`spawn_alert_engine`], from a subscription taken earlier: an embedder subscribes as
/// soon as it creates the bus, so that events published while it wires the rest (security
/// events at start-up, say) are evaluated too.
pub fn spawn_alert_engine_on(
    engine: AlertEngine,
    events: Subscriber,
    options: AlertDriverOptions,
) -> Result<AlertEngineTask, NoRuntime> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| NoRuntime)?;
    let view = AlertsView {
        engine: Arc::new(Mutex::new(engine)),
        rates: Arc::new(Mutex::new(EventRates::new(options.rates_window))),
        lagged: Arc::new(AtomicU64::new(0)),
    };
    let (stop, stop_rx) = watch::channel(false);
    let task = runtime.spawn(run(
        events,
        view.clone(),
        options.evaluate_every.max(Duration::from_millis(1)),
        stop_rx,
    ));
    Ok(AlertEngineTask {
        view,
        stop,
        task: std::sync::Mutex::new(Some(task)),
    })
}

async fn run(
    mut sub: Subscriber,
    view: AlertsView,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            received = sub.recv() => match received {
                // Another node's rules judge its own events (its alerts are relayed too).
                Ok(published) if published.is_local() => handle(&view, &published.event),
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    view.lagged.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(missed = n, "alert engine fell behind the event bus");
                }
                Err(RecvError::Closed) => {
                    tracing::info!("event bus closed; alert engine stops");
                    break;
                }
            },
            _ = tick.tick() => {
                let now = Instant::now().into_std();
                let rates = lock(&view.rates).snapshot(now);
                lock(&view.engine).observe_rates(&rates, now);
            }
        }
    }
}

fn handle(view: &AlertsView, event: &Event) {
    let now = Instant::now().into_std();
    lock(&view.rates).observe(event, now);
    match event {
        Event::SystemHealth(health) => {
            lock(&view.engine).observe_health(health, now);
        }
        Event::Cluster(cluster) => {
            lock(&view.engine).observe_cluster(cluster, now);
        }
        _ => {}
    }
}
