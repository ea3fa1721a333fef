//! The engine's one write path: a task that commits what concurrent callers send — single
//! records grouped into one transaction, each batch in a transaction of its own (so it is stored
//! all or none, and its count of new records is its own) — in the order they were sent.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::LearnError;
use crate::record::StoredRecord;
use crate::store::PerformanceStore;

/// What a caller hands the writer, with where to send the outcome.
pub(super) enum Unit {
    /// One record; grouped with the single records around it.
    One(Box<StoredRecord>, oneshot::Sender<Result<(), LearnError>>),
    /// A batch, committed alone; the answer is how many of its records were new.
    Batch(Vec<StoredRecord>, oneshot::Sender<Result<u64, LearnError>>),
}

/// Commits the single records gathered so far in one transaction and tells their callers.
async fn flush(
    store: &dyn PerformanceStore,
    group: &mut Vec<(StoredRecord, oneshot::Sender<Result<(), LearnError>>)>,
) {
    if group.is_empty() {
        return;
    }
    let records: Vec<StoredRecord> = group.iter().map(|(r, _)| r.clone()).collect();
    let result = store.insert(&records).await.map(|_| ());
    for (_, done) in group.drain(..) {
        // The caller may have gone away; its record is stored regardless.
        let _ = done.send(result.clone());
    }
}

/// Runs until every sender is gone, taking up to `max` units at a time.
pub(super) async fn write_loop(
    store: Arc<dyn PerformanceStore>,
    mut rx: mpsc::Receiver<Unit>,
    max: usize,
) {
    let mut units = Vec::with_capacity(max);
    let mut group = Vec::with_capacity(max);
    while rx.recv_many(&mut units, max).await > 0 {
        for unit in units.drain(..) {
            match unit {
                Unit::One(record, done) => group.push((*record, done)),
                Unit::Batch(records, done) => {
                    flush(store.as_ref(), &mut group).await;
                    let _ = done.send(store.insert(&records).await);
                }
            }
        }
        flush(store.as_ref(), &mut group).await;
    }
}
