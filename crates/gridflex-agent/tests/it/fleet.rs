//! A site on loopback: many agents with simulated GPUs and one orchestrator driving
//! them through remote handles. Every check reads the simulated hardware, not what
//! the orchestrator believes. The orchestrator runs on a runtime of its own, so that
//! "killing" it (shutting that runtime down) stops every task it had, as a crash would.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use chrono::{TimeDelta, Utc};
use gridflex::audit::{AuditEvent, AuditLog, MemoryLog, Replan};
use gridflex::prelude::*;
use gridflex::signals::source::channel;
use gridflex::signals::{DispatchEvent, DispatchTarget, EventWindow, Program};
use gridflex_agent::protocol::LapseReason;
use gridflex_agent::{AgentClient, ClientOptions, RunningAgent};
use gridflex_hal::sim::SimActivity;

fn kw(v: f64) -> Power {
    Power::kilowatts(v).unwrap()
}

fn dispatch(id: &str, cap_kw: f64) -> GridSignal {
    let start = Utc::now();
    GridSignal::Dispatch(
        DispatchEvent::new(
            id,
            Program::CaisoPdr,
            start,
            EventWindow::new(start, Some(start + TimeDelta::minutes(30))).unwrap(),
            DispatchTarget::CapAt { power: kw(cap_kw) },
            None,
        )
        .unwrap(),
    )
}

/// True when some GPU of the node is capped below its top or paused.
fn touched(n: &SimNode) -> bool {
    n.fleet
        .iter()
        .any(|g| g.requested_limit() < w(700.0) || g.activity() == SimActivity::Paused)
}

/// True when every GPU of the node is capped below its top or paused.
fn all_touched(n: &SimNode) -> bool {
    n.fleet
        .iter()
        .all(|g| g.requested_limit() < w(700.0) || g.activity() == SimActivity::Paused)
}

/// A job as the orchestrator registered it.
type Registered = (JobEntry, Arc<dyn WorkloadControl>);

struct Site {
    runtime: tokio::runtime::Runtime,
    handle: OrchestratorHandle,
    memory: MemoryLog,
    /// Per node: its client and its jobs as registered.
    nodes: Vec<(AgentClient, Vec<Registered>)>,
}

/// Connects to every agent and runs an orchestrator over them on its own runtime.
async fn site(addrs: Vec<std::net::SocketAddr>, lease: Duration) -> Site {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (handle, memory, nodes) = runtime
        .spawn(async move {
            let clients = futures_util::future::join_all(
                addrs
                    .iter()
                    .map(|a| AgentClient::connect(*a, TOKEN, ClientOptions::with_lease(lease))),
            )
            .await;
            let (audit, memory) = AuditLog::memory();
            let mut rules = ProgramRules::new(Market::Caiso, kw(500.0));
            rules.dispatch = Some(DispatchRule::new(vec![Program::CaisoPdr]));
            let mut options = OrchestratorOptions::default();
            // Sweeps often enough to learn the simulated draw in a second.
            options.telemetry_step = TimeDelta::milliseconds(200);
            // Every client forwards the lapses it hears to the orchestrator.
            let (restores, outside) = tokio::sync::mpsc::channel(64);
            let mut b = Orchestrator::builder(TokioClock::real())
                .options(options)
                .facility(FacilityModel::new(kw(1.0), 1.0).unwrap())
                .rules(rules)
                .audit(audit)
                .outside_restores(outside);
            let mut nodes = Vec::new();
            for c in clients {
                let c = c.unwrap();
                c.forward_lapses(restores.clone());
                let mut registered = Vec::new();
                // Every simulated GPU keeps a sample stream: the response capture
                // reads 20 ms samples through the agent.
                let devices = c.sampled_devices();
                assert_eq!(devices.len(), c.inventory().devices.len());
                let ids = devices.iter().map(|d| d.id().clone()).collect::<Vec<_>>();
                b = b.devices(devices.into_iter().map(DeviceHandle::with_samples));
                for job in c.jobs() {
                    let entry = JobEntry::for_control(
                        &*job,
                        ids.clone(),
                        JobClass::Flexible {
                            floor: 0.2,
                            max_pause: Duration::from_secs(3600),
                        },
                        WorkloadKind::Pretraining,
                    );
                    let control: Arc<dyn WorkloadControl> = job;
                    registered.push((entry.clone(), control.clone()));
                    b = b.job(entry, Some(control));
                }
                nodes.push((c, registered));
            }
            let (_tx, source) = channel(4);
            let (handle, _task) = b.build().unwrap().spawn(source);
            // The source's sender lives as long as the orchestrator's runtime.
            std::mem::forget(_tx);
            (handle, memory, nodes)
        })
        .await
        .unwrap();
    let site = Site {
        runtime,
        handle,
        memory,
        nodes,
    };
    // A few sweeps: the plan starts from the GPUs' settled draw (and at least one sweep
    // has read it, however slow the machine).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while site.status().await.facility_power.is_none() && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        site.status().await.facility_power.is_some(),
        "no telemetry sweep read the GPUs' draw within 30 s of the site starting"
    );
    site
}

