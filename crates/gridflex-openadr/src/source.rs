//! [`VenSource`]: the VEN as a [`SignalSource`]. It polls the VTN, keeps an
//! [`EventBook`], and yields the signals that follow; it backs off while the VTN is
//! away and resynchronises when it answers again.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use gridflex_core::clock::Clock;
use gridflex_signals::source::SignalSource;
use gridflex_signals::{GridSignal, SignalError};

use crate::book::{EventBook, View};
use crate::mapping::Mapping;
use crate::wire::Ven;
use crate::{OpenAdrError, VenClient};

/// Notes kept for the integrator at most (the oldest are dropped first).
const MAX_NOTES: usize = 1000;

/// Settings of a [`VenSource`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VenConfig {
    /// The VEN's name on the VTN (1 to 128 characters).
    pub ven_name: String,
    /// The program names to follow; empty: every program the VEN may see.
    pub programs: Vec<String>,
    /// How often the VTN is polled (default 5 s).
    pub poll_interval: Duration,
    /// First wait after a failed poll (default 1 s); it doubles with each further
    /// failure, up to `backoff_max` (default 30 s).
    pub backoff_initial: Duration,
    /// Longest wait between two tries while the VTN is away.
    pub backoff_max: Duration,
    /// A held (future) event is released at its start only if the VTN answered within
    /// this long (default 15 s; at least the poll interval): nothing new starts from
    /// stale data.
    pub stale_after: Duration,
    /// How events become signals.
    pub mapping: Mapping,
}

impl VenConfig {
    /// Settings with the defaults.
    pub fn new(ven_name: impl Into<String>, mapping: Mapping) -> Self {
        Self {
            ven_name: ven_name.into(),
            programs: Vec::new(),
            poll_interval: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            stale_after: Duration::from_secs(15),
            mapping,
        }
    }

    fn validate(&self) -> Result<(), OpenAdrError> {
        if self.ven_name.trim().is_empty() || self.ven_name.len() > 128 {
            return Err(OpenAdrError::config(
                "VEN name",
                "must be 1 to 128 characters",
            ));
        }
        if self.poll_interval.is_zero() || self.backoff_initial.is_zero() {
            return Err(OpenAdrError::config(
                "poll interval",
                "poll interval and first back-off must be positive",
            ));
        }
        if self.backoff_max < self.backoff_initial {
            return Err(OpenAdrError::config(
                "back-off",
                "the longest back-off is shorter than the first",
            ));
        }
        if self.stale_after < self.poll_interval {
            return Err(OpenAdrError::config(
                "stale_after",
                "shorter than the poll interval: held events could never start",
            ));
        }
        for l in &self.mapping.simple_levels {
            if !(1..=3).contains(&l.level) {
                return Err(OpenAdrError::config(
                    "SIMPLE levels",
                    format!("level {} is not 1, 2 or 3", l.level),
                ));
            }
        }
        Ok(())
    }
}

/// Something the VEN noticed: an ignored payload, a malformed event, the VTN going
/// away or coming back. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VenNote {
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub message: String,
}

/// A shared, bounded log of [`VenNote`]s: clone it before handing the source to the
/// orchestrator, and drain it to print or record the notes.
#[derive(Debug, Clone, Default)]
pub struct VenLog(Arc<Mutex<VecDeque<VenNote>>>);

impl VenLog {
    fn push(&self, at: DateTime<Utc>, message: String) {
        if let Ok(mut q) = self.0.lock() {
            if q.len() >= MAX_NOTES {
                q.pop_front();
            }
            q.push_back(VenNote { at, message });
        }
    }

    /// Takes every note so far, oldest first.
    pub fn drain(&self) -> Vec<VenNote> {
        self.0
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }
}

/// The VEN as a signal source: run it with the orchestrator like any other.
///
/// Each poll reads the VEN object (registering it on the first poll), the programs,
/// and each program's events; compares each event's `modificationDateTime` with the
/// last seen; and yields what follows ([`crate::book`] has the rules). A failed
/// poll is returned once as an error (the orchestrator audits it), then retried with
/// back-off, silently but for a [note](VenLog); the next successful poll resynchronises
/// everything that changed meanwhile. It never ends by itself.
pub struct VenSource<C> {
    client: VenClient,
    config: VenConfig,
    clock: C,
    ven: Option<Ven>,
    book: EventBook,
    queue: VecDeque<GridSignal>,
    next_poll: Option<DateTime<Utc>>,
    failures: u32,
    last_ok: Option<DateTime<Utc>>,
    noted_malformed: HashSet<String>,
    log: VenLog,
}

