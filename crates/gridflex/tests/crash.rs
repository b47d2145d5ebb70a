//! kill -9 of a process writing the audit log and the history store: everything it
//! reported written is there afterwards, and both open cleanly.
//!
//! The test runs this test executable again as a child (`crash_child`, switched on by
//! an environment variable): the child appends audit records and store rows, flushes
//! both, prints `written K` after each flush, and goes on until it is killed.
#![cfg(feature = "sqlite")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex::audit::{
    AuditEvent, AuditFileOptions, AuditLog, AuditProblem, Rotation, SyncPolicy, read_audit_files,
};
use gridflex::core::{Interval, Power};
use gridflex::store::{
    Channel, HistoryStore, MeterReading, Record, Source, SqliteOptions, SqliteStore, StoreWriter,
    WriterOptions,
};

const CHILD: &str = "GRIDFLEX_CRASH_CHILD_DIR";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
}

fn options() -> AuditFileOptions {
    AuditFileOptions {
        sync: SyncPolicy::OnFlush,
        // Small files, so the child also crosses rotations.
        rotation: Rotation {
            max_bytes: Some(8 * 1024),
            daily: false,
        },
    }
}

/// The child's body, run only by the crash test (ignored otherwise).
#[test]
#[ignore = "the child process of a_killed_writer_loses_nothing_it_reported_written"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD) else {
        panic!("run by a_killed_writer_loses_nothing_it_reported_written, with {CHILD} set");
    };
    let dir = std::path::PathBuf::from(dir);
    let mut audit = AuditLog::append_to_file_with(dir.join("audit.jsonl"), options()).unwrap();
    let store: Arc<dyn HistoryStore> =
        Arc::new(SqliteStore::open(dir.join("history.db"), SqliteOptions::default()).unwrap());
    let writer = StoreWriter::spawn(store, WriterOptions::default()).unwrap();
    for k in 0u32.. {
        let at = t0() + TimeDelta::minutes(5 * i64::from(k));
        // A burst between flushes, so the kill often lands mid-write.
        for j in 0..20 {
            audit
                .append(
                    at,
                    AuditEvent::Started {
                        jobs: k as usize,
                        devices: j,
                    },
                )
                .unwrap();
        }
        writer
            .submit(Record::Meter(vec![MeterReading {
                channel: Channel::Facility,
                interval: Interval::new(at, at + TimeDelta::minutes(5)).unwrap(),
                power: Power::watts(f64::from(k)).unwrap(),
                samples: 1,
                source: Source::Recorded,
            }]))
            .unwrap();
        audit.flush().unwrap();
        writer.flush().unwrap();
        println!("written {k}");
    }
}

#[test]
fn a_killed_writer_loses_nothing_it_reported_written() {
    let dir = std::env::temp_dir().join(format!("gridflex-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Whole records before each round (the second child continues the first's log).
    let mut base = 0u64;
    // Two crashes: the second child continues the log and the store the first left.
    for round in 0..2 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--ignored", "--nocapture"])
            .env(CHILD, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut reported: Option<u32> = None;
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(k) = line.strip_prefix("written ") {
                let k: u32 = k.trim().parse().unwrap();
                reported = Some(k);
                if k >= 150 {
                    break;
                }
            }
        }
        // SIGKILL: no destructor, no flush, no chance to finish a line.
        child.kill().unwrap();
        child.wait().unwrap();
        let k = reported.expect("the child reported nothing");

        // The audit log: every record up to the last reported flush is there, whole
        // and in order; at most a torn last line follows.
        let back = read_audit_files(dir.join("audit.jsonl")).unwrap();
        let written = base + (u64::from(k) + 1) * 20;
        let seqs: Vec<u64> = back
            .records
            .iter()
            .map(|r| r.seq)
            .take_while(|s| *s < written)
            .collect();
        assert_eq!(
            seqs,
            (0..written).collect::<Vec<_>>(),
            "round {round}: the {written} records reported written, in order"
        );
        assert!(
            back.problems
                .iter()
                .all(|p| matches!(p, AuditProblem::Unreadable { .. })),
            "only torn lines, never a gap: {:?}",
            back.problems
        );

        // The store opens cleanly and holds every reported meter interval.
        let store = SqliteStore::open(dir.join("history.db"), SqliteOptions::default()).unwrap();
        let all = Interval::new(t0(), t0() + TimeDelta::days(365)).unwrap();
        let meter = store.meter(&Channel::Facility, all).unwrap();
        for i in 0..=k {
            let at = t0() + TimeDelta::minutes(5 * i64::from(i));
            assert!(
                meter
                    .iter()
                    .any(|m| m.interval.start() == at
                        && m.power == Power::watts(f64::from(i)).unwrap()),
                "round {round}: meter interval {i} of {k} reported written is missing"
            );
        }
        // And the log reopens, continuing the numbering after the last whole record.
        let log = AuditLog::append_to_file_with(dir.join("audit.jsonl"), options()).unwrap();
        assert_eq!(log.len(), back.records.last().map_or(0, |r| r.seq + 1));
        base = log.len();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
