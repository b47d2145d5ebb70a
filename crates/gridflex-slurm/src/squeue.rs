//! `squeue --json` as Slurm 22.05 prints it (OpenAPI data model `v0.0.38`).
//!
//! Newer Slurm releases change this JSON (data parsers `v0.0.39` and later rename and
//! restructure fields), so the model is tagged: [`parse`] checks `meta.plugin.type` and
//! refuses any other model with [`SlurmError::UnsupportedModel`] rather than guessing.
//! `squeue --json` ignores `-j`, `-u` and `--states` in 22.05: it always prints the whole
//! queue, finished jobs included, so filtering happens here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::SlurmError;
use crate::gres::gpu_indices;
use crate::hostlist::expand;
use crate::job::{GpuRef, JobState, SlurmJob};

/// The data model this module reads.
pub const MODEL: &str = "openapi/v0.0.38";

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    meta: Option<Meta>,
    #[serde(default)]
    errors: Vec<ReportedError>,
    #[serde(default)]
    jobs: Vec<Job>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    plugin: Option<Plugin>,
}

#[derive(Deserialize)]
struct Plugin {
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Deserialize)]
struct ReportedError {
    #[serde(default)]
    description: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    error: String,
}

/// One job of the v0.0.38 model: only the fields gridflex reads.
#[derive(Deserialize)]
struct Job {
    job_id: u32,
    #[serde(default)]
    name: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    partition: String,
    #[serde(default)]
    qos: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    job_state: String,
    /// Minutes; `null` when unlimited.
    #[serde(default)]
    time_limit: Option<u64>,
    #[serde(default)]
    start_time: Option<i64>,
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    nodes: String,
    #[serde(default)]
    gres_detail: Vec<String>,
    #[serde(default)]
    tres_per_node: String,
    #[serde(default)]
    tres_per_job: String,
    #[serde(default)]
    job_resources: Option<Resources>,
}

#[derive(Deserialize)]
struct Resources {
    #[serde(default)]
    allocated_nodes: Vec<AllocatedNode>,
}

#[derive(Deserialize)]
struct AllocatedNode {
    #[serde(default)]
    nodename: String,
}

/// Parses a whole `squeue --json` answer into jobs, all states included.
///
/// A job whose host list or GPU detail cannot be read is kept, with no GPUs and the
/// reason in [`SlurmJob::problem`] (policy then pins it); a document that is not the
/// v0.0.38 model, or that carries Slurm errors, is an error.
///
/// ```
/// let json = r#"{"meta":{"plugin":{"type":"openapi/v0.0.38"}},"errors":[],"jobs":[
///   {"job_id":4,"job_state":"RUNNING","nodes":"n[1-2]","time_limit":60,"start_time":1700000000,
///    "gres_detail":["gpu:2(IDX:0-1)","gpu:2(IDX:6-7)"]}]}"#;
/// let jobs = gridflex_slurm::squeue::parse(json.as_bytes())?;
/// assert_eq!(jobs[0].gpus.len(), 4);
/// assert_eq!(jobs[0].gpus[3].node, "n2");
/// assert_eq!(jobs[0].gpus[3].index, 7);
/// # Ok::<(), gridflex_slurm::SlurmError>(())
/// ```
pub fn parse(json: &[u8]) -> Result<Vec<SlurmJob>, SlurmError> {
    let response: Response = serde_json::from_slice(json).map_err(|e| SlurmError::Json {
        line: e.line(),
        column: e.column(),
        detail: e.to_string(),
    })?;
    let found = response
        .meta
        .and_then(|m| m.plugin)
        .map(|p| p.kind)
        .unwrap_or_default();
    if found != MODEL {
        return Err(SlurmError::UnsupportedModel {
            found: if found.is_empty() {
                "no meta.plugin.type".into()
            } else {
                found
            },
            expected: MODEL,
        });
    }
    if !response.errors.is_empty() {
        let detail = response
            .errors
            .iter()
            .map(|e| format!("{} ({}: {})", e.description, e.source, e.error))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(SlurmError::Reported { detail });
    }
    Ok(response.jobs.into_iter().map(convert).collect())
}

