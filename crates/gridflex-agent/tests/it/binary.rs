//! The `gridflex-agent` binary: `--check` on good and bad configs, and a run that is
//! driven over the network and stopped with SIGTERM, which restores the node before
//! exiting (the state file is left empty).

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use gridflex_agent::{AgentClient, ClientOptions, StateFile};
use gridflex_core::Power;
use gridflex_hal::{PowerDevice, WorkloadControl};

const BIN: &str = env!("CARGO_BIN_EXE_gridflex-agent");
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn config(dir: &Path, listen: &str, count: usize) -> std::path::PathBuf {
    let file = dir.join("agent.toml");
    let text = format!(
        r#"node = "bin-test"
listen = "{listen}"
state_dir = "{}"
[auth]
token = "{TOKEN}"
[lease]
default_ms = 60000
max_ms = 60000
[devices]
backend = "sim"
count = {count}
[[jobs]]
id = "train"
gpus = [0, 1]
"#,
        dir.join("state").display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn check_accepts_a_good_config_and_names_the_field_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), "127.0.0.1:0", 4);
    let out = Command::new(BIN)
        .args(["--config"])
        .arg(&good)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 device(s), 1 job(s)"), "{stdout}");
    let bad = config(dir.path(), "127.0.0.1:0", 1);
    let out = Command::new(BIN)
        .args(["--config"])
        .arg(&bad)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jobs[0].gpus"), "{stderr}");
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_agent_serves_and_restores_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A free port (bound, read, released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let file = config(dir.path(), &addr.to_string(), 2);
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for it to serve.
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let serving = lines
        .by_ref()
        .take(50)
        .any(|l| l.is_ok_and(|l| l.contains("agent serving")));
    assert!(serving, "the agent did not start");
    let logs = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let client = AgentClient::connect(
        addr,
        TOKEN,
        ClientOptions::with_lease(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let gpu = &client.devices()[0];
    let change = gpu
        .set_power_limit(Power::watts(420.0).unwrap())
        .await
        .unwrap();
    assert_eq!(change.enforced, Power::watts(420.0).unwrap());
    client.jobs()[0].pause().await.unwrap();
    let state = StateFile::new(dir.path().join("state").join("state.json"));
    let held = state.load().unwrap();
    assert_eq!(held.devices.len(), 1);
    assert_eq!(held.paused.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(state.load().unwrap().is_empty(), "restored before exiting");
    let logs = logs.join().unwrap();
    assert!(
        logs.iter().any(|l| l.contains("stopped: node restored")),
        "{logs:?}"
    );
}
