//! The remote handles keep the hal's promises: the conformance kit every backend's own
//! tests run, here through an agent on loopback (simulated GPUs on a manual clock, so
//! the kit's 2 s between readings cost nothing).

use std::sync::Arc;
use std::time::Duration;

use gridflex_agent::{Agent, AgentClient, AgentOptions, ClientOptions, LeaseConfig, Node, NodeJob};
use gridflex_core::{JobId, ManualClock};
use gridflex_hal::conformance;
use gridflex_hal::sim::{SimFleet, SimGpuSpec, SimJob, WorkloadKind, WorkloadProfile};
use gridflex_hal::{PowerDevice, PowerSampleStream, WorkloadControl};

const TOKEN: &[u8] = b"0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_devices_and_workloads_pass_the_conformance_kit() {
    let clock = ManualClock::default();
    let fleet = SimFleet::new(Arc::new(clock.clone()), 2, &SimGpuSpec::h100_sxm()).unwrap();
    let job = Arc::new(
        SimJob::start(
            JobId::new("train").unwrap(),
            fleet.iter().cloned().collect(),
            WorkloadProfile::of(WorkloadKind::Matmul),
        )
        .unwrap(),
    );
    let control: Arc<dyn WorkloadControl> = job;
    let ids = fleet.iter().map(|g| g.id().clone()).collect();
    let sampled = fleet
        .iter()
        .map(|g| Arc::clone(g) as Arc<dyn PowerSampleStream>)
        .collect();
    let node = Node::with_samples(
        "c0",
        sampled,
        vec![NodeJob {
            control,
            devices: ids,
        }],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = AgentOptions {
        token: TOKEN.to_vec(),
        lease: LeaseConfig::default(),
        state_file: dir.path().join("state.json"),
        max_connections: 4,
    };
    let agent = Agent::start(node, options)
        .await
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = AgentClient::connect(agent.local_addr(), TOKEN, ClientOptions::default())
        .await
        .unwrap();
    for d in client.devices() {
        let c = clock.clone();
        conformance::power_device(d.as_ref(), |by: Duration| {
            c.advance(by);
            std::future::ready(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    for d in client.sampled_devices() {
        let c = clock.clone();
        conformance::sample_stream(d.as_ref(), SimGpuSpec::h100_sxm().sample_period, |by| {
            c.advance(by);
            std::future::ready(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let job = &client.jobs()[0];
    let c = clock.clone();
    conformance::workload_control(job.as_ref(), |_| {
        c.advance(Duration::from_millis(100));
        std::future::ready(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // The kit gives everything back: nothing is held.
    assert!(agent.holdings().await.is_empty());
    assert!(
        fleet
            .iter()
            .all(|g| g.requested_limit() == g.info().limit_at_discovery)
    );
}
