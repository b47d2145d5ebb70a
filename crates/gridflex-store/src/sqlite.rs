//! [`SqliteStore`]: the embedded default, one SQLite file with versioned migrations.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use gridflex_core::{Interval, Power};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::record::{
    CaptureSample, Channel, DetailKind, EventDetail, EventSpan, MeterReading, Source, StoredReport,
    from_ns, to_ns,
};
use crate::{HistoryStore, Pruned, Record, Retention, StoreError, cutoff};

/// The schema migrations, in order; migration `k` (from 0) brings the database to
/// version `k + 1`, recorded in SQLite's `user_version`. A released migration is never
/// edited: a change is a new entry.
const MIGRATIONS: &[&str] = &[
    // 1: meter intervals, events and their details.
    "CREATE TABLE meter (
        channel TEXT NOT NULL,
        start_ns INTEGER NOT NULL,
        len_ns INTEGER NOT NULL,
        watts REAL NOT NULL,
        samples INTEGER NOT NULL,
        source TEXT NOT NULL,
        PRIMARY KEY (channel, start_ns, len_ns)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        event_id INTEGER PRIMARY KEY,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        cause TEXT NOT NULL
    );
    CREATE TABLE details (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id INTEGER NOT NULL,
        at_ns INTEGER NOT NULL,
        kind TEXT NOT NULL,
        json TEXT NOT NULL
    );
    CREATE INDEX details_event ON details (event_id);",
    // 2: response captures and reports; events found by their end for retention.
    "CREATE TABLE captures (
        event_id INTEGER NOT NULL,
        at_ns INTEGER NOT NULL,
        watts REAL NOT NULL,
        PRIMARY KEY (event_id, at_ns)
    ) WITHOUT ROWID;
    CREATE TABLE reports (
        event_id INTEGER PRIMARY KEY,
        at_ns INTEGER NOT NULL,
        json TEXT NOT NULL
    );
    CREATE INDEX events_end ON events (end_ns);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// What a committed write survives. The database runs in write-ahead-log mode either
/// way, so readers never see half a transaction and a crash never corrupts the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: the log is fsynced at every commit, so a committed write
    /// survives a crash of the process *and* of the machine (power loss). The default.
    #[default]
    Full,
    /// `synchronous = NORMAL`: the log is fsynced only at checkpoints. A committed write
    /// survives a crash of the process (kill -9, panic); a power loss may roll back the
    /// last commits (never corrupting the file). Cheaper on slow disks.
    Normal,
}

/// Settings of the SQLite store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// What a committed write survives.
    pub durability: Durability,
}

/// The history in one SQLite file (the library is compiled in: no system SQLite, no
/// server).
///
/// ```
/// use gridflex_store::{HistoryStore, SqliteStore, SqliteOptions, SCHEMA_VERSION};
/// let dir = std::env::temp_dir().join(format!("gridflex-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("history.db"), SqliteOptions::default())?;
/// assert_eq!(store.schema_version()?, SCHEMA_VERSION);
/// assert_eq!(store.last_event_id()?, None);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

fn backend(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let what = what.into();
    move |e| StoreError::Backend {
        what,
        message: e.to_string(),
    }
}

fn id_of(event_id: u64) -> Result<i64, StoreError> {
    i64::try_from(event_id)
        .map_err(|_| StoreError::invalid("event id", format!("{event_id} exceeds i64")))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it to
    /// [`SCHEMA_VERSION`]. A database from a newer build is refused, untouched.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let conn = Connection::open(&path).map_err(backend(format!("open {}", path.display())))?;
        Self::init(conn, Some(path), options)
    }

    /// A database in memory (gone when dropped).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend("open in memory"))?;
        Self::init(conn, None, SqliteOptions::default())
    }

    fn init(
        mut conn: Connection,
        path: Option<PathBuf>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let sync = match options.durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        // WAL: a crash leaves either the whole of a transaction or none of it, and a
        // reader never waits for the writer thread.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend("set journal_mode"))?;
        conn.pragma_update(None, "synchronous", sync)
            .map_err(backend("set synchronous"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend("set busy_timeout"))?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The file, unless in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        user_version(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // The connection holds no Rust invariant a panic could break; SQLite rolls back
        // an unfinished transaction itself.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend("read user_version"))?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt {
        table: "user_version",
        row: v,
        reason: "negative schema version".into(),
    })
}

/// Brings the schema to [`SCHEMA_VERSION`], one migration per transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (k, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = k + 1;
        let tx = conn
            .transaction()
            .map_err(backend(format!("begin migration {version}")))?;
        tx.execute_batch(sql)
            .map_err(backend(format!("migration {version}")))?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(backend(format!("record migration {version}")))?;
        tx.commit()
            .map_err(backend(format!("commit migration {version}")))?;
    }
    Ok(())
}

