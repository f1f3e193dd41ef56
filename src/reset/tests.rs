#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::prelude::*;

#[test]
fn datetimes_are_rfc_3339_with_a_zone() {
    assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
    assert_eq!(parse_datetime("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
    assert_eq!(parse_datetime("2024-02-29T23:59:59.999Z"), Ok(1_709_251_199_999));
    assert_eq!(parse_datetime("2024-02-29 23:59:59.999999z"), Ok(1_709_251_199_999));
    assert_eq!(parse_datetime("1969-12-31T23:00:00-01:00"), Ok(0));
    for bad in ["", "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01", "yesterday"] {
        let err = parse_datetime(bad).unwrap_err();
        assert!(err.contains("RFC 3339"), "{bad}: {err}");
    }
}

#[test]
fn durations_are_iso_8601_or_short() {
    let ms = Duration::from_millis;
    assert_eq!(parse_duration("PT15M"), Ok(ms(900_000)));
    assert_eq!(parse_duration("pt1h30m"), Ok(ms(5_400_000)));
    assert_eq!(parse_duration("P2D"), Ok(ms(172_800_000)));
    assert_eq!(parse_duration("500ms"), Ok(ms(500)));
    assert_eq!(parse_duration("2d12h"), Ok(ms(216_000_000)));
    for bad in ["", "P", "PT", "P1H", "1", "1 hour", "h", "-1h", "P1M"] {
        assert!(parse_duration(bad).is_err(), "{bad} was accepted: {:?}", parse_duration(bad));
    }
}

#[test]
fn the_plan_prints_every_step() {
    let plan = ResetPlan {
        application_id: "app".into(),
        to: ResetTo::Offset(5),
        partitions: vec![
            PartitionReset { topic: "in".into(), partition: 0, committed: Some(9), offset: 5, note: None },
            PartitionReset {
                topic: "in".into(),
                partition: 1,
                committed: None,
                offset: 3,
                note: Some("5 is past the end: the end".into()),
            },
        ],
        missing_topics: vec!["gone".into()],
        delete_topics: vec!["app-s-changelog".into(), "app-s-repartition".into()],
        state_dir: "/state/app".into(),
        state_dir_exists: true,
    };
    let text = plan.to_string();
    for line in [
        "Reset of application `app` (consumer group `app`) to offset 5:",
        "    in partition 0: 9 -> 5",
        "    in partition 1: none -> 3 (5 is past the end: the end)",
        "  source topic gone does not exist: skipped",
        "  internal topics to delete: app-s-changelog, app-s-repartition",
        "  local state to delete: /state/app",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
}

#[test]
fn offsets_are_kept_within_the_records() {
    assert_eq!(clamp(5, 2, 10), (5, None));
    assert_eq!(clamp(1, 2, 10).0, 2);
    assert_eq!(clamp(11, 2, 10).0, 10);
}

#[test]
fn internal_topics_are_the_named_ones_and_leftovers_but_never_user_topics() {
    let mut b = Topology::builder();
    b.stream("lines", Serdes::string(), Serdes::string())
        .group_by(|_, v: &String| v.clone(), Serdes::string())
        .count("counts")
        .to_stream()
        .to("app-out-changelog", Serdes::string(), Serdes::i64());
    let topology = b.build().unwrap();
    let existing: Vec<String> = [
        "app-counts-changelog",
        "app-counts-repartition",
        "app-old-store-changelog",
        "app-out-changelog",
        "app-dlq",
        "app-",
        "other-counts-changelog",
        "lines",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        internal_topics_to_delete(&topology, "app", existing.iter()),
        ["app-counts-changelog", "app-counts-repartition", "app-old-store-changelog"]
    );
}
