//! `gridflex-agent --config FILE [--check]`: runs the node agent, or checks its config
//! and devices and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use gridflex_agent::{Agent, AgentConfig, AgentOptions, Node};

const USAGE: &str = "usage: gridflex-agent --config FILE [--check]

  --config FILE  the node's config (TOML; see docs/agent.md)
  --check        validate the config, open the devices and jobs, print the inventory, exit
  RUST_LOG       log filter (default info), e.g. RUST_LOG=gridflex_agent=debug";

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut config = None;
    let mut check = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--check" => check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(config) = config else {
        eprintln!("--config FILE is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, check)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(file: PathBuf, check: bool) -> Result<(), gridflex_agent::AgentError> {
    let cfg = AgentConfig::load(&file)?;
    if check {
        let inventory = gridflex_agent::check(&cfg)?;
        println!(
            "config {} is valid: node {}, {} device(s), {} job(s), lease {} ms (max {} ms)",
            file.display(),
            inventory.node,
            inventory.devices.len(),
            inventory.jobs.len(),
            inventory.lease_default_ms,
            inventory.lease_max_ms
        );
        for d in &inventory.devices {
            println!(
                "  {} {} limits {} ..= {}, at discovery {}",
                d.id,
                d.model,
                d.limits.min(),
                d.limits.max(),
                d.limit_at_discovery
            );
        }
        for j in &inventory.jobs {
            println!("  job {} on {} device(s)", j.job, j.devices.len());
        }
        return Ok(());
    }
    let options = AgentOptions::from_config(&cfg)?;
    let node = Node::from_config(&cfg)?;
    let agent = Agent::start(node, options).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| gridflex_agent::AgentError::Io {
            operation: format!("bind {}", cfg.listen),
            detail: e.to_string(),
        })?;
    tokio::select! {
        r = agent.serve(listener) => r,
        () = stopped() => {
            // A stopped agent keeps no lease: it gives the node back before exiting
            // (what fails stays in the state file for the next start).
            let left = agent.restore_now().await;
            if left.is_empty() {
                tracing::info!("stopped: node restored");
                Ok(())
            } else {
                Err(gridflex_agent::AgentError::State {
                    file: cfg.state_file(),
                    detail: format!(
                        "stopped with {} device(s) and {} job(s) not restored",
                        left.devices.len(),
                        left.paused.len()
                    ),
                })
            }
        }
    }
}

/// Completes on SIGTERM (systemd's stop) or Ctrl-C.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
