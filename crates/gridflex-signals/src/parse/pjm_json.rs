//! PJM Data Miner 2 JSON: the `{links, items, searchSpecification, totalRows}`
//! envelope or a bare array of items (reference `markets.md` §f).
//!
//! The items are read one at a time from the stream; the envelope's other members
//! are skipped, except `links`, whose `self`/`next` href names the feed.

use std::borrow::Cow;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::pjm::{Collector, Field, Fields, Side};
use super::{Format, ParseOptions, ParseOutput, Skips};
use crate::{Location, MarketRun, SignalError};

const FORMAT: &str = "PJM Data Miner JSON";

/// Parses a PJM Data Miner 2 LMP response (`da_hrl_lmps`, `rt_hrl_lmps`,
/// `rt_fivemin_hrl_lmps`).
///
/// ```
/// use gridflex_signals::parse::{parse_pjm_json, ParseOptions};
/// use gridflex_signals::MarketRun;
///
/// let json = r#"{"links":[{"rel":"self","href":"https://api.pjm.com/api/v1/rt_fivemin_hrl_lmps?rowCount=2"}],
///   "items":[{"datetime_beginning_utc":"2024-09-03T03:55:00","datetime_beginning_ept":"2024-09-02T23:55:00",
///             "pnode_id":51291,"pnode_name":"AECO","total_lmp_rt":25.31,"system_energy_price_rt":25.1,
///             "congestion_price_rt":0.05,"marginal_loss_price_rt":0.16,"row_is_current":true,"version_nbr":1}],
///   "totalRows":1}"#;
/// let out = parse_pjm_json(json.as_bytes(), &ParseOptions::default())?;
/// let p = &out.points[0];
/// assert_eq!(p.run, MarketRun::PjmRealTimeFiveMinute);
/// assert_eq!(p.node.as_str(), "51291");
/// assert_eq!(p.interval.end().to_rfc3339(), "2024-09-03T04:00:00+00:00");
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn parse_pjm_json<R: Read>(
    input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    // A response up to WHOLE bytes is read whole and parsed from memory (see
    // `parse_pjm_json_bytes`); a bigger one is streamed.
    let mut input = input;
    let mut bytes = Vec::new();
    (&mut input)
        .take(WHOLE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| SignalError::Io {
            at: Box::new(Location::default()),
            source,
        })?;
    if bytes.len() <= WHOLE {
        return parse_pjm_json_bytes(&bytes, options);
    }
    let mut state = State::new(options);
    let rest = std::io::Cursor::new(bytes).chain(input);
    let result = drive(
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(1 << 16, rest)),
        &mut state,
    );
    finish(state, result, options)
}

/// [`parse_pjm_json`] on a response already in memory (an HTTP body, a file read with
/// [`std::fs::read`]): no copy, and the fastest way in. The same results and errors.
///
/// Data Miner's items are flat objects; a hand-written reader takes them (about twice
/// serde's speed) and hands the document to serde from the start at the first thing it
/// does not handle (an escape, a nested value inside an item, a duplicate field,
/// anything that is not well-formed JSON).
///
/// ```
/// use gridflex_signals::parse::{parse_pjm_json_bytes, ParseOptions};
///
/// let body = br#"[{"datetime_beginning_utc":"2024-09-03T03:55:00","pnode_id":51291,"total_lmp_rt":25.31}]"#;
/// let out = parse_pjm_json_bytes(body, &ParseOptions::default().with_run(gridflex_signals::MarketRun::PjmRealTimeFiveMinute))?;
/// assert_eq!(out.points[0].lmp.as_per_megawatt_hour(), 25.31);
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn parse_pjm_json_bytes(
    bytes: &[u8],
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    let mut state = State::new(options);
    let result = if fast::read(bytes, &mut state).is_some() {
        Ok(())
    } else {
        state = State::new(options);
        drive(serde_json::Deserializer::from_slice(bytes), &mut state)
    };
    finish(state, result, options)
}

/// [`parse_pjm_json`] on a seekable input (a [`File`](std::fs::File)), in bounded
/// memory: the document streams through one buffer of about a megabyte, read by the
/// fast reader of [`parse_pjm_json_bytes`], so a file of any size is parsed at the
/// in-memory speed without being held in memory. At the first thing the fast reader
/// does not handle, the input is read again from where it started by
/// [`parse_pjm_json`]. The same results and errors as [`parse_pjm_json`] (so as
/// [`parse_pjm_json_bytes`] on the whole document, up to 256 MiB).
///
/// ```
/// use std::io::Cursor;
/// use gridflex_signals::parse::{parse_pjm_json_seekable, ParseOptions};
///
/// let body = br#"{"items":[{"datetime_beginning_utc":"2024-09-03T03:55:00","pnode_id":51291,"total_lmp_rt":25.31}]}"#;
/// let options = ParseOptions::default().with_run(gridflex_signals::MarketRun::PjmRealTimeFiveMinute);
/// let out = parse_pjm_json_seekable(Cursor::new(&body[..]), &options)?;
/// assert_eq!(out.points[0].lmp.as_per_megawatt_hour(), 25.31);
/// # Ok::<(), gridflex_signals::SignalError>(())
/// ```
pub fn parse_pjm_json_seekable<R: Read + Seek>(
    input: R,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    read_seekable(input, options, STREAM_CHUNK, fast::LOOKAHEAD)
}

/// Bytes read at a time by [`parse_pjm_json_seekable`].
const STREAM_CHUNK: usize = 1 << 20;

