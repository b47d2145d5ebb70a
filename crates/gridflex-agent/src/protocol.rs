//! The wire protocol, version [`PROTOCOL_VERSION`]: length-prefixed JSON frames over
//! one TCP connection, one request in flight at a time.
//!
//! A frame is a 4-byte big-endian length then that many bytes of JSON; a frame above
//! [`MAX_FRAME`] is refused before anything is allocated for it.
//!
//! A connection opens with a handshake: the agent sends a [`Greeting`] with a fresh
//! random nonce; the client answers a [`Hello`] whose proof is HMAC-SHA256 of the nonce
//! under the agent's token (the token itself never crosses the network); the agent
//! answers a [`Response::Welcome`] as the first authenticated frame (below), which
//! proves to the client that the agent holds the token too, or a plain
//! [`Response::Refused`] and closes. Then each [`Request`] gets exactly one
//! [`Response`].
//!
//! Every frame after the handshake is **authenticated**: its body is a 32-byte
//! HMAC-SHA256 tag, an 8-byte sequence number, then the JSON. The key is derived from
//! the token and the connection's nonce, the tag covers the direction, the sequence
//! number and the JSON, and each side expects the next sequence number: a frame that
//! was altered, replayed, reordered or reflected is refused and the connection closed.
//! Frames are not encrypted (commands and telemetry are not secret; their integrity
//! is what matters).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gridflex_core::{DeviceId, JobId, Power};
use gridflex_hal::{DeviceInfo, ErrorKind, LimitChange, PowerSample, Telemetry, WorkloadState};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::AgentError;

/// The protocol version this crate speaks; a peer speaking another is refused.
pub const PROTOCOL_VERSION: u32 = 2;

/// The largest frame either side accepts, in bytes (a batch for hundreds of GPUs is a
/// few tens of kilobytes).
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// What the agent sends first on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Greeting {
    /// The agent's protocol version.
    pub protocol: u32,
    /// The node's name from its config.
    pub node: String,
    /// 32 random bytes, hex: the challenge the client signs.
    pub nonce: String,
}

/// The client's answer to a [`Greeting`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's protocol version.
    pub protocol: u32,
    /// HMAC-SHA256 of the greeting's nonce under the agent's token, hex.
    pub proof: String,
}

/// The agent's acceptance of a [`Hello`]: the first authenticated frame of the
/// connection (protocol 2; protocol 1 sent it unauthenticated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The node's name.
    pub node: String,
}

/// One command on one device or job; a [`Request::Batch`] carries many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Op {
    /// Set a device's power limit (a curtailment: needs a lease).
    SetCap {
        /// The device.
        device: DeviceId,
        /// The limit; refused unless within the device's limits.
        limit: Power,
    },
    /// Give a device back the limit it had before gridflex first touched it (a device
    /// gridflex does not hold is left alone; the answer is what it holds).
    RestoreCap {
        /// The device.
        device: DeviceId,
    },
    /// Pause a job (a curtailment: needs a lease).
    Pause {
        /// The job.
        job: JobId,
    },
    /// Resume a job.
    Resume {
        /// The job.
        job: JobId,
    },
    /// Read a job's state.
    JobStatus {
        /// The job.
        job: JobId,
    },
    /// Read a device's telemetry.
    Telemetry {
        /// The device.
        device: DeviceId,
    },
    /// Read a device's high-rate power samples taken strictly after `since` (all
    /// buffered when `None`); only for devices the inventory lists as sampled.
    Samples {
        /// The device.
        device: DeviceId,
        /// The last sample time already seen.
        since: Option<DateTime<Utc>>,
    },
}

impl Op {
    /// True for the commands that curtail (and so must carry a lease).
    pub fn curtails(&self) -> bool {
        matches!(self, Self::SetCap { .. } | Self::Pause { .. })
    }
}

/// A failure on the far side, with its portable kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteFailure {
    /// The portable kind (as the hal classifies it).
    pub kind: ErrorKind,
    /// The agent's message.
    pub message: String,
}

