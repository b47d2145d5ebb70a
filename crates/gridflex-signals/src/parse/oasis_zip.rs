//! The OASIS zip: every OASIS answer is a zip holding one or more CSV or XML files
//! (one per component for some reports), or the XML "no data" error document
//! (reference `markets.md` §f).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use super::caiso::{Direct, Gatherer, Recorder, Sink};
use super::{Format, ParseOptions, ParseOutput, Skips, caiso_csv, caiso_xml, detect_format};
use crate::{Location, SignalError};

/// Parses an OASIS zip; its CSV and XML members are read in archive order and their
/// component rows joined into one set of price points.
///
/// An error document inside the zip is [`SignalError::NoData`] (code 1000) or
/// [`SignalError::Operator`], never an empty success. Errors inside a member name it
/// in [`Location::entry`].
pub fn parse_oasis_zip<R: Read + Seek>(
    mut input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    let threads = options.thread_count();
    let mut gatherer = Gatherer::new();
    let mut skips = Skips::new(options.mode);
    let (entries, files) = if threads > 1 {
        // Entries are read on worker threads, each from its own view of the archive,
        // so the (compressed) archive is read into memory once.
        let mut bytes = Vec::new();
        input
            .read_to_end(&mut bytes)
            .map_err(|source| SignalError::Io {
                at: Box::new(Location::default()),
                source,
            })?;
        let archive = open(Cursor::new(bytes.as_slice()))?;
        let files = parallel(&archive, threads, options, &mut gatherer, &mut skips)?;
        (archive.len(), files)
    } else {
        let mut archive = open(input)?;
        let files = one_by_one(&mut archive, options, &mut gatherer, &mut skips)?;
        (archive.len(), files)
    };
    if files == 0 {
        return Err(SignalError::Zip {
            reason: format!(
                "the archive holds {entries} director{} and no file",
                if entries == 1 { "y" } else { "ies" }
            ),
        });
    }
    let points = gatherer.finish(&mut skips)?;
    Ok(ParseOutput {
        format: Format::OasisZip,
        points,
        skipped_count: skips.count,
        skipped: skips.rows,
        next_page: None,
    })
}

/// Reads the entries in archive order on this thread; returns the number of files.
fn one_by_one<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    options: &ParseOptions,
    gatherer: &mut Gatherer,
    skips: &mut Skips,
) -> Result<usize, SignalError> {
    let mut files = 0usize;
    for i in 0..archive.len() {
        files += usize::from(read_direct(archive, i, options, gatherer, skips)?);
    }
    Ok(files)
}

/// Reads entry `i` straight into the gatherer; whether it is a file (a directory is
/// passed over).
fn read_direct<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    i: usize,
    options: &ParseOptions,
    gatherer: &mut Gatherer,
    skips: &mut Skips,
) -> Result<bool, SignalError> {
    let Some((name, reader)) = entry(archive, i)? else {
        return Ok(false);
    };
    gatherer.set_entry(&name);
    let mut sink = Direct {
        gatherer: &mut *gatherer,
        skips: &mut *skips,
    };
    read_entry(&name, reader, options, &mut sink).map_err(|e| e.in_entry(&name))?;
    name_entry(skips, &name);
    Ok(true)
}

fn open<R: Read + Seek>(input: R) -> Result<zip::ZipArchive<R>, SignalError> {
    let archive = zip::ZipArchive::new(input).map_err(|e| SignalError::Zip {
        reason: e.to_string(),
    })?;
    if archive.is_empty() {
        return Err(SignalError::Zip {
            reason: "the archive has no entries".into(),
        });
    }
    Ok(archive)
}

/// Entry `i`'s name and a reader of its content, or `None` for a directory.
fn entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    i: usize,
) -> Result<Option<(String, impl BufRead + '_)>, SignalError> {
    let file = archive.by_index(i).map_err(|e| SignalError::Zip {
        reason: format!("entry {i}: {e}"),
    })?;
    if file.is_dir() {
        return Ok(None);
    }
    let name = file.name().to_owned();
    Ok(Some((name, BufReader::with_capacity(1 << 16, file))))
}