fn read_seekable<R: Read + Seek>(
    mut input: R,
    options: &ParseOptions,
    chunk: usize,
    lookahead: usize,
) -> Result<ParseOutput, SignalError> {
    let io = |source| SignalError::Io {
        at: Box::new(Location::default()),
        source,
    };
    let start = input.stream_position().map_err(io)?;
    let mut state = State::new(options);
    let mut stream = fast::Stream::new(&mut input, chunk, lookahead);
    if fast::read_from(&mut stream, &mut state)
        .map_err(io)?
        .is_some()
    {
        return finish(state, Ok(()), options);
    }
    drop(stream);
    input.seek(SeekFrom::Start(start)).map_err(io)?;
    parse_pjm_json(input, options)
}

/// The output, from the state a document was read into and how the reading ended.
fn finish(
    mut state: State,
    result: Result<(), serde_json::Error>,
    options: &ParseOptions,
) -> Result<ParseOutput, SignalError> {
    if let Some(fatal) = state.fatal.take() {
        return Err(fatal);
    }
    result.map_err(|e| {
        let at = Location::line(e.line() as u64);
        if e.is_io() {
            SignalError::Io {
                at: Box::new(at),
                source: std::io::Error::other(e.to_string()),
            }
        } else {
            SignalError::Malformed {
                at: Box::new(at),
                format: FORMAT,
                reason: e.to_string(),
            }
        }
    })?;
    if !state.saw_items {
        return Err(SignalError::Malformed {
            at: Box::new(Location::default()),
            format: FORMAT,
            reason: format!(
                "no \"items\" array (top-level keys: {})",
                state.keys.join(", ")
            ),
        });
    }
    let mut skips = state.skips;
    let points = state
        .collector
        .finish(state.side, options.run, &mut skips)?;
    Ok(ParseOutput {
        format: Format::PjmJson,
        points,
        skipped_count: skips.count,
        skipped: skips.rows,
        next_page: state.next_page,
    })
}

/// The largest response read whole before parsing (larger ones are streamed).
pub(crate) const WHOLE: usize = 256 << 20;

/// Reads the document into `state`.
fn drive<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    state: &mut State,
) -> Result<(), serde_json::Error> {
    Root(state).deserialize(&mut de).and_then(|()| de.end())
}

struct State {
    collector: Collector,
    skips: Skips,
    side: Option<Side>,
    fatal: Option<SignalError>,
    index: u64,
    saw_items: bool,
    keys: Vec<String>,
    next_page: Option<String>,
}

impl State {
    fn new(options: &ParseOptions) -> Self {
        Self {
            collector: Collector::new(true),
            skips: Skips::new(options.mode),
            side: None,
            fatal: None,
            index: 0,
            saw_items: false,
            keys: Vec::new(),
            next_page: None,
        }
    }

    /// The envelope's links: the next page, and the feed (so the market run).
    fn links(&mut self, links: Option<Vec<Link>>) {
        for l in links.unwrap_or_default() {
            if l.rel.as_deref() == Some("next") {
                self.next_page.clone_from(&l.href);
            }
            if matches!(l.rel.as_deref(), Some("self" | "next"))
                && let Some(run) = l.href.as_deref().and_then(feed_of)
            {
                self.collector.feed_run = Some(run);
            }
        }
    }

    fn item(&mut self, item: Item<'_>) -> Result<(), SignalError> {
        let n = self.index;
        self.index += 1;
        let at = Location::item(n);
        let side = match (&item.total_lmp_da, &item.total_lmp_rt) {
            (Some(_), None) => Side::DayAhead,
            (None, Some(_)) => Side::RealTime,
            (Some(_), Some(_)) => {
                return self.skips.bad_row(
                    at.clone(),
                    SignalError::field(
                        at,
                        "total_lmp_da",
                        "both total_lmp_da and total_lmp_rt are present",
                    ),
                );
            }
            (None, None) => {
                return self.skips.bad_row(
                    at.clone(),
                    SignalError::field(at, "total_lmp_rt", "no total_lmp_da or total_lmp_rt"),
                );
            }
        };
        if let Some(prev) = self.side
            && prev != side
        {
            return self.skips.bad_row(
                at.clone(),
                SignalError::field(
                    at,
                    "total_lmp",
                    "day-ahead and real-time rows are mixed in one file",
                ),
            );
        }
        self.side = Some(side);
        let (lmp, energy, congestion, loss) = match side {
            Side::DayAhead => (
                &item.total_lmp_da,
                &item.system_energy_price_da,
                &item.congestion_price_da,
                &item.marginal_loss_price_da,
            ),
            Side::RealTime => (
                &item.total_lmp_rt,
                &item.system_energy_price_rt,
                &item.congestion_price_rt,
                &item.marginal_loss_price_rt,
            ),
        };
        let fields = Fields {
            start: item.datetime_beginning_utc.as_ref().map(JVal::field),
            end: item.datetime_ending_utc.as_ref().map(JVal::field),
            pnode_id: item.pnode_id.as_ref().map(JVal::field),
            pnode_name: item.pnode_name.as_ref().map(JVal::field),
            lmp: lmp.as_ref().map(JVal::field),
            energy: energy.as_ref().map(JVal::field),
            congestion: congestion.as_ref().map(JVal::field),
            loss: loss.as_ref().map(JVal::field),
            row_is_current: item.row_is_current.as_ref().map(JVal::field),
        };
        match self.collector.add(&fields, side, n, &mut self.skips) {
            Ok(()) => Ok(()),
            Err(e) => self.skips.bad_row(at, e),
        }
    }
}

/// A scalar JSON value; `null` is read as an absent field by `Option`. Text is
/// borrowed from the input where it can be (no escapes, read from a slice).
enum JVal<'de> {
    Num(f64),
    /// UTF-8 text (serde checks it; the fast reader checks the whole document first).
    Text(Cow<'de, [u8]>),
    Bool(bool),
    Other,
}