/// The outcome of one [`Op`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OpResult {
    /// A limit change ([`Op::SetCap`], [`Op::RestoreCap`]).
    Limit {
        /// What the device holds now.
        change: LimitChange,
    },
    /// A pause or resume that took effect.
    Done,
    /// A job's state.
    State {
        /// The state.
        state: WorkloadState,
    },
    /// A device's telemetry.
    Telemetry {
        /// The reading.
        reading: Telemetry,
    },
    /// A device's power samples, oldest first.
    Samples {
        /// The samples.
        samples: Vec<PowerSample>,
    },
    /// The op failed; nothing else in the batch is affected.
    Failed {
        /// Why.
        failure: RemoteFailure,
    },
}

/// A job the agent controls and the devices it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job.
    pub job: JobId,
    /// Its devices on this node (empty when the agent does not know them, e.g. a
    /// process job).
    pub devices: Vec<DeviceId>,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// The node's name.
    pub node: String,
    /// Every device, with its limits (what the agent enforces).
    pub devices: Vec<DeviceInfo>,
    /// The devices whose high-rate power samples the agent serves ([`Op::Samples`]).
    #[serde(default)]
    pub sampled: Vec<DeviceId>,
    /// Every job the agent can pause.
    pub jobs: Vec<JobInfo>,
    /// The lease the agent grants when a batch names none, milliseconds.
    pub lease_default_ms: u64,
    /// The longest lease the agent grants, milliseconds.
    pub lease_max_ms: u64,
}

/// A request after the handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// The node's devices, jobs and lease bounds.
    Inventory,
    /// Many ops applied concurrently on the node. A batch with a curtailing op needs a
    /// lease (the agent's default when `lease_ms` is `None`); every lease in force is
    /// extended to now + the lease. The batch is refused whole when an op names an
    /// unknown device or job or a limit outside the device's range.
    Batch {
        /// The lease, milliseconds (capped at the agent's maximum).
        lease_ms: Option<u64>,
        /// The ops, answered in order.
        ops: Vec<Op>,
    },
    /// Extends the lease to now + `lease_ms` when the node holds a curtailment.
    Renew {
        /// The lease, milliseconds (capped at the agent's maximum).
        lease_ms: u64,
    },
}

/// The agent's answer to a [`Hello`] or a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// The handshake succeeded.
    Welcome {
        /// The node and its reports.
        welcome: Welcome,
    },
    /// Answer to [`Request::Inventory`].
    Inventory {
        /// The node.
        inventory: Inventory,
        /// Restores the agent made on its own since a client last heard.
        lapses: Vec<LapseReport>,
    },
    /// Answer to [`Request::Batch`] and [`Request::Renew`].
    Applied {
        /// One result per op, in order (empty for a renewal).
        results: Vec<OpResult>,
        /// The node's lease after the request.
        lease: LeaseStatus,
        /// Restores the agent made on its own since a client last heard.
        lapses: Vec<LapseReport>,
    },
    /// The request (or the handshake) was refused; nothing was changed.
    Refused {
        /// Why.
        reason: Refusal,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// The handshake's proof did not match the agent's token.
    BadToken,
    /// The peer speaks another protocol version.
    Version {
        /// The version the agent speaks.
        agent: u32,
        /// The version the client sent.
        client: u32,
    },
    /// A samples op named a device that keeps no sample stream.
    NoSampleStream {
        /// The device.
        device: DeviceId,
    },
    /// An op named a device the node does not have.
    UnknownDevice {
        /// The device.
        device: DeviceId,
    },
    /// An op named a job the node does not control.
    UnknownJob {
        /// The job.
        job: JobId,
    },
    /// A limit outside the device's accepted range.
    LimitOutOfRange {
        /// The device.
        device: DeviceId,
        /// What was asked for.
        requested: Power,
        /// Lowest accepted.
        min: Power,
        /// Highest accepted.
        max: Power,
    },
    /// A lease of zero milliseconds.
    ZeroLease,
    /// The node's state could not be written before acting, so nothing was done.
    StateNotWritten {
        /// The file system's message.
        detail: String,
    },
    /// Malformed request.
    Malformed {
        /// The decoder's message.
        detail: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadToken => f.write_str("the token's proof did not match"),
            Self::Version { agent, client } => {
                write!(f, "protocol version {client} (the agent speaks {agent})")
            }
            Self::UnknownDevice { device } => write!(f, "no device {device} on this node"),
            Self::UnknownJob { job } => write!(f, "no job {job} on this node"),
            Self::LimitOutOfRange {
                device,
                requested,
                min,
                max,
            } => write!(
                f,
                "power limit {requested} for device {device} is outside {min} ..= {max}"
            ),
            Self::NoSampleStream { device } => {
                write!(f, "device {device} keeps no power-sample stream")
            }
            Self::ZeroLease => f.write_str("a lease of 0 ms"),
            Self::StateNotWritten { detail } => {
                write!(f, "the state file could not be written first: {detail}")
            }
            Self::Malformed { detail } => write!(f, "malformed request: {detail}"),
        }
    }
}

