//! The orchestrator's side: [`AgentClient`] (one connection per agent, commands
//! batched, the lease renewed while the node holds a curtailment) and the remote
//! handles [`RemoteDevice`] and [`RemoteWorkload`], which implement the hal traits so
//! the orchestrator drives a remote node as it drives local devices.
//!
//! Batching needs no change in the caller: every command is queued to the client's
//! connection task, which takes whatever is queued when it runs and sends it as one
//! [`Request::Batch`]. The orchestrator issues a whole stage before awaiting anything,
//! so one stage becomes one batch per node, whatever the number of GPUs per node.
//! [`AgentClient::apply`] sends an explicit batch.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gridflex_core::{DeviceId, JobId, Power};
use gridflex_hal::{
    DeviceInfo, ErrorKind, HalError, LimitChange, OutsideRestore, PowerDevice, PowerSample,
    PowerSampleStream, Telemetry, WorkloadControl, WorkloadState,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::AgentError;
use crate::protocol::{
    Greeting, Hello, Inventory, LapseReport, LeaseStatus, MAX_HANDSHAKE_FRAME, Op, OpResult,
    PROTOCOL_VERSION, Refusal, Request, Response, Session, Side, proof, read_frame, read_raw,
    write_frame,
};

/// Lapse reports a client keeps until taken (the oldest are dropped beyond this).
const MAX_LAPSES: usize = 256;

/// How a client talks to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// The lease each batch and renewal asks for.
    pub lease: Duration,
    /// How often the lease is renewed while the node holds a curtailment (a third of
    /// the lease by default: two renewals may be lost before it lapses).
    pub renew_every: Duration,
    /// How long a request may take before the connection is dropped and the request
    /// failed.
    pub request_timeout: Duration,
    /// How long connecting and the handshake may take.
    pub connect_timeout: Duration,
    /// How often a node found unreachable is tried again, in the background: until a
    /// reconnection succeeds every request fails at once
    /// ([`AgentError::Unreachable`]) instead of waiting out the timeouts.
    pub reconnect_every: Duration,
    /// The most ops sent in one batch.
    pub max_batch: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self::with_lease(Duration::from_secs(30))
    }
}

impl ClientOptions {
    /// Defaults around a lease: renewals every third of it, requests time out after
    /// a third of it (at most 5 s), connecting after 2 s, an unreachable node tried
    /// again every tenth of it (from 0.1 to 1 s).
    pub fn with_lease(lease: Duration) -> Self {
        Self {
            lease,
            renew_every: lease / 3,
            request_timeout: (lease / 3).min(Duration::from_secs(5)),
            connect_timeout: Duration::from_secs(2),
            reconnect_every: (lease / 10).clamp(Duration::from_millis(100), Duration::from_secs(1)),
            max_batch: 4096,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, AgentError>>;

enum Work {
    Op(Op, Reply<OpResult>),
    Batch(Vec<Op>, Reply<Vec<OpResult>>),
    Renew(Reply<LeaseStatus>),
}

struct ClientInner {
    addr: SocketAddr,
    inventory: Inventory,
    tx: mpsc::UnboundedSender<Work>,
    lapses: std::sync::Mutex<Vec<LapseReport>>,
    lease: std::sync::Mutex<LeaseStatus>,
    /// Where lapse reports are forwarded as they are heard (see
    /// [`AgentClient::forward_lapses`]).
    forward: std::sync::Mutex<Option<mpsc::Sender<OutsideRestore>>>,
    /// What this client's commands hold on the node, and when its lease may run out.
    watch: std::sync::Mutex<Watch>,
    /// Wakes the lease watch when `watch` changes (and when the client is dropped).
    changed: Arc<tokio::sync::Notify>,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.changed.notify_one();
    }
}

/// What the node holds by this client's confirmed commands (devices capped, jobs
/// paused), and the earliest instant its lease may run out: from then on, unless an
/// answer arrives first, the node may have given them back on its own.
#[derive(Debug, Default)]
struct Watch {
    devices: std::collections::BTreeSet<DeviceId>,
    jobs: std::collections::BTreeSet<JobId>,
    /// When the last request the node answered was sent, plus the lease time the
    /// answer said was left (`None` when the node holds nothing).
    lapse_from: Option<tokio::time::Instant>,
    /// A lapse was presumed and forwarded: the lapse reports of the next answer are
    /// covered by it.
    presumed: bool,
}

impl Watch {
    /// The instant a lapse is presumed, if one is to be.
    fn due(&self) -> Option<tokio::time::Instant> {
        let holds = !self.devices.is_empty() || !self.jobs.is_empty();
        self.lapse_from.filter(|_| holds && !self.presumed)
    }

    /// Accounts for `ops` answered by `results` (applied in order, after any lapse
    /// reported with them).
    fn applied(&mut self, ops: &[Op], results: &[OpResult]) {
        for (op, r) in ops.iter().zip(results) {
            match (op, r) {
                (Op::SetCap { device, .. }, OpResult::Limit { .. }) => {
                    self.devices.insert(device.clone());
                }
                (Op::RestoreCap { device }, OpResult::Limit { .. }) => {
                    self.devices.remove(device);
                }
                (Op::Pause { job }, OpResult::Done) => {
                    self.jobs.insert(job.clone());
                }
                (Op::Resume { job }, OpResult::Done) => {
                    self.jobs.remove(job);
                }
                _ => {}
            }
        }
    }
}

/// An answer from the node: when its request was sent, the lease it reports, and the
/// ops it answers with their results.
struct Answer<'a> {
    sent: tokio::time::Instant,
    lease: LeaseStatus,
    ops: &'a [Op],
    results: &'a [OpResult],
}

impl ClientInner {
    /// Sends `restore` to the orchestrator's queue, if one was given; never waits.
    fn forward(&self, restore: OutsideRestore) {
        let Ok(mut forward) = self.forward.lock() else {
            return;
        };
        let Some(tx) = forward.as_ref() else {
            return;
        };
        match tx.try_send(restore) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => tracing::error!(
                node = self.inventory.node,
                "a restore made outside the orchestrator could not be forwarded (its \
                 queue is full)"
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => *forward = None,
        }
    }

