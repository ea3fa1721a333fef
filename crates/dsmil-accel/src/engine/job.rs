//! What a submitter holds: [`JobHandle`] (a future) and, once done, [`Completed`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dsmil_core::OperationId;
use tokio::sync::oneshot;

use super::error::AccelError;
use crate::Platform;

/// A job's result with its identity and timings.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed<T> {
    /// The id the job got at submission.
    pub operation_id: OperationId,
    /// What the job returned.
    pub value: T,
    /// How long the job ran.
    pub elapsed: Duration,
    /// How long it waited in the queue before a worker started it.
    pub queued: Duration,
}

type Outcome<T> = Result<Completed<T>, AccelError>;

/// The future of a submitted job. Dropping it does not cancel the job; the result is discarded.
pub struct JobHandle<T> {
    operation_id: OperationId,
    receiver: oneshot::Receiver<Outcome<T>>,
}

impl<T> JobHandle<T> {
    /// The id the job got at submission.
    pub fn operation_id(&self) -> OperationId {
        self.operation_id
    }
}

impl<T> fmt::Debug for JobHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("operation_id", &self.operation_id)
            .finish_non_exhaustive()
    }
}

impl<T> Future for JobHandle<T> {
    type Output = Outcome<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The sender only disappears unused if the job was dropped without running, which the
        // engine does only when it is gone.
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(AccelError::ShutDown)))
    }
}

/// Tells the worker how a job went: `(succeeded, busy time)`, before the submitter hears it.
pub(crate) type Record<'a> = &'a dyn Fn(bool, Duration);

/// A type-erased job: runs on `platform` as operation `id` after waiting `queued`.
pub(crate) type Run = Box<dyn FnOnce(Platform, OperationId, Duration, Record<'_>) + Send>;

/// Wraps `job` so that it runs under `catch_unwind`, records, then answers its handle.
pub(crate) fn wrap<T, F>(job: F) -> (Run, oneshot::Receiver<Outcome<T>>)
where
    T: Send + 'static,
    F: FnOnce(Platform) -> T + Send + 'static,
{
    let (sender, receiver) = oneshot::channel();
    let run: Run = Box::new(move |platform, operation_id, queued, record| {
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(move || job(platform)));
        let elapsed = start.elapsed();
        record(result.is_ok(), elapsed);
        let outcome = match result {
            Ok(value) => Ok(Completed {
                operation_id,
                value,
                elapsed,
                queued,
            }),
            Err(payload) => Err(AccelError::JobPanicked(panic_message(payload.as_ref()))),
        };
        // The submitter may have dropped its handle; then nobody wants the result.
        let _ = sender.send(outcome);
    });
    (run, receiver)
}

/// Builds the handle for an accepted job.
pub(crate) fn handle<T>(
    operation_id: OperationId,
    receiver: oneshot::Receiver<Outcome<T>>,
) -> JobHandle<T> {
    JobHandle {
        operation_id,
        receiver,
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the job panicked with a non-text payload".to_owned()
    }
}