/// The node's lease as the agent holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStatus {
    /// True when some device is capped or some job paused by gridflex.
    pub holding: bool,
    /// Milliseconds until the lease lapses (`None` when nothing is held).
    pub remaining_ms: Option<u64>,
}

/// Why the agent restored on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LapseReason {
    /// The lease ran out without a renewal.
    LeaseExpired,
    /// The agent started and found its predecessor's curtailments on disk.
    Restarted,
    /// The agent was stopped (SIGTERM, Ctrl-C) and restored before exiting.
    Stopped,
}

/// A restore the agent made on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LapseReport {
    /// When it began.
    pub at: DateTime<Utc>,
    /// Why.
    pub reason: LapseReason,
    /// Devices given back their limit from before gridflex touched them.
    pub restored: BTreeMap<DeviceId, Power>,
    /// Jobs resumed.
    pub resumed: Vec<JobId>,
    /// What failed (and is retried until it succeeds), one line each.
    pub failures: Vec<String>,
}

impl LapseReport {
    /// The report as the orchestrator takes it: the devices restored, the jobs
    /// resumed, and why (with the node's name and when it began).
    pub fn outside_restore(&self, node: &str) -> gridflex_hal::OutsideRestore {
        let reason = match self.reason {
            LapseReason::LeaseExpired => "lease expired",
            LapseReason::Restarted => "agent restarted",
            LapseReason::Stopped => "agent stopped",
        };
        let mut text = format!("node {node}: {reason} at {}", self.at.to_rfc3339());
        if !self.failures.is_empty() {
            text.push_str(&format!("; {} failures", self.failures.len()));
        }
        gridflex_hal::OutsideRestore::new(
            self.restored.keys().cloned().collect(),
            self.resumed.clone(),
            text,
        )
    }
}

/// Writes one unauthenticated frame (the handshake).
pub async fn write_frame<W, T>(w: &mut W, message: &T) -> Result<(), AgentError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = serde_json::to_vec(message).map_err(|e| AgentError::Protocol {
        detail: format!("encoding a frame: {e}"),
    })?;
    write_raw(w, &body).await
}

async fn write_raw<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), AgentError> {
    if body.len() > MAX_FRAME {
        return Err(AgentError::Protocol {
            detail: format!("frame of {} bytes exceeds {MAX_FRAME}", body.len()),
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| AgentError::Protocol {
        detail: "frame length does not fit 32 bits".into(),
    })?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    w.write_all(&out).await.map_err(AgentError::io("write"))?;
    w.flush().await.map_err(AgentError::io("flush"))
}

/// Reads one unauthenticated frame (the handshake); `Ok(None)` when the peer closed
/// cleanly between frames.
pub async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, AgentError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    read_frame_limited(r, MAX_FRAME).await
}

/// The largest handshake frame the agent reads from a peer not yet authenticated.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

/// Reads one unauthenticated frame of at most `max` bytes; `Ok(None)` when the peer
/// closed cleanly.
pub async fn read_frame_limited<R, T>(r: &mut R, max: usize) -> Result<Option<T>, AgentError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    match read_raw(r, max).await? {
        Some(body) => decode(&body).map(Some),
        None => Ok(None),
    }
}

