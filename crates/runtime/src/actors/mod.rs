//! The stage actors. Each runs on its own arbiter (thread); data edges carry [`Envelope`]s and
//! every data send waits for the receiver to handle the message, so memory stays bounded.

mod align;
mod clean;
mod event_time;
mod operator;
mod sink;
mod source;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::{MailboxError, Recipient};
use arrow_array::RecordBatch;
use futures::future::join_all;
use weir_core::{Envelope, StreamMessage};

pub(crate) use clean::CleanerActor;
pub(crate) use event_time::EventTimeTracker;
pub(crate) use operator::OperatorActor;
pub(crate) use sink::SinkActor;
pub(crate) use source::SourceActor;

/// Messages a stage's mailbox holds before senders wait. Each upstream has at most one data
/// message outstanding per edge, so this is room for control messages too.
pub(crate) const MAILBOX_CAPACITY: usize = 16;

/// One outgoing data edge: the receiving stage and the input port this edge is for it.
#[derive(Clone)]
pub(crate) struct Edge {
    pub(crate) recipient: Recipient<Envelope>,
    pub(crate) port: usize,
}

/// Sends each edge its messages in order, all edges at once, and waits until every receiver
/// has handled them: this wait is the backpressure of the data path.
pub(crate) async fn send_all(
    outgoing: Vec<(Edge, Vec<StreamMessage>)>,
) -> Result<(), MailboxError> {
    let per_edge = outgoing.into_iter().map(|(edge, messages)| async move {
        for message in messages {
            edge.recipient
                .send(Envelope {
                    port: edge.port,
                    message,
                })
                .await?;
        }
        Ok::<_, MailboxError>(())
    });
    join_all(per_edge).await.into_iter().collect()
}

/// Counters of one stage, readable while the pipeline runs: the pipeline's metrics registry
/// reads them, and only the stage's own actor writes them (relaxed atomics, never a lock).
#[derive(Debug, Default)]
pub struct StageMetrics {
    /// Rows received (for a source: rows read).
    pub rows_in: AtomicU64,
    /// Rows sent downstream (for a sink: rows written).
    pub rows_out: AtomicU64,
    /// Batches received (for a source: batches read).
    pub batches_in: AtomicU64,
    /// Batches sent downstream (for a sink: batches written).
    pub batches_out: AtomicU64,
    /// Arrow memory of the batches received (for a source: of the batches read).
    pub bytes_in: AtomicU64,
    /// Arrow memory of the batches sent downstream (for a sink: of the batches written).
    pub bytes_out: AtomicU64,
    /// Barriers handled.
    pub barriers: AtomicU64,
    /// Nanoseconds spent working: reading, processing, writing, committing.
    pub busy_ns: AtomicU64,
    /// Nanoseconds spent waiting for downstream stages to take what this stage handed on:
    /// the stage's backpressure.
    pub backpressured_ns: AtomicU64,
}

impl StageMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_time(counter: &AtomicU64, time: Duration) {
        counter.fetch_add(time.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Counts one batch received.
    pub(crate) fn received(&self, batch: &RecordBatch) {
        Self::add(&self.rows_in, batch.num_rows());
        Self::add(&self.batches_in, 1);
        Self::add(&self.bytes_in, batch.get_array_memory_size());
    }

    /// Counts one batch handed on (for a sink: written).
    pub(crate) fn sent(&self, batch: &RecordBatch) {
        Self::add(&self.rows_out, batch.num_rows());
        Self::add(&self.batches_out, 1);
        Self::add(&self.bytes_out, batch.get_array_memory_size());
    }

    /// A counter's value now.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
