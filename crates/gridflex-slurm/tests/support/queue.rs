//! A generated `squeue --json` queue (Slurm 22.05, model v0.0.38) of any size, for the
//! large-queue test and the inventory bench. Each job is the full record Slurm 22.05.8
//! prints (recorded from the CI peer), with its id, state, nodes, GPUs, partition and
//! comment varied: 70 % running (1, 2 or 4 nodes of 8 GPUs), 20 % pending, 10 % finished.

/// One job exactly as `squeue --json` printed it on the CI peer.
const RECORDED_JOB: &str = r#"{"account": "", "accrue_time": 1795977904, "admin_comment": "", "array_job_id": 0, "array_task_id": null, "array_max_tasks": 0, "array_task_string": "", "association_id": 0, "batch_features": "", "batch_flag": true, "batch_host": "localhost", "flags": ["JOB_WAS_RUNNING"], "burst_buffer": "", "burst_buffer_state": "", "cluster": "gridflex", "cluster_features": "", "command": "/tmp/j.sh", "comment": "gridflex:flexible", "container": "", "contiguous": false, "core_spec": null, "thread_spec": null, "cores_per_socket": null, "billable_tres": 1.0, "cpus_per_task": null, "cpu_frequency_minimum": null, "cpu_frequency_maximum": null, "cpu_frequency_governor": null, "cpus_per_tres": "", "deadline": 0, "delay_boot": 0, "dependency": "", "derived_exit_code": 0, "eligible_time": 1795977904, "end_time": 1795981505, "excluded_nodes": "", "exit_code": 0, "features": "", "federation_origin": "", "federation_siblings_active": "", "federation_siblings_viable": "", "gres_detail": ["gpu:2(IDX:0-1)"], "group_id": 0, "group_name": "root", "job_id": 1, "job_resources": {"nodes": "localhost", "allocated_cores": 1, "allocated_hosts": 1, "allocated_nodes": [{"sockets": {"0": {"cores": {"0": "allocated"}}}, "nodename": "localhost", "cpus_used": 0, "memory_used": 0, "memory_allocated": 0}]}, "job_state": "RUNNING", "last_sched_evaluation": 1795977905, "licenses": "", "max_cpus": 0, "max_nodes": 0, "mcs_label": "", "memory_per_tres": "", "name": "train1", "nodes": "localhost", "nice": null, "tasks_per_core": null, "tasks_per_node": 0, "tasks_per_socket": null, "tasks_per_board": 0, "cpus": 1, "node_count": 1, "tasks": 1, "het_job_id": 0, "het_job_id_set": "", "het_job_offset": 0, "partition": "gpu", "prefer": "", "memory_per_node": null, "memory_per_cpu": null, "minimum_cpus_per_node": 1, "minimum_tmp_disk_per_node": 0, "preempt_time": 0, "pre_sus_time": 0, "priority": 4294901759, "profile": null, "qos": "", "reboot": false, "required_nodes": "", "requeue": true, "resize_time": 0, "restart_cnt": 0, "resv_name": "", "shared": null, "show_flags": ["SHOW_ALL", "SHOW_DETAIL", "SHOW_LOCAL"], "sockets_per_board": 0, "sockets_per_node": null, "start_time": 1795977905, "state_description": "", "state_reason": "None", "standard_error": "", "standard_input": "/dev/null", "standard_output": "", "submit_time": 1795977904, "suspend_time": 0, "system_comment": "", "time_limit": 60, "time_minimum": 0, "threads_per_core": null, "tres_bind": "", "tres_freq": "", "tres_per_job": "", "tres_per_node": "gres:gpu:2", "tres_per_socket": "", "tres_per_task": "", "tres_req_str": "cpu=1,mem=24105M,node=1,billing=1", "tres_alloc_str": "cpu=1,node=1,billing=1", "user_id": 0, "user_name": "root", "wckey": "", "current_working_directory": "/tmp"}"#;

/// What the generated queue holds, to check a parse against.
#[allow(dead_code)] // the bench reads only the JSON
pub(crate) struct Expected {
    /// Jobs that are running (and so hold GPUs).
    pub(crate) running: usize,
    /// Pending jobs.
    pub(crate) pending: usize,
    /// GPUs held by running jobs.
    pub(crate) gpus: usize,
    /// Running jobs tagged `gridflex:flexible`.
    pub(crate) flexible: usize,
}

/// The JSON of a queue of `n` jobs, and what it holds.
pub(crate) fn queue(n: usize) -> (Vec<u8>, Expected) {
    let template: serde_json::Value = serde_json::from_str(RECORDED_JOB).unwrap_or_default();
    let mut exp = Expected {
        running: 0,
        pending: 0,
        gpus: 0,
        flexible: 0,
    };
    let mut jobs = Vec::with_capacity(n);
    let mut next_node = 0usize;
    for i in 0..n {
        let mut j = template.clone();
        let id = 1000 + i as u64;
        let kind = i % 10;
        j["job_id"] = id.into();
        j["name"] = format!("job-{id}").into();
        j["partition"] = (if i % 3 == 0 { "batch" } else { "gpu" }).into();
        j["comment"] = (if i % 2 == 0 { "gridflex:flexible" } else { "" }).into();
        if kind < 7 {
            let nodes = [1usize, 2, 4][i % 3];
            let first = next_node;
            next_node += nodes;
            let per_node = if nodes == 1 { 1 + i % 8 } else { 8 };
            j["job_state"] = "RUNNING".into();
            j["nodes"] = if nodes == 1 {
                format!("gpu{first:04}")
            } else {
                format!("gpu[{first:04}-{:04}]", first + nodes - 1)
            }
            .into();
            j["job_resources"] = serde_json::Value::Null;
            let detail = if per_node == 8 {
                "gpu:8(IDX:0-7)".to_owned()
            } else {
                format!("gpu:{per_node}(IDX:0-{})", per_node - 1)
            };
            j["gres_detail"] = vec![detail; nodes].into();
            j["tres_per_node"] = format!("gres:gpu:{per_node}").into();
            exp.running += 1;
            exp.gpus += nodes * per_node;
            if i % 2 == 0 {
                exp.flexible += 1;
            }
        } else if kind < 9 {
            j["job_state"] = "PENDING".into();
            j["nodes"] = "".into();
            j["gres_detail"] = serde_json::Value::Array(vec![]);
            j["job_resources"] = serde_json::Value::Null;
            exp.pending += 1;
        } else {
            j["job_state"] = "COMPLETED".into();
        }
        jobs.push(j);
    }
    let doc = serde_json::json!({
        "meta": {"plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
                 "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}},
        "errors": [],
        "jobs": jobs,
    });
    (serde_json::to_vec_pretty(&doc).unwrap_or_default(), exp)
}