fn write_one(tx: &Transaction<'_>, r: &Record) -> Result<(), StoreError> {
    match r {
        Record::Meter(readings) => {
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO meter (channel, start_ns, len_ns, watts, samples, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(backend("prepare meter insert"))?;
            for m in readings {
                let start = to_ns(m.interval.start())?;
                let end = to_ns(m.interval.end())?;
                st.execute(params![
                    m.channel.key(),
                    start,
                    end - start,
                    m.power.as_watts(),
                    m.samples,
                    m.source.key()
                ])
                .map_err(backend("insert meter"))?;
            }
        }
        Record::Event(e) => {
            tx.execute(
                "INSERT OR REPLACE INTO events (event_id, start_ns, end_ns, cause) VALUES (?1, ?2, ?3, ?4)",
                params![
                    id_of(e.event_id)?,
                    to_ns(e.window.start())?,
                    to_ns(e.window.end())?,
                    e.cause
                ],
            )
            .map_err(backend("insert event"))?;
        }
        Record::Detail(d) => {
            tx.execute(
                "INSERT INTO details (event_id, at_ns, kind, json) VALUES (?1, ?2, ?3, ?4)",
                params![id_of(d.event_id)?, to_ns(d.at)?, d.kind.key(), d.json],
            )
            .map_err(backend("insert detail"))?;
        }
        Record::Capture { event_id, samples } => {
            let id = id_of(*event_id)?;
            tx.execute("DELETE FROM captures WHERE event_id = ?1", params![id])
                .map_err(backend("replace capture"))?;
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO captures (event_id, at_ns, watts) VALUES (?1, ?2, ?3)",
                )
                .map_err(backend("prepare capture insert"))?;
            for s in samples {
                st.execute(params![id, to_ns(s.at)?, s.power.as_watts()])
                    .map_err(backend("insert capture"))?;
            }
        }
        Record::Report(rep) => {
            tx.execute(
                "INSERT OR REPLACE INTO reports (event_id, at_ns, json) VALUES (?1, ?2, ?3)",
                params![id_of(rep.event_id)?, to_ns(rep.at)?, rep.json],
            )
            .map_err(backend("insert report"))?;
        }
    }
    Ok(())
}

fn power(table: &'static str, row: i64, watts: f64) -> Result<Power, StoreError> {
    Power::watts(watts).map_err(|e| StoreError::Corrupt {
        table,
        row,
        reason: e.to_string(),
    })
}

fn interval(table: &'static str, row: i64, start: i64, end: i64) -> Result<Interval, StoreError> {
    Interval::new(from_ns(start), from_ns(end)).map_err(|e| StoreError::Corrupt {
        table,
        row,
        reason: e.to_string(),
    })
}

fn event_id(table: &'static str, id: i64) -> Result<u64, StoreError> {
    u64::try_from(id).map_err(|_| StoreError::Corrupt {
        table,
        row: id,
        reason: "negative event id".into(),
    })
}

