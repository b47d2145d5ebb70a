//! Sources in virtual time: no sleeps, no wall clock.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use gridflex_core::clock::{Clock, ManualClock, TokioClock};
use gridflex_signals::source::{ReplaySource, SignalSource, channel};
use gridflex_signals::{
    AlertLevel, GridSignal, RegulationKind, RegulationSample, RegulationSignal, SignalError,
};

fn fixture() -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/replay_heatwave.jsonl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    if h >= 16 {
        Utc.with_ymd_and_hms(2022, 9, 5, h, m, s).unwrap()
    } else {
        Utc.with_ymd_and_hms(2022, 9, 6, h, m, s).unwrap()
    }
}

/// Polls a future once: `Some` if it completed, `None` if it is still waiting.
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

#[tokio::test]
async fn replay_releases_each_signal_at_its_time_on_a_manual_clock() {
    let clock = ManualClock::new(t(16, 0, 0) - TimeDelta::minutes(1));
    let mut replay = ReplaySource::from_json_lines(fixture().as_slice(), clock.clone()).unwrap();
    assert_eq!(replay.remaining(), 5);

    // Not yet: the first alert is issued at 16:00.
    assert!(poll_once(replay.next_signal()).is_none());
    // Dropping the waiting call lost nothing (cancel-safe).
    assert_eq!(replay.remaining(), 5);

    clock.advance_to(t(16, 0, 0)).unwrap();
    let first = poll_once(replay.next_signal()).unwrap().unwrap().unwrap();
    let GridSignal::Alert(alert) = &first else {
        panic!("{first:?}")
    };
    assert_eq!(alert.level(), AlertLevel::Conservation);

    // The price is due at 23:00; advancing while waiting wakes it.
    let (next, ()) = tokio::join!(replay.next_signal(), async {
        clock.advance_to(t(23, 0, 0)).unwrap();
    });
    assert!(matches!(next.unwrap(), Some(GridSignal::Price(_))));

    // Jump past the rest: everything due is released at once, in file order.
    clock.advance_to(t(1, 0, 0)).unwrap();
    let mut kinds = Vec::new();
    while let Some(s) = replay.next_signal().await.unwrap() {
        kinds.push(match s {
            GridSignal::Dispatch(d) => {
                assert_eq!(d.response_time, TimeDelta::minutes(20));
                assert_eq!(d.window.end(), None);
                "dispatch"
            }
            GridSignal::Alert(a) => {
                assert_eq!(a.level(), AlertLevel::Eea3);
                "alert"
            }
            GridSignal::Regulation(_) => "regulation",
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(kinds, ["dispatch", "alert", "regulation"]);
}

#[tokio::test(start_paused = true)]
async fn paused_tokio_clock_replays_a_file_instantly_in_signal_time() {
    let clock = TokioClock::starting_at(t(0, 0, 0) - TimeDelta::days(1));
    // A boxed trait object is a clock too, so integrators can pick one at run time.
    let boxed: Box<dyn Clock> = Box::new(clock.clone());
    let mut replay = ReplaySource::from_json_lines(fixture().as_slice(), boxed).unwrap();
    let mut times = Vec::new();
    while let Some(s) = replay.next_signal().await.unwrap() {
        assert_eq!(clock.now(), s.time());
        times.push(s.time());
    }
    assert_eq!(times.len(), 5);
    assert_eq!(*times.last().unwrap(), t(0, 17, 2));
}

#[tokio::test(start_paused = true)]
async fn tokio_clock_waits_on_tokio_time() {
    // 16:00 -> 00:17:02 is 8 h 17 min 2 s of signal time, all of it on tokio's clock.
    let clock = TokioClock::starting_at(t(16, 0, 0));
    let mut replay = ReplaySource::from_json_lines(fixture().as_slice(), clock).unwrap();
    let started = tokio::time::Instant::now();
    while replay.next_signal().await.unwrap().is_some() {}
    assert_eq!(started.elapsed().as_secs(), 8 * 3600 + 17 * 60 + 2);
}

#[test]
fn bad_replay_files_fail_before_anything_is_released() {
    let clock = ManualClock::new(t(0, 0, 0));
    let text = String::from_utf8(fixture()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(0, 1);
    let swapped = lines.join("\n");
    // Line 1 (23:00) then line 2 (16:00): out of order at line 2.
    let err = ReplaySource::from_json_lines(swapped.as_bytes(), clock.clone()).unwrap_err();
    assert!(matches!(err, SignalError::OutOfOrder { .. }), "{err}");
    assert_eq!(err.location().unwrap().line, Some(2));

    let broken = text.replace("\"signal\":-0.75", "\"signal\":-1.75");
    let err = ReplaySource::from_json_lines(broken.as_bytes(), clock.clone()).unwrap_err();
    assert_eq!(err.location().unwrap().line, Some(6));
    assert!(err.to_string().contains("outside [-1, 1]"), "{err}");

    let err = ReplaySource::from_json_lines(&b"{\"type\":\"weather\"}\n"[..], clock).unwrap_err();
    assert!(err.to_string().starts_with("line 1"), "{err}");
}

#[test]
fn from_signals_checks_order() {
    let s = |secs: i64| {
        GridSignal::Regulation(RegulationSample::new(
            t(0, 0, 0) + TimeDelta::seconds(secs),
            RegulationKind::RegA,
            RegulationSignal::new(0.0).unwrap(),
        ))
    };
    let clock = ManualClock::new(t(0, 0, 0));
    assert!(ReplaySource::from_signals(vec![s(0), s(2), s(2)], clock.clone()).is_ok());
    let err = ReplaySource::from_signals(vec![s(0), s(4), s(2)], clock).unwrap_err();
    assert_eq!(err.location().unwrap().item, Some(2));
}

#[tokio::test]
async fn channel_source_orders_closes_and_reports_full() {
    let (tx, source) = channel(1);
    let mut source: Box<dyn SignalSource> = Box::new(source);
    let sample = |v: f64| {
        GridSignal::Regulation(RegulationSample::new(
            t(0, 0, 0),
            RegulationKind::RegD,
            RegulationSignal::new(v).unwrap(),
        ))
    };
    let tx2 = tx.clone();
    tx.try_send(sample(0.1)).unwrap();
    assert!(matches!(
        tx2.try_send(sample(0.2)),
        Err(SignalError::ChannelFull)
    ));
    assert_eq!(source.next_signal().await.unwrap(), Some(sample(0.1)));
    tx2.send(sample(0.2)).await.unwrap();
    drop((tx, tx2));
    assert_eq!(source.next_signal().await.unwrap(), Some(sample(0.2)));
    assert_eq!(source.next_signal().await.unwrap(), None);

    let (tx, source) = channel(0);
    drop(source);
    assert!(matches!(
        tx.send(sample(0.0)).await,
        Err(SignalError::ChannelClosed)
    ));
}
