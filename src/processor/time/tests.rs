use super::*;

fn topic(t: &str) -> Arc<str> {
    Arc::from(t)
}

#[test]
fn the_watermark_is_the_minimum_over_partitions_with_data_minus_out_of_orderness() {
    let mut t = TaskTime::default();
    let a = t.slot(&topic("a"), 10, None, 0);
    assert!(t.observe(a, 100, 0));
    assert_eq!(t.watermark(), 90);
    // A second partition with data holds it back; never decreases.
    let b = t.slot(&topic("b"), 0, None, 0);
    assert!(!t.observe(b, 50, 0));
    assert_eq!(t.watermark(), 90);
    assert!(!t.observe(a, 200, 0));
    assert!(t.observe(b, 120, 0));
    assert_eq!(t.watermark(), 120);
    // Out of order records do not move it.
    assert!(!t.observe(a, 150, 0));
    assert_eq!(t.watermark(), 120);
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_back() {
    let mut t = TaskTime::default();
    let a = t.slot(&topic("a"), 0, Some(1_000), 0);
    let b = t.slot(&topic("b"), 0, Some(1_000), 0);
    t.observe(a, 100, 0);
    t.observe(b, 500, 500);
    assert_eq!(t.watermark(), 100);
    assert!(!t.tick(999));
    assert!(t.tick(1_000));
    assert_eq!(t.watermark(), 500);
    // Active again: it counts, but the watermark does not go back.
    t.observe(a, 200, 1_100);
    assert_eq!(t.watermark(), 500);
    // Every partition idle: the watermark stays.
    assert!(!t.tick(5_000));
    assert_eq!(t.watermark(), 500);
}

#[test]
fn a_repartition_partition_follows_the_slowest_upstream_task() {
    let mut t = TaskTime::default();
    let r = t.marker_slot(&topic("app-x-repartition"));
    // Records alone do not move it.
    assert!(!t.observe(r, 5_000, 0));
    assert!(!t.observe_mark(r, 0, 2, Mark::At(1_000), 0));
    assert_eq!(t.watermark(), i64::MIN);
    assert!(t.observe_mark(r, 1, 2, Mark::At(700), 0));
    assert_eq!(t.watermark(), 700);
    assert!(t.observe_mark(r, 1, 2, Mark::At(3_000), 0));
    assert_eq!(t.watermark(), 1_000);
    let mut buf = Vec::new();
    encode_mark(3, 4, Mark::At(-5), &mut buf);
    assert_eq!(decode_mark(&buf), Some((3, 4, Mark::At(-5))));
    encode_mark(3, 4, Mark::Idle, &mut buf);
    assert_eq!(decode_mark(&buf), Some((3, 4, Mark::Idle)));
    assert_eq!(decode_mark(b"3/4"), None);
    assert_eq!(decode_mark(b"3/4/soon"), None);
}

#[test]
fn idle_upstream_tasks_are_left_out_until_they_send_again() {
    let mut t = TaskTime::default();
    let r = t.marker_slot(&topic("app-x-repartition"));
    // Upstream task 1 never had data and says it is idle: task 0 alone
    // moves the watermark.
    assert!(!t.observe_mark(r, 1, 2, Mark::Idle, 0));
    assert!(t.observe_mark(r, 0, 2, Mark::At(1_000), 0));
    assert_eq!(t.watermark(), 1_000);
    assert!(!t.is_idle(0));
    // Task 1 sends again: it counts, from where it is.
    assert!(!t.observe_mark(r, 1, 2, Mark::At(400), 0));
    assert!(!t.observe_mark(r, 0, 2, Mark::At(2_000), 0));
    assert_eq!(t.watermark(), 1_000);
    assert!(t.observe_mark(r, 1, 2, Mark::At(1_500), 0));
    assert_eq!(t.watermark(), 1_500);
    // Both idle: the partition is idle, and so is the task; the
    // watermark stays.
    t.observe_mark(r, 0, 2, Mark::Idle, 0);
    t.observe_mark(r, 1, 2, Mark::Idle, 0);
    assert!(t.is_idle(0));
    assert_eq!(t.watermark(), 1_500);
}

#[test]
fn a_task_whose_partitions_had_no_data_for_idle_after_is_idle() {
    let mut t = TaskTime::default();
    let a = t.slot(&topic("a"), 0, Some(1_000), 100);
    assert!(!t.is_idle(1_099));
    assert!(t.is_idle(1_100));
    t.observe(a, 5, 1_200);
    assert!(!t.is_idle(2_199));
    assert!(t.is_idle(2_200));
    assert_eq!(t.idle_repeat_ms(), 1_000);
    // A source without idle_after never makes its task idle.
    let mut t = TaskTime::default();
    t.slot(&topic("a"), 0, None, 0);
    assert!(!t.is_idle(i64::MAX));
}

#[test]
fn a_reset_forgets_what_was_seen_but_keeps_the_slots() {
    let mut t = TaskTime::default();
    let a = t.slot(&topic("a"), 0, None, 0);
    t.observe(a, 500, 0);
    t.reset(0);
    assert_eq!(t.watermark(), i64::MIN);
    assert_eq!(t.slot(&topic("a"), 0, None, 0), a);
    assert!(t.observe(a, 100, 0));
    assert_eq!(t.watermark(), 100);
}

#[test]
fn a_restored_watermark_is_a_floor() {
    let mut t = TaskTime::default();
    t.restore(1_000);
    let a = t.slot(&topic("a"), 0, None, 0);
    assert!(!t.observe(a, 10, 0));
    assert_eq!(t.watermark(), 1_000);
    assert!(t.observe(a, 1_001, 0));
}

#[test]
fn async_calls_in_flight_hold_the_watermark_below_their_oldest_input_and_keep_the_task_busy() {
    let mut t = TaskTime::default();
    let a = t.slot(&topic("a"), 0, Some(1_000), 0);
    assert!(t.observe(a, 100, 0));
    assert!(!t.hold(7, Some(100), 0));
    // Later records move the partition's time, not the watermark.
    assert!(!t.observe(a, 300, 0));
    assert_eq!(t.watermark(), 100);
    assert!(!t.is_idle(5_000));
    // The oldest result forwarded: up to just below the next in flight.
    assert!(t.hold(7, Some(250), 0));
    assert_eq!(t.watermark(), 249);
    assert!(t.hold(7, None, 0));
    assert_eq!(t.watermark(), 300);
    assert!(t.is_idle(5_000));
    // A reset (abort) forgets the holds.
    t.hold(7, Some(300), 0);
    t.reset(0);
    assert!(!t.holding());
}
