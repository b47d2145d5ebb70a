//! Shared by the agent's integration tests: simulated nodes served by in-process
//! agents on 127.0.0.1, and a relay that can cut a node off the network.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gridflex_agent::{Agent, AgentOptions, LeaseConfig, Node, NodeJob, RunningAgent};
use gridflex_core::{JobId, Power, TokioClock};
use gridflex_hal::sim::{
    SimActivity, SimFleet, SimGpu, SimGpuSpec, SimJob, WorkloadKind, WorkloadProfile,
};
use gridflex_hal::{PowerDevice, PowerSampleStream, WorkloadControl};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub const TOKEN: &[u8] = b"0123456789abcdef0123456789abcdef";

pub fn w(v: f64) -> Power {
    Power::watts(v).unwrap_or_else(|e| panic!("{e}"))
}

/// One simulated node: its GPUs (the hardware the tests read), one job over all of
/// them, and where its agent keeps state.
pub struct SimNode {
    pub name: String,
    pub fleet: SimFleet,
    pub job: Arc<SimJob>,
    pub state_file: PathBuf,
}

impl SimNode {
    pub fn new(name: &str, gpus: usize, dir: &std::path::Path) -> Self {
        let clock = Arc::new(TokioClock::real());
        let fleet = SimFleet::new(clock, gpus, &SimGpuSpec::h100_sxm()).unwrap();
        // Unique ids across nodes: the orchestrator's inventory is one namespace.
        let gpus_with_ids: Vec<SimGpu> = (0..gpus)
            .map(|i| {
                SimGpu::with_uuid(
                    format!("GPU-{name}-{i}"),
                    fleet.clock().clone(),
                    SimGpuSpec::h100_sxm(),
                )
                .unwrap()
            })
            .collect();
        let fleet = SimFleet::from_gpus(fleet.clock().clone(), gpus_with_ids).unwrap();
        let job = SimJob::start(
            JobId::new(format!("job-{name}")).unwrap(),
            fleet.iter().cloned().collect(),
            WorkloadProfile::of(WorkloadKind::Matmul),
        )
        .unwrap();
        Self {
            name: name.to_owned(),
            fleet,
            job: Arc::new(job),
            state_file: dir.join(format!("{name}.json")),
        }
    }

    pub fn node(&self) -> Node {
        let control: Arc<dyn WorkloadControl> = self.job.clone();
        let devices = self.fleet.iter().map(|g| g.id().clone()).collect();
        let sampled = self
            .fleet
            .iter()
            .map(|g| Arc::clone(g) as Arc<dyn PowerSampleStream>)
            .collect();
        Node::with_samples(
            self.name.clone(),
            sampled,
            vec![NodeJob { control, devices }],
        )
        .unwrap()
    }

    pub fn options(&self, lease_ms: u64) -> AgentOptions {
        AgentOptions {
            token: TOKEN.to_vec(),
            lease: LeaseConfig {
                default_ms: lease_ms,
                max_ms: lease_ms,
            },
            state_file: self.state_file.clone(),
            max_connections: 8,
        }
    }

    pub async fn serve(&self, lease_ms: u64) -> RunningAgent {
        self.serve_at(lease_ms, "127.0.0.1:0".parse().unwrap())
            .await
    }

    pub async fn serve_at(&self, lease_ms: u64, addr: SocketAddr) -> RunningAgent {
        let agent = Agent::start(self.node(), self.options(lease_ms))
            .await
            .unwrap();
        agent.spawn(addr).await.unwrap()
    }

    /// True when every GPU holds `limit` and the job is paused.
    pub fn curtailed_to(&self, limit: Power) -> bool {
        self.fleet
            .iter()
            .all(|g| g.requested_limit() == limit && g.activity() == SimActivity::Paused)
    }

    /// True when every GPU holds `limit` and runs.
    pub fn running_at(&self, limit: Power) -> bool {
        self.fleet
            .iter()
            .all(|g| g.requested_limit() == limit && g.activity() == SimActivity::Running)
    }
}

/// Time a loaded CI machine may need beyond a lease or a re-plan (two cores, other
/// test binaries' builds and runs beside this one).
pub const SLACK: Duration = Duration::from_secs(8);

/// The loopback tests run one at a time: two of them at once (32 agents each, real
/// time) on two cores can starve each other's lease renewals.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::LazyLock<tokio::sync::Mutex<()>> =
        std::sync::LazyLock::new(|| tokio::sync::Mutex::new(()));
    SERIAL.lock().await
}

/// Polls `cond` every 10 ms for up to `within`; true once it holds.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP relay in front of an agent: `cut` drops every connection and refuses new
/// ones, as a network partition a peer notices would; `blackhole` keeps every
/// connection open and passes nothing, as a partition where packets are lost would;
/// `heal` lets traffic through again.
pub struct Relay {
    pub addr: SocketAddr,
    state: tokio::sync::watch::Sender<Link>,
    task: tokio::task::JoinHandle<()>,
}

/// What a relay lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Open,
    Cut,
    Blackhole,
}

impl Relay {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, watch) = tokio::sync::watch::channel(Link::Open);
        let task = tokio::spawn(async move {
            let mut pipes = JoinSet::new();
            while let Ok((down, _)) = listener.accept().await {
                let mut link = watch.clone();
                let now = *link.borrow();
                match now {
                    Link::Cut => continue, // dropped: the peer sees its connection closed
                    Link::Blackhole => {
                        // Held open, silent, until the link changes.
                        pipes.spawn(async move {
                            let _ = link.wait_for(|l| *l != Link::Blackhole).await;
                            drop(down);
                        });
                        continue;
                    }
                    Link::Open => {}
                }
                pipes.spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut down_read, mut down_write) = down.into_split();
                    let (mut up_read, mut up_write) = up.into_split();
                    let mut change = link.clone();
                    tokio::select! {
                        () = pass(&mut down_read, &mut up_write, &link) => {}
                        () = pass(&mut up_read, &mut down_write, &link) => {}
                        _ = change.wait_for(|l| *l != Link::Open) => {}
                    }
                    let now = *link.borrow();
                    if now == Link::Blackhole {
                        // Silent from here: both ends stay open, nothing passes.
                        let _ = link.wait_for(|l| *l != Link::Blackhole).await;
                    }
                });
            }
        });
        Self { addr, state, task }
    }

    /// Stops all traffic: every open pipe is dropped and new connections are closed.
    pub fn cut(&self) {
        let _ = self.state.send(Link::Cut);
    }

    /// Stops all traffic silently: open connections and new ones stay open and pass
    /// nothing, so the peer learns of it only by its timeouts.
    pub fn blackhole(&self) {
        let _ = self.state.send(Link::Blackhole);
    }

    /// Lets traffic through again (new connections only).
    pub fn heal(&self) {
        let _ = self.state.send(Link::Open);
    }
}

/// Forwards `from` to `to` while the link is open. The link is read after each chunk
/// arrives, so bytes sent after `blackhole` or `cut` returned are never passed on, however
/// late this task runs (with `copy_bidirectional` in a `select!`, a chunk read in a poll
/// that began before the change could still go through).
async fn pass(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    link: &tokio::sync::watch::Receiver<Link>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if *link.borrow() != Link::Open || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
