use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::time::Duration;

use crate::{Epoch, OutputMode, Result, StageSnapshot, StateEntries};

/// Reads a stream in epochs. The runtime's source actor drives it: it asks the source to look
/// for new input, admits some of it into the current epoch (as the trigger says), reads the
/// admitted input batch by batch, and puts a barrier after the last batch of the epoch.
pub trait Source: Send + 'static {
    /// The schema of every batch this source returns.
    fn schema(&self) -> SchemaRef;

    /// Looks for new input (a file source lists its folder again). New input is only read
    /// once it has been admitted.
    fn discover(&mut self) -> Result<()>;

    /// Called once, before the first listing, when the trigger is bounded (`once`,
    /// `available_now`): such a run reads what exists at start, so input that cannot exist
    /// yet (a folder not created) is an error rather than something to wait for.
    fn check_bounded_input(&self) -> Result<()> {
        Ok(())
    }

    /// Admits discovered input into the epoch being read and returns how many units (files)
    /// were admitted, as much as `quota` allows.
    fn admit(&mut self, quota: Quota) -> usize;

    /// How many discovered units wait to be admitted.
    fn backlog(&self) -> usize;

    /// The next batch of admitted input, or `None` once everything admitted has been read.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>>;

    /// The source's position at a barrier: what changed since the last snapshot (files
    /// finished, the file being read and the row reached in it).
    fn snapshot(&mut self) -> Result<StageSnapshot> {
        Ok(StageSnapshot::default())
    }

    /// Resumes at the position a checkpoint recorded, before anything is discovered.
    fn restore(&mut self, _state: StateEntries) -> Result<()> {
        Ok(())
    }

    /// Malformed input rows met since the last call, for progress records. Sources that
    /// stop at the first malformed row have none to count.
    fn take_malformed_rows(&mut self) -> u64 {
        0
    }

    /// Rows rejected since the last call, as a batch of [`crate::bad_records_schema`], for a
    /// source configured to keep them. The runtime sends them to the source's bad-records
    /// sink ahead of the epoch's barrier, so that they commit with the epoch's good rows.
    fn take_bad_records(&mut self) -> Result<Option<RecordBatch>> {
        Ok(None)
    }

    /// How often to look for new input when idle under the continuous trigger, given the
    /// runtime's default (100 ms). A source whose look is nearly free (the CSV source with
    /// file-system notifications) asks for less, so that new input waits less.
    fn idle_poll(&self, default: Duration) -> Duration {
        default
    }

    /// The source's position at the barrier of `epoch`. The runtime calls this rather than
    /// [`Self::snapshot`]; a source that acts on input once its epoch has committed (the CSV
    /// source's `clean_source`) overrides it to note which input the epoch finished.
    fn snapshot_at(&mut self, epoch: Epoch) -> Result<StageSnapshot> {
        let _ = epoch;
        self.snapshot()
    }

    /// What acts on this source's input once an epoch's output has committed, if anything.
    /// Called once, before the run starts; the runtime calls the cleaner after every sink
    /// has committed each epoch.
    fn input_cleaner(&mut self) -> Option<Box<dyn InputCleaner>> {
        None
    }
}

/// Acts on a source's input after the epochs that read it have committed: deleting or
/// archiving the files a CSV source finished. It runs after every sink's commit of the
/// epoch, so nothing it removes is needed again.
pub trait InputCleaner: Send + 'static {
    /// Every sink has committed `epoch`. Failures to clean are for the cleaner to report
    /// (a log line): the epoch's output is committed whatever happens here.
    fn committed(&mut self, epoch: Epoch);
}

/// Transforms batches; stateful operators also emit at every barrier.
pub trait Operator: Send + 'static {
    /// The schema of every batch this operator outputs.
    fn output_schema(&self) -> SchemaRef;

    /// Takes one input batch. A stateless operator returns its output at once; an aggregate
    /// folds the batch into its state and returns `None`.
    fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>>;

    /// The output for the epoch that is ending, in `mode`. Called once per output mode that a
    /// downstream sink asked for, before [`Operator::end_epoch`].
    fn emit(&mut self, _mode: OutputMode) -> Result<Option<RecordBatch>> {
        Ok(None)
    }

    /// The state that changed in the epoch, for its checkpoint. Called after
    /// [`Operator::emit`], before [`Operator::end_epoch`].
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StageSnapshot> {
        Ok(StageSnapshot::default())
    }

    /// The epoch's barrier has been handled; forget what changed in it.
    fn end_epoch(&mut self, _epoch: Epoch) -> Result<()> {
        Ok(())
    }

    /// Loads the state a checkpoint holds, before any batch arrives.
    fn restore(&mut self, _state: StateEntries) -> Result<()> {
        Ok(())
    }

    /// The watermark of the operator's input has reached `watermark_ms` (milliseconds since
    /// the Unix epoch). Called at a barrier, before [`Operator::emit`], when it advanced: a
    /// stateful operator emits in `append` mode what became final, evicts it from its state
    /// at [`Operator::snapshot`], and judges the rows of later epochs late against it.
    fn advance_watermark(&mut self, _watermark_ms: i64) -> Result<()> {
        Ok(())
    }

    /// Rows dropped as late (at or behind the watermark) since the last call, for progress
    /// records (Spark's `numRowsDroppedByWatermark`).
    fn take_late_rows(&mut self) -> u64 {
        0
    }
}

/// Writes a stream out. Output becomes visible in two phases: [`Sink::pre_commit`] at the
/// epoch's barrier makes it durable but hidden, [`Sink::commit`] after the checkpoint is
/// complete makes it visible.
pub trait Sink: Send + 'static {
    /// Takes one batch of the current epoch.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// The epoch has ended: flush and close what was written for it, still hidden.
    fn pre_commit(&mut self, _epoch: Epoch) -> Result<()> {
        Ok(())
    }

    /// The epoch whose barrier has come is the stream's last (a bounded run's end, or a
    /// graceful stop). Called just before that epoch's [`Sink::pre_commit`], so that a sink
    /// holding output back over epochs puts all of it into this one.
    fn last_epoch(&mut self) -> Result<()> {
        Ok(())
    }

    /// Called once before any batch. `resume` is `None` on a fresh start, or the last complete
    /// checkpoint's epoch and this sink's state in it: the sink commits what that checkpoint
    /// left pending and discards anything written for later epochs.
    fn start(&mut self, _resume: Option<(Epoch, StateEntries)>) -> Result<()> {
        Ok(())
    }

    /// The state for the checkpoint of the epoch just pre-committed (its pending files).
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StageSnapshot> {
        Ok(StageSnapshot::default())
    }

    /// The checkpoint for `epoch` is complete: make its output visible. Must be idempotent.
    fn commit(&mut self, _epoch: Epoch) -> Result<()> {
        Ok(())
    }

    /// The stream has ended; release resources.
    fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How much discovered input [`Source::admit`] may let into the epoch being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Everything discovered (the `once` trigger).
    All,
    /// The source's per-trigger limit (`max_files_per_trigger`), less the `already` units
    /// admitted into the same epoch: under the continuous trigger a source admits more input
    /// as it runs out within one epoch, and the limit holds for the epoch as a whole.
    PerTrigger {
        /// Units admitted into this epoch before this call.
        already: usize,
    },
}

impl Quota {
    /// How many units a source with per-trigger limit `limit` may admit now.
    pub fn allows(self, limit: Option<usize>) -> usize {
        match (self, limit) {
            (Quota::PerTrigger { already }, Some(max)) => max.saturating_sub(already),
            _ => usize::MAX,
        }
    }
}
