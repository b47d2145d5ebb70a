//! Property: whatever sequence of batches a client sends (caps in range, restores,
//! pauses, resumes, in any order, on any devices), a node whose agent is killed and
//! restarted, or whose lease lapses, ends exactly as it was before gridflex touched
//! it: every GPU at the limit the operator had set, the job running. Checked on the
//! simulated GPUs themselves.

use std::time::Duration;

use crate::support::*;
use gridflex_agent::protocol::Op;
use gridflex_agent::{AgentClient, ClientOptions};
use gridflex_hal::{PowerDevice, WorkloadControl};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Cap(usize, f64),
    Restore(usize),
    Pause,
    Resume,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..4, 200.0f64..=700.0).prop_map(|(d, l)| Step::Cap(d, l.round())),
        (0usize..4).prop_map(Step::Restore),
        Just(Step::Pause),
        Just(Step::Resume),
    ]
}

fn run(initial: Vec<f64>, batches: Vec<Vec<Step>>, lapse: bool) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    rt.block_on(async move {
        // One case at a time beside the other loopback tests: a 200 ms lease is renewed
        // every 66 ms, and each case's synced state writes would slow the fleet tests'
        // 32 agents' renewals.
        let _serial = one_at_a_time().await;
        let dir = tempfile::tempdir().unwrap();
        let node = SimNode::new("p", 4, dir.path());
        for (g, &l) in node.fleet.iter().zip(&initial) {
            g.set_power_limit_now(w(l)).unwrap();
        }
        let lease = if lapse { 200 } else { 60_000 };
        let agent = node.serve(lease).await;
        // Requests may take longer than a third of the short lease (a lapse between
        // batches is one more thing the property covers, not a failure).
        let options = ClientOptions {
            request_timeout: Duration::from_secs(5),
            ..ClientOptions::with_lease(Duration::from_millis(lease))
        };
        let client = AgentClient::connect(agent.local_addr(), TOKEN, options)
            .await
            .unwrap();
        let ids: Vec<_> = node.fleet.iter().map(|g| g.id().clone()).collect();
        let job = node.job.job().clone();
        for batch in batches {
            let ops = batch
                .into_iter()
                .map(|s| match s {
                    Step::Cap(d, l) => Op::SetCap {
                        device: ids[d].clone(),
                        limit: w(l),
                    },
                    Step::Restore(d) => Op::RestoreCap {
                        device: ids[d].clone(),
                    },
                    Step::Pause => Op::Pause { job: job.clone() },
                    Step::Resume => Op::Resume { job: job.clone() },
                })
                .collect();
            client.apply(ops).await.unwrap();
        }
        let restored = |n: &SimNode| {
            n.fleet
                .iter()
                .zip(&initial)
                .all(|(g, &l)| g.requested_limit() == w(l))
                && n.job.status_now() == gridflex_hal::WorkloadState::Running
        };
        if lapse {
            drop(client);
            let ok = eventually(Duration::from_secs(3) + SLACK, || restored(&node)).await;
            prop_assert!(ok, "lease lapse restored the node");
        } else {
            agent.kill();
            drop(client);
            let _again = node.serve(lease).await;
            prop_assert!(restored(&node), "restart restored the node");
        }
        Ok(())
    })
}

fn limits() -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec((200.0f64..=700.0).prop_map(f64::round), 4)
}

fn batches() -> impl Strategy<Value = Vec<Vec<Step>>> {
    proptest::collection::vec(proptest::collection::vec(step(), 1..6), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_restarted_agent_gives_back_the_operators_limits(initial in limits(), b in batches()) {
        run(initial, b, false)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn a_lapsed_lease_gives_back_the_operators_limits(initial in limits(), b in batches()) {
        run(initial, b, true)?;
    }
}