    /// At `now`: if the node's lease may have run out with no answer since, presumes
    /// it gave back what this client holds there, and forwards that (once).
    fn presume(&self, now: tokio::time::Instant) {
        let restore = {
            let Ok(mut watch) = self.watch.lock() else {
                return;
            };
            match watch.due() {
                Some(at) if now >= at => {}
                _ => return,
            }
            watch.presumed = true;
            let since = now.saturating_duration_since(watch.lapse_from.unwrap_or(now));
            tracing::warn!(
                node = self.inventory.node,
                devices = watch.devices.len(),
                jobs = watch.jobs.len(),
                "no answer from the agent before its lease could run out: its restore is \
                 presumed"
            );
            OutsideRestore::presumed(
                watch.devices.iter().cloned().collect(),
                watch.jobs.iter().cloned().collect(),
                format!(
                    "node {}: no answer before its lease could run out ({} ms ago)",
                    self.inventory.node,
                    since.as_millis()
                ),
            )
        };
        self.forward(restore);
    }

    fn heard(&self, answer: Option<Answer<'_>>, lapses: Vec<LapseReport>) {
        let mut covered = false;
        if let Ok(mut watch) = self.watch.lock() {
            if answer.is_some() {
                covered = std::mem::take(&mut watch.presumed);
            }
            if !lapses.is_empty() {
                // The agent gave back everything it held, before it applied the ops
                // this answer is for.
                watch.devices.clear();
                watch.jobs.clear();
            }
            if let Some(a) = &answer {
                watch.applied(a.ops, a.results);
                watch.lapse_from = a
                    .lease
                    .remaining_ms
                    .filter(|_| a.lease.holding)
                    .map(|ms| a.sent + Duration::from_millis(ms));
            }
        }
        self.changed.notify_one();
        if let (Some(a), Ok(mut held)) = (&answer, self.lease.lock()) {
            *held = a.lease;
        }
        if lapses.is_empty() {
            return;
        }
        if covered {
            // Forwarded already as a presumed lapse, whose devices and jobs include
            // all these: the orchestrator is giving them back and planning them in
            // again; a second report would only repeat that.
            for l in &lapses {
                tracing::info!(
                    node = self.inventory.node,
                    reason = ?l.reason,
                    at = %l.at,
                    "the presumed lapse is confirmed"
                );
            }
            if let Ok(mut kept) = self.lapses.lock() {
                kept.extend(lapses);
                let excess = kept.len().saturating_sub(MAX_LAPSES);
                kept.drain(..excess);
            }
            return;
        }
        for l in &lapses {
            tracing::warn!(
                node = self.inventory.node,
                reason = ?l.reason,
                at = %l.at,
                devices = l.restored.len(),
                jobs = l.resumed.len(),
                failures = l.failures.len(),
                "agent restored its node on its own"
            );
        }
        for l in &lapses {
            self.forward(l.outside_restore(&self.inventory.node));
        }
        if let Ok(mut kept) = self.lapses.lock() {
            kept.extend(lapses);
            let excess = kept.len().saturating_sub(MAX_LAPSES);
            kept.drain(..excess);
        }
    }
}

/// A connection to one agent. Cheap to clone; the connection and the renewals stop
/// when the last clone (and every remote handle made from it) is dropped.
#[derive(Clone)]
pub struct AgentClient {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("node", &self.inner.inventory.node)
            .field("addr", &self.inner.addr)
            .finish()
    }
}

