//! The peer started by `.ci/peers/openadr.sh`, and a business-logic client of it made
//! of plain HTTP calls (what a utility's back office does: programs, events, VEN
//! targets, reading reports).
#![allow(dead_code, unreachable_pub)]

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use gridflex_openadr::{Credentials, Secret, VenClient, VtnEndpoint};
use serde_json::{Value, json};

/// Where the VTN is and the credentials the peer script seeded.
#[derive(Debug, Clone)]
pub struct Peer {
    pub url: String,
    pub admin: (String, String),
    pub bl: (String, String),
    pub vtn_bin: String,
    pub database_url: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set with GRIDFLEX_TEST_OPENADR"))
}

/// The peer, or `None` (with the skip message) when `GRIDFLEX_TEST_OPENADR` is unset.
pub fn peer(test: &str) -> Option<Peer> {
    if std::env::var_os("GRIDFLEX_TEST_OPENADR").is_none() {
        eprintln!(
            "skipping {test}: needs an OpenADR VTN; set GRIDFLEX_TEST_OPENADR (started by .ci/run via .ci/peers/openadr.sh)"
        );
        return None;
    }
    Some(Peer {
        url: var("GRIDFLEX_OPENADR_URL"),
        admin: (
            var("GRIDFLEX_OPENADR_ADMIN_ID"),
            var("GRIDFLEX_OPENADR_ADMIN_SECRET"),
        ),
        bl: (
            var("GRIDFLEX_OPENADR_BL_ID"),
            var("GRIDFLEX_OPENADR_BL_SECRET"),
        ),
        vtn_bin: var("GRIDFLEX_OPENADR_VTN_BIN"),
        database_url: var("GRIDFLEX_OPENADR_DATABASE_URL"),
    })
}

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis() % 1_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A blocking HTTP client with a bearer token (plain calls, as a back office would).
pub struct Http {
    agent: ureq::Agent,
    pub url: String,
    token: String,
}

impl Http {
    pub fn login(url: &str, client_id: &str, secret: &str) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .proxy(None)
            .build()
            .into();
        let mut r = agent
            .post(&format!("{url}/auth/token"))
            .send_form([
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
            ])
            .expect("token request");
        assert_eq!(r.status().as_u16(), 200, "login of {client_id}");
        let v: Value = serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap();
        Http {
            agent,
            url: url.to_owned(),
            token: v["access_token"].as_str().unwrap().to_owned(),
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let auth = format!("Bearer {}", self.token);
        let r = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            "DELETE" => self
                .agent
                .delete(&url)
                .header("Authorization", &auth)
                .call(),
            "POST" => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(body.unwrap()).unwrap().as_slice()),
            "PUT" => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(body.unwrap()).unwrap().as_slice()),
            m => panic!("method {m}"),
        };
        let mut r = r.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = r.status().as_u16();
        let bytes = r.body_mut().read_to_vec().unwrap();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    pub fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }
}

pub const VEN_SCOPES: [&str; 5] = [
    "read_targets",
    "read_ven_objects",
    "write_reports_ven",
    "write_subscriptions_ven",
    "write_vens_ven",
];

/// Creates a VTN user with `scopes` (as the admin); returns its client id and secret.
pub fn create_user(peer: &Peer, scopes: &[&str]) -> (String, String) {
    let admin = Http::login(&peer.url, &peer.admin.0, &peer.admin.1);
    let reference = unique("user");
    let user = admin.ok(
        "POST",
        "/users",
        Some(&json!({"reference": reference, "description": "gridflex test", "scope": scopes})),
    );
    let id = user["id"].as_str().unwrap();
    let secret = format!("{reference}-secret");
    admin.ok(
        "POST",
        &format!("/users/{id}"),
        Some(&json!({"client_id": reference, "client_secret": secret})),
    );
    (reference, secret)
}