impl JVal<'_> {
    fn field(&self) -> Field<'_> {
        match self {
            JVal::Num(x) => Field::Num(*x),
            JVal::Text(s) => Field::Text(s),
            JVal::Bool(b) => Field::Bool(*b),
            JVal::Other => Field::Other,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JVal<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JValVisitor(std::marker::PhantomData))
    }
}

struct JValVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JValVisitor<'a> {
    type Value = JVal<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_f64<E>(self, v: f64) -> Result<JVal<'a>, E> {
        Ok(JVal::Num(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<JVal<'a>, E> {
        Ok(JVal::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<JVal<'a>, E> {
        Ok(JVal::Num(v as f64))
    }
    fn visit_bool<E>(self, v: bool) -> Result<JVal<'a>, E> {
        Ok(JVal::Bool(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<JVal<'a>, E> {
        Ok(JVal::Text(Cow::Borrowed(v.as_bytes())))
    }
    fn visit_str<E>(self, v: &str) -> Result<JVal<'a>, E> {
        Ok(JVal::Text(Cow::Owned(v.as_bytes().to_vec())))
    }
    fn visit_string<E>(self, v: String) -> Result<JVal<'a>, E> {
        Ok(JVal::Text(Cow::Owned(v.into_bytes())))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<JVal<'a>, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JVal::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<JVal<'a>, A::Error> {
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JVal::Other)
    }
}

#[derive(Deserialize, Default)]
struct Item<'a> {
    #[serde(borrow)]
    datetime_beginning_utc: Option<JVal<'a>>,
    #[serde(borrow)]
    datetime_ending_utc: Option<JVal<'a>>,
    #[serde(borrow)]
    pnode_id: Option<JVal<'a>>,
    #[serde(borrow)]
    pnode_name: Option<JVal<'a>>,
    #[serde(borrow)]
    total_lmp_da: Option<JVal<'a>>,
    #[serde(borrow)]
    total_lmp_rt: Option<JVal<'a>>,
    #[serde(borrow)]
    system_energy_price_da: Option<JVal<'a>>,
    #[serde(borrow)]
    system_energy_price_rt: Option<JVal<'a>>,
    #[serde(borrow)]
    congestion_price_da: Option<JVal<'a>>,
    #[serde(borrow)]
    congestion_price_rt: Option<JVal<'a>>,
    #[serde(borrow)]
    marginal_loss_price_da: Option<JVal<'a>>,
    #[serde(borrow)]
    marginal_loss_price_rt: Option<JVal<'a>>,
    #[serde(borrow)]
    row_is_current: Option<JVal<'a>>,
}

#[derive(Deserialize)]
struct Link {
    rel: Option<String>,
    href: Option<String>,
}

/// The feed name in a Data Miner URL (`.../api/v1/{feed}?...`).
pub(crate) fn feed_of(href: &str) -> Option<MarketRun> {
    let path = href.split('?').next()?;
    MarketRun::from_pjm_feed(path.trim_end_matches('/').rsplit('/').next()?)
}

struct Root<'a>(&'a mut State);
struct Items<'a>(&'a mut State);

impl<'de> DeserializeSeed<'de> for Root<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Root<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Data Miner envelope object or an array of items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.0.saw_items = true;
        Items(self.0).visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "items" => {
                    self.0.saw_items = true;
                    map.next_value_seed(Items(self.0))?;
                }
                "links" => {
                    let links: Option<Vec<Link>> = map.next_value()?;
                    self.0.links(links);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if self.0.keys.len() < 16 {
                self.0.keys.push(key);
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of LMP items")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Item<'de>>()? {
            if let Err(e) = self.0.item(item) {
                self.0.fatal = Some(e);
                return Err(de::Error::custom("stopped at a bad item"));
            }
        }
        Ok(())
    }
}

/// A hand-written reader for the documents Data Miner writes: an envelope (or a bare
/// array) whose items are flat objects of strings, numbers, booleans and nulls without
/// escapes. It makes exactly the calls the serde path makes (the same items, in order,
/// with the same values; the same envelope keys and links) and gives up, returning
/// `None`, at the first thing it does not handle (escapes, nested values in an item,
/// a duplicate field, anything that is not well-formed JSON), so the caller reads the
/// document again with serde from the start. About twice as fast as serde's derive on
/// these items (`benches/signals_parse.rs`, group "data miner").
mod fast {
    use std::borrow::Cow;

    use serde::de::IgnoredAny;

    use super::super::scalar::same_bytes;
    use super::{Item, JVal, Link, State};