fn convert(j: Job) -> SlurmJob {
    let state = JobState::parse(&j.job_state);
    let mut gres_request = j.tres_per_node;
    if !j.tres_per_job.is_empty() {
        if !gres_request.is_empty() {
            gres_request.push(',');
        }
        gres_request.push_str(&j.tres_per_job);
    }
    let (nodes, gpus, problem) = match placement(&j.nodes, j.job_resources.as_ref(), &j.gres_detail)
    {
        Ok((nodes, gpus)) => (nodes, gpus, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    SlurmJob {
        id: j.job_id,
        name: j.name,
        user: j.user_name,
        partition: j.partition,
        qos: j.qos,
        account: j.account,
        comment: j.comment,
        gres_request,
        state,
        time_limit: j
            .time_limit
            .map(|m| Duration::from_secs(m.saturating_mul(60))),
        start: j.start_time.and_then(instant),
        end: j.end_time.and_then(instant),
        nodes,
        gpus,
        problem,
    }
}

/// Unix seconds; 0 means "not set" in this model.
fn instant(secs: i64) -> Option<DateTime<Utc>> {
    if secs <= 0 {
        return None;
    }
    DateTime::from_timestamp(secs, 0)
}

/// Ties `gres_detail` (one entry per node, in node order) to node names.
fn placement(
    nodes: &str,
    resources: Option<&Resources>,
    detail: &[String],
) -> Result<(Vec<String>, Vec<GpuRef>), SlurmError> {
    let names: Vec<String> = match resources {
        Some(r) if !r.allocated_nodes.is_empty() => r
            .allocated_nodes
            .iter()
            .map(|n| n.nodename.clone())
            .collect(),
        _ => expand(nodes)?,
    };
    if detail.len() > names.len() {
        return Err(SlurmError::Field {
            job: 0,
            field: "gres_detail",
            detail: format!("{} entries for {} nodes", detail.len(), names.len()),
        });
    }
    let mut gpus = Vec::new();
    for (node, d) in names.iter().zip(detail) {
        for index in gpu_indices(d)? {
            gpus.push(GpuRef {
                node: node.clone(),
                index,
            });
        }
    }
    Ok((names, gpus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Recorded from `squeue --json` on the CI peer (Slurm 22.05.8), trimmed to the
    /// fields read here plus a few ignored ones.
    const RECORDED: &str = r#"{"meta":{"plugin":{"type":"openapi\/v0.0.38","name":"Slurm OpenAPI v0.0.38"},
      "Slurm":{"version":{"major":22,"micro":8,"minor":5},"release":"22.05.8"}},"errors":[],"jobs":[
      {"account":"","comment":"gridflex:flexible","job_id":1,"job_state":"RUNNING","name":"train1",
       "nodes":"localhost","gres_detail":["gpu:2(IDX:0-1)"],"partition":"gpu","qos":"","time_limit":60,
       "start_time":1795977905,"end_time":1795981505,"tres_per_node":"gres:gpu:2","tres_per_job":"",
       "user_name":"root","flags":["JOB_WAS_RUNNING"],"job_resources":{"nodes":"localhost",
       "allocated_nodes":[{"sockets":{"0":{"cores":{"0":"allocated"}}},"nodename":"localhost"}]}},
      {"job_id":2,"job_state":"RUNNING","name":"b1","nodes":"localhost","gres_detail":["gpu:1(IDX:2)"],
       "partition":"batch","time_limit":null,"start_time":1795977905,"end_time":1827513905,
       "tres_per_node":"gres:gpu:1","user_name":"root"},
      {"job_id":3,"job_state":"PENDING","name":"big","nodes":"","gres_detail":[],"partition":"gpu",
       "time_limit":null,"start_time":0,"end_time":0,"tres_per_node":"gres:gpu:8","user_name":"root",
       "job_resources":null}]}"#;

    #[test]
    fn reads_the_recorded_queue() -> Result<(), SlurmError> {
        let jobs = parse(RECORDED.as_bytes())?;
        assert_eq!(jobs.len(), 3);
        let train = &jobs[0];
        assert_eq!(train.state, JobState::Running);
        assert_eq!(train.time_limit, Some(Duration::from_secs(3600)));
        assert_eq!(
            train.gpus,
            [
                GpuRef {
                    node: "localhost".into(),
                    index: 0
                },
                GpuRef {
                    node: "localhost".into(),
                    index: 1
                }
            ]
        );
        assert!(train.comment_has("gridflex:flexible"));
        assert_eq!(jobs[1].time_limit, None);
        assert_eq!(jobs[1].partition, "batch");
        assert_eq!(jobs[2].state, JobState::Pending);
        assert!(jobs[2].gpus.is_empty() && jobs[2].start.is_none());
        assert_eq!(jobs[2].gres_request, "gres:gpu:8");
        Ok(())
    }

    #[test]
    fn refuses_other_models_and_reported_errors() {
        let newer = r#"{"meta":{"plugin":{"type":"openapi/v0.0.39"}},"errors":[],"jobs":[]}"#;
        assert!(matches!(
            parse(newer.as_bytes()),
            Err(SlurmError::UnsupportedModel { .. })
        ));
        // What squeue prints (exit status 0) while slurmctld is down.
        let down = r#"{"meta":{"plugin":{"type":"openapi\/v0.0.38"}},"errors":[{"description":
          "Failed while looking for jobs","error_number":-1,"error":"Unspecified error",
          "source":"slurm_load_jobs"}],"jobs":[]}"#;
        let e = parse(down.as_bytes());
        assert!(
            matches!(&e, Err(SlurmError::Reported { detail }) if detail.contains("slurm_load_jobs")),
            "{e:?}"
        );
        let e = parse(b"{\"meta\": 3");
        assert!(matches!(e, Err(SlurmError::Json { line: 1, .. })));
    }

    #[test]
    fn a_bad_gpu_list_pins_one_job_not_the_queue() -> Result<(), SlurmError> {
        let json = r#"{"meta":{"plugin":{"type":"openapi/v0.0.38"}},"jobs":[
          {"job_id":5,"job_state":"RUNNING","nodes":"n1","gres_detail":["gpu:2(IDX:N/A)"]},
          {"job_id":6,"job_state":"RUNNING","nodes":"n[1-","gres_detail":["gpu:1(IDX:0)"]},
          {"job_id":7,"job_state":"RUNNING","nodes":"n1","gres_detail":["gpu:1(IDX:0)","gpu:1(IDX:1)"]},
          {"job_id":8,"job_state":"RUNNING","nodes":"n1","gres_detail":["gpu:1(IDX:3)"]}]}"#;
        let jobs = parse(json.as_bytes())?;
        assert!(
            jobs[..3]
                .iter()
                .all(|j| j.problem.is_some() && j.gpus.is_empty())
        );
        assert_eq!(jobs[3].gpus.len(), 1);
        Ok(())
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn hostile_fields_never_panic(nodes in "[a-z0-9\\[\\],-]{0,20}", detail in "[a-z0-9:(),IDX/-]{0,30}", state in "[A-Z_]{0,12}") {
            let json = serde_json::json!({"meta":{"plugin":{"type":MODEL}},"jobs":[
                {"job_id":1,"job_state":state,"nodes":nodes,"gres_detail":[detail]}]});
            let jobs = parse(json.to_string().as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(jobs.len(), 1);
        }
    }
}