/// A VEN user of its own and a client for it.
pub fn ven_client(peer: &Peer) -> (VenClient, String) {
    let (id, secret) = create_user(peer, &VEN_SCOPES);
    let client = VenClient::new(VtnEndpoint::new(
        peer.url.clone(),
        Credentials::new(id.clone(), Secret::new(secret)),
    ))
    .unwrap();
    (client, id)
}

/// The business-logic side.
pub struct Bl(pub Http);

impl Bl {
    pub fn new(peer: &Peer) -> Bl {
        Bl(Http::login(&peer.url, &peer.bl.0, &peer.bl.1))
    }

    pub fn program(&self, name: &str) -> String {
        let p = self.0.ok(
            "POST",
            "/programs",
            Some(&json!({"objectType": "PROGRAM", "programName": name})),
        );
        p["id"].as_str().unwrap().to_owned()
    }

    /// Sets a VEN's targets (its object is found by name).
    pub fn target_ven(&self, ven_name: &str, targets: &[&str]) {
        let vens = self.0.ok("GET", &format!("/vens?venName={ven_name}"), None);
        let ven = &vens.as_array().unwrap()[0];
        let id = ven["id"].as_str().unwrap();
        self.0.ok(
            "PUT",
            &format!("/vens/{id}"),
            Some(
                &json!({"objectType": "BL_VEN_REQUEST", "clientID": ven["clientID"],
                         "venName": ven_name, "targets": targets}),
            ),
        );
    }

    pub fn event(&self, body: &Value) -> Value {
        self.0.ok("POST", "/events", Some(body))
    }

    pub fn update_event(&self, id: &str, body: &Value) -> Value {
        self.0.ok("PUT", &format!("/events/{id}"), Some(body))
    }

    pub fn delete_event(&self, id: &str) {
        self.0.ok("DELETE", &format!("/events/{id}"), None);
    }

    pub fn reports(&self, event_id: &str) -> Vec<Value> {
        let v = self
            .0
            .ok("GET", &format!("/reports?eventID={event_id}"), None);
        v.as_array().unwrap().clone()
    }
}

/// An event body with one payload per interval, the intervals back to back from `start`.
pub fn event_body(
    program_id: &str,
    name: &str,
    start: chrono::DateTime<chrono::Utc>,
    interval_s: i64,
    payload_type: &str,
    values: &[Value],
) -> Value {
    let intervals: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"id": i, "payloads": [{"type": payload_type, "values": [v]}]}))
        .collect();
    json!({
        "objectType": "EVENT",
        "programID": program_id,
        "eventName": name,
        "intervalPeriod": {"start": start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                           "duration": format!("PT{interval_s}S")},
        "intervals": intervals,
    })
}

/// A VTN of this test's own on the shared database, so it can be stopped and started.
pub struct OwnVtn {
    child: Child,
    pub port: u16,
    dir: std::path::PathBuf,
}

impl OwnVtn {
    pub fn start(peer: &Peer, port: Option<u16>) -> OwnVtn {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let dir = std::env::temp_dir().join(unique("vtn"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("vtn.log")).unwrap();
        // A fresh secret on each start (base64 of at least 32 bytes: 64 hex digits are
        // 48 bytes): every token issued before is invalid after.
        let secret: String = format!("{:032x}{:032x}", rand_u128(), rand_u128());
        let mut child = Command::new(&peer.vtn_bin)
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .env("PORT", port.to_string())
            .env("OAUTH_TYPE", "INTERNAL")
            .env("DATABASE_URL", &peer.database_url)
            .env("OAUTH_BASE64_SECRET", secret)
            .env(
                "OAUTH_TOKEN_URL",
                format!("http://127.0.0.1:{port}/auth/token"),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into();
        for _ in 0..200 {
            if agent
                .get(&format!("http://127.0.0.1:{port}/health"))
                .call()
                .is_ok_and(|r| r.status() == 200)
            {
                return OwnVtn { child, port, dir };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("VTN on port {port} did not become healthy");
    }

    pub fn stop(self) -> u16 {
        self.port
    }
}

impl Drop for OwnVtn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u128);
    (u128::from(h.finish()) << 64) | u128::from(std::process::id())
}
