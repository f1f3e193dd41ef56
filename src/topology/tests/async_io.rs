//! The async I/O operator on the test driver: order, the bound on calls in
//! flight, retries, and failed calls under each policy.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::topology::{AsyncOptions, AsyncRetry};

fn async_driver(options: AsyncOptions, policy: &str, live: Arc<(AtomicUsize, AtomicUsize)>) -> TopologyTestDriver {
    let mut b = Topology::builder();
    b.stream("in", Serdes::string(), Serdes::i64())
        .try_map_async_with(options, move |n: i64| {
            let live = live.clone();
            async move {
                let now = live.0.fetch_add(1, Ordering::SeqCst) + 1;
                live.1.fetch_max(now, Ordering::SeqCst);
                // Earlier records take longer: unordered results come out of order.
                tokio::time::sleep(Duration::from_millis(2 * (20 - n.rem_euclid(20)) as u64)).await;
                live.0.fetch_sub(1, Ordering::SeqCst);
                if n < 0 {
                    return Err(format!("no result for {n}"));
                }
                Ok(n * 10)
            }
        })
        .to("out", Serdes::string(), Serdes::i64());
    let config = Config::loader()
        .env(std::iter::empty::<(String, String)>())
        .default_value("application_id", APP)
        .default_value("errors.processing", policy)
        .load()
        .unwrap();
    TopologyTestDriver::with_config(b.build().unwrap(), config).unwrap().manual_commits()
}

fn run(driver: &mut TopologyTestDriver, values: impl IntoIterator<Item = i64>) -> crate::Result<Vec<i64>> {
    let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    for (i, v) in values.into_iter().enumerate() {
        driver.pipe(&input, format!("k{i}"), v, i as i64)?;
    }
    driver.commit()?;
    Ok(driver.read(&output)?.into_iter().map(|r| r.value).collect())
}

#[test]
fn ordered_results_keep_the_input_order_and_at_most_concurrency_calls_run() {
    let live = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let mut driver = async_driver(AsyncOptions::ordered(4, Duration::from_secs(5)), "fail", live.clone());
    let out = run(&mut driver, 0..20).unwrap();
    assert_eq!(out, (0..20).map(|n| n * 10).collect::<Vec<_>>());
    let most = live.1.load(Ordering::SeqCst);
    assert!((1..=4).contains(&most), "{most} calls in flight at once");
}

#[test]
fn unordered_results_are_all_there_once() {
    let live = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let mut driver = async_driver(AsyncOptions::unordered(8, Duration::from_secs(5)), "fail", live.clone());
    let mut out = run(&mut driver, 0..20).unwrap();
    out.sort_unstable();
    assert_eq!(out, (0..20).map(|n| n * 10).collect::<Vec<_>>());
    assert!(live.1.load(Ordering::SeqCst) <= 8);
}

#[test]
fn a_call_failing_after_its_retries_is_dead_lettered_with_its_input() {
    let live = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let options = AsyncOptions::ordered(4, Duration::from_secs(5)).retry(AsyncRetry::fixed(2, Duration::ZERO));
    let mut driver = async_driver(options, "dead_letter", live);
    let out = run(&mut driver, [1, -2, 3]).unwrap();
    assert_eq!(out, [10, 30]);
    let dead = driver.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(&b"k1"[..]));
    assert_eq!(dead[0].value.as_deref(), Some(&(-2i64).to_be_bytes()[..]));
    let message = dead[0].headers.iter().find(|(k, _)| k == "rivulet.error.message").unwrap().1.clone().unwrap();
    let message = String::from_utf8(message).unwrap();
    assert!(message.contains("no result for -2 (after 2 retries)"), "{message}");
}