    struct Cursor<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Cursor<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        /// A string without escapes or control characters, after its opening quote
        /// (UTF-8: [`read`] checked the whole document).
        fn string(&mut self) -> Option<&'a [u8]> {
            let rest = self.b.get(self.i..)?;
            let end = string_end(rest)?;
            if rest[end] != b'"' {
                return None;
            }
            self.i += end + 1;
            Some(&rest[..end])
        }

        /// A number as serde_json reads it for `deserialize_any`: integers that fit
        /// `u64` or `i64` as those (then `as f64`), others as a correctly rounded f64.
        fn number(&mut self) -> Option<f64> {
            let b = self.b;
            let start = self.i;
            let mut i = start;
            if b.get(i) == Some(&b'-') {
                i += 1;
            }
            match b.get(i)? {
                b'0' => i += 1,
                b'1'..=b'9' => {
                    while b.get(i).is_some_and(u8::is_ascii_digit) {
                        i += 1;
                    }
                }
                _ => return None,
            }
            // At least one digit from `i`; the index after the last.
            let digits = |mut i: usize| {
                let from = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                (i > from).then_some(i)
            };
            let mut integer = true;
            if b.get(i) == Some(&b'.') {
                integer = false;
                i = digits(i + 1)?;
            }
            if let Some(b'e' | b'E') = b.get(i) {
                integer = false;
                i += 1;
                if let Some(b'+' | b'-') = b.get(i) {
                    i += 1;
                }
                i = digits(i)?;
            }
            self.i = i;
            let number = &b[start..i];
            if !integer && let Some(v) = gridflex_core::number::parse_plain_decimal(number) {
                return Some(v);
            }
            // A whole number of up to 19 digits (a node id) is below 2^64: read here,
            // as `u64::from_str` reads it.
            if integer && number.len() <= 19 && number.first() != Some(&b'-') {
                let u = number
                    .iter()
                    .fold(0u64, |u, &d| u * 10 + u64::from(d - b'0'));
                return Some(u as f64);
            }
            // Only the ASCII bytes checked above; as text for the general readers (not
            // before the usual number, which it cost a tenth of an item's time).
            let text = std::str::from_utf8(&b[start..i]).ok()?;
            if integer {
                if let Ok(u) = text.parse::<u64>() {
                    return Some(u as f64);
                }
                match text.parse::<i64>() {
                    // serde_json reads `-0` as the float -0.0.
                    Ok(0) => return Some(-0.0),
                    Ok(v) => return Some(v as f64),
                    Err(_) => {}
                }
            }
            text.parse::<f64>().ok().filter(|v| v.is_finite())
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            self.b
                .get(self.i..)?
                .starts_with(word)
                .then(|| self.i += word.len())
        }

        /// A scalar value (`None` inside for `null`); a nested value gives up.
        fn scalar(&mut self) -> Option<Option<JVal<'a>>> {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    Some(Some(JVal::Text(Cow::Borrowed(self.string()?))))
                }
                b't' => self.literal(b"true").map(|()| Some(JVal::Bool(true))),
                b'f' => self.literal(b"false").map(|()| Some(JVal::Bool(false))),
                b'n' => self.literal(b"null").map(|()| None),
                b'-' | b'0'..=b'9' => self.number().map(|v| Some(JVal::Num(v))),
                _ => None,
            }
        }

        /// An item key, after its opening quote: its field's number (`KEY_OTHER` for
        /// a field the items do not use). The key at this position in the last item
        /// is tried first with one comparison (Data Miner writes every item's fields
        /// in one order); otherwise the key is scanned and learnt.
        fn key(&mut self, learnt: &mut Learnt, position: usize) -> Option<u8> {
            let rest = self.b.get(self.i..)?;
            if let Some((known, field)) = learnt.keys.get(position)
                && rest.get(known.len()) == Some(&b'"')
                && rest
                    .get(..known.len())
                    .is_some_and(|r| same_bytes(r, known))
            {
                // The learnt key passed `string`: no quote, escape or control
                // character, so this is the key `string` would read.
                self.i += known.len() + 1;
                return Some(*field);
            }
            let key = self.string()?;
            let field = field_of(key);
            learnt.keys.truncate(position);
            if position < MAX_LEARNT {
                learnt.keys.push((key.to_vec(), field));
            }
            Some(field)
        }

        /// One flat item object.
        fn item(&mut self, learnt: &mut Learnt) -> Option<Item<'a>> {
            self.eat(b'{')?;
            let mut item = Item::default();
            let mut seen = 0u16;
            if self.eat(b'}').is_some() {
                return Some(item);
            }
            let mut position = 0;
            loop {
                self.eat(b'"')?;
                let field = self.key(learnt, position)?;
                position += 1;
                self.eat(b':')?;
                let value = self.scalar()?;
                if field != KEY_OTHER {
                    // serde refuses a duplicate field: so does this reader, by giving up.
                    if seen & (1 << field) != 0 {
                        return None;
                    }
                    seen |= 1 << field;
                    let slot = match field {
                        0 => &mut item.datetime_beginning_utc,
                        1 => &mut item.datetime_ending_utc,
                        2 => &mut item.pnode_id,
                        3 => &mut item.pnode_name,
                        4 => &mut item.total_lmp_da,
                        5 => &mut item.total_lmp_rt,
                        6 => &mut item.system_energy_price_da,
                        7 => &mut item.system_energy_price_rt,
                        8 => &mut item.congestion_price_da,
                        9 => &mut item.congestion_price_rt,
                        10 => &mut item.marginal_loss_price_da,
                        11 => &mut item.marginal_loss_price_rt,
                        _ => &mut item.row_is_current,
                    };
                    *slot = value;
                }
                match self.peek()? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        return Some(item);
                    }
                    _ => return None,
                }
            }
        }

        /// Any other envelope value, read by serde from here (so nested values are
        /// checked as serde checks them); returns it.
        fn value<T: serde::de::Deserialize<'a>>(&mut self) -> Option<T> {
            self.ws();
            let rest = self.b.get(self.i..)?;
            let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
            let value = values.next()?.ok()?;
            self.i += values.byte_offset();
            Some(value)
        }
    }

    /// The number of a field the items use (the order of [`Item`]'s fields).
    fn field_of(key: &[u8]) -> u8 {
        match key {
            b"datetime_beginning_utc" => 0,
            b"datetime_ending_utc" => 1,
            b"pnode_id" => 2,
            b"pnode_name" => 3,
            b"total_lmp_da" => 4,
            b"total_lmp_rt" => 5,
            b"system_energy_price_da" => 6,
            b"system_energy_price_rt" => 7,
            b"congestion_price_da" => 8,
            b"congestion_price_rt" => 9,
            b"marginal_loss_price_da" => 10,
            b"marginal_loss_price_rt" => 11,
            b"row_is_current" => 12,
            _ => KEY_OTHER,
        }
    }

    /// The field number of a key the items do not use.
    const KEY_OTHER: u8 = 16;
    /// Keys learnt per item at most (Data Miner writes about fifteen).
    const MAX_LEARNT: usize = 32;

    /// The keys of the items read so far, by position, with their field numbers.
    #[derive(Default)]
    pub(super) struct Learnt {
        keys: Vec<(Vec<u8>, u8)>,
    }

    /// Where a string's text ends: the first `"`, `\\` or control character. Eight
    /// bytes at a time (strings here are short: a vectorised search costs more to
    /// start than it saves, a byte loop three compares a byte): in each word, a byte
    /// equal to one of those or below 0x20 sets its high bit. A borrow can set a high
    /// bit only above a byte that set its own, so the lowest is exact.
    #[inline(always)]
    pub(super) fn string_end(s: &[u8]) -> Option<usize> {
        const ONES: u64 = u64::from_le_bytes([0x01; 8]);
        const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
        let (words, tail) = s.as_chunks::<8>();
        for (k, w) in words.iter().enumerate() {
            let x = u64::from_le_bytes(*w);
            let quote = x ^ (ONES * u64::from(b'"'));
            let backslash = x ^ (ONES * u64::from(b'\\'));
            let hits = (quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (x.wrapping_sub(ONES * 0x20) & !x);
            let hits = hits & HIGH;
            if hits != 0 {
                return Some(8 * k + (hits.trailing_zeros() / 8) as usize);
            }
        }
        let at = tail
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        Some(8 * words.len() + at)
    }

    /// A number read by the fast reader, for tests.
    #[cfg(test)]
    pub(super) fn number(text: &str) -> Option<f64> {
        let mut c = Cursor {
            b: text.as_bytes(),
            i: 0,
        };
        c.number().filter(|_| c.i == text.len())
    }

    /// Where the reader's bytes come from: the bytes from the read position on, as
    /// far as they are known to be UTF-8 (`None` to give up: invalid UTF-8).
    pub(super) trait Window {
        /// The bytes ahead of the read position, at least [`Window::lookahead`] of them
        /// unless the input ends first (an element that does not fit is given up on),
        /// and whether they are all that is left.
        fn ahead(&mut self) -> std::io::Result<Option<(&[u8], bool)>>;
        /// The most an item or an envelope member may take.
        fn lookahead(&self) -> usize {
            LOOKAHEAD
        }
        /// Moves the read position `n` bytes on.
        fn advance(&mut self, n: usize);
    }

    /// The most an item or an envelope member may take before the reader gives up on
    /// it (Data Miner's items take about 400 bytes).
    pub(super) const LOOKAHEAD: usize = 64 << 10;

    /// A document in memory, checked for UTF-8 once (fast on ASCII; serde refuses
    /// invalid UTF-8 in any string, and outside strings it is a syntax error, so a
    /// document that fails here is serde's to report).
    pub(super) struct Slice<'b> {
        bytes: Option<&'b [u8]>,
        pos: usize,
    }

    impl<'b> Slice<'b> {
        pub(super) fn new(bytes: &'b [u8]) -> Self {
            Self {
                bytes: std::str::from_utf8(bytes).is_ok().then_some(bytes),
                pos: 0,
            }
        }
    }

    impl Window for Slice<'_> {
        fn ahead(&mut self) -> std::io::Result<Option<(&[u8], bool)>> {
            Ok(self.bytes.map(|b| (&b[self.pos..], true)))
        }
        fn advance(&mut self, n: usize) {
            self.pos += n;
        }
    }

    /// A document streamed through one buffer of `chunk + lookahead` bytes, refilled
    /// when less than `lookahead` is left ahead: memory stays bounded whatever the
    /// document's size, and the buffer's pages are touched once.
    pub(super) struct Stream<R> {
        input: R,
        buf: Vec<u8>,
        /// The read position.
        pos: usize,
        /// The end of the bytes checked as UTF-8.
        valid: usize,
        /// The end of the bytes read (after `valid`: a character cut by a read).
        end: usize,
        eof: bool,
        invalid: bool,
        lookahead: usize,
    }

    impl<R: std::io::Read> Stream<R> {
        /// Reads `input` `chunk` bytes at a time (at least), giving up on elements
        /// longer than `lookahead`.
        pub(super) fn new(input: R, chunk: usize, lookahead: usize) -> Self {
            Self {
                input,
                // Room for a character cut by a read, beyond the lookahead.
                buf: vec![0; chunk + lookahead + 4],
                lookahead,
                pos: 0,
                valid: 0,
                end: 0,
                eof: false,
                invalid: false,
            }
        }

        fn refill(&mut self) -> std::io::Result<()> {
            self.buf.copy_within(self.pos..self.end, 0);
            self.valid -= self.pos;
            self.end -= self.pos;
            self.pos = 0;
            while !self.eof && self.end < self.buf.len() {
                match self.input.read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            match std::str::from_utf8(&self.buf[self.valid..self.end]) {
                Ok(_) => self.valid = self.end,
                // A character cut by the read completes with the next one.
                Err(e) if e.error_len().is_none() && !self.eof => self.valid += e.valid_up_to(),
                Err(_) => self.invalid = true,
            }
            Ok(())
        }
    }

    impl<R: std::io::Read> Window for Stream<R> {
        fn ahead(&mut self) -> std::io::Result<Option<(&[u8], bool)>> {
            if !self.eof && !self.invalid && self.valid - self.pos < self.lookahead {
                self.refill()?;
            }
            let last = self.eof && self.valid == self.end;
            Ok((!self.invalid).then(|| (&self.buf[self.pos..self.valid], last)))
        }
        fn advance(&mut self, n: usize) {
            self.pos += n;
        }
        fn lookahead(&self) -> usize {
            self.lookahead
        }
    }

    /// Where the reader is in the document, between elements.
    #[derive(Clone, Copy)]
    enum Phase {
        /// Before the root value.
        Root,
        /// In the envelope, before a key (`first`: right after `{`).
        Key {
            first: bool,
        },
        /// In the items array (`envelope`: inside the envelope's `items`), before an
        /// item (`first`: right after `[`).
        Item {
            envelope: bool,
            first: bool,
        },
        /// After the root value: only whitespace may follow, as serde's `end` checks.
        Trailing,
        Done,
    }

    /// Reads one element at `phase` from `c` into `state`: the next phase, or `None` to
    /// give up.
    fn step(
        c: &mut Cursor<'_>,
        phase: Phase,
        state: &mut State,
        learnt: &mut Learnt,
    ) -> Option<Phase> {
        Some(match phase {
            Phase::Root => match c.peek()? {
                b'[' => {
                    c.i += 1;
                    state.saw_items = true;
                    Phase::Item {
                        envelope: false,
                        first: true,
                    }
                }
                b'{' => {
                    c.i += 1;
                    Phase::Key { first: true }
                }
                _ => return None,
            },
            Phase::Key { first } => {
                match c.peek()? {
                    b'}' if first => {
                        c.i += 1;
                        return Some(Phase::Trailing);
                    }
                    b',' if !first => c.i += 1,
                    _ if first => {}
                    _ => return None,
                }
                c.eat(b'"')?;
                let key = c.string()?;
                c.eat(b':')?;
                match key {
                    b"items" => {
                        state.saw_items = true;
                        c.eat(b'[')?;
                        return Some(Phase::Item {
                            envelope: true,
                            first: true,
                        });
                    }
                    b"links" => {
                        let links: Option<Vec<Link>> = c.value()?;
                        state.links(links);
                    }
                    _ => {
                        c.value::<IgnoredAny>()?;
                    }
                }
                if state.keys.len() < 16 {
                    state.keys.push(String::from_utf8_lossy(key).into_owned());
                }
                end_of_members(c)?
            }
            Phase::Item { envelope, first } => {
                let close = match c.peek()? {
                    b']' if first => true,
                    b',' if !first => {
                        c.i += 1;
                        false
                    }
                    _ if first => false,
                    _ => return None,
                };
                if !close {
                    let item = c.item(learnt)?;
                    if let Err(e) = state.item(item) {
                        // A strict parse stops at a bad item, as serde's does.
                        state.fatal = Some(e);
                        return Some(Phase::Done);
                    }
                    if c.peek()? != b']' {
                        return Some(Phase::Item {
                            envelope,
                            first: false,
                        });
                    }
                }
                c.i += 1;
                if !envelope {
                    return Some(Phase::Trailing);
                }
                if state.keys.len() < 16 {
                    state.keys.push("items".to_owned());
                }
                end_of_members(c)?
            }
            Phase::Trailing => {
                c.ws();
                if c.i < c.b.len() {
                    return None;
                }
                Phase::Trailing
            }
            Phase::Done => Phase::Done,
        })
    }

    /// After an envelope member: another, or the envelope's end.
    fn end_of_members(c: &mut Cursor<'_>) -> Option<Phase> {
        match c.peek()? {
            b',' => Some(Phase::Key { first: false }),
            b'}' => {
                c.i += 1;
                Some(Phase::Trailing)
            }
            _ => None,
        }
    }

    /// Reads the whole document into `state`: `Ok(None)` to read it again with serde
    /// from the start.
    pub(super) fn read_from(
        window: &mut impl Window,
        state: &mut State,
    ) -> std::io::Result<Option<()>> {
        let mut phase = Phase::Root;
        let mut learnt = Learnt::default();
        let lookahead = window.lookahead();
        loop {
            let Some((b, at_end)) = window.ahead()? else {
                return Ok(None);
            };
            if matches!(phase, Phase::Trailing) && b.is_empty() && at_end {
                return Ok(Some(()));
            }
            let mut c = Cursor { b, i: 0 };
            // Elements until the window runs short (then it is refilled).
            loop {
                let Some(next) = step(&mut c, phase, state, &mut learnt) else {
                    return Ok(None);
                };
                phase = next;
                if matches!(phase, Phase::Done) {
                    return Ok(Some(()));
                }
                if matches!(phase, Phase::Trailing) && c.i == c.b.len() {
                    break;
                }
                if !at_end && c.b.len() - c.i < lookahead {
                    break;
                }
            }
            let used = c.i;
            window.advance(used);
        }
    }

    /// Reads the whole document into `state`; `None` to read it again with serde.
    pub(super) fn read(bytes: &[u8], state: &mut State) -> Option<()> {
        read_from(&mut Slice::new(bytes), state).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> State {
        State {
            collector: Collector::new(true),
            skips: Skips::new(super::super::Mode::Lenient),
            side: None,
            fatal: None,
            index: 0,
            saw_items: false,
            keys: Vec::new(),
            next_page: None,
        }
    }

    /// Everything the state ends with, as text.
    fn end(s: State) -> String {
        let head = format!(
            "{:?} {} {:?} {:?} {:?}",
            s.fatal.as_ref().map(ToString::to_string),
            s.saw_items,
            s.keys,
            s.next_page,
            s.side
        );
        let mut skips = s.skips;
        let points = s.collector.finish(s.side, None, &mut skips);
        let skipped: Vec<String> = skips
            .rows
            .iter()
            .map(|r| format!("{} {}", r.at, r.reason))
            .collect();
        format!(
            "{head}\n{:?}\n{} {skipped:?}",
            points.map_err(|e| e.to_string()),
            skips.count
        )
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("-0".to_owned()),
            Just("0".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("-9223372036854775809".to_owned()),
            Just("1e400".to_owned()),
            Just("01".to_owned()),
            Just("[1, {\"a\": 2}]".to_owned()),
            Just("\"a\\\"b\"".to_owned()),
            (-1_000_000i64..1_000_000).prop_map(|v| v.to_string()),
            (-2000.0f64..20000.0).prop_map(|v| format!("{v}")),
            (-2000.0f64..20000.0).prop_map(|v| format!("{v:e}")),
            (0u32..4).prop_map(|n| format!("\"2024-07-01T0{n}:05:00\"")),
            "[a-z0-9 ]{0,8}".prop_map(|t| format!("\"{t}\"")),
        ]
    }

    const KEYS: [&str; 9] = [
        "datetime_beginning_utc",
        "datetime_ending_utc",
        "pnode_id",
        "pnode_name",
        "total_lmp_rt",
        "system_energy_price_rt",
        "total_lmp_da",
        "row_is_current",
        "voltage",
    ];

    fn item() -> impl Strategy<Value = String> {
        prop::collection::vec((0..KEYS.len(), value(), 0usize..3), 0..10).prop_map(|fields| {
            let ws = ["", " ", "\n  "];
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v, w)| format!("{}\"{}\"{}:{}{v}", ws[*w], KEYS[*k], ws[*w], ws[*w]))
                .collect();
            format!("{{{}}}", body.join(","))
        })
    }

    /// A good item, so most documents have points.
    fn good(n: usize) -> String {
        format!(
            "{{\"datetime_beginning_utc\":\"2024-07-01T00:{:02}:00\",\"pnode_id\":{},\"total_lmp_rt\":{}.25,\"row_is_current\":true}}",
            5 * (n % 12),
            1000 + n / 12,
            n
        )
    }

    proptest! {
        /// Wherever the fast reader finishes, it ends in exactly the state serde does.
        #[test]
        fn the_fast_reader_agrees_with_serde(
            items in prop::collection::vec(prop_oneof![3 => (0usize..40).prop_map(good), 1 => item()], 0..30),
            envelope in 0u8..5,
            cut in prop::option::of(0usize..2000),
        ) {
            // Bytes, not a String: a cut may fall inside a character.
            let mut doc = document(&items, envelope).into_bytes();
            if let Some(cut) = cut {
                doc.truncate(cut.min(doc.len()));
            }
            prop_assert_eq!(disagreement(&doc), None);
        }
    }

    /// How the fast reader and serde end differently on `bytes`, if they do (`None`
    /// also where the fast reader gives up).
    fn disagreement(bytes: &[u8]) -> Option<String> {
        let mut fast_state = state();
        fast::read(bytes, &mut fast_state)?;
        let mut slow = state();
        let result = drive(serde_json::Deserializer::from_slice(bytes), &mut slow);
        if result.is_err() && slow.fatal.is_none() {
            return Some(format!(
                "serde failed where the fast reader did not: {result:?}"
            ));
        }
        let (fast_end, slow_end) = (end(fast_state), end(slow));
        (fast_end != slow_end).then(|| format!("fast {fast_end:?}, serde {slow_end:?}"))
    }

    /// A document with non-ASCII text, cut at every byte (inside its characters too):
    /// the fast reader never panics, and where it finishes it ends as serde does. It
    /// reads the whole document itself (so the comparison is not all serde's); a cut
    /// document it hands to serde.
    #[test]
    fn every_cut_of_a_document_with_non_ascii_text_agrees_with_serde() {
        let doc = document(&[good(1), good(2)], 4).into_bytes();
        assert!(fast::read(&doc, &mut state()).is_some());
        for cut in 0..=doc.len() {
            assert_eq!(disagreement(&doc[..cut]), None, "cut at {cut}");
        }
    }

    /// A seekable input that hands out at most a few bytes a read (sizes from a seed),
    /// so reads cut items, numbers and UTF-8 characters anywhere.
    struct Choppy {
        inner: std::io::Cursor<Vec<u8>>,
        seed: u64,
    }

    impl Read for Choppy {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let n = 1 + (self.seed >> 59) as usize;
            let n = n.min(buf.len());
            self.inner.read(&mut buf[..n])
        }
    }

    impl Seek for Choppy {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    fn document(items: &[String], envelope: u8) -> String {
        let items = items.join(",");
        match envelope {
            0 => format!("[{items}]"),
            1 => format!("{{\"items\":[{items}],\"totalRows\":3}}"),
            2 => format!(
                "{{\"links\":[{{\"rel\":\"next\",\"href\":\"https://api.pjm.com/api/v1/rt_fivemin_hrl_lmps?startRow=2\"}}], \"items\" : [{items}] , \"searchSpecification\":{{\"a\":[1,2]}}}}"
            ),
            3 => format!("{{\"items\":[{items}]}} x"),
            _ => format!(" {{ \"note\" : \"\u{e9}t\u{e9} \u{20ac}\" , \"items\":[{items}] }} \n"),
        }
    }

    proptest! {
        /// Streamed through a small buffer, with reads cut anywhere, a document gives
        /// what it gives whole: the same points, skips and errors (the fast reader's
        /// or, where it gives up, serde's from the start).
        #[test]
        fn a_streamed_document_reads_as_the_whole(
            items in prop::collection::vec(prop_oneof![3 => (0usize..40).prop_map(good), 1 => item()], 0..30),
            envelope in 0u8..5,
            cut in prop::option::of(0usize..2000),
            chunk in 1usize..300,
            lookahead in 1usize..600,
            seed in any::<u64>(),
            strict in any::<bool>(),
        ) {
            let mut doc = document(&items, envelope).into_bytes();
            if let Some(cut) = cut {
                doc.truncate(cut.min(doc.len()));
            }
            let mut options = ParseOptions::default();
            if strict {
                options.mode = super::super::Mode::Strict;
            }
            let whole = format!("{:?}", parse_pjm_json_bytes(&doc, &options));
            let input = Choppy { inner: std::io::Cursor::new(doc), seed };
            let streamed = format!("{:?}", read_seekable(input, &options, chunk, lookahead));
            prop_assert_eq!(streamed, whole);
        }

        /// Documents of Data Miner's kind stream through the fast reader to the end,
        /// non-ASCII text cut by reads included (so the property above is not all
        /// serde's).
        #[test]
        fn data_miner_documents_stream_through_the_fast_reader(
            n in 0usize..60,
            envelope in prop_oneof![Just(0u8), Just(1), Just(4)],
            chunk in 1usize..300,
            seed in any::<u64>(),
        ) {
            // Names in several scripts, so buffer ends fall inside characters.
            let items: Vec<String> = (0..n)
                .map(|k| good(k).replacen('{', &format!("{{\"pnode_name\":\"Z\u{fc}rich \u{20ac}{k} \u{6771}\u{4eac}\",", ), 1))
                .collect();
            let doc = document(&items, envelope).into_bytes();
            let mut s = state();
            let input = Choppy { inner: std::io::Cursor::new(doc), seed };
            let mut stream = fast::Stream::new(input, chunk, 512);
            prop_assert_eq!(fast::read_from(&mut stream, &mut s).ok().flatten(), Some(()));
            prop_assert_eq!(s.index, n as u64);
        }
    }

    proptest! {
        /// A string's end, found a word at a time, is the first quote, backslash or
        /// control character a byte loop finds, at any length and with any bytes
        /// (UTF-8's high bytes, DEL, the bytes next to the ones looked for) around it.
        #[test]
        fn string_ends_agree_with_a_byte_loop(
            bytes in prop::collection::vec(
                prop_oneof![
                    4 => 0x20u8..0x7f,
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => 0u8..0x20,
                    1 => 0x7fu8..=0xff,
                    1 => prop::sample::select(vec![0x21u8, 0x23, 0x5b, 0x5d, 0x1f, 0x20, 0xa2, 0xdc]),
                ],
                0..40,
            ),
        ) {
            let want = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            prop_assert_eq!(fast::string_end(&bytes), want);
        }
    }

    proptest! {
        /// Numbers: the same f64, bit for bit, as serde_json's, or a give-up where
        /// serde refuses.
        #[test]
        fn fast_numbers_are_serdes(
            neg in any::<bool>(),
            int in prop_oneof!["0", "[1-9][0-9]{0,22}", "0[0-9]"],
            frac in prop::option::of("[0-9]{0,20}"),
            exp in prop::option::of(("[eE]", "[+-]?", "[0-9]{0,4}")),
        ) {
            let mut text = format!("{}{int}", if neg { "-" } else { "" });
            if let Some(f) = frac {
                text.push('.');
                text.push_str(&f);
            }
            if let Some((e, sign, digits)) = exp {
                text.push_str(&format!("{e}{sign}{digits}"));
            }
            let serde = serde_json::from_str::<JVal<'_>>(&text).ok().map(|v| match v {
                JVal::Num(x) => x.to_bits(),
                _ => u64::MAX,
            });
            prop_assert_eq!(fast::number(&text).map(f64::to_bits), serde, "{}", text);
        }
    }

    /// A key learnt from one item is taken for the next only when it is the whole
    /// key: a longer key at the same place (`pnode_id` then `pnode_idx`) is read as
    /// itself, as serde reads it.
    #[test]
    fn learnt_keys_match_whole_keys_only() {
        let doc = concat!(
            r#"[{"pnode_id":1,"total_lmp_rt":2.5,"datetime_beginning_utc":"2024-07-01T00:05:00"},"#,
            r#"{"pnode_idx":7,"total_lmp_rt":3.5,"datetime_beginning_utc":"2024-07-01T00:10:00"},"#,
            r#"{"pnode_id":8,"total_lmp_rtx":9,"total_lmp_rt":4.5,"datetime_beginning_utc":"2024-07-01T00:15:00"}]"#
        );
        let mut fast_state = state();
        assert!(fast::read(doc.as_bytes(), &mut fast_state).is_some());
        let mut slow = state();
        assert!(
            drive(
                serde_json::Deserializer::from_slice(doc.as_bytes()),
                &mut slow
            )
            .is_ok()
        );
        let (fast_end, slow_end) = (end(fast_state), end(slow));
        assert!(fast_end.contains("pnode_id"), "{fast_end}"); // the second item's missing id is reported
        assert_eq!(fast_end, slow_end);
    }

    #[test]
    fn the_fast_reader_reads_what_data_miner_writes() {
        let doc = format!(
            "{{\"links\":[],\"items\":[{},{}],\"totalRows\":2}}",
            good(1),
            good(2)
        );
        let mut s = state();
        assert!(fast::read(doc.as_bytes(), &mut s).is_some());
        assert!(s.fatal.is_none() && s.index == 2);
        for odd in [
            "{\"items\":[{\"pnode_id\":\"a\\u0041\"}]}",
            "{\"items\":[{\"pnode_id\":[1]}]}",
            "{\"items\":[{\"pnode_id\":1,\"pnode_id\":2}]}",
            "{\"items\":[{\"pnode_id\":01}]}",
            "{\"items\":[]} x",
        ] {
            assert!(fast::read(odd.as_bytes(), &mut state()).is_none(), "{odd}");
        }
    }
}
