//! Group commit of new holder edges: concurrent lookups that hand out keys for the first time share one transaction.
//!
//! A lookup that gives its requester a key it does not hold yet must record the holder edge
//! durably before the answer leaves, and in a transaction that reads the accounts `FOR SHARE`
//! (so that a revocation committing later waits for the edge and reaches the new holder). Each
//! such transaction costs a commit (a WAL flush). Here lookups queue for a few workers; a worker
//! takes every lookup waiting (up to [`MAX_BATCH`]) and records them all in ONE transaction,
//! answering each only after the commit. Batches form by themselves under load (the lookups that
//! arrive while a commit is in flight), so a lone lookup waits for nothing.

use super::accounts::{Known, hands_out_key, insert_edges, share_known};
use crate::problem::{ApiError, ApiResult};
use keyward_proto::BareJid;
use prometheus::Counter;
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Most lookups in one transaction.
pub const MAX_BATCH: usize = 64;
/// Lookups that may wait for a worker; more wait to enqueue (backpressure, not refusal).
const QUEUE: usize = 1024;

/// One lookup that records edges: who asks, for which accounts (sorted, distinct).
struct Job {
    requester: BareJid,
    wanted: Vec<String>,
    answer: oneshot::Sender<ApiResult<Vec<Known>>>,
}

/// The counters of group commit.
#[derive(Clone)]
pub struct EdgeMetrics {
    /// Lookups that recorded holder edges.
    pub lookups: Counter,
    /// Transactions that recorded them.
    pub commits: Counter,
}

/// The queue of lookups that record holder edges, served by `workers` tasks.
#[derive(Clone)]
pub struct EdgeWriter {
    jobs: mpsc::Sender<Job>,
}

impl EdgeWriter {
    /// Starts `workers` tasks (at least one) that record edges on `pool`; they end when every
    /// clone of the writer is dropped.
    pub fn spawn(pool: PgPool, workers: usize, metrics: EdgeMetrics) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(pool.clone(), queue.clone(), metrics.clone()));
        }
        Self { jobs }
    }

    /// Reads `wanted` (sorted, distinct) and records that `requester` holds each active key among
    /// them, durably, in a transaction shared with the lookups waiting at the same time.
    pub async fn record(&self, requester: &BareJid, wanted: &[&str]) -> ApiResult<Vec<Known>> {
        let (answer, answered) = oneshot::channel();
        let job = Job { requester: requester.clone(), wanted: wanted.iter().map(|&j| j.to_owned()).collect(), answer };
        if self.jobs.send(job).await.is_err() {
            tracing::error!("the holder-edge workers are gone");
            return Err(ApiError::Internal);
        }
        // A worker answers every job it takes, after the commit or with its error.
        answered.await.unwrap_or(Err(ApiError::Internal))
    }
}

/// Takes batches off the queue until it closes.
async fn work(pool: PgPool, queue: Arc<Mutex<mpsc::Receiver<Job>>>, metrics: EdgeMetrics) {
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let result = commit(&pool, &batch).await;
        metrics.commits.inc();
        metrics.lookups.inc_by(batch.len() as f64);
        match result {
            Ok(answers) => {
                for (job, rows) in batch.into_iter().zip(answers) {
                    // A lookup whose caller went away: its edges are recorded all the same.
                    let _ = job.answer.send(Ok(rows));
                }
            }
            Err(err) => {
                for job in batch {
                    let _ = job.answer.send(Err(err.clone()));
                }
            }
        }
    }
}

/// One transaction for the whole batch: the accounts of every job read `FOR SHARE` (in JID
/// order), every job's edges inserted (in `(jid, holder)` order, so that concurrent batches and
/// keydir replicas never deadlock), then the commit. Returns each job's rows, in job order.
async fn commit(pool: &PgPool, batch: &[Job]) -> ApiResult<Vec<Vec<Known>>> {
    let wanted: BTreeSet<&str> = batch.iter().flat_map(|job| job.wanted.iter().map(String::as_str)).collect();
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let mut tx = pool.begin().await?;
    let rows = share_known(&mut tx, &wanted).await?;
    let mut edges: BTreeSet<(&str, &str)> = BTreeSet::new();
    for job in batch {
        for row in rows.iter().filter(|row| job.wanted.binary_search(&row.jid).is_ok()) {
            if hands_out_key(row.status, row.bundle.is_some(), &row.jid, &job.requester) {
                edges.insert((row.jid.as_str(), job.requester.as_str()));
            }
        }
    }
    if !edges.is_empty() {
        let (jids, holders): (Vec<&str>, Vec<&str>) = edges.into_iter().unzip();
        insert_edges(&mut tx, &jids, &holders).await?;
    }
    let answers = batch
        .iter()
        .map(|job| rows.iter().filter(|row| job.wanted.binary_search(&row.jid).is_ok()).cloned().collect())
        .collect();
    tx.commit().await?;
    Ok(answers)
}