/// Reads one frame's body, unchecked, of at most `max` bytes; `Ok(None)` when the peer
/// closed cleanly.
pub(crate) async fn read_raw<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, AgentError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(AgentError::io("read")(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(AgentError::Protocol {
            detail: format!("frame of {len} bytes exceeds {max}"),
        });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .await
        .map_err(AgentError::io("read"))?;
    Ok(Some(body))
}

/// Decodes one frame's body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AgentError> {
    serde_json::from_slice(body).map_err(|e| AgentError::Protocol {
        detail: format!("decoding a frame: {e}"),
    })
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Bytes of lower- or upper-case hex; `None` when `s` is not hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Which side writes a frame: the tag covers it, so a frame cannot be reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The orchestrator's client.
    Client,
    /// The agent.
    Agent,
}

impl Side {
    fn byte(self) -> u8 {
        match self {
            Self::Client => b'C',
            Self::Agent => b'A',
        }
    }
    fn other(self) -> Self {
        match self {
            Self::Client => Self::Agent,
            Self::Agent => Self::Client,
        }
    }
}

/// The authenticated frames of one connection after the handshake.
pub(crate) struct Session {
    key: ring::hmac::Key,
    me: Side,
    sent: u64,
    received: u64,
}

const TAG_LEN: usize = 32;

impl Session {
    /// The session of a connection whose greeting carried `nonce`, for side `me`.
    pub(crate) fn new(token: &[u8], nonce: &str, me: Side) -> Self {
        let root = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token);
        let mut label = b"gridflex-agent/1 session ".to_vec();
        label.extend_from_slice(nonce.as_bytes());
        let derived = ring::hmac::sign(&root, &label);
        Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref()),
            me,
            sent: 0,
            received: 0,
        }
    }

    fn tag(&self, side: Side, seq: u64, json: &[u8]) -> ring::hmac::Tag {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(&[side.byte()]);
        ctx.update(&seq.to_be_bytes());
        ctx.update(json);
        ctx.sign()
    }

    /// Writes one authenticated frame.
    pub(crate) async fn write<W, T>(&mut self, w: &mut W, message: &T) -> Result<(), AgentError>
    where
        W: AsyncWrite + Unpin,
        T: Serialize,
    {
        let json = serde_json::to_vec(message).map_err(|e| AgentError::Protocol {
            detail: format!("encoding a frame: {e}"),
        })?;
        let seq = self.sent;
        self.sent += 1;
        let tag = self.tag(self.me, seq, &json);
        let mut body = Vec::with_capacity(TAG_LEN + 8 + json.len());
        body.extend_from_slice(tag.as_ref());
        body.extend_from_slice(&seq.to_be_bytes());
        body.extend_from_slice(&json);
        write_raw(w, &body).await
    }

    /// Reads one authenticated frame; `Ok(None)` when the peer closed cleanly.
    pub(crate) async fn read<R, T>(&mut self, r: &mut R) -> Result<Option<T>, AgentError>
    where
        R: AsyncRead + Unpin,
        T: for<'de> Deserialize<'de>,
    {
        let Some(body) = read_raw(r, MAX_FRAME).await? else {
            return Ok(None);
        };
        self.open(&body).map(Some)
    }

    /// Checks and decodes the body of one authenticated frame (the next expected).
    pub(crate) fn open<T>(&mut self, body: &[u8]) -> Result<T, AgentError>
    where
        T: for<'de> Deserialize<'de>,
    {
        let refused = || AgentError::Protocol {
            detail: "a frame failed authentication (altered, replayed or out of order)".into(),
        };
        if body.len() < TAG_LEN + 8 {
            return Err(refused());
        }
        let (tag, rest) = body.split_at(TAG_LEN);
        let (seq, json) = rest.split_at(8);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(seq);
        let seq = u64::from_be_bytes(seq_bytes);
        let mut msg = Vec::with_capacity(1 + 8 + json.len());
        msg.push(self.me.other().byte());
        msg.extend_from_slice(&seq.to_be_bytes());
        msg.extend_from_slice(json);
        if seq != self.received || ring::hmac::verify(&self.key, &msg, tag).is_err() {
            return Err(refused());
        }
        self.received += 1;
        decode(json)
    }
}