/// An authenticated connection.
struct Conn {
    stream: TcpStream,
    session: Session,
}

/// Connects, answers the challenge and sends nothing else.
async fn open(
    addr: SocketAddr,
    token: &[u8],
    timeout: Duration,
) -> Result<(Conn, crate::protocol::Welcome), AgentError> {
    let node = addr.to_string();
    let handshake = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(AgentError::io(format!("connect {addr}")))?;
        let _ = stream.set_nodelay(true);
        let greeting: Greeting =
            read_frame(&mut stream)
                .await?
                .ok_or_else(|| AgentError::Protocol {
                    detail: format!("{addr} closed before its greeting"),
                })?;
        if greeting.protocol != PROTOCOL_VERSION {
            return Err(AgentError::Refused {
                node: greeting.node,
                reason: Refusal::Version {
                    agent: greeting.protocol,
                    client: PROTOCOL_VERSION,
                },
            });
        }
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            proof: proof(token, &greeting.nonce),
        };
        write_frame(&mut stream, &hello).await?;
        let body = read_raw(&mut stream, MAX_HANDSHAKE_FRAME)
            .await?
            .ok_or_else(|| AgentError::Protocol {
                detail: format!("{addr} closed before answering the handshake"),
            })?;
        // A refusal comes plain (the agent could not authenticate us); a welcome must
        // come authenticated, proving the agent holds the token.
        if let Ok(Response::Refused { reason }) = serde_json::from_slice::<Response>(&body) {
            return Err(AgentError::Refused {
                node: greeting.node,
                reason,
            });
        }
        let mut session = Session::new(token, &greeting.nonce, Side::Client);
        match session.open::<Response>(&body) {
            Ok(Response::Welcome { welcome }) => Ok((Conn { stream, session }, welcome)),
            Ok(other) => Err(AgentError::Protocol {
                detail: format!("unexpected handshake answer {other:?}"),
            }),
            Err(_) => Err(AgentError::Protocol {
                detail: format!(
                    "{addr} answered the handshake without proving it holds the token \
                     (not an agent of this token)"
                ),
            }),
        }
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| AgentError::Timeout {
            node,
            ms: timeout.as_millis() as u64,
        })?
}

/// One request and its answer, under a time limit.
async fn exchange(
    conn: &mut Conn,
    request: &Request,
    timeout: Duration,
    node: &str,
) -> Result<Response, AgentError> {
    let round = async {
        conn.session.write(&mut conn.stream, request).await?;
        conn.session
            .read::<_, Response>(&mut conn.stream)
            .await?
            .ok_or_else(|| AgentError::Io {
                operation: "read".into(),
                detail: "the agent closed the connection".into(),
            })
    };
    tokio::time::timeout(timeout, round)
        .await
        .map_err(|_| AgentError::Timeout {
            node: node.to_owned(),
            ms: timeout.as_millis() as u64,
        })?
}