impl<C> std::fmt::Debug for VenSource<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenSource")
            .field("client", &self.client)
            .field("ven_name", &self.config.ven_name)
            .field("ven_id", &self.ven.as_ref().map(|v| &v.id))
            .field("queued", &self.queue.len())
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> VenSource<C> {
    /// A source on `client` with `config`, timed by `clock`; no request is made until
    /// the first [`next_signal`](SignalSource::next_signal) or [`sync`](Self::sync).
    pub fn new(client: VenClient, config: VenConfig, clock: C) -> Result<Self, OpenAdrError> {
        config.validate()?;
        Ok(Self {
            client,
            config,
            clock,
            ven: None,
            book: EventBook::default(),
            queue: VecDeque::new(),
            next_poll: None,
            failures: 0,
            last_ok: None,
            noted_malformed: HashSet::new(),
            log: VenLog::default(),
        })
    }

    /// The shared note log.
    pub fn log(&self) -> VenLog {
        self.log.clone()
    }

    /// The client (for reports).
    pub fn client(&self) -> &VenClient {
        &self.client
    }

    /// The VEN object, once registered.
    pub fn ven(&self) -> Option<&Ven> {
        self.ven.as_ref()
    }

    /// Dispatches sent and not yet ended.
    pub fn active_dispatches(&self) -> usize {
        self.book.active()
    }

    /// Polls the VTN once and queues what follows; returns how many signals were queued.
    pub async fn sync(&mut self) -> Result<usize, OpenAdrError> {
        let ven = match &self.ven {
            Some(v) => match self.client.ven(&v.id).await {
                // Deleted by business logic: register again (it gets a new id).
                Err(OpenAdrError::Status { status: 404, .. }) => {
                    self.log.push(
                        self.clock.now(),
                        format!("VEN object {} is gone: registering again", v.id),
                    );
                    self.client.register(&self.config.ven_name).await?
                }
                other => other?,
            },
            None => self.client.register(&self.config.ven_name).await?,
        };
        let programs = self.client.programs().await?;
        let mut view = View::default();
        for p in programs {
            if !self.config.programs.is_empty() && !self.config.programs.contains(&p.program_name) {
                continue;
            }
            for e in self.client.events(&p.id).await? {
                match e {
                    Ok(e) if e.program_id != p.id => {
                        self.note_once(
                            &e.id,
                            format!(
                                "event {} lists program {} under program {}: ignored",
                                e.id, e.program_id, p.id
                            ),
                        );
                    }
                    Ok(e) if !targeted(&e.targets, &ven) => {
                        self.note_once(
                            &e.id,
                            format!(
                                "event {} targets {:?}, not this VEN: ignored",
                                e.id, e.targets
                            ),
                        );
                    }
                    Ok(e) => view.events.push((e, p.program_name.clone())),
                    Err(err) => {
                        let key = err.to_string();
                        self.note_once(&key.clone(), key);
                    }
                }
            }
        }
        let now = self.clock.now();
        let (signals, notes) = self.book.apply(view, &self.config.mapping, now);
        for n in notes {
            self.log.push(now, n);
        }
        let n = signals.len();
        self.queue.extend(signals);
        self.ven = Some(ven);
        Ok(n)
    }

    fn note_once(&mut self, key: &str, message: String) {
        if self.noted_malformed.len() < 10_000 && self.noted_malformed.insert(key.to_owned()) {
            self.log.push(self.clock.now(), message);
        }
    }

    fn fresh(&self, now: DateTime<Utc>) -> bool {
        self.last_ok
            .is_some_and(|t| now - t <= delta(self.config.stale_after))
    }

    fn backoff(&self) -> Duration {
        let shift = self.failures.saturating_sub(1).min(16);
        self.config
            .backoff_initial
            .saturating_mul(1 << shift)
            .min(self.config.backoff_max)
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Whether an event with `targets` is for `ven`: no targets means every VEN of the
/// program; otherwise one must be the VEN's name or one of its targets.
fn targeted(targets: &[String], ven: &Ven) -> bool {
    targets.is_empty()
        || targets
            .iter()
            .any(|t| *t == ven.ven_name || ven.targets.contains(t))
}

#[async_trait]
impl<C: Clock> SignalSource for VenSource<C> {
    async fn next_signal(&mut self) -> Result<Option<GridSignal>, SignalError> {
        loop {
            if let Some(s) = self.queue.pop_front() {
                return Ok(Some(s));
            }
            let now = self.clock.now();
            if self.fresh(now) {
                self.queue.extend(self.book.release_due(now));
                if !self.queue.is_empty() {
                    continue;
                }
            }
            if self.next_poll.is_none_or(|t| t <= now) {
                match self.sync().await {
                    Ok(_) => {
                        let now = self.clock.now();
                        if self.failures > 0 {
                            self.log.push(
                                now,
                                format!(
                                    "VTN answers again after {} failed poll(s): resynchronised",
                                    self.failures
                                ),
                            );
                        }
                        self.failures = 0;
                        self.last_ok = Some(now);
                        self.next_poll = Some(now + delta(self.config.poll_interval));
                    }
                    Err(e) => {
                        self.failures = self.failures.saturating_add(1);
                        let now = self.clock.now();
                        let wait = self.backoff();
                        self.next_poll = Some(now + delta(wait));
                        self.log.push(
                            now,
                            format!(
                                "poll failed ({} in a row): {e}; next try in {wait:?}",
                                self.failures
                            ),
                        );
                        // Reported once per outage; the rest only as notes.
                        if self.failures == 1 {
                            return Err(e.into());
                        }
                    }
                }
                continue;
            }
            let mut wake = self.next_poll.unwrap_or(now);
            if self.fresh(now)
                && let Some(due) = self.book.next_due()
            {
                wake = wake.min(due);
            }
            self.clock.sleep_until(wake).await;
        }
    }
}
