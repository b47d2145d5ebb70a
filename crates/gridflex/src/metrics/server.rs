//! A small built-in `/metrics` endpoint (feature `metrics-server`).
//!
//! A std thread accepts connections and answers each on a short-lived thread of its own
//! (at most 8 at once; more are closed at once), so a slow client cannot hold up a
//! scrape: a scrape every few seconds needs no HTTP stack, and this one brings no
//! dependency. It reads one request (at most 8 KiB of head, 5 s to send it), answers
//! `GET /metrics` with the registry in the OpenMetrics format and anything else with 404
//! or 405, and closes the connection.
//! An integrator who already runs an HTTP server mounts the registry there instead.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::io::{Read, Write};
//! use std::sync::Arc;
//! use gridflex::metrics::{Metrics, server::MetricsServer};
//! use gridflex::prometheus_client::registry::Registry;
//!
//! let mut registry = Registry::default();
//! let _metrics = Metrics::register(&mut registry);
//! let server = MetricsServer::start("127.0.0.1:0".parse()?, Arc::new(registry))?;
//! let mut conn = std::net::TcpStream::connect(server.local_addr())?;
//! conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer)?;
//! assert!(answer.starts_with("HTTP/1.1 200 OK"));
//! assert!(answer.contains("application/openmetrics-text; version=1.0.0"));
//! assert!(answer.contains("gridflex_facility_power_watts"));
//! server.stop();
//! # Ok(()) }
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::registry::Registry;

use super::{OPENMETRICS_CONTENT_TYPE, encode};
use crate::GridflexError;

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections answered at once.
const MAX_CONNECTIONS: usize = 8;

/// A running `/metrics` endpoint; stops when [`MetricsServer::stop`] is called or it
/// is dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0: any free port; see [`MetricsServer::local_addr`]) and
    /// serves `registry` on a thread of its own.
    pub fn start(addr: SocketAddr, registry: Arc<Registry>) -> Result<Self, GridflexError> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            GridflexError::invalid(
                format!("metrics server {addr}"),
                format!("cannot bind: {e}"),
            )
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| GridflexError::invalid(format!("metrics server {addr}"), e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let open = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("gridflex-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else {
                        continue;
                    };
                    // Over the limit the connection is closed unanswered (dropped).
                    if open.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                        open.fetch_sub(1, Ordering::AcqRel);
                        continue;
                    }
                    // A client that misbehaves holds up its own connection only.
                    let (registry, done) = (registry.clone(), open.clone());
                    let spawned = std::thread::Builder::new()
                        .name("gridflex-metrics-conn".into())
                        .spawn(move || {
                            let _ = answer(conn, &registry);
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        open.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })
            .map_err(|e| GridflexError::invalid(format!("metrics server {addr}"), e.to_string()))?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the thread to end.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shut();
        }
    }
}

/// Reads one request head and answers it.
fn answer(mut conn: TcpStream, registry: &Registry) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return respond(
                &mut conn,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next());
    let path = path.map(|p| p.split(|b| *b == b'?').next().unwrap_or_default());
    match (method, path) {
        (b"GET", Some(b"/metrics")) => match encode(registry) {
            Ok(text) => respond(&mut conn, "200 OK", OPENMETRICS_CONTENT_TYPE, &text),
            Err(e) => respond(
                &mut conn,
                "500 Internal Server Error",
                "text/plain",
                &e.to_string(),
            ),
        },
        (b"GET", _) => respond(&mut conn, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n",
        ),
    }
}

fn respond(
    conn: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(request).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn serves_metrics_and_refuses_the_rest() {
        let mut registry = Registry::default();
        let m = super::super::Metrics::register(&mut registry);
        m.commands(3);
        let server =
            MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(registry)).unwrap();
        let a = server.local_addr();
        // A client that connects and sends nothing holds up nobody else.
        let _idle = TcpStream::connect(a).unwrap();
        let ok = get(a, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("gridflex_commands_total 3"), "{ok}");
        assert!(get(a, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(a, b"POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        let huge = vec![b'a'; MAX_HEAD];
        assert!(get(a, &huge).starts_with("HTTP/1.1 431"));
        server.stop();
        assert!(TcpStream::connect(a).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever a client sends, the endpoint answers or closes, and keeps serving.
        #[test]
        fn any_request_leaves_the_endpoint_serving(
            request in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10_000),
            end in proptest::prelude::any::<bool>(),
        ) {
            let mut registry = Registry::default();
            let _m = super::super::Metrics::register(&mut registry);
            let server =
                MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(registry)).unwrap();
            let a = server.local_addr();
            {
                let mut c = TcpStream::connect(a).unwrap();
                let _ = c.write_all(&request);
                if end {
                    let _ = c.write_all(b"\r\n\r\n");
                }
                let _ = c.shutdown(std::net::Shutdown::Write);
                let mut answer = Vec::new();
                let _ = c.read_to_end(&mut answer);
                if !answer.is_empty() {
                    proptest::prop_assert!(answer.starts_with(b"HTTP/1.1 "));
                }
            }
            let ok = get(a, b"GET /metrics HTTP/1.1\r\n\r\n");
            proptest::prop_assert!(ok.starts_with("HTTP/1.1 200 OK"));
            server.stop();
        }
    }
}