impl AgentClient {
    /// Connects to the agent at `addr`, proves the token, reads the inventory, and
    /// starts the connection and renewal tasks (on the current tokio runtime).
    pub async fn connect(
        addr: SocketAddr,
        token: impl Into<Vec<u8>>,
        options: ClientOptions,
    ) -> Result<Self, AgentError> {
        let token = token.into();
        let (mut conn, welcome) = open(addr, &token, options.connect_timeout).await?;
        let (inventory, lapses) = match exchange(
            &mut conn,
            &Request::Inventory,
            options.request_timeout,
            &welcome.node,
        )
        .await?
        {
            Response::Inventory { inventory, lapses } => (inventory, lapses),
            Response::Refused { reason } => {
                return Err(AgentError::Refused {
                    node: welcome.node,
                    reason,
                });
            }
            other => {
                return Err(AgentError::Protocol {
                    detail: format!("unexpected answer to an inventory request: {other:?}"),
                });
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let changed = Arc::new(tokio::sync::Notify::new());
        let inner = Arc::new(ClientInner {
            addr,
            inventory,
            tx,
            lapses: std::sync::Mutex::new(Vec::new()),
            forward: std::sync::Mutex::new(None),
            lease: std::sync::Mutex::new(LeaseStatus {
                holding: false,
                remaining_ms: None,
            }),
            watch: std::sync::Mutex::new(Watch::default()),
            changed: changed.clone(),
        });
        inner.heard(None, lapses);
        tokio::spawn(lease_watch(Arc::downgrade(&inner), changed));
        tokio::spawn(connection(
            Arc::downgrade(&inner),
            rx,
            Some(conn),
            token,
            options,
        ));
        tokio::spawn(renewer(Arc::downgrade(&inner), options));
        Ok(Self { inner })
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.inner.inventory.node
    }

    /// The agent's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The node's inventory, as read at connection.
    pub fn inventory(&self) -> &Inventory {
        &self.inner.inventory
    }

    /// A remote handle for every device of the node.
    pub fn devices(&self) -> Vec<Arc<RemoteDevice>> {
        self.inner
            .inventory
            .devices
            .iter()
            .map(|info| {
                Arc::new(RemoteDevice {
                    client: self.clone(),
                    info: info.clone(),
                })
            })
            .collect()
    }

    /// A remote handle with the sample stream for every device whose agent serves
    /// one ([`Inventory::sampled`]); the others are only in [`AgentClient::devices`].
    pub fn sampled_devices(&self) -> Vec<Arc<RemoteSampledDevice>> {
        let sampled = &self.inner.inventory.sampled;
        self.inner
            .inventory
            .devices
            .iter()
            .filter(|info| sampled.contains(&info.id))
            .map(|info| {
                Arc::new(RemoteSampledDevice {
                    device: RemoteDevice {
                        client: self.clone(),
                        info: info.clone(),
                    },
                })
            })
            .collect()
    }

    /// A remote handle for every job of the node.
    pub fn jobs(&self) -> Vec<Arc<RemoteWorkload>> {
        self.inner
            .inventory
            .jobs
            .iter()
            .map(|j| {
                Arc::new(RemoteWorkload {
                    client: self.clone(),
                    job: j.job.clone(),
                })
            })
            .collect()
    }

    /// The node's lease as last heard.
    pub fn lease(&self) -> LeaseStatus {
        self.inner.lease.lock().map(|l| *l).unwrap_or(LeaseStatus {
            holding: false,
            remaining_ms: None,
        })
    }

    /// Restores the agent made on its own that this client has heard of and not yet
    /// handed out, oldest first.
    pub fn take_lapses(&self) -> Vec<LapseReport> {
        self.inner
            .lapses
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }

    /// Forwards every lapse report heard from now on, as it is heard, to `restores`
    /// (as an [`OutsideRestore`] naming the devices restored and the jobs resumed):
    /// give the receiving end to the orchestrator
    /// (`OrchestratorBuilder::outside_restores`) and it corrects its view of the node
    /// and plans it in again while an event runs. Reports are still kept for
    /// [`AgentClient::take_lapses`]. Never waits: a report that finds the queue full is
    /// logged and not forwarded; a closed queue ends forwarding. Replaces an earlier
    /// sender.
    ///
    /// The node cannot report a lapse while it cannot be reached (a partition), so the
    /// client also forwards a **presumed** lapse ([`OutsideRestore::presumed`]) when the
    /// node holds something of this client's and no answer has come by the earliest
    /// instant its lease may run out (the sending of the last request it answered plus
    /// the lease it had left): the devices this client capped and the jobs it paused.
    /// The orchestrator then plans them at their pre-event draw, so the rest of the
    /// fleet carries the target during the partition. The lapse report the node sends
    /// when it answers again is kept for [`AgentClient::take_lapses`] but not forwarded
    /// a second time.
    pub fn forward_lapses(&self, restores: mpsc::Sender<OutsideRestore>) {
        if let Ok(mut forward) = self.inner.forward.lock() {
            *forward = Some(restores);
        }
    }

    /// Sends `ops` as one batch (with the client's lease) and returns one result per
    /// op; the batch is refused whole (nothing changed) when an op is invalid.
    pub async fn apply(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, AgentError> {
        let (tx, rx) = oneshot::channel();
        self.send(Work::Batch(ops, tx))?;
        self.wait(rx).await
    }

    /// Renews the lease now (the client also does so on its own while the node holds
    /// a curtailment).
    pub async fn renew(&self) -> Result<LeaseStatus, AgentError> {
        let (tx, rx) = oneshot::channel();
        self.send(Work::Renew(tx))?;
        self.wait(rx).await
    }

    async fn op(&self, op: Op) -> Result<OpResult, AgentError> {
        let (tx, rx) = oneshot::channel();
        self.send(Work::Op(op, tx))?;
        self.wait(rx).await
    }

    fn send(&self, work: Work) -> Result<(), AgentError> {
        self.inner.tx.send(work).map_err(|_| self.closed())
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T, AgentError>>) -> Result<T, AgentError> {
        rx.await.map_err(|_| self.closed())?
    }

    fn closed(&self) -> AgentError {
        AgentError::Closed {
            node: self.inner.inventory.node.clone(),
        }
    }
}

/// Presumes a lapse when the node's lease may have run out with no answer since (see
/// [`AgentClient::forward_lapses`]); stops with the client.
async fn lease_watch(inner: Weak<ClientInner>, changed: Arc<tokio::sync::Notify>) {
    loop {
        let due = match inner.upgrade() {
            Some(i) => i.watch.lock().ok().and_then(|w| w.due()),
            None => return,
        };
        match due {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {
                        if let Some(i) = inner.upgrade() {
                            i.presume(tokio::time::Instant::now());
                        }
                    }
                    () = changed.notified() => {}
                }
            }
            None => changed.notified().await,
        }
    }
}

/// Renews the lease while the node holds a curtailment; stops with the client.
async fn renewer(inner: Weak<ClientInner>, options: ClientOptions) {
    let mut tick = tokio::time::interval(options.renew_every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let holding = inner.lease.lock().map(|l| l.holding).unwrap_or(true);
        if !holding {
            continue;
        }
        let (tx, rx) = oneshot::channel();
        if inner.tx.send(Work::Renew(tx)).is_err() {
            return;
        }
        drop(inner);
        if let Ok(Err(e)) = rx.await {
            tracing::warn!(error = %e, "lease renewal failed");
        }
    }
}

/// The connection task: takes what is queued, sends it as one request, hands out the
/// answers; reconnects on the next request after a failure.
async fn connection(
    inner: Weak<ClientInner>,
    mut rx: mpsc::UnboundedReceiver<Work>,
    mut stream: Option<Conn>,
    token: Vec<u8>,
    options: ClientOptions,
) {
    let lease_ms = u64::try_from(options.lease.as_millis()).unwrap_or(u64::MAX);
    let mut works = Vec::new();
    // Set while the node cannot be reached: requests fail at once, and a reconnection
    // is tried in the background every `reconnect_every`.
    let mut down: Option<Down> = None;
    loop {
        let first = match down.as_mut() {
            None => match rx.recv().await {
                Some(w) => w,
                None => return,
            },
            Some(d) => {
                let probe = async {
                    match d.probe.as_mut() {
                        Some(p) => Probe::Done(p.await.ok().and_then(Result::ok).map(Box::new)),
                        None => {
                            tokio::time::sleep_until(d.probe_at).await;
                            Probe::Due
                        }
                    }
                };
                tokio::select! {
                    w = rx.recv() => match w {
                        Some(w) => w,
                        None => return,
                    },
                    done = probe => {
                        match done {
                            // Time for a reconnection attempt: off the callers' path.
                            Probe::Due => {
                                let Some(client) = inner.upgrade() else {
                                    return;
                                };
                                let (addr, token, timeout) =
                                    (client.addr, token.clone(), options.connect_timeout);
                                d.probe = Some(tokio::spawn(async move {
                                    open(addr, &token, timeout).await.map(|(c, _)| c)
                                }));
                            }
                            Probe::Done(Some(conn)) => {
                                if let Some(client) = inner.upgrade() {
                                    tracing::info!(
                                        node = client.inventory.node,
                                        "agent reachable again"
                                    );
                                }
                                stream = Some(*conn);
                                down = None;
                            }
                            Probe::Done(None) => {
                                d.probe = None;
                                d.probe_at = tokio::time::Instant::now() + options.reconnect_every;
                            }
                        }
                        continue;
                    }
                }
            }
        };
        works.push(first);
        // Let the issuer finish its pass: the rest of a stage joins this batch.
        tokio::task::yield_now().await;
        let mut ops_count = works_ops(&works);
        while ops_count < options.max_batch {
            match rx.try_recv() {
                Ok(w) => {
                    ops_count += match &w {
                        Work::Op(..) => 1,
                        Work::Batch(ops, _) => ops.len(),
                        Work::Renew(_) => 0,
                    };
                    works.push(w);
                }
                Err(_) => break,
            }
        }
        let Some(client) = inner.upgrade() else {
            return;
        };
        let node = client.inventory.node.clone();
        if let Some(d) = &down {
            let since_ms = u64::try_from(d.since.elapsed().as_millis()).unwrap_or(u64::MAX);
            drop(client);
            dispatch(
                &mut works,
                Err(AgentError::Unreachable {
                    node,
                    since_ms,
                    cause: d.cause.clone(),
                }),
            );
            continue;
        }
        let mut ops = Vec::with_capacity(ops_count);
        for w in &works {
            match w {
                Work::Op(op, _) => ops.push(op.clone()),
                Work::Batch(batch, _) => ops.extend(batch.iter().cloned()),
                Work::Renew(_) => {}
            }
        }
        let request = if ops.is_empty() {
            Request::Renew { lease_ms }
        } else {
            Request::Batch {
                lease_ms: Some(lease_ms),
                ops,
            }
        };
        let sent = tokio::time::Instant::now();
        let answer = async {
            if stream.is_none() {
                let (s, _welcome) = open(client.addr, &token, options.connect_timeout).await?;
                stream = Some(s);
            }
            match stream.as_mut() {
                Some(s) => exchange(s, &request, options.request_timeout, &node).await,
                None => Err(AgentError::Closed { node: node.clone() }),
            }
        }
        .await;
        let answer = match answer {
            Ok(Response::Applied {
                results,
                lease,
                lapses,
            }) => {
                let ops: &[Op] = match &request {
                    Request::Batch { ops, .. } if results.len() == ops_count => ops,
                    _ => &[],
                };
                let answer = Answer {
                    sent,
                    lease,
                    ops,
                    results: &results,
                };
                client.heard(Some(answer), lapses);
                if results.len() == ops_count {
                    Ok((results, lease))
                } else {
                    stream = None;
                    Err(AgentError::Protocol {
                        detail: format!("{} answers to {ops_count} ops", results.len()),
                    })
                }
            }
            Ok(Response::Refused { reason }) => Err(AgentError::Refused {
                node: node.clone(),
                reason,
            }),
            Ok(other) => {
                stream = None;
                Err(AgentError::Protocol {
                    detail: format!("unexpected answer {other:?}"),
                })
            }
            Err(e) => {
                stream = None;
                if matches!(
                    e,
                    AgentError::Timeout { .. }
                        | AgentError::Io { .. }
                        | AgentError::Protocol { .. }
                ) {
                    tracing::warn!(node, error = %e, "agent unreachable: requests fail at once until it answers again");
                    let now = tokio::time::Instant::now();
                    down = Some(Down {
                        since: now,
                        cause: e.to_string(),
                        probe_at: now + options.reconnect_every,
                        probe: None,
                    });
                }
                Err(e)
            }
        };
        drop(client);
        dispatch(&mut works, answer);
    }
}

/// A node found unreachable: since when, why, and the next reconnection attempt (due
/// at `probe_at`, or running).
struct Down {
    since: tokio::time::Instant,
    cause: String,
    probe_at: tokio::time::Instant,
    probe: Option<tokio::task::JoinHandle<Result<Conn, AgentError>>>,
}

/// What the reconnection of a node found unreachable is waiting for.
enum Probe {
    /// The next attempt is due.
    Due,
    /// An attempt ended: the connection, or `None` when it failed.
    Done(Option<Box<Conn>>),
}

fn works_ops(works: &[Work]) -> usize {
    works
        .iter()
        .map(|w| match w {
            Work::Op(..) => 1,
            Work::Batch(ops, _) => ops.len(),
            Work::Renew(_) => 0,
        })
        .sum()
}

fn copy_error(e: &AgentError) -> AgentError {
    match e {
        AgentError::Refused { node, reason } => AgentError::Refused {
            node: node.clone(),
            reason: reason.clone(),
        },
        AgentError::Timeout { node, ms } => AgentError::Timeout {
            node: node.clone(),
            ms: *ms,
        },
        AgentError::Io { operation, detail } => AgentError::Io {
            operation: operation.clone(),
            detail: detail.clone(),
        },
        AgentError::Unreachable {
            node,
            since_ms,
            cause,
        } => AgentError::Unreachable {
            node: node.clone(),
            since_ms: *since_ms,
            cause: cause.clone(),
        },
        other => AgentError::Protocol {
            detail: other.to_string(),
        },
    }
}

fn dispatch(works: &mut Vec<Work>, answer: Result<(Vec<OpResult>, LeaseStatus), AgentError>) {
    match answer {
        Ok((results, lease)) => {
            let mut results = results.into_iter();
            for w in works.drain(..) {
                // A caller that stopped waiting (its future dropped) is not an error.
                match w {
                    Work::Op(_, reply) => {
                        if let Some(r) = results.next() {
                            let _ = reply.send(Ok(r));
                        }
                    }
                    Work::Batch(ops, reply) => {
                        let _ = reply.send(Ok(results.by_ref().take(ops.len()).collect()));
                    }
                    Work::Renew(reply) => {
                        let _ = reply.send(Ok(lease));
                    }
                }
            }
        }
        Err(e) => {
            for w in works.drain(..) {
                let err = copy_error(&e);
                match w {
                    Work::Op(_, reply) => {
                        let _ = reply.send(Err(err));
                    }
                    Work::Batch(_, reply) => {
                        let _ = reply.send(Err(err));
                    }
                    Work::Renew(reply) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
        }
    }
}

/// A device on a remote node, driven through its agent.
#[derive(Debug)]
pub struct RemoteDevice {
    client: AgentClient,
    info: DeviceInfo,
}

impl RemoteDevice {
    /// The client it goes through.
    pub fn client(&self) -> &AgentClient {
        &self.client
    }

    fn error(&self, operation: &'static str, e: AgentError) -> HalError {
        let kind = match &e {
            AgentError::Refused {
                reason: Refusal::LimitOutOfRange { .. },
                ..
            } => ErrorKind::OutOfRange,
            AgentError::Refused {
                reason: Refusal::UnknownDevice { .. },
                ..
            } => ErrorKind::DeviceLost,
            AgentError::Refused {
                reason: Refusal::BadToken,
                ..
            } => ErrorKind::NoPermission,
            AgentError::Timeout { .. }
            | AgentError::Io { .. }
            | AgentError::Closed { .. }
            | AgentError::Unreachable { .. } => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
        HalError::Device {
            device: self.info.id.clone(),
            operation,
            kind,
            detail: e.to_string(),
        }
    }

    fn answer(&self, operation: &'static str, r: OpResult) -> HalError {
        match r {
            OpResult::Failed { failure } => HalError::Device {
                device: self.info.id.clone(),
                operation,
                kind: failure.kind,
                detail: failure.message,
            },
            other => HalError::Device {
                device: self.info.id.clone(),
                operation,
                kind: ErrorKind::Other,
                detail: format!("unexpected answer {other:?}"),
            },
        }
    }

    async fn limit(&self, operation: &'static str, op: Op) -> Result<LimitChange, HalError> {
        match self.client.op(op).await {
            Ok(OpResult::Limit { change }) => Ok(change),
            Ok(other) => Err(self.answer(operation, other)),
            Err(e) => Err(self.error(operation, e)),
        }
    }
}

#[async_trait]
impl PowerDevice for RemoteDevice {
    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    async fn telemetry(&self) -> Result<Telemetry, HalError> {
        let op = Op::Telemetry {
            device: self.info.id.clone(),
        };
        match self.client.op(op).await {
            Ok(OpResult::Telemetry { reading }) => Ok(reading),
            Ok(other) => Err(self.answer("read telemetry", other)),
            Err(e) => Err(self.error("read telemetry", e)),
        }
    }

    async fn set_power_limit(&self, limit: Power) -> Result<LimitChange, HalError> {
        // The trait's promise, kept here too: out of range never leaves this process.
        self.info.check_limit(limit)?;
        let op = Op::SetCap {
            device: self.info.id.clone(),
            limit,
        };
        self.limit("set the power limit", op).await
    }

    /// Gives the device the limit it had before gridflex first touched it (the agent
    /// keeps it); a device gridflex does not hold is left as it is, and the answer is
    /// what it holds.
    async fn restore_power_limit(&self) -> Result<LimitChange, HalError> {
        let op = Op::RestoreCap {
            device: self.info.id.clone(),
        };
        self.limit("restore the power limit", op).await
    }
}

/// A remote device whose agent serves its high-rate power samples (from
/// [`AgentClient::sampled_devices`]).
#[derive(Debug)]
pub struct RemoteSampledDevice {
    device: RemoteDevice,
}

impl RemoteSampledDevice {
    /// The plain remote device.
    pub fn device(&self) -> &RemoteDevice {
        &self.device
    }
}

#[async_trait]
impl PowerDevice for RemoteSampledDevice {
    fn info(&self) -> &DeviceInfo {
        self.device.info()
    }

    async fn telemetry(&self) -> Result<Telemetry, HalError> {
        self.device.telemetry().await
    }

    async fn set_power_limit(&self, limit: Power) -> Result<LimitChange, HalError> {
        self.device.set_power_limit(limit).await
    }

    async fn restore_power_limit(&self) -> Result<LimitChange, HalError> {
        self.device.restore_power_limit().await
    }
}

#[async_trait]
impl PowerSampleStream for RemoteSampledDevice {
    async fn power_samples_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PowerSample>, HalError> {
        let op = Op::Samples {
            device: self.device.info.id.clone(),
            since,
        };
        let operation = "read power samples";
        match self.device.client.op(op).await {
            Ok(OpResult::Samples { samples }) => Ok(samples),
            Ok(other) => Err(self.device.answer(operation, other)),
            Err(e) => Err(self.device.error(operation, e)),
        }
    }
}

/// A job on a remote node, paused and resumed through its agent.
#[derive(Debug)]
pub struct RemoteWorkload {
    client: AgentClient,
    job: JobId,
}

impl RemoteWorkload {
    /// The client it goes through.
    pub fn client(&self) -> &AgentClient {
        &self.client
    }

    async fn call(&self, operation: &'static str, op: Op) -> Result<OpResult, HalError> {
        let error = |detail: String| HalError::Workload {
            job: self.job.clone(),
            operation,
            detail,
        };
        match self.client.op(op).await {
            Ok(OpResult::Failed { failure }) => {
                Err(error(format!("{} ({})", failure.message, failure.kind)))
            }
            Ok(r) => Ok(r),
            Err(e) => Err(error(e.to_string())),
        }
    }
}

#[async_trait]
impl WorkloadControl for RemoteWorkload {
    fn job(&self) -> &JobId {
        &self.job
    }

    async fn pause(&self) -> Result<(), HalError> {
        let op = Op::Pause {
            job: self.job.clone(),
        };
        self.call("pause", op).await.map(|_| ())
    }

    async fn resume(&self) -> Result<(), HalError> {
        let op = Op::Resume {
            job: self.job.clone(),
        };
        self.call("resume", op).await.map(|_| ())
    }

    async fn status(&self) -> Result<WorkloadState, HalError> {
        let op = Op::JobStatus {
            job: self.job.clone(),
        };
        match self.call("read the state", op).await? {
            OpResult::State { state } => Ok(state),
            other => Err(HalError::Workload {
                job: self.job.clone(),
                operation: "read the state",
                detail: format!("unexpected answer {other:?}"),
            }),
        }
    }
}

/// The ids of a node's devices, for building an orchestrator's inventory.
pub fn device_ids(devices: &[Arc<RemoteDevice>]) -> Vec<DeviceId> {
    devices.iter().map(|d| d.info.id.clone()).collect()
}
