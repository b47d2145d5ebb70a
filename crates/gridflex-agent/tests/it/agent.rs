//! One agent on loopback: batches, limits, tokens, leases, restarts and partitions,
//! checked from the simulated GPUs' own state.

use std::time::Duration;

use crate::support::*;
use gridflex_agent::protocol::{
    Greeting, Hello, LapseReason, Op, OpResult, PROTOCOL_VERSION, Refusal, Response, read_frame,
    write_frame,
};
use gridflex_agent::{AgentClient, AgentError, ClientOptions};
use gridflex_hal::{PowerDevice, PowerSampleStream, WorkloadControl, WorkloadState};

fn ops_for(node: &SimNode, limit: f64) -> Vec<Op> {
    let mut ops: Vec<Op> = node
        .fleet
        .iter()
        .map(|g| Op::SetCap {
            device: g.id().clone(),
            limit: w(limit),
        })
        .collect();
    ops.push(Op::Pause {
        job: node.job.job().clone(),
    });
    ops
}

fn release_ops(node: &SimNode) -> Vec<Op> {
    let mut ops: Vec<Op> = node
        .fleet
        .iter()
        .map(|g| Op::RestoreCap {
            device: g.id().clone(),
        })
        .collect();
    ops.push(Op::Resume {
        job: node.job.job().clone(),
    });
    ops
}

