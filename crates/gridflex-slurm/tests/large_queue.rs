//! A queue of 2,000 generated jobs in Slurm 22.05's `squeue --json` form: every live
//! job is read, with its GPUs on the right nodes and its class.

#[path = "support/queue.rs"]
mod queue;

use chrono::Utc;
use gridflex_slurm::{DeviceMap, Inventory, JobState, Policy, SlaClass};

#[test]
fn a_two_thousand_job_queue_is_read_whole() -> Result<(), Box<dyn std::error::Error>> {
    let (json, exp) = queue::queue(2_000);
    assert!(
        json.len() > 2_000 * 2_000,
        "the generated queue is realistic in size"
    );
    let policy: Policy = serde_json::from_str(
        r#"{"rules":[{"match":{"comment_tag":"gridflex:flexible"},"class":"flexible","floor":0.5,"max_pause_s":600}]}"#,
    )?;
    let inv = Inventory::from_squeue_json(&json, &policy, &DeviceMap::default(), Utc::now(), None)?;
    assert_eq!(inv.len(), exp.running + exp.pending);
    let running: Vec<_> = inv
        .jobs()
        .filter(|j| j.job.state == JobState::Running)
        .collect();
    assert_eq!(running.len(), exp.running);
    assert_eq!(
        running.iter().map(|j| j.devices.len()).sum::<usize>(),
        exp.gpus
    );
    let flexible = running
        .iter()
        .filter(|j| matches!(j.class, SlaClass::Flexible { .. }))
        .count();
    assert_eq!(flexible, exp.flexible);
    // No GPU is claimed twice, and a 4-node job spans four nodes.
    let mut all: Vec<_> = running
        .iter()
        .flat_map(|j| j.devices.iter().cloned())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), exp.gpus);
    let four = running
        .iter()
        .find(|j| j.job.nodes.len() == 4)
        .ok_or("no 4-node job")?;
    assert_eq!(four.devices.len(), 32);
    assert_eq!(
        four.devices[8].as_str(),
        format!("{}/gpu0", four.job.nodes[1])
    );
    assert!(inv.jobs().all(|j| j.job.problem.is_none()));
    Ok(())
}
