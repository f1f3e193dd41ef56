//! The record path, without Kafka: sinks and stateless operators.

use super::*;

#[test]
fn sinks_write_keys_and_values_with_their_serdes_and_unit_as_null() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::unit(), Serdes::string());
    s.to("out", Serdes::unit(), Serdes::string());
    s.map_values(|v: String| v.len() as i64).to("lengths", Serdes::unit(), Serdes::i64());
    let t = b.build().unwrap();
    let mut d = driver(t);
    push_raw(&mut d, "in", None, Some(b"abc"), 1, Headers::new()).unwrap();
    let expected = vec![
        Sent { topic: "lengths".into(), key: None, value: Some(3i64.to_be_bytes().to_vec()) },
        sent("out", None, Some("abc")),
    ];
    assert_eq!(all_sent(&d), expected);
}

#[test]
fn to_dynamic_writes_each_record_to_the_topic_it_names() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    s.to_dynamic(|k: &String, _| format!("out-{k}"), Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "a", "1").unwrap();
    push(&mut d, "in", "b", "2").unwrap();
    assert_eq!(all_sent(&d), vec![sent("out-a", Some("a"), Some("1")), sent("out-b", Some("b"), Some("2"))]);
}

#[test]
fn a_value_the_sink_cannot_serialize_is_a_serde_error_naming_the_topic() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    s.to("out", Serdes::string(), Unencodable);
    let t = b.build().unwrap();
    let mut d = driver(t);
    let e = push(&mut d, "in", "a", "1").unwrap_err();
    assert!(matches!(&e, ProcessError::Serde { what, .. } if what == "value for topic out"), "{e:?}");
    assert!(e.is_record_error());
    assert_eq!(e.to_string(), "value for topic out: unencodable: refuses every value");
}

#[test]
fn filter_keeps_only_the_records_its_predicate_holds_for() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.filter(|_, v: &String| v.starts_with("keep")));
    let t = b.build().unwrap();
    let mut d = driver(t);
    for (k, v) in [("a", "keep1"), ("b", "drop"), ("c", "keep2")] {
        push(&mut d, "in", k, v).unwrap();
    }
    assert_eq!(pairs(&seen), strings(&[("a", "keep1"), ("c", "keep2")]));
}

#[test]
fn map_replaces_key_and_value_and_keeps_timestamp_and_headers() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.map(|k: String, v: String| (v.len() as u64, format!("{k}:{v}"))));
    let t = b.build().unwrap();
    let mut d = driver(t);
    let headers: Headers = vec![("h".into(), Some(b"v".to_vec()))];
    push_raw(&mut d, "in", Some(b"k"), Some(b"abc"), 42, headers.clone()).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(*seen, vec![Record { key: 3u64, value: "k:abc".to_string(), timestamp: 42, headers }]);
}

#[test]
fn map_values_changes_only_the_value() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.map_values(|v: String| v.len()));
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "k", "four").unwrap();
    assert_eq!(pairs(&seen), vec![("k".to_string(), 4usize)]);
}

#[test]
fn flat_map_emits_zero_or_more_records_per_input() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.flat_map(|k: String, v: String| {
        v.split(',').filter(|p| !p.is_empty()).map(|p| (format!("{k}{p}"), p.to_string())).collect::<Vec<_>>()
    }));
    let t = b.build().unwrap();
    let mut d = driver(t);
    push_raw(&mut d, "in", Some(b"k"), Some(b"x,y"), 7, vec![("h".into(), None)]).unwrap();
    push(&mut d, "in", "e", "").unwrap();
    push(&mut d, "in", "z", "w").unwrap();
    assert_eq!(pairs(&seen), strings(&[("kx", "x"), ("ky", "y"), ("zw", "w")]));
    let seen = seen.lock().unwrap();
    assert!(
        seen[..2].iter().all(|r| r.timestamp == 7 && r.headers == vec![("h".to_string(), None)]),
        "each output keeps the input's timestamp and headers: {seen:?}"
    );
}

#[test]
fn flat_map_values_keeps_the_key_for_every_value() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.flat_map_values(|v: String| v.split_whitespace().map(str::to_string).collect::<Vec<_>>()));
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "k", "a b c").unwrap();
    push(&mut d, "in", "e", "   ").unwrap();
    assert_eq!(pairs(&seen), strings(&[("k", "a"), ("k", "b"), ("k", "c")]));
}