async fn connect(addr: std::net::SocketAddr, lease_ms: u64) -> Result<AgentClient, AgentError> {
    AgentClient::connect(
        addr,
        TOKEN,
        ClientOptions::with_lease(Duration::from_millis(lease_ms)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_reaches_every_gpu_and_a_release_gives_the_old_limits_back() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::new("n0", 8, dir.path());
    // An operator's own setting, which gridflex must give back (not the factory one).
    node.fleet
        .gpu(3)
        .unwrap()
        .set_power_limit_now(w(650.0))
        .unwrap();
    let agent = node.serve(10_000).await;
    let client = connect(agent.local_addr(), 10_000).await.unwrap();
    assert_eq!(client.inventory().devices.len(), 8);
    assert_eq!(client.inventory().jobs.len(), 1);
    let results = client.apply(ops_for(&node, 400.0)).await.unwrap();
    assert_eq!(results.len(), 9);
    assert!(
        results
            .iter()
            .all(|r| !matches!(r, OpResult::Failed { .. })),
        "{results:?}"
    );
    assert!(node.curtailed_to(w(400.0)));
    let held = agent.holdings().await;
    assert_eq!(held.devices.len(), 8);
    assert_eq!(held.devices[node.fleet.gpu(3).unwrap().id()], w(650.0));
    assert!(client.lease().holding);
    // The state file names everything held.
    let on_disk = gridflex_agent::StateFile::new(node.state_file.clone())
        .load()
        .unwrap();
    assert_eq!(
        (on_disk.devices, on_disk.paused),
        (held.devices, held.paused)
    );
    client.apply(release_ops(&node)).await.unwrap();
    let g3 = node.fleet.gpu(3).unwrap();
    assert_eq!(g3.requested_limit(), w(650.0));
    assert!(
        node.fleet
            .iter()
            .filter(|g| g.id() != g3.id())
            .all(|g| g.requested_limit() == w(700.0))
    );
    assert_eq!(node.job.status_now(), WorkloadState::Running);
    assert!(agent.holdings().await.is_empty());
    assert!(!client.lease().holding);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_handles_batch_a_stage_and_keep_the_hal_promises() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::new("n0", 8, dir.path());
    let agent = node.serve(10_000).await;
    let client = connect(agent.local_addr(), 10_000).await.unwrap();
    let devices = client.devices();
    let job = &client.jobs()[0];
    // Issued together, as the orchestrator's fan-out does.
    let caps = futures_util::future::join_all(devices.iter().map(|d| d.set_power_limit(w(300.0))));
    let (caps, paused) = futures_util::future::join(caps, job.pause()).await;
    assert!(
        caps.iter()
            .all(|c| matches!(c, Ok(ch) if ch.enforced == w(300.0))),
        "{caps:?}"
    );
    paused.unwrap();
    assert!(node.curtailed_to(w(300.0)));
    assert_eq!(job.status().await.unwrap(), WorkloadState::Paused);
    let t = devices[0].telemetry().await.unwrap();
    assert_eq!(t.requested_limit, Some(w(300.0)));
    // The 20 ms sample stream, through the agent.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sampled = client.sampled_devices();
    assert_eq!(sampled.len(), 8);
    let samples = sampled[0].power_samples_since(None).await.unwrap();
    assert!(!samples.is_empty());
    assert!(samples.windows(2).all(|p| p[0].at < p[1].at));
    let last = samples[samples.len() - 1].at;
    let newer = sampled[0].power_samples_since(Some(last)).await.unwrap();
    assert!(newer.iter().all(|s| s.at > last));
    // Out of range never leaves the orchestrator's process, and is refused by the
    // agent too when sent raw.
    let e = devices[0].set_power_limit(w(900.0)).await.unwrap_err();
    assert_eq!(e.kind(), gridflex_hal::ErrorKind::OutOfRange);
    for d in &devices {
        d.restore_power_limit().await.unwrap();
    }
    job.resume().await.unwrap();
    assert!(node.running_at(w(700.0)));
}

/// The orchestrator's way: every command of a stage issued before any is awaited.
/// On one thread they leave as exactly one batch per node, whatever the GPU count.
#[tokio::test]
async fn a_stage_issued_at_once_is_one_batch_per_node() {
    let dir = tempfile::tempdir().unwrap();
    for gpus in [1, 8, 32] {
        let node = SimNode::new(&format!("b{gpus}"), gpus, dir.path());
        let agent = node.serve(10_000).await;
        let client = connect(agent.local_addr(), 10_000).await.unwrap();
        let devices = client.devices();
        let job = &client.jobs()[0];
        let before = agent.batches_served();
        let caps =
            futures_util::future::join_all(devices.iter().map(|d| d.set_power_limit(w(500.0))));
        let (caps, paused) = futures_util::future::join(caps, job.pause()).await;
        assert!(caps.iter().all(|c| c.is_ok()) && paused.is_ok());
        assert_eq!(agent.batches_served() - before, 1, "{gpus} GPUs");
        assert!(node.curtailed_to(w(500.0)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_outside_the_limits_or_the_node_are_refused_whole() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::new("n0", 2, dir.path());
    let agent = node.serve(10_000).await;
    let client = connect(agent.local_addr(), 10_000).await.unwrap();
    let g0 = node.fleet.gpu(0).unwrap().id().clone();
    let g1 = node.fleet.gpu(1).unwrap().id().clone();
    let err = client
        .apply(vec![
            Op::SetCap {
                device: g0.clone(),
                limit: w(300.0),
            },
            Op::SetCap {
                device: g1.clone(),
                limit: w(150.0),
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::Refused { reason: Refusal::LimitOutOfRange { device, .. }, .. } if *device == g1),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("150 W") && text.contains("outside"), "{text}");
    let err = client
        .apply(vec![
            Op::SetCap {
                device: g0.clone(),
                limit: w(300.0),
            },
            Op::Pause {
                job: gridflex_core::JobId::new("elsewhere").unwrap(),
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(refusal(&err), Some(Refusal::UnknownJob { .. })),
        "{err:?}"
    );
    let err = client
        .apply(vec![Op::RestoreCap {
            device: gridflex_core::DeviceId::new("GPU-nope").unwrap(),
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(refusal(&err), Some(Refusal::UnknownDevice { .. })),
        "{err:?}"
    );
    // Nothing was touched by the refused batches.
    assert!(node.running_at(w(700.0)));
    assert!(agent.holdings().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_other_protocol_versions_are_refused() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::new("n0", 1, dir.path());
    let agent = node.serve(10_000).await;
    let err = AgentClient::connect(
        agent.local_addr(),
        b"ffffffffffffffffffffffffffffffff".to_vec(),
        ClientOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(refusal(&err), Some(Refusal::BadToken)), "{err:?}");
    // A raw client: a replayed or forged proof, and a newer protocol.
    for (protocol, proof, want) in [
        (PROTOCOL_VERSION, "00".repeat(32), "bad_token"),
        (PROTOCOL_VERSION, "not hex".to_owned(), "bad_token"),
        (PROTOCOL_VERSION + 1, String::new(), "version"),
    ] {
        let mut s = tokio::net::TcpStream::connect(agent.local_addr())
            .await
            .unwrap();
        let _: Greeting = read_frame(&mut s).await.unwrap().unwrap();
        write_frame(&mut s, &Hello { protocol, proof })
            .await
            .unwrap();
        let answer: Response = read_frame(&mut s).await.unwrap().unwrap();
        let text = serde_json::to_string(&answer).unwrap();
        assert!(text.contains(want), "{text}");
        // The agent closes after a refusal.
        let next: Option<Response> = read_frame(&mut s).await.unwrap_or(None);
        assert!(next.is_none());
    }
    // A peer that knows the token but sends a request without the frame MAC (as an
    // attacker injecting into an open connection would) is dropped; nothing is done.
    let mut s = tokio::net::TcpStream::connect(agent.local_addr())
        .await
        .unwrap();
    let greeting: Greeting = read_frame(&mut s).await.unwrap().unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, TOKEN);
    let tag = ring::hmac::sign(
        &key,
        format!("gridflex-agent/1 {}", greeting.nonce).as_bytes(),
    );
    let proof: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    write_frame(
        &mut s,
        &Hello {
            protocol: PROTOCOL_VERSION,
            proof,
        },
    )
    .await
    .unwrap();
    // The welcome comes authenticated: a 32-byte tag and sequence number 0, then JSON.
    let mut len = [0u8; 4];
    tokio::io::AsyncReadExt::read_exact(&mut s, &mut len)
        .await
        .unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    tokio::io::AsyncReadExt::read_exact(&mut s, &mut body)
        .await
        .unwrap();
    assert!(serde_json::from_slice::<Response>(&body).is_err());
    assert_eq!(body[32..40], 0u64.to_be_bytes());
    let welcome: Response = serde_json::from_slice(&body[40..]).unwrap();
    assert!(matches!(welcome, Response::Welcome { .. }), "{welcome:?}");
    let g0 = node.fleet.gpu(0).unwrap().id().clone();
    let forged = gridflex_agent::protocol::Request::Batch {
        lease_ms: Some(1000),
        ops: vec![Op::SetCap {
            device: g0,
            limit: w(200.0),
        }],
    };
    write_frame(&mut s, &forged).await.unwrap();
    let next: Option<Response> = read_frame(&mut s).await.unwrap_or(None);
    assert!(next.is_none(), "{next:?}");
    assert!(node.running_at(w(700.0)));
    // An unauthenticated peer announcing a large frame is dropped, not buffered.
    let mut s = tokio::net::TcpStream::connect(agent.local_addr())
        .await
        .unwrap();
    let _: Greeting = read_frame(&mut s).await.unwrap().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut s, &(1u32 << 20).to_be_bytes())
        .await
        .unwrap();
    let next: Option<Response> = read_frame(&mut s).await.unwrap_or(None);
    assert!(next.is_none());
    assert!(node.running_at(w(700.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_hold_the_lease_and_a_lapse_restores_and_is_reported() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::new("n0", 4, dir.path());
    let lease = 900; // renewals every 300 ms, each with 300 ms to answer: room on a busy CI machine
    let agent = node.serve(lease).await;
    let client = connect(agent.local_addr(), lease).await.unwrap();
    client.apply(ops_for(&node, 350.0)).await.unwrap();
    // Renewed every 100 ms: still held after several leases.
    tokio::time::sleep(Duration::from_millis(4 * lease)).await;
    assert!(node.curtailed_to(w(350.0)), "renewals keep the curtailment");
    // The orchestrator goes away.
    drop(client);
    assert!(
        eventually(Duration::from_millis(lease) + SLACK, || node
            .running_at(w(700.0)))
        .await,
        "restored within the lease"
    );
    assert!(agent.holdings().await.is_empty());
    // Reported to the next client that connects.
    let client = connect(agent.local_addr(), lease).await.unwrap();
    let lapses = client.take_lapses();
    assert_eq!(lapses.len(), 1, "{lapses:?}");
    assert_eq!(lapses[0].reason, LapseReason::LeaseExpired);
    assert_eq!(lapses[0].restored.len(), 4);
    assert_eq!(lapses[0].resumed.len(), 1);
    assert!(lapses[0].failures.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_restores_what_its_predecessor_left() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::new("n0", 4, dir.path());
    let agent = node.serve(60_000).await;
    let client = connect(agent.local_addr(), 60_000).await.unwrap();
    client.apply(ops_for(&node, 250.0)).await.unwrap();
    agent.kill();
    drop(client);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        node.curtailed_to(w(250.0)),
        "a killed agent restores nothing by itself"
    );
    // The next agent reads the state file and restores before serving.
    let agent = node.serve(60_000).await;
    assert!(node.running_at(w(700.0)));
    assert!(agent.holdings().await.is_empty());
    let client = connect(agent.local_addr(), 60_000).await.unwrap();
    let lapses = client.take_lapses();
    assert_eq!(lapses.len(), 1);
    assert_eq!(lapses[0].reason, LapseReason::Restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_done_when_the_state_cannot_be_written_first() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = SimNode::new("n0", 2, dir.path());
    let state_dir = dir.path().join("state");
    node.state_file = state_dir.join("state.json");
    let agent = node.serve(10_000).await;
    // The state directory becomes a regular file: every write fails from now on.
    std::fs::write(&state_dir, b"").unwrap();
    let client = connect(agent.local_addr(), 10_000).await.unwrap();
    let err = client.apply(ops_for(&node, 300.0)).await.unwrap_err();
    assert!(
        matches!(refusal(&err), Some(Refusal::StateNotWritten { .. })),
        "{err:?}"
    );
    assert!(node.running_at(w(700.0)));
    // Reads need no state.
    let r = client
        .apply(vec![Op::Telemetry {
            device: node.fleet.gpu(0).unwrap().id().clone(),
        }])
        .await
        .unwrap();
    assert!(matches!(r[0], OpResult::Telemetry { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_agent_restores_on_its_own_and_reports_when_reached_again() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::new("n0", 4, dir.path());
    let lease = 900;
    let agent = node.serve(lease).await;
    let relay = Relay::start(agent.local_addr()).await;
    let client = connect(relay.addr, lease).await.unwrap();
    let (restores, mut forwarded) = tokio::sync::mpsc::channel(8);
    client.forward_lapses(restores);
    client.apply(ops_for(&node, 300.0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2 * lease)).await;
    assert!(node.curtailed_to(w(300.0)));
    assert!(
        forwarded.try_recv().is_err(),
        "renewed leases give no presumption"
    );
    relay.cut();
    assert!(
        eventually(Duration::from_millis(lease) + SLACK, || node
            .running_at(w(700.0)))
        .await,
        "restored within the lease while cut off"
    );
    // While the node cannot report it, the client presumes the lapse once the lease
    // may have run out, naming what its commands hold there.
    let presumed = tokio::time::timeout(SLACK, forwarded.recv())
        .await
        .expect("a presumed lapse is forwarded")
        .unwrap();
    assert!(presumed.presumed, "{presumed:?}");
    let mut devices: Vec<_> = node.fleet.iter().map(|g| g.id().clone()).collect();
    devices.sort();
    assert_eq!(presumed.devices, devices);
    assert_eq!(presumed.jobs, vec![node.job.job().clone()]);
    assert!(
        presumed.reason.contains("lease could run out"),
        "{presumed:?}"
    );
    // The client keeps trying to renew (it still believes the node holds); it fails
    // while the partition lasts.
    assert!(client.renew().await.is_err());
    // The network heals: the next answer carries the lapse report. The client keeps it
    // but does not forward it again (the presumption covered it).
    relay.heal();
    assert!(
        renewed_within(&client, Duration::from_millis(lease) + SLACK).await,
        "reconnected in the background once healed"
    );
    let lapses = client.take_lapses();
    assert_eq!(lapses.len(), 1);
    assert_eq!(lapses[0].reason, LapseReason::LeaseExpired);
    assert!(forwarded.try_recv().is_err(), "forwarded once");
    // Nothing is held any more: no second presumption.
    tokio::time::sleep(Duration::from_millis(2 * lease)).await;
    assert!(forwarded.try_recv().is_err());
}

/// Renews until a renewal succeeds, for up to `within`.
async fn renewed_within(client: &AgentClient, within: Duration) -> bool {
    let end = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < end {
        if client.renew().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_answering_fails_requests_at_once_until_it_answers_again() {
    let _serial = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let node = SimNode::new("n0", 2, dir.path());
    let lease = 900; // requests time out after 300 ms, reconnection every 100 ms
    let agent = node.serve(lease).await;
    let relay = Relay::start(agent.local_addr()).await;
    // No background renewal: this test's own requests are the only ones (a renewal of
    // the client's in flight at the blackhole would take the timeout first).
    let options = ClientOptions {
        renew_every: Duration::from_secs(3600),
        ..ClientOptions::with_lease(Duration::from_millis(lease))
    };
    let client = AgentClient::connect(relay.addr, TOKEN, options)
        .await
        .unwrap();
    client.apply(ops_for(&node, 300.0)).await.unwrap();
    // Packets are lost from here: the first request waits out its timeout...
    relay.blackhole();
    let err = client.renew().await.unwrap_err();
    assert!(matches!(err, AgentError::Timeout { .. }), "{err:?}");
    // ...and the next ones fail at once (not after another timeout: no caller, the
    // orchestrator's sweeps, stages and retries included, waits on a node known to be
    // cut off), while a reconnection is tried in the background.
    for _ in 0..5 {
        let err = client.renew().await.unwrap_err();
        assert!(matches!(err, AgentError::Unreachable { .. }), "{err:?}");
        let read = client
            .apply(vec![Op::Telemetry {
                device: node.fleet.iter().next().unwrap().id().clone(),
            }])
            .await
            .unwrap_err();
        assert!(matches!(read, AgentError::Unreachable { .. }), "{read:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The node answers again: a background reconnection finds it.
    relay.heal();
    assert!(
        renewed_within(&client, Duration::from_millis(lease) + SLACK).await,
        "reconnected in the background once healed"
    );
    let r = client
        .apply(vec![Op::Telemetry {
            device: node.fleet.iter().next().unwrap().id().clone(),
        }])
        .await
        .unwrap();
    assert!(matches!(r[0], OpResult::Telemetry { .. }));
}

#[tokio::test]
async fn a_peer_that_cannot_prove_the_token_is_not_taken_for_an_agent() {
    // A fake agent: it greets, takes any proof and welcomes without authentication
    // (as protocol 1 did).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let greeting = Greeting {
            protocol: PROTOCOL_VERSION,
            node: "impostor".into(),
            nonce: "ab".repeat(32),
        };
        write_frame(&mut s, &greeting).await.unwrap();
        let _: Hello = read_frame(&mut s).await.unwrap().unwrap();
        let welcome: Response = serde_json::from_value(serde_json::json!({
            "response": "welcome",
            "welcome": { "node": "impostor" }
        }))
        .unwrap();
        write_frame(&mut s, &welcome).await.unwrap();
        // Hold the connection until the client gives up.
        let _: Option<Hello> = read_frame(&mut s).await.unwrap_or(None);
    });
    let err = AgentClient::connect(addr, TOKEN.to_vec(), ClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AgentError::Protocol { detail } if detail.contains("without proving")),
        "{err:?}"
    );
    fake.abort();
}

/// Why the agent refused, when the error is a refusal.
fn refusal(err: &AgentError) -> Option<&Refusal> {
    match err {
        AgentError::Refused { reason, .. } => Some(reason),
        _ => None,
    }
}