/// The handshake's proof: HMAC-SHA256 of a domain tag and the nonce under `token`.
pub(crate) fn proof(token: &[u8], nonce: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token);
    hex(ring::hmac::sign(&key, &proof_message(nonce)).as_ref())
}

/// True when `proof_hex` is the proof of `nonce` under `token`, compared in constant
/// time (ring's `hmac::verify`).
pub(crate) fn verify_proof(token: &[u8], nonce: &str, proof_hex: &str) -> bool {
    let Some(tag) = unhex(proof_hex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token);
    ring::hmac::verify(&key, &proof_message(nonce), &tag).is_ok()
}

fn proof_message(nonce: &str) -> Vec<u8> {
    let mut m = b"gridflex-agent/1 ".to_vec();
    m.extend_from_slice(nonce.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn proofs_verify_only_under_the_same_token_and_nonce() {
        let p = proof(b"secret-token", "abcd");
        assert!(verify_proof(b"secret-token", "abcd", &p));
        assert!(!verify_proof(b"other-token", "abcd", &p));
        assert!(!verify_proof(b"secret-token", "abce", &p));
        assert!(!verify_proof(b"secret-token", "abcd", "zz"));
        assert!(!verify_proof(b"secret-token", "abcd", &p[..10]));
    }

    #[tokio::test]
    async fn session_frames_refuse_tampering_replay_and_reflection()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut client = Session::new(b"tok", "n1", Side::Client);
        let mut agent = Session::new(b"tok", "n1", Side::Agent);
        let mut wire = Vec::new();
        client.write(&mut wire, &Request::Inventory).await?;
        let first = wire.clone();
        client
            .write(&mut wire, &Request::Renew { lease_ms: 5 })
            .await?;
        let mut input = wire.as_slice();
        assert_eq!(
            agent.read::<_, Request>(&mut input).await?,
            Some(Request::Inventory)
        );
        assert_eq!(
            agent.read::<_, Request>(&mut input).await?,
            Some(Request::Renew { lease_ms: 5 })
        );
        // Replayed.
        assert!(
            agent
                .read::<_, Request>(&mut first.as_slice())
                .await
                .is_err()
        );
        // Altered (the JSON's last byte).
        let mut fresh = Session::new(b"tok", "n1", Side::Agent);
        let mut bad = first.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(fresh.read::<_, Request>(&mut bad.as_slice()).await.is_err());
        // Reflected: a client frame read back by the client.
        let mut other = Session::new(b"tok", "n1", Side::Client);
        assert!(
            other
                .read::<_, Request>(&mut first.as_slice())
                .await
                .is_err()
        );
        // Another nonce or token.
        let mut elsewhere = Session::new(b"tok", "n2", Side::Agent);
        assert!(
            elsewhere
                .read::<_, Request>(&mut first.as_slice())
                .await
                .is_err()
        );
        let mut wrong = Session::new(b"tak", "n1", Side::Agent);
        assert!(
            wrong
                .read::<_, Request>(&mut first.as_slice())
                .await
                .is_err()
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_before_allocation() {
        let mut input: &[u8] = &(u32::MAX).to_be_bytes();
        let r: Result<Option<Request>, _> = read_frame(&mut input).await;
        assert!(matches!(r, Err(AgentError::Protocol { .. })), "{r:?}");
        let mut empty: &[u8] = &[];
        let r: Option<Request> = read_frame(&mut empty).await.ok().flatten();
        assert!(r.is_none());
    }

    #[tokio::test]
    async fn requests_round_trip_through_frames() -> Result<(), Box<dyn std::error::Error>> {
        let req = Request::Batch {
            lease_ms: Some(3000),
            ops: vec![
                Op::SetCap {
                    device: DeviceId::new("GPU-1")?,
                    limit: Power::watts(400.0)?,
                },
                Op::Pause {
                    job: JobId::new("train")?,
                },
            ],
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).await?;
        let back: Option<Request> = read_frame(&mut buf.as_slice()).await?;
        assert_eq!(back, Some(req));
        Ok(())
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        }

        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let _ = rt.block_on(async {
                let mut input = bytes.as_slice();
                read_frame::<_, Request>(&mut input).await
            });
        }
    }
}
