//! The stage actors. Each runs on its own arbiter (thread); data edges carry [`Envelope`]s and
//! every data send waits for the receiver to handle the message, so memory stays bounded.

mod align;
mod event_time;
mod operator;
mod sink;
mod source;

use std::sync::atomic::{AtomicU64, Ordering};

use actix::{MailboxError, Recipient};
use futures::future::join_all;
use weir_core::{Envelope, StreamMessage};

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

/// Row and batch counters of one stage, readable while the pipeline runs.
#[derive(Debug, Default)]
pub struct StageMetrics {
    /// Rows received (for a source: rows read).
    pub rows_in: AtomicU64,
    /// Rows sent downstream (for a sink: rows written).
    pub rows_out: AtomicU64,
    /// Batches received.
    pub batches_in: AtomicU64,
    /// Barriers handled.
    pub barriers: AtomicU64,
}

impl StageMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