impl HistoryStore for SqliteStore {
    fn write(&self, records: &[Record]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend("begin write"))?;
        for r in records {
            write_one(&tx, r)?;
        }
        tx.commit().map_err(backend("commit write"))
    }

    fn meter(&self, channel: &Channel, range: Interval) -> Result<Vec<MeterReading>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT start_ns, len_ns, watts, samples, source FROM meter
                 WHERE channel = ?1 AND start_ns >= ?2 AND start_ns < ?3
                 ORDER BY start_ns, len_ns",
            )
            .map_err(backend("prepare meter query"))?;
        let rows = st
            .query_map(
                params![channel.key(), to_ns(range.start())?, to_ns(range.end())?],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, f64>(2)?,
                        r.get::<_, u32>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .map_err(backend("query meter"))?;
        let mut out = Vec::new();
        for row in rows {
            let (start, len, watts, samples, source) = row.map_err(backend("read meter"))?;
            out.push(MeterReading {
                channel: channel.clone(),
                interval: interval("meter", start, start, start.saturating_add(len))?,
                power: power("meter", start, watts)?,
                samples,
                source: Source::from_key(&source).ok_or_else(|| StoreError::Corrupt {
                    table: "meter",
                    row: start,
                    reason: format!("unknown source {source:?}"),
                })?,
            });
        }
        Ok(out)
    }

    fn meter_end(&self, channel: &Channel) -> Result<Option<DateTime<Utc>>, StoreError> {
        let conn = self.lock();
        let end: Option<i64> = conn
            .query_row(
                "SELECT MAX(start_ns + len_ns) FROM meter WHERE channel = ?1",
                params![channel.key()],
                |r| r.get(0),
            )
            .map_err(backend("query meter end"))?;
        Ok(end.map(from_ns))
    }

    fn events(&self, range: Interval) -> Result<Vec<EventSpan>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT event_id, start_ns, end_ns, cause FROM events
                 WHERE start_ns < ?2 AND end_ns > ?1 ORDER BY start_ns, event_id",
            )
            .map_err(backend("prepare events query"))?;
        let rows = st
            .query_map(params![to_ns(range.start())?, to_ns(range.end())?], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(backend("query events"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, start, end, cause) = row.map_err(backend("read events"))?;
            out.push(EventSpan {
                event_id: event_id("events", id)?,
                window: interval("events", id, start, end)?,
                cause,
            });
        }
        Ok(out)
    }

    fn details(&self, event_id_: u64) -> Result<Vec<EventDetail>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT id, at_ns, kind, json FROM details WHERE event_id = ?1 ORDER BY id",
            )
            .map_err(backend("prepare details query"))?;
        let rows = st
            .query_map(params![id_of(event_id_)?], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(backend("query details"))?;
        let mut out = Vec::new();
        for row in rows {
            let (row_id, at, kind, json) = row.map_err(backend("read details"))?;
            out.push(EventDetail {
                event_id: event_id_,
                at: from_ns(at),
                kind: DetailKind::from_key(&kind).ok_or_else(|| StoreError::Corrupt {
                    table: "details",
                    row: row_id,
                    reason: format!("unknown kind {kind:?}"),
                })?,
                json,
            });
        }
        Ok(out)
    }

    fn capture(&self, event_id_: u64) -> Result<Vec<CaptureSample>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached("SELECT at_ns, watts FROM captures WHERE event_id = ?1 ORDER BY at_ns")
            .map_err(backend("prepare capture query"))?;
        let rows = st
            .query_map(params![id_of(event_id_)?], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?))
            })
            .map_err(backend("query capture"))?;
        let mut out = Vec::new();
        for row in rows {
            let (at, watts) = row.map_err(backend("read capture"))?;
            out.push(CaptureSample {
                at: from_ns(at),
                power: power("captures", at, watts)?,
            });
        }
        Ok(out)
    }

    fn report(&self, event_id_: u64) -> Result<Option<StoredReport>, StoreError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT at_ns, json FROM reports WHERE event_id = ?1",
                params![id_of(event_id_)?],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(backend("query report"))?;
        Ok(row.map(|(at, json)| StoredReport {
            event_id: event_id_,
            at: from_ns(at),
            json,
        }))
    }

    fn last_event_id(&self) -> Result<Option<u64>, StoreError> {
        let conn = self.lock();
        let id: Option<i64> = conn
            .query_row(
                "SELECT MAX(id) FROM (
                    SELECT MAX(event_id) AS id FROM events
                    UNION ALL SELECT MAX(event_id) FROM details
                    UNION ALL SELECT MAX(event_id) FROM reports)",
                [],
                |r| r.get(0),
            )
            .map_err(backend("query last event id"))?;
        id.map(|id| event_id("events", id)).transpose()
    }

    fn prune(&self, now: DateTime<Utc>, retention: &Retention) -> Result<Pruned, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend("begin prune"))?;
        let mut pruned = Pruned::default();
        if let Some(cut) = cutoff(now, retention.meter_days) {
            pruned.meter = tx
                .execute(
                    "DELETE FROM meter WHERE start_ns + len_ns <= ?1",
                    params![to_ns(cut)?],
                )
                .map_err(backend("prune meter"))? as u64;
        }
        if let Some(cut) = cutoff(now, retention.capture_days) {
            pruned.capture += tx
                .execute(
                    "DELETE FROM captures WHERE event_id IN
                     (SELECT event_id FROM events WHERE end_ns <= ?1)",
                    params![to_ns(cut)?],
                )
                .map_err(backend("prune captures"))? as u64;
        }
        if let Some(cut) = cutoff(now, retention.event_days) {
            let cut = to_ns(cut)?;
            pruned.capture += tx
                .execute(
                    "DELETE FROM captures WHERE event_id IN
                     (SELECT event_id FROM events WHERE end_ns <= ?1)",
                    params![cut],
                )
                .map_err(backend("prune captures"))? as u64;
            for table in ["details", "reports"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE event_id IN
                         (SELECT event_id FROM events WHERE end_ns <= ?1)"
                    ),
                    params![cut],
                )
                .map_err(backend(format!("prune {table}")))?;
            }
            pruned.events = tx
                .execute("DELETE FROM events WHERE end_ns <= ?1", params![cut])
                .map_err(backend("prune events"))? as u64;
        }
        tx.commit().map_err(backend("commit prune"))?;
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_schema_is_migrated_keeping_its_rows_and_a_newer_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("gridflex-store-mig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.db");
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO events (event_id, start_ns, end_ns, cause) VALUES (7, 0, 1000, 'x')",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(store.last_event_id().unwrap(), Some(7));
        assert_eq!(store.report(7).unwrap(), None);
        drop(store);
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