#[test]
fn a_timed_out_call_is_skipped_under_skip() {
    let mut b = Topology::builder();
    b.stream("in", Serdes::string(), Serdes::i64())
        .map_async(2, Duration::from_millis(20), |n: i64| async move {
            if n == 1 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            n
        })
        .to("out", Serdes::string(), Serdes::i64());
    let config = Config::loader()
        .env(std::iter::empty::<(String, String)>())
        .default_value("application_id", APP)
        .default_value("errors.processing", "skip")
        .load()
        .unwrap();
    let mut driver = TopologyTestDriver::with_config(b.build().unwrap(), config).unwrap();
    assert_eq!(run(&mut driver, [0, 1, 2]).unwrap(), [0, 2]);
}

#[test]
fn under_fail_a_failed_call_stops_naming_its_record() {
    let live = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let mut driver = async_driver(AsyncOptions::ordered(4, Duration::from_secs(5)), "fail", live);
    let err = run(&mut driver, [1, -2, 3]).unwrap_err().to_string();
    assert!(err.contains("the call for the record at topic in partition 0 offset 1"), "{err}");
    assert!(err.contains("no result for -2"), "{err}");
}

#[test]
fn a_window_after_map_async_gets_every_result_the_watermark_waits_for_calls_in_flight() {
    let mut b = Topology::builder();
    b.stream("in", Serdes::string(), Serdes::i64())
        .map_async(8, Duration::from_secs(5), |n: i64| async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            n
        })
        .group_by_key()
        .windowed_by(crate::topology::Windows::tumbling(Duration::from_secs(10)).grace(Duration::ZERO))
        .count("per-10s");
    let mut driver = driver(b.build().unwrap()).manual_commits();
    let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
    // The first call is still in flight when the later records move the
    // source's time past its window.
    for (n, ts) in [(0, 1_000), (1, 25_000), (2, 40_000)] {
        driver.pipe(&input, "a".to_string(), n, ts).unwrap();
    }
    driver.commit().unwrap();
    assert_eq!(driver.late_records(), 0);
}

#[test]
fn a_panicking_call_goes_to_the_policy_without_its_value() {
    let mut b = Topology::builder();
    b.stream("in", Serdes::string(), Serdes::i64())
        .map_async(4, Duration::from_secs(5), |n: i64| async move {
            assert!(n != 1, "no call for 1");
            n
        })
        .to("out", Serdes::string(), Serdes::i64());
    let config = Config::loader()
        .env(std::iter::empty::<(String, String)>())
        .default_value("application_id", APP)
        .default_value("errors.processing", "dead_letter")
        .load()
        .unwrap();
    let mut driver = TopologyTestDriver::with_config(b.build().unwrap(), config).unwrap().manual_commits();
    assert_eq!(run(&mut driver, [0, 1, 2]).unwrap(), [0, 2]);
    let dead = driver.dead_letters();
    assert_eq!((dead.len(), dead[0].key.as_deref(), dead[0].value.as_deref()), (1, Some(&b"k1"[..]), None));
}

#[test]
fn at_the_end_of_a_bounded_input_windows_close_after_the_calls_in_flight() {
    let mut b = Topology::builder();
    b.stream("in", Serdes::string(), Serdes::i64())
        .map_async(8, Duration::from_secs(5), |n: i64| async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            n
        })
        .group_by_key()
        .windowed_by(crate::topology::Windows::tumbling(Duration::from_secs(10)).grace(Duration::ZERO))
        .emit_final()
        .count("per-10s")
        .map(|w, n| (format!("{}@{}", w.key, w.start), n))
        .to("out", Serdes::string(), Serdes::i64());
    let mut driver = driver(b.build().unwrap()).manual_commits();
    let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
    let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
    for (n, ts) in [(0, 1_000), (1, 2_000), (2, 15_000)] {
        driver.pipe(&input, "a".to_string(), n, ts).unwrap();
    }
    driver.end_input().unwrap();
    driver.commit().unwrap();
    assert_eq!(driver.read_key_values(&output).unwrap(), [("a@0".to_string(), 2), ("a@10000".to_string(), 1)]);
    assert_eq!(driver.late_records(), 0);
}
