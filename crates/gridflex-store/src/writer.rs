//! [`StoreWriter`]: writes off the caller's path, on a thread fed by a bounded queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{HistoryStore, Record, Retention, StoreError};

/// Settings of a [`StoreWriter`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WriterOptions {
    /// How many records may wait for the writer thread (default 4,096: at the default
    /// 10-second telemetry step that is over eleven hours of meter readings, so only a
    /// stalled disk fills it). A record submitted to a full queue is refused at once and
    /// counted; the caller never waits.
    pub queue: usize,
    /// The most records committed in one transaction (default 256).
    pub batch: usize,
    /// What is kept; the writer prunes once per day of record time (the newest meter
    /// reading's end), so a virtual clock prunes as a real one would.
    pub retention: Retention,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            queue: 4096,
            batch: 256,
            retention: Retention::default(),
        }
    }
}

enum Msg {
    Write(Record),
    Flush(SyncSender<Result<(), String>>),
}

/// A background writer for a [`HistoryStore`].
///
/// [`StoreWriter::submit`] costs one non-blocking channel send; the thread commits
/// queued records in batches (one transaction each). [`StoreWriter::flush`] returns
/// once everything submitted before it is committed, or the first write error since
/// the last flush. Dropping the writer commits what is queued and stops the thread.
pub struct StoreWriter {
    tx: Option<SyncSender<Msg>>,
    worker: Option<std::thread::JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    store: Arc<dyn HistoryStore>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl StoreWriter {
    /// Starts the writer thread.
    pub fn spawn(store: Arc<dyn HistoryStore>, options: WriterOptions) -> Result<Self, StoreError> {
        if options.queue == 0 || options.batch == 0 {
            return Err(StoreError::invalid(
                "writer options",
                "queue and batch must be at least 1",
            ));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(options.queue);
        let worker_store = store.clone();
        let worker = std::thread::Builder::new()
            .name("gridflex-store".into())
            .spawn(move || write_loop(&*worker_store, &rx, options))
            .map_err(|e| StoreError::Writer(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            tx: Some(tx),
            worker: Some(worker),
            dropped: Arc::new(AtomicU64::new(0)),
            store,
        })
    }

    /// Queues a record without waiting. A full queue refuses it (the count is in
    /// [`StoreWriter::dropped`]) with [`StoreError::Writer`].
    pub fn submit(&self, record: Record) -> Result<(), StoreError> {
        let Some(tx) = &self.tx else {
            return Err(StoreError::Writer("stopped".into()));
        };
        match tx.try_send(Msg::Write(record)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Writer("queue full: record dropped".into()))
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Err(StoreError::Writer("the writer thread has stopped".into()))
            }
        }
    }

    /// Waits until every record submitted so far is committed; reports the first write
    /// error since the previous flush.
    pub fn flush(&self) -> Result<(), StoreError> {
        let Some(tx) = &self.tx else {
            return Err(StoreError::Writer("stopped".into()));
        };
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        tx.send(Msg::Flush(done_tx))
            .map_err(|_| StoreError::Writer("the writer thread has stopped".into()))?;
        done_rx
            .recv()
            .map_err(|_| StoreError::Writer("the writer thread has stopped".into()))?
            .map_err(StoreError::Writer)
    }

    /// How many records were refused because the queue was full or the thread gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The store written to (for reads).
    pub fn store(&self) -> &Arc<dyn HistoryStore> {
        &self.store
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn write_loop(store: &dyn HistoryStore, rx: &Receiver<Msg>, options: WriterOptions) {
    let error: Mutex<Option<String>> = Mutex::new(None);
    let note = |e: StoreError| {
        let mut g = error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.get_or_insert_with(|| e.to_string());
    };
    let mut pruned_day: Option<chrono::NaiveDate> = None;
    let mut batch = Vec::with_capacity(options.batch);
    while let Ok(first) = rx.recv() {
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Write(r) => batch.push(r),
                Msg::Flush(done) => flushes.push(done),
            }
            if batch.len() >= options.batch {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            let newest = newest_meter_end(&batch);
            if let Err(e) = store.write(&batch) {
                note(e);
            }
            batch.clear();
            if let Some(now) = newest
                && pruned_day != Some(now.date_naive())
            {
                pruned_day = Some(now.date_naive());
                if let Err(e) = store.prune(now, &options.retention) {
                    note(e);
                }
            }
        }
        for done in flushes {
            let e = error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let _ = done.send(e.map_or(Ok(()), Err));
        }
    }
}

fn newest_meter_end(batch: &[Record]) -> Option<DateTime<Utc>> {
    batch
        .iter()
        .filter_map(|r| match r {
            Record::Meter(m) => m.iter().map(|x| x.interval.end()).max(),
            _ => None,
        })
        .max()
}