#[test]
fn peek_sees_each_record_and_passes_it_on_unchanged() {
    let peeked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let p = peeked.clone();
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.peek(move |k: &String, v: &String| p.lock().unwrap().push((k.clone(), v.clone()))));
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "a", "1").unwrap();
    push(&mut d, "in", "b", "2").unwrap();
    let expected = strings(&[("a", "1"), ("b", "2")]);
    assert_eq!(*peeked.lock().unwrap(), expected);
    assert_eq!(pairs(&seen), expected);
}

#[test]
fn select_key_changes_only_the_key() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let seen = capture(&s.select_key(|k: &String, v: &String| format!("{v}/{k}")));
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "k", "v").unwrap();
    assert_eq!(pairs(&seen), strings(&[("v/k", "v")]));
}

#[test]
fn a_stream_feeding_several_operators_gives_each_every_record() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let first = capture(&s);
    let second = capture(&s.map_values(|v: String| v + "!"));
    s.to("out", Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "a", "1").unwrap();
    assert_eq!(pairs(&first), strings(&[("a", "1")]));
    assert_eq!(pairs(&second), strings(&[("a", "1!")]));
    assert_eq!(all_sent(&d), vec![sent("out", Some("a"), Some("1"))]);
}

#[test]
fn split_sends_each_record_to_the_first_matching_branch_only() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let branches = s
        .split()
        .branch("small", |_, v: &String| v.len() < 3)
        .branch("medium", |_, v: &String| v.len() < 6)
        .default_branch("large");
    let small = capture(&branches.get("small"));
    let medium = capture(&branches.get("medium"));
    let large = capture(&branches.get("large"));
    branches.get("medium").to("medium-out", Serdes::string(), Serdes::string());
    let t = b.build().unwrap();
    let mut d = driver(t);
    for (k, v) in [("1", "ab"), ("2", "abcd"), ("3", "abcdefgh"), ("4", "")] {
        push(&mut d, "in", k, v).unwrap();
    }
    assert_eq!(pairs(&small), strings(&[("1", "ab"), ("4", "")]), "small matches medium's predicate too");
    assert_eq!(pairs(&medium), strings(&[("2", "abcd")]));
    assert_eq!(pairs(&large), strings(&[("3", "abcdefgh")]));
    assert_eq!(all_sent(&d), vec![sent("medium-out", Some("2"), Some("abcd"))]);
}

#[test]
fn split_without_a_default_branch_drops_records_no_branch_takes() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::string());
    let input = capture(&s);
    let branches = s.split().branch("a", |_, v: &String| v.starts_with('a')).finish();
    let a = capture(&branches.get("a"));
    let t = b.build().unwrap();
    let mut d = driver(t);
    push(&mut d, "in", "1", "apple").unwrap();
    push(&mut d, "in", "2", "banana").unwrap();
    assert_eq!(input.lock().unwrap().len(), 2);
    assert_eq!(pairs(&a), strings(&[("1", "apple")]));
}

#[test]
fn merge_passes_the_records_of_both_inputs() {
    let mut b = Topology::builder();
    let x = b.stream("x", Serdes::string(), Serdes::string());
    let y = b.stream("y", Serdes::string(), Serdes::string());
    let seen = capture(&x.merge(&y));
    let t = b.build().unwrap();
    assert_eq!(t.subtopologies.len(), 1);
    let mut d = driver(t);
    push(&mut d, "x", "a", "from-x").unwrap();
    push(&mut d, "y", "b", "from-y").unwrap();
    push(&mut d, "x", "c", "from-x").unwrap();
    assert_eq!(pairs(&seen), strings(&[("a", "from-x"), ("b", "from-y"), ("c", "from-x")]));
}

#[test]
fn merge_of_two_filters_of_one_stream_passes_each_record_once() {
    let mut b = Topology::builder();
    let s = b.stream("in", Serdes::string(), Serdes::i64());
    let even = s.filter(|_, v: &i64| v % 2 == 0);
    let odd = s.filter(|_, v: &i64| v % 2 != 0);
    let seen = capture(&even.merge(&odd));
    let t = b.build().unwrap();
    let mut d = driver(t);
    for n in 0..4i64 {
        push_raw(&mut d, "in", Some(b"k"), Some(&n.to_be_bytes()), 1, Headers::new()).unwrap();
    }
    let values: Vec<i64> = pairs(&seen).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, vec![0, 1, 2, 3]);
}
