//! [`Agent`]: serves the protocol for one [`Node`], keeps the lease, and restores the
//! node on its own when the lease lapses or when it starts and finds its
//! predecessor's curtailments on disk.
//!
//! One task owns the node's state (behind one async mutex): batches, renewals and the
//! lease watchdog take it in turn, so a lapse can never interleave with a batch.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use gridflex_core::{DeviceId, Power};
use gridflex_hal::{HalError, LimitChange};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::AgentError;
use crate::config::{AgentConfig, LeaseConfig};
use crate::lease::{Holdings, StateFile};
use crate::node::Node;
use crate::protocol::{
    Greeting, Hello, LapseReason, LapseReport, LeaseStatus, MAX_HANDSHAKE_FRAME, Op, OpResult,
    PROTOCOL_VERSION, Refusal, RemoteFailure, Request, Response, Session, Side, Welcome, hex,
    read_frame_limited, verify_proof, write_frame,
};

/// How long a client has to answer the greeting.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a restore that failed in part the agent tries again.
const RESTORE_RETRY: Duration = Duration::from_secs(1);
/// Lapse reports kept until a client hears them (the oldest are dropped beyond this).
const MAX_REPORTS: usize = 64;

/// What an agent needs besides its node.
#[derive(Clone)]
pub struct AgentOptions {
    /// The shared secret clients prove they know.
    pub token: Vec<u8>,
    /// Lease bounds.
    pub lease: LeaseConfig,
    /// Where the holdings are kept.
    pub state_file: PathBuf,
    /// The most connections served at once.
    pub max_connections: usize,
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("token", &"<redacted>")
            .field("lease", &self.lease)
            .field("state_file", &self.state_file)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl AgentOptions {
    /// The options a config file gives (reads the token file if there is one).
    pub fn from_config(cfg: &AgentConfig) -> Result<Self, AgentError> {
        Ok(Self {
            token: cfg.token()?,
            lease: cfg.lease,
            state_file: cfg.state_file(),
            max_connections: cfg.max_connections,
        })
    }
}

struct State {
    holdings: Holdings,
    /// When the lease lapses (`None` while nothing is held).
    deadline: Option<Instant>,
}

struct Shared {
    node: Node,
    options: AgentOptions,
    file: StateFile,
    state: Mutex<State>,
    /// Signalled whenever the deadline changes.
    wake: Notify,
    reports: std::sync::Mutex<VecDeque<LapseReport>>,
    /// Batch requests answered (refused ones included).
    batches: AtomicU64,
}

/// A node agent, started (its predecessor's state restored) but not yet serving.
///
/// ```
/// use std::sync::Arc;
/// use gridflex_agent::{Agent, AgentClient, AgentOptions, ClientOptions, Node, LeaseConfig};
/// use gridflex_core::{Power, TokioClock};
/// use gridflex_hal::PowerDevice;
/// use gridflex_hal::sim::{SimFleet, SimGpuSpec};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let fleet = SimFleet::new(Arc::new(TokioClock::real()), 2, &SimGpuSpec::h100_sxm())?;
/// let dir = tempfile::tempdir()?;
/// let token = b"0123456789abcdef0123456789abcdef".to_vec();
/// let options = AgentOptions { token: token.clone(), lease: LeaseConfig::default(),
///     state_file: dir.path().join("state.json"), max_connections: 4 };
/// let agent = Agent::start(Node::new("n1", fleet.devices(), vec![])?, options).await?;
/// let running = agent.spawn("127.0.0.1:0".parse()?).await?;
/// let client = AgentClient::connect(running.local_addr(), token, ClientOptions::default()).await?;
/// let gpu = &client.devices()[0];
/// gpu.set_power_limit(Power::watts(400.0)?).await?;
/// assert_eq!(fleet.gpu(0).map(|g| g.requested_limit()), Some(Power::watts(400.0)?));
/// gpu.restore_power_limit().await?;
/// assert_eq!(fleet.gpu(0).map(|g| g.requested_limit()), Some(Power::watts(700.0)?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Agent {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.shared.node)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts an agent for `node`: reads the state file and, when a predecessor left
    /// curtailments, restores them before anything else (reported to the first client
    /// as a [`LapseReason::Restarted`] lapse).
    pub async fn start(node: Node, options: AgentOptions) -> Result<Self, AgentError> {
        let file = StateFile::new(options.state_file.clone());
        let holdings = file.load()?;
        let shared = Arc::new(Shared {
            node,
            options,
            file,
            state: Mutex::new(State {
                holdings,
                deadline: None,
            }),
            wake: Notify::new(),
            reports: std::sync::Mutex::new(VecDeque::new()),
            batches: AtomicU64::new(0),
        });
        {
            let mut st = shared.state.lock().await;
            if !st.holdings.is_empty() {
                tracing::warn!(
                    node = shared.node.name(),
                    devices = st.holdings.devices.len(),
                    jobs = st.holdings.paused.len(),
                    "found curtailments left by a previous agent: restoring"
                );
                shared.restore_all(&mut st, LapseReason::Restarted).await;
            }
        }
        Ok(Self { shared })
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// Binds `addr` and serves in background tasks; the returned handle stops them
    /// (as a crash would: no clean-up) when killed or dropped.
    pub async fn spawn(self, addr: std::net::SocketAddr) -> Result<RunningAgent, AgentError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(AgentError::io(format!("bind {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(AgentError::io("local address"))?;
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            let _ = self.serve(listener).await;
        });
        Ok(RunningAgent {
            local,
            shared,
            task,
        })
    }

    /// Restores everything gridflex holds on the node now (the binary does so when
    /// stopped by SIGTERM or Ctrl-C); what fails stays held in the state file.
    pub async fn restore_now(&self) -> Holdings {
        let mut st = self.shared.state.lock().await;
        if !st.holdings.is_empty() {
            self.shared.restore_all(&mut st, LapseReason::Stopped).await;
        }
        st.holdings.clone()
    }

    /// Serves `listener` and keeps the lease; runs until cancelled (a failed accept is
    /// logged and retried).
    pub async fn serve(&self, listener: TcpListener) -> Result<(), AgentError> {
        let watchdog = tokio::spawn(watchdog(self.shared.clone()));
        // Aborts the watchdog however this future ends (error or cancellation).
        let _watchdog = AbortOnDrop(watchdog);
        let permits = Arc::new(Semaphore::new(self.shared.options.max_connections));
        let mut connections = tokio::task::JoinSet::new();
        tracing::info!(
            node = self.shared.node.name(),
            addr = ?listener.local_addr().ok(),
            devices = self.shared.node.devices().len(),
            jobs = self.shared.node.jobs().len(),
            "agent serving"
        );
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: keep the lease and try again.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "connection refused: too many connections");
                continue;
            };
            let shared = self.shared.clone();
            connections.spawn(async move {
                if let Err(e) = shared.connection(stream).await {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                drop(permit);
            });
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An agent serving in background tasks.
#[derive(Debug)]
pub struct RunningAgent {
    local: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl RunningAgent {
    /// The address it listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local
    }

    /// What gridflex holds on the node now.
    pub async fn holdings(&self) -> Holdings {
        self.shared.state.lock().await.holdings.clone()
    }

    /// How many batch requests it has answered (a stage should cost one per node).
    pub fn batches_served(&self) -> u64 {
        self.shared.batches.load(Ordering::Relaxed)
    }

    /// Restores reported on their own and not yet heard by a client.
    pub fn pending_reports(&self) -> Vec<LapseReport> {
        self.shared
            .reports
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stops serving and keeping the lease at once, without restoring anything (as a
    /// crash or `kill -9` would; the state file stays for the next agent).
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Restores the node when the lease lapses.
async fn watchdog(shared: Arc<Shared>) {
    loop {
        let deadline = shared.state.lock().await.deadline;
        match deadline {
            None => shared.wake.notified().await,
            Some(d) => {
                tokio::select! {
                    () = tokio::time::sleep_until(d) => {
                        let mut st = shared.state.lock().await;
                        // A batch or renewal may have moved the deadline meanwhile.
                        if st.deadline.is_some_and(|d| d <= Instant::now()) {
                            tracing::warn!(node = shared.node.name(), "lease lapsed: restoring the node");
                            shared.restore_all(&mut st, LapseReason::LeaseExpired).await;
                        }
                    }
                    () = shared.wake.notified() => {}
                }
            }
        }
    }
}

/// What an op acts on: ops on the same target run in order.
#[derive(PartialEq, Eq)]
enum Target<'a> {
    Device(&'a DeviceId),
    Job(&'a gridflex_core::JobId),
}

fn target(op: &Op) -> Target<'_> {
    match op {
        Op::SetCap { device, .. }
        | Op::RestoreCap { device }
        | Op::Telemetry { device }
        | Op::Samples { device, .. } => Target::Device(device),
        Op::Pause { job } | Op::Resume { job } | Op::JobStatus { job } => Target::Job(job),
    }
}

fn failure(e: &HalError) -> RemoteFailure {
    RemoteFailure {
        kind: e.kind(),
        message: e.to_string(),
    }
}

impl Shared {
    fn lease_of(&self, requested: Option<u64>) -> Result<Duration, Refusal> {
        let ms = requested
            .unwrap_or(self.options.lease.default_ms)
            .min(self.options.lease.max_ms);
        if ms == 0 {
            return Err(Refusal::ZeroLease);
        }
        Ok(Duration::from_millis(ms))
    }

    fn lease_status(&self, st: &State) -> LeaseStatus {
        LeaseStatus {
            holding: !st.holdings.is_empty(),
            remaining_ms: st.deadline.map(|d| {
                u64::try_from(d.saturating_duration_since(Instant::now()).as_millis())
                    .unwrap_or(u64::MAX)
            }),
        }
    }

    fn take_reports(&self) -> Vec<LapseReport> {
        self.reports
            .lock()
            .map(|mut r| r.drain(..).collect())
            .unwrap_or_default()
    }

    fn report(&self, report: LapseReport) {
        if let Ok(mut r) = self.reports.lock() {
            if r.len() == MAX_REPORTS {
                r.pop_front();
            }
            r.push_back(report);
        }
    }

    /// Writes the holdings on a blocking thread: an fsync never stalls the runtime's
    /// workers (other connections, the watchdog).
    async fn store(&self, holdings: &Holdings) -> Result<(), AgentError> {
        let file = self.file.clone();
        let holdings = holdings.clone();
        tokio::task::spawn_blocking(move || file.store(&holdings))
            .await
            .map_err(|e| AgentError::State {
                file: self.file.path().to_owned(),
                detail: format!("writer thread: {e}"),
            })?
    }

    /// Sets the deadline from the holdings: none when nothing is held.
    fn arm(&self, st: &mut State, lease: Duration) {
        st.deadline = (!st.holdings.is_empty()).then(|| Instant::now() + lease);
        self.wake.notify_one();
    }

    /// Gives every held device its limit from before and resumes every paused job,
    /// all at once; what fails stays held and is retried shortly.
    async fn restore_all(&self, st: &mut State, reason: LapseReason) {
        let at = Utc::now();
        let devices: Vec<(DeviceId, Power)> = st
            .holdings
            .devices
            .iter()
            .map(|(d, p)| (d.clone(), *p))
            .collect();
        let jobs: Vec<_> = st.holdings.paused.iter().cloned().collect();
        let node = &self.node;
        let cap_results = join_all(devices.iter().map(|(id, limit)| async move {
            match node.device(id) {
                Some(d) => d.set_power_limit(*limit).await.map(|_| ()),
                // A device that is gone holds no limit of ours.
                None => Ok(()),
            }
        }))
        .await;
        let job_results = join_all(jobs.iter().map(|job| async move {
            match node.job(job) {
                Some(c) => c.resume().await,
                None => Ok(()),
            }
        }))
        .await;
        let mut report = LapseReport {
            at,
            reason,
            restored: BTreeMap::new(),
            resumed: Vec::new(),
            failures: Vec::new(),
        };
        for ((id, limit), r) in devices.into_iter().zip(cap_results) {
            match r {
                Ok(()) => {
                    st.holdings.devices.remove(&id);
                    report.restored.insert(id, limit);
                }
                Err(e) => report.failures.push(e.to_string()),
            }
        }
        for (job, r) in jobs.into_iter().zip(job_results) {
            match r {
                Ok(()) => {
                    st.holdings.paused.remove(&job);
                    report.resumed.push(job);
                }
                Err(e) => report.failures.push(e.to_string()),
            }
        }
        if let Err(e) = self.store(&st.holdings).await {
            // The file names more than is held: a restart would restore again, harmlessly.
            tracing::error!(error = %e, "state file not updated after a restore");
        }
        self.arm(st, RESTORE_RETRY);
        if report.failures.is_empty() {
            tracing::info!(
                node = node.name(),
                ?reason,
                devices = report.restored.len(),
                jobs = report.resumed.len(),
                "node restored"
            );
        } else {
            tracing::error!(node = node.name(), ?reason, failures = ?report.failures, "restore failed in part: retrying");
        }
        self.report(report);
    }

    /// Checks a batch whole before anything is touched.
    fn validate(&self, ops: &[Op]) -> Result<(), Refusal> {
        for op in ops {
            match op {
                Op::SetCap { device, limit } => {
                    let d = self
                        .node
                        .device(device)
                        .ok_or_else(|| Refusal::UnknownDevice {
                            device: device.clone(),
                        })?;
                    let l = d.info().limits;
                    if !l.contains(*limit) {
                        return Err(Refusal::LimitOutOfRange {
                            device: device.clone(),
                            requested: *limit,
                            min: l.min(),
                            max: l.max(),
                        });
                    }
                }
                Op::RestoreCap { device } | Op::Telemetry { device } => {
                    if self.node.device(device).is_none() {
                        return Err(Refusal::UnknownDevice {
                            device: device.clone(),
                        });
                    }
                }
                Op::Samples { device, .. } => {
                    if self.node.device(device).is_none() {
                        return Err(Refusal::UnknownDevice {
                            device: device.clone(),
                        });
                    }
                    if self.node.sampler(device).is_none() {
                        return Err(Refusal::NoSampleStream {
                            device: device.clone(),
                        });
                    }
                }
                Op::Pause { job } | Op::Resume { job } | Op::JobStatus { job } => {
                    if self.node.job(job).is_none() {
                        return Err(Refusal::UnknownJob { job: job.clone() });
                    }
                }
            }
        }
        Ok(())
    }

    async fn batch(&self, lease_ms: Option<u64>, ops: Vec<Op>) -> Response {
        let refused = |reason| Response::Refused { reason };
        if let Err(r) = self.validate(&ops) {
            return refused(r);
        }
        let lease = match self.lease_of(lease_ms) {
            Ok(l) => l,
            Err(r) => return refused(r),
        };
        let mut st = self.state.lock().await;
        // Record, before acting, what each newly capped device holds and each job to
        // be paused: the state file then names everything this batch may change.
        let mut fresh: Vec<&DeviceId> = ops
            .iter()
            .filter_map(|op| match op {
                Op::SetCap { device, .. } if !st.holdings.devices.contains_key(device) => {
                    Some(device)
                }
                _ => None,
            })
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        let before = st.holdings.clone();
        let node = &self.node;
        let originals = join_all(fresh.iter().map(|id| async move {
            let d = node.device(id)?;
            let held = d
                .telemetry()
                .await
                .ok()
                .and_then(|t| t.requested_limit)
                .filter(|l| d.info().limits.contains(*l))
                .unwrap_or(d.info().limit_at_discovery);
            Some(((*id).clone(), held))
        }))
        .await;
        st.holdings.devices.extend(originals.into_iter().flatten());
        for op in &ops {
            if let Op::Pause { job } = op {
                st.holdings.paused.insert(job.clone());
            }
        }
        if st.holdings != before
            && let Err(e) = self.store(&st.holdings).await
        {
            st.holdings = before;
            return refused(Refusal::StateNotWritten {
                detail: e.to_string(),
            });
        }
        // Armed before acting: the lease counts from now (the watchdog acts once this
        // batch releases the state).
        self.arm(&mut st, lease);
        let holdings = &st.holdings;
        // Ops on different devices and jobs run concurrently; ops on the same one run
        // in the order sent (a merged batch may pause then resume the same job).
        let mut groups: Vec<(Target<'_>, Vec<usize>)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let t = target(op);
            match groups.iter_mut().find(|(g, _)| *g == t) {
                Some((_, v)) => v.push(i),
                None => groups.push((t, vec![i])),
            }
        }
        let ops_ref = &ops;
        let apply = |i: usize| {
            let op = &ops_ref[i];
            async move {
                let r: Result<OpResult, HalError> = match op {
                    Op::SetCap { device, limit } => match node.device(device) {
                        Some(d) => d
                            .set_power_limit(*limit)
                            .await
                            .map(|change| OpResult::Limit { change }),
                        None => Err(HalError::DeviceLost {
                            device: device.clone(),
                        }),
                    },
                    Op::RestoreCap { device } => match node.device(device) {
                        // Held: back to the limit from before gridflex touched it.
                        Some(d) => match holdings.devices.get(device) {
                            Some(&to) => d
                                .set_power_limit(to)
                                .await
                                .map(|change| OpResult::Limit { change }),
                            // Never touched (or already given back): nothing to write;
                            // the answer is what the device holds.
                            None => d.telemetry().await.map(|t| {
                                let requested =
                                    t.requested_limit.unwrap_or(d.info().limit_at_discovery);
                                OpResult::Limit {
                                    change: LimitChange {
                                        requested,
                                        enforced: t.enforced_limit.unwrap_or(requested),
                                    },
                                }
                            }),
                        },
                        None => Err(HalError::DeviceLost {
                            device: device.clone(),
                        }),
                    },
                    Op::Pause { job } | Op::Resume { job } | Op::JobStatus { job } => {
                        match node.job(job) {
                            Some(c) => match op {
                                Op::Pause { .. } => c.pause().await.map(|()| OpResult::Done),
                                Op::Resume { .. } => c.resume().await.map(|()| OpResult::Done),
                                _ => c.status().await.map(|state| OpResult::State { state }),
                            },
                            None => Err(HalError::Workload {
                                job: job.clone(),
                                operation: "find",
                                detail: "not on this node".into(),
                            }),
                        }
                    }
                    Op::Telemetry { device } => match node.device(device) {
                        Some(d) => d
                            .telemetry()
                            .await
                            .map(|reading| OpResult::Telemetry { reading }),
                        None => Err(HalError::DeviceLost {
                            device: device.clone(),
                        }),
                    },
                    Op::Samples { device, since } => match node.sampler(device) {
                        Some(d) => d
                            .power_samples_since(*since)
                            .await
                            .map(|samples| OpResult::Samples { samples }),
                        None => Err(HalError::Unsupported {
                            device: device.clone(),
                            operation: "power samples",
                        }),
                    },
                };
                r.unwrap_or_else(|e| OpResult::Failed {
                    failure: failure(&e),
                })
            }
        };
        let apply = &apply;
        let done = join_all(groups.iter().map(|(_, idx)| async move {
            let mut out = Vec::with_capacity(idx.len());
            for &i in idx {
                out.push((i, apply(i).await));
            }
            out
        }))
        .await;
        let mut results: Vec<Option<OpResult>> = vec![None; ops.len()];
        for (i, r) in done.into_iter().flatten() {
            results[i] = Some(r);
        }
        let results: Vec<OpResult> = results.into_iter().flatten().collect();
        // What was given back is no longer held: a device or job whose last change in
        // the batch was a successful restore or resume.
        let before = st.holdings.clone();
        for (_, idx) in &groups {
            let last = idx.iter().rev().find(|&&i| {
                !matches!(
                    ops[i],
                    Op::Telemetry { .. } | Op::Samples { .. } | Op::JobStatus { .. }
                )
            });
            let Some(&i) = last else { continue };
            if matches!(results[i], OpResult::Failed { .. }) {
                continue;
            }
            match &ops[i] {
                Op::RestoreCap { device } => {
                    st.holdings.devices.remove(device);
                }
                Op::Resume { job } => {
                    st.holdings.paused.remove(job);
                }
                _ => {}
            }
        }
        if st.holdings != before
            && let Err(e) = self.store(&st.holdings).await
        {
            tracing::error!(error = %e, "state file not updated after a release");
        }
        self.arm(&mut st, lease);
        Response::Applied {
            results,
            lease: self.lease_status(&st),
            lapses: self.take_reports(),
        }
    }

    async fn renew(&self, lease_ms: u64) -> Response {
        let lease = match self.lease_of(Some(lease_ms)) {
            Ok(l) => l,
            Err(reason) => return Response::Refused { reason },
        };
        let mut st = self.state.lock().await;
        self.arm(&mut st, lease);
        Response::Applied {
            results: Vec::new(),
            lease: self.lease_status(&st),
            lapses: self.take_reports(),
        }
    }

    async fn connection(&self, mut stream: TcpStream) -> Result<(), AgentError> {
        let _ = stream.set_nodelay(true);
        let mut nonce = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(
            |_| AgentError::Protocol {
                detail: "no system randomness for the handshake nonce".into(),
            },
        )?;
        let nonce = hex(&nonce);
        write_frame(
            &mut stream,
            &Greeting {
                protocol: PROTOCOL_VERSION,
                node: self.node.name().to_owned(),
                nonce: nonce.clone(),
            },
        )
        .await?;
        let hello: Hello = match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            read_frame_limited(&mut stream, MAX_HANDSHAKE_FRAME),
        )
        .await
        {
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(AgentError::Timeout {
                    node: self.node.name().to_owned(),
                    ms: HANDSHAKE_TIMEOUT.as_millis() as u64,
                });
            }
        };
        let peer = stream.peer_addr().ok();
        if hello.protocol != PROTOCOL_VERSION {
            let reason = Refusal::Version {
                agent: PROTOCOL_VERSION,
                client: hello.protocol,
            };
            write_frame(&mut stream, &Response::Refused { reason }).await?;
            return Ok(());
        }
        if !verify_proof(&self.options.token, &nonce, &hello.proof) {
            tracing::warn!(?peer, "connection refused: bad token");
            let reason = Refusal::BadToken;
            write_frame(&mut stream, &Response::Refused { reason }).await?;
            return Ok(());
        }
        tracing::debug!(?peer, "client connected");
        let welcome = Welcome {
            node: self.node.name().to_owned(),
        };
        // The welcome is the first authenticated frame: it proves the agent holds the
        // token as well.
        let mut session = Session::new(&self.options.token, &nonce, Side::Agent);
        session
            .write(&mut stream, &Response::Welcome { welcome })
            .await?;
        loop {
            let request: Request = match session.read(&mut stream).await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e @ AgentError::Protocol { .. }) => {
                    // Altered, replayed or malformed: nothing more is read from it.
                    tracing::warn!(?peer, error = %e, "connection closed");
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let response = match request {
                Request::Inventory => {
                    // A restore in progress finishes (and files its report) first.
                    let lapses = {
                        let _st = self.state.lock().await;
                        self.take_reports()
                    };
                    Response::Inventory {
                        inventory: self
                            .node
                            .inventory(self.options.lease.default_ms, self.options.lease.max_ms),
                        lapses,
                    }
                }
                Request::Batch { lease_ms, ops } => {
                    self.batches.fetch_add(1, Ordering::Relaxed);
                    self.batch(lease_ms, ops).await
                }
                Request::Renew { lease_ms } => self.renew(lease_ms).await,
            };
            session.write(&mut stream, &response).await?;
        }
    }
}

/// Checks a config end to end without serving: the file, the token and every device
/// and job it names (`gridflex-agent --check`). Returns the inventory it would serve.
pub fn check(cfg: &AgentConfig) -> Result<crate::protocol::Inventory, AgentError> {
    let _ = cfg.token()?;
    let node = Node::from_config(cfg)?;
    let file = StateFile::new(cfg.state_file());
    let holdings = file.load()?;
    if !holdings.is_empty() {
        tracing::warn!(
            devices = holdings.devices.len(),
            jobs = holdings.paused.len(),
            "the state file holds curtailments: the agent will restore them when it starts"
        );
    }
    Ok(node.inventory(cfg.lease.default_ms, cfg.lease.max_ms))
}