impl Site {
    async fn signal(&self, signal: GridSignal) -> Handled {
        let h = self.handle.clone();
        self.runtime
            .spawn(async move { h.signal(signal).await })
            .await
            .unwrap()
            .unwrap()
    }

    async fn status(&self) -> gridflex::orchestrator::Status {
        let h = self.handle.clone();
        self.runtime
            .spawn(async move { h.status().await })
            .await
            .unwrap()
            .unwrap()
    }

    /// Stops the orchestrator and every task it had, at once.
    fn kill(self) {
        self.runtime.shutdown_background();
    }
}

async fn serve_all(nodes: &[SimNode], lease: Duration) -> Vec<RunningAgent> {
    let mut agents = Vec::new();
    for n in nodes {
        agents.push(n.serve(lease.as_millis() as u64).await);
    }
    agents
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_reaches_every_gpu_and_a_dead_orchestrator_or_a_cut_node_restores() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(3); // renewals every second, each with a second to answer
    let nodes: Vec<SimNode> = (0..32)
        .map(|i| SimNode::new(&format!("n{i:02}"), 8, dir.path()))
        .collect();
    let agents = serve_all(&nodes, lease).await;
    // Node 0 is reached through a relay that can be cut.
    let relay = Relay::start(agents[0].local_addr()).await;
    let mut addrs: Vec<_> = agents.iter().map(|a| a.local_addr()).collect();
    addrs[0] = relay.addr;
    let site = site(addrs, lease).await;
    // 256 GPUs draw about 180 kW: a 20 kW cap needs every one of them.
    let handled = site.signal(dispatch("deep", 20.0)).await;
    assert!(matches!(handled, Handled::Actuated { .. }), "{handled:?}");
    assert!(
        eventually(Duration::from_secs(60), || nodes.iter().all(all_touched)).await,
        "every GPU of every node is curtailed: {} of 32 nodes",
        nodes.iter().filter(|n| all_touched(n)).count()
    );
    // Held through several leases: the clients renew.
    tokio::time::sleep(2 * lease).await;
    assert!(nodes.iter().all(touched), "renewed leases hold");
    // A partition: node 0 restores on its own, the others stay curtailed.
    relay.cut();
    assert!(
        eventually(lease + SLACK, || nodes[0].running_at(w(700.0))).await,
        "the cut-off node restored itself within its lease"
    );
    assert!(nodes[1..].iter().all(touched));
    // Node 0 cannot report its restore, but its client presumes it once the lease may
    // have run out: the orchestrator stops counting node 0 as curtailed (its job is
    // held unknown, planned at its free-running draw) while the cut lasts.
    let job0 = JobId::new("job-n00").unwrap();
    let mut unknown = false;
    for _ in 0..100 {
        let status = site.status().await;
        if status.curtailed.iter().any(|s| s.job == job0 && s.unknown) {
            unknown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        unknown,
        "the cut-off node's job is held unknown during the cut"
    );
    assert!(
        nodes[0].running_at(w(700.0)),
        "nothing reached the cut-off node"
    );
    // The network heals: the retry loop reaches node 0 and confirms its restore (the
    // node's lapse report rides on that answer and is kept by the client), and the
    // orchestrator plans node 0 in again, with no help from the integrator.
    relay.heal();
    let client = site.nodes[0].0.clone();
    let mut lapses = Vec::new();
    let heard = eventually(lease + SLACK, || {
        lapses.extend(client.take_lapses());
        !lapses.is_empty()
    })
    .await;
    assert!(heard, "node 0's lapse reached the orchestrator's side");
    assert_eq!(lapses[0].reason, LapseReason::LeaseExpired);
    // What it gave back: its caps, its paused job, or both (as the plan had it).
    assert!(!lapses[0].restored.is_empty() || !lapses[0].resumed.is_empty());
    assert!(lapses[0].failures.is_empty());
    assert!(
        eventually(lease + SLACK, || all_touched(&nodes[0])).await,
        "node 0 is curtailed again"
    );
    // A stage's audit records are written when the stage ends, after its commands: the
    // GPUs can show the curtailment before the re-plan's record is there.
    let mut records = Vec::new();
    let planned_back = eventually(SLACK, || {
        records = site.memory.records().unwrap();
        records.iter().any(|r| {
            matches!(&r.event,
            AuditEvent::Replanned { reason: Replan::JobBack { job }, .. } if *job == job0)
        })
    })
    .await;
    assert!(
        planned_back,
        "the re-plan that took node 0's job back is audited"
    );
    assert!(records.iter().any(|r| matches!(&r.event,
        AuditEvent::RestoredOutside { confirming, reason, presumed: true, .. }
            if confirming.contains(&job0) && reason.contains("lease could run out"))));
    assert!(records.iter().any(|r| matches!(&r.event,
        AuditEvent::Replanned { reason: Replan::PresumedRestored { jobs }, .. } if jobs.contains(&job0))));
    // The orchestrator's view agrees with the GPUs' own state (read between two
    // equal snapshots, so that no stage ran in between).
    let mut agreed = false;
    for _ in 0..50 {
        let before = site.status().await.curtailed;
        let gpus: Vec<_> = nodes[0]
            .fleet
            .iter()
            .map(|g| (g.requested_limit(), g.activity() == SimActivity::Paused))
            .collect();
        if site.status().await.curtailed != before {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let held = before
            .iter()
            .find(|s| s.job == job0)
            .expect("node 0's job is held curtailed");
        assert!(!held.unknown);
        for (limit, paused) in gpus {
            assert_eq!(limit, held.cap_per_gpu.unwrap_or(w(700.0)));
            assert_eq!(paused, held.paused);
        }
        agreed = true;
        break;
    }
    assert!(agreed, "the orchestrator's view settled");
    // The orchestrator dies mid-event: every node restores within the lease.
    site.kill();
    assert!(
        eventually(lease + SLACK, || nodes
            .iter()
            .all(|n| n.running_at(w(700.0))))
        .await,
        "{} of 32 nodes restored",
        nodes.iter().filter(|n| n.running_at(w(700.0))).count()
    );
    for a in &agents {
        assert!(a.holdings().await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_agent_is_planned_around_and_restores_its_node_when_restarted() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(20);
    let nodes: Vec<SimNode> = (0..8)
        .map(|i| SimNode::new(&format!("m{i}"), 8, dir.path()))
        .collect();
    let mut agents = serve_all(&nodes, lease).await;
    let site = site(agents.iter().map(|a| a.local_addr()).collect(), lease).await;
    // 64 GPUs draw about 46 kW: 30 kW is met with caps, leaving room to go deeper.
    site.signal(dispatch("first", 30.0)).await;
    let ok = eventually(Duration::from_secs(60), || nodes.iter().all(all_touched)).await;
    if !ok {
        for r in site.memory.records().unwrap() {
            eprintln!("{:?}", r.event);
        }
    }
    assert!(ok);
    // Node 3's agent dies (kill -9): its GPUs stay as they were.
    let dead_addr = agents[3].local_addr();
    let dead = agents.remove(3);
    dead.kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(all_touched(&nodes[3]));
    // A stricter signal takes over; its commands to node 3 fail: the orchestrator
    // re-plans without node 3's job.
    site.signal(dispatch("second", 8.0)).await;
    let job = JobId::new("job-m3").unwrap();
    let replanned = eventually(Duration::from_secs(60), || {
        site.memory.records().unwrap().iter().any(|r| {
            matches!(&r.event, AuditEvent::Replanned { reason: Replan::JobsFailed { jobs }, .. } if jobs.contains(&job))
        })
    })
    .await;
    if !replanned {
        for r in site.memory.records().unwrap() {
            eprintln!("{:?}", r.event);
        }
    }
    assert!(replanned, "the orchestrator re-planned without node m3");
    // Restarted on the same address, the agent restores its node from disk before
    // it serves anyone.
    let restarted = nodes[3].serve_at(lease.as_millis() as u64, dead_addr).await;
    assert!(
        nodes[3].running_at(w(700.0)),
        "restored from the state file"
    );
    drop(restarted);
    site.kill();
}