/// Reads one entry's rows into `sink`, by the format its first bytes show.
fn read_entry(
    name: &str,
    mut reader: impl BufRead,
    options: &ParseOptions,
    sink: &mut impl Sink,
) -> Result<(), SignalError> {
    let head = reader.fill_buf().map_err(|source| SignalError::Io {
        at: Box::new(Location::default().in_entry(name)),
        source,
    })?;
    match detect_format(head)? {
        Format::CaisoCsv => caiso_csv::read_into(reader, options, sink),
        Format::CaisoXml => caiso_xml::read_into(reader, options, sink),
        other => Err(SignalError::UnknownFormat {
            reason: format!(
                "zip entry {name:?} holds {}, not an OASIS CSV or XML file",
                other.name()
            ),
        }),
    }
}

/// Names the entry in the skipped rows that do not name one yet.
fn name_entry(skips: &mut Skips, name: &str) {
    for s in skips.rows.iter_mut() {
        if s.at.entry.is_none() {
            s.at.entry = Some(name.to_owned());
        }
        if let Some(at) = reason_location_mut(&mut s.reason)
            && at.entry.is_none()
        {
            at.entry = Some(name.to_owned());
        }
    }
}

/// One entry's recording: its name (`None` for a directory) and what its rows did.
type Recorded = Result<Option<(String, Recorder)>, SignalError>;

/// Entry `i` of `archive` read into a recording.
fn record(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    i: usize,
    options: &ParseOptions,
) -> Recorded {
    entry(archive, i).map(|found| {
        found.map(|(name, reader)| {
            let mut recorder = Recorder::new(options.mode);
            let result = read_entry(&name, reader, options, &mut recorder);
            recorder.end(result);
            (name, recorder)
        })
    })
}

/// Reads the entries on `threads` threads, this one included (decompression and row
/// parsing), so that the result and the first error are those of reading them one by
/// one: the other threads record the entries they take, and this one replays each
/// recording into the gatherer in archive order as it becomes ready. Between replays
/// it takes entries too: one that comes next in archive order goes straight into the
/// gatherer (nothing recorded, nothing replayed), any other is recorded. No more
/// threads run than asked for, so the replays do not take time from the readers on a
/// machine with as many cores. Returns the number of file entries.
fn parallel(
    archive: &zip::ZipArchive<Cursor<&[u8]>>,
    threads: usize,
    options: &ParseOptions,
    gatherer: &mut Gatherer,
    skips: &mut Skips,
) -> Result<usize, SignalError> {
    let n = archive.len();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, Recorded)>();
    std::thread::scope(|scope| {
        for _ in 1..threads.min(n) {
            let tx = tx.clone();
            let mut archive = archive.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if tx.send((i, record(&mut archive, i, options))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut archive = archive.clone();
        let result = gather_in_order(&mut archive, &next, &rx, options, gatherer, skips);
        // On an error the other threads stop taking entries; the scope waits for them.
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        result
    })
}

/// This thread's part of [`parallel`]: every entry into the gatherer in archive order,
/// replayed from the recordings `rx` brings or read here.
fn gather_in_order(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    next: &AtomicUsize,
    rx: &mpsc::Receiver<(usize, Recorded)>,
    options: &ParseOptions,
    gatherer: &mut Gatherer,
    skips: &mut Skips,
) -> Result<usize, SignalError> {
    let n = archive.len();
    let mut ready: BTreeMap<usize, Recorded> = BTreeMap::new();
    let mut files = 0usize;
    // The next entry in archive order to go into the gatherer.
    let mut due = 0usize;
    while due < n {
        ready.extend(rx.try_iter());
        if let Some(recorded) = ready.remove(&due) {
            due += 1;
            let Some((name, recorder)) = recorded? else {
                continue;
            };
            files += 1;
            gatherer.set_entry(&name);
            recorder
                .replay(&mut Direct { gatherer, skips })
                .map_err(|e| e.in_entry(&name))?;
            name_entry(skips, &name);
            continue;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i == due {
            // Every entry before it is gathered: read it straight in.
            due += 1;
            files += usize::from(read_direct(archive, i, options, gatherer, skips)?);
        } else if i < n {
            ready.insert(i, record(archive, i, options));
        } else {
            // Every entry is taken: wait for the one that is due.
            let (j, recorded) = rx.recv().map_err(|_| SignalError::Zip {
                reason: format!("entry {due}: a reader thread ended without its result"),
            })?;
            ready.insert(j, recorded);
        }
    }
    Ok(files)
}

fn reason_location_mut(e: &mut SignalError) -> Option<&mut Location> {
    match e {
        SignalError::Field { at, .. } | SignalError::Malformed { at, .. } => Some(at),
        _ => None,
    }
}
