//! Signal arrival -> every command of the first stage acknowledged, for GPUs behind
//! node agents on loopback, next to the same fleet in-process.
//!
//! The orchestrator (one current-thread runtime, real time) handles a price signal
//! whose 20 ms response needs the fast stage (pauses plus caps); `handle_signal`
//! returns once every command of that stage has answered, so the figure is signal ->
//! all acknowledged. Remote cases go through `RemoteDevice`/`RemoteWorkload`: each
//! node's commands leave as one batch, are applied concurrently on the node after its
//! holdings are written (fsync) to its state file, and are answered in one frame. The
//! agents run on a second runtime (2 workers). Between iterations the fleet is restored
//! by a shutdown (untimed). Cases with 1, 8 and 16 GPUs per node over the same 125
//! nodes show that the batch makes the per-node cost independent of GPUs per node.

use std::sync::Arc;
use std::time::Duration;

#[path = "support/mod.rs"]
mod support;

#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

use chrono::{TimeDelta, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use gridflex::prelude::*;
use gridflex_agent::{
    Agent, AgentClient, AgentOptions, ClientOptions, LeaseConfig, Node, NodeJob, RunningAgent,
    device_ids,
};
use gridflex_hal::sim::{SimGpu, SimGpuSpec, SimJob, WorkloadProfile};

const TOKEN: &[u8] = b"0123456789abcdef0123456789abcdef";

fn class(i: usize) -> (JobClass, WorkloadKind) {
    match i % 4 {
        0 => (JobClass::Critical { floor: 0.85 }, WorkloadKind::Inference),
        3 => (
            JobClass::Deferrable {
                deadline: Utc::now() + TimeDelta::hours(8),
            },
            WorkloadKind::FineTuning,
        ),
        _ => (
            JobClass::Flexible {
                floor: 0.5,
                max_pause: Duration::from_secs(600),
            },
            WorkloadKind::Pretraining,
        ),
    }
}

/// One node's simulated GPUs and its job.
fn sim_node(n: usize, gpus: usize) -> (Vec<Arc<SimGpu>>, Arc<SimJob>) {
    let clock: gridflex_core::SharedClock = Arc::new(gridflex_core::TokioClock::real());
    let gpus: Vec<Arc<SimGpu>> = (0..gpus)
        .map(|g| {
            Arc::new(
                SimGpu::with_uuid(
                    format!("GPU-{n}-{g}"),
                    clock.clone(),
                    SimGpuSpec::h100_sxm(),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            )
        })
        .collect();
    let job = SimJob::start(
        JobId::new(format!("job-{n}")).unwrap_or_else(|e| panic!("{e}")),
        gpus.clone(),
        WorkloadProfile::of(class(n).1),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (gpus, Arc::new(job))
}

fn builder(scale_gpus: usize) -> gridflex::orchestrator::OrchestratorBuilder<TokioClock> {
    let node = PricingNodeId::new("TH_SP15_GEN-APND").unwrap_or_else(|e| panic!("{e}"));
    let reduction = Power::kilowatts(0.5 * scale_gpus as f64).unwrap_or_else(|e| panic!("{e}"));
    let mut rules = ProgramRules::new(Market::Caiso, reduction);
    let mut price = PriceRule::new(node, MarketRun::CaisoRtm, price!(300 per MWh), reduction);
    price.response_time = TimeDelta::milliseconds(20);
    rules.price = Some(price);
    Orchestrator::builder(TokioClock::real())
        .facility(FacilityModel::new(power!(20 kW), 1.1).unwrap_or_else(|e| panic!("{e}")))
        .rules(rules)
        .audit(gridflex::audit::AuditLog::discard())
}

fn signal() -> GridSignal {
    let now = Utc::now();
    let interval =
        Interval::new(now, now + TimeDelta::minutes(5)).unwrap_or_else(|e| panic!("{e}"));
    GridSignal::Price(PricePoint::new(
        MarketRun::CaisoRtm,
        PricingNodeId::new("TH_SP15_GEN-APND").unwrap_or_else(|e| panic!("{e}")),
        interval,
        Price::per_megawatt_hour(900.0).unwrap_or_default(),
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn in_process(c: &mut Criterion, nodes: usize, per_node: usize) {
    let rt = runtime();
    let mut o = rt.block_on(async {
        let mut b = builder(nodes * per_node);
        for n in 0..nodes {
            let (gpus, job) = sim_node(n, per_node);
            let ids = gpus.iter().map(|g| g.id().clone()).collect();
            b = b.devices(gpus.into_iter().map(DeviceHandle::with_samples));
            let (class, kind) = class(n);
            let control: Arc<dyn WorkloadControl> = job.clone();
            b = b.job(
                JobEntry::for_control(&*control, ids, class, kind),
                Some(control),
            );
        }
        let mut o = b.build().unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        o.sweep().await;
        o
    });
    let name = format!(
        "signal -> all acknowledged, {} GPUs in-process ({nodes} jobs x {per_node})",
        nodes * per_node
    );
    support::signal_to_commands(c, &name, &rt, &mut o, &signal());
}

fn remote(c: &mut Criterion, nodes: usize, per_node: usize) {
    // State files on disk (every batch that curtails fsyncs one); set
    // GRIDFLEX_BENCH_STATE_DIR (e.g. to a tmpfs) to measure without the disk.
    let dir = match std::env::var_os("GRIDFLEX_BENCH_STATE_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let agents_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let agents: Vec<RunningAgent> = agents_rt.block_on(async {
        let mut out = Vec::new();
        for n in 0..nodes {
            let (gpus, job) = sim_node(n, per_node);
            let control: Arc<dyn WorkloadControl> = job;
            let devices: Vec<Arc<dyn PowerDevice>> = gpus
                .iter()
                .map(|g| g.clone() as Arc<dyn PowerDevice>)
                .collect();
            let ids = gpus.iter().map(|g| g.id().clone()).collect();
            let node = Node::new(
                format!("node-{n}"),
                devices,
                vec![NodeJob {
                    control,
                    devices: ids,
                }],
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let options = AgentOptions {
                token: TOKEN.to_vec(),
                lease: LeaseConfig {
                    default_ms: 60_000,
                    max_ms: 60_000,
                },
                state_file: dir.path().join(format!("node-{n}.json")),
                max_connections: 4,
            };
            let agent = Agent::start(node, options)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let addr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
            out.push(agent.spawn(addr).await.unwrap_or_else(|e| panic!("{e}")));
        }
        out
    });
    let rt = runtime();
    let mut o = rt.block_on(async {
        let mut b = builder(nodes * per_node);
        let options = ClientOptions::with_lease(Duration::from_secs(60));
        for (n, a) in agents.iter().enumerate() {
            let client = AgentClient::connect(a.local_addr(), TOKEN, options)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let devices = client.devices();
            let ids = device_ids(&devices);
            b = b.devices(devices.into_iter().map(|d| DeviceHandle::new(d)));
            let (class, kind) = class(n);
            for job in client.jobs() {
                let control: Arc<dyn WorkloadControl> = job;
                b = b.job(
                    JobEntry::for_control(&*control, ids.clone(), class.clone(), kind),
                    Some(control),
                );
            }
        }
        let mut o = b.build().unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        o.sweep().await;
        o
    });
    let name = format!(
        "signal -> all acknowledged, {} GPUs over {nodes} agents x {per_node} (loopback)",
        nodes * per_node
    );
    support::signal_to_commands(c, &name, &rt, &mut o, &signal());
    drop(o);
    drop(rt);
    drop(agents);
    agents_rt.shutdown_background();
}

fn agent(c: &mut Criterion) {
    in_process(c, 125, 8);
    remote(c, 125, 8);
    remote(c, 125, 1);
    remote(c, 125, 16);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = agent
}
criterion_main!(benches);
