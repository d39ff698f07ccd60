//! The thread that makes the core's records durable while the core runs on.
//!
//! The core task hands it each round's records in order and goes back to
//! its inputs. The thread takes every round waiting, writes their records
//! as one frame with one fsync (the group commit: rounds that arrive while
//! the disk syncs share the next fsync) and reports the last round that is
//! now durable. Both queues are bounded by [`MAX_ROUNDS_IN_FLIGHT`]: the
//! core stops taking input while that many rounds wait for the disk.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use synod_paxos::{ReadySeq, Record, Storage};
use tokio::sync::mpsc;

use crate::metrics::CoreMetrics;

/// Most rounds handed to the log and not yet reported durable.
pub(crate) const MAX_ROUNDS_IN_FLIGHT: usize = 64;

/// The handle of the log's thread.
pub(crate) struct LogWriter {
    rounds: Option<std_mpsc::SyncSender<(ReadySeq, Vec<Record>)>>,
    thread: Option<JoinHandle<()>>,
    /// Why the log failed, once it did (its thread then stops): a round
    /// handed over afterwards fails with the cause, not only with
    /// "stopped".
    failure: Arc<OnceLock<String>>,
}

/// Reports from the log's thread: every round through this one is durable,
/// or the log failed (the thread then stops, and the node must too).
pub(crate) type Durable = mpsc::Receiver<anyhow::Result<ReadySeq>>;

impl LogWriter {
    /// Starts the thread that owns `log`.
    pub(crate) fn start<S>(
        mut log: S,
        metrics: CoreMetrics,
        node: u32,
    ) -> anyhow::Result<(LogWriter, Durable)>
    where
        S: Storage + Send + 'static,
    {
        let (rounds_tx, rounds) =
            std_mpsc::sync_channel::<(ReadySeq, Vec<Record>)>(MAX_ROUNDS_IN_FLIGHT);
        let (durable_tx, durable) = mpsc::channel(MAX_ROUNDS_IN_FLIGHT);
        let failure = Arc::new(OnceLock::new());
        let failed_because = Arc::clone(&failure);
        let thread = std::thread::Builder::new()
            .name(format!("synod-log-{node}"))
            .spawn(move || {
                while let Ok((mut last, mut records)) = rounds.recv() {
                    while let Ok((seq, more)) = rounds.try_recv() {
                        records.extend(more);
                        last = seq;
                    }
                    let started = Instant::now();
                    let result = log.persist(&records).map(|()| last);
                    metrics.observe_fsync(started.elapsed().as_secs_f64());
                    let failed = result.is_err();
                    if let Err(e) = &result {
                        let _ = failed_because.set(e.to_string());
                    }
                    if durable_tx
                        .blocking_send(result.map_err(anyhow::Error::from))
                        .is_err()
                        || failed
                    {
                        break;
                    }
                }
            })?;
        let writer = LogWriter {
            rounds: Some(rounds_tx),
            thread: Some(thread),
            failure,
        };
        Ok((writer, durable))
    }

    /// Hands round `seq`'s records to the log, after every earlier round's.
    /// Never blocks while the caller keeps fewer than
    /// [`MAX_ROUNDS_IN_FLIGHT`] rounds unreported.
    ///
    /// # Errors
    /// Once the log failed (with its cause), or its thread is gone.
    pub(crate) fn submit(&self, seq: ReadySeq, records: Vec<Record>) -> anyhow::Result<()> {
        let rounds = self.rounds.as_ref().expect("submit after stop");
        rounds
            .send((seq, records))
            .map_err(|_| match self.failure.get() {
                Some(cause) => anyhow::anyhow!("the log failed: {cause}"),
                None => anyhow::anyhow!("the log's thread stopped"),
            })
    }

    /// Lets the thread finish the rounds handed to it and waits for it.
    pub(crate) fn stop(&mut self) {
        self.rounds = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log whose disk is full.
    struct FullDisk;

    #[derive(Debug, thiserror::Error)]
    #[error("no space left on device")]
    struct NoSpace;

    impl Storage for FullDisk {
        type Error = NoSpace;
        fn load(&self) -> Result<synod_paxos::DurableState, NoSpace> {
            Ok(synod_paxos::DurableState::default())
        }
        fn persist(&mut self, _: &[Record]) -> Result<(), NoSpace> {
            Err(NoSpace)
        }
    }

    #[tokio::test]
    async fn a_round_handed_over_after_the_log_failed_fails_with_the_cause() {
        let (writer, mut durable) = LogWriter::start(FullDisk, CoreMetrics::new(), 1).unwrap();
        let record = Record::Promised(synod_paxos::Ballot::new(1, synod_paxos::NodeId(1)));
        writer.submit(1, vec![record.clone()]).unwrap();
        let report = durable.recv().await.expect("a report");
        assert!(report.unwrap_err().to_string().contains("no space left"));
        // The thread is gone: the next round fails, naming why.
        let error = loop {
            match writer.submit(2, vec![record.clone()]) {
                Ok(()) => tokio::task::yield_now().await,
                Err(e) => break e,
            }
        };
        assert_eq!(error.to_string(), "the log failed: no space left on device");
    }
}
