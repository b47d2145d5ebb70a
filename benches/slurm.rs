//! Inventory refresh without the cluster: parse a generated `squeue --json` of 1,000 and
//! 10,000 jobs (Slurm 22.05's full job records), expand host lists and GPU detail, map
//! devices and classify under a three-rule policy. What a live refresh adds on top is
//! the `squeue` call itself (see docs/slurm.md).

#[path = "../crates/gridflex-slurm/tests/support/queue.rs"]
mod queue;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gridflex_slurm::{DeviceMap, Inventory, Policy};

fn inventory(c: &mut Criterion) {
    let policy: Policy = serde_json::from_str(
        r#"{"rules":[
        {"match":{"partition":"batch"},"class":"deferrable","deadline":{"from":"time_limit","margin_s":600}},
        {"match":{"comment_tag":"gridflex:flexible"},"class":"flexible","floor":0.5,"max_pause_s":600},
        {"match":{"gres":"gpu:h100"},"class":"pinned"}]}"#,
    )
    .unwrap_or_default();
    let map = DeviceMap::default();
    let mut group = c.benchmark_group("slurm_inventory");
    for n in [1_000usize, 10_000] {
        let (json, _) = queue::queue(n);
        group.throughput(Throughput::Bytes(json.len() as u64));
        // The JSON alone (serde into the v0.0.38 model, host lists, GPU detail).
        group.bench_with_input(BenchmarkId::new("parse", n), &json, |b, json| {
            b.iter(|| {
                gridflex_slurm::squeue::parse(json)
                    .map(|j| j.len())
                    .unwrap_or(0)
            })
        });
        // Parse, keep live jobs, map devices, classify: the whole refresh minus squeue.
        group.bench_with_input(BenchmarkId::new("inventory", n), &json, |b, json| {
            b.iter(|| {
                Inventory::from_squeue_json(json, &policy, &map, Utc::now(), None)
                    .map(|i| i.len())
                    .unwrap_or(0)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, inventory);
criterion_main!(benches);
