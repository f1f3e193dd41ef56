#![allow(clippy::unwrap_used)]

use super::*;

fn round_trip<T: PartialEq + fmt::Debug>(serde: &impl Serde<T>, value: T) -> Vec<u8> {
    let mut buf = Vec::new();
    assert_eq!(serde.serialize(&value, &mut buf).unwrap(), Encoded::Bytes);
    assert_eq!(serde.deserialize(Some(&buf)).unwrap(), value);
    buf
}

#[test]
fn string_round_trips_and_rejects_invalid_utf8_naming_the_byte() {
    assert_eq!(round_trip(&Serdes::string(), "héllo".to_string()), "héllo".as_bytes());
    let err = Serdes::string().deserialize(Some(&[b'o', b'k', 0xff])).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8 at byte 2"), "{err}");
}

#[test]
fn integers_are_big_endian_and_length_checked() {
    assert_eq!(round_trip(&Serdes::i64(), -2i64), (-2i64).to_be_bytes());
    assert_eq!(round_trip(&Serdes::i32(), 7i32), [0, 0, 0, 7]);
    assert_eq!(round_trip(&Serdes::u32(), u32::MAX), [255; 4]);
    assert_eq!(round_trip(&Serdes::u64(), 1u64), [0, 0, 0, 0, 0, 0, 0, 1]);
    let err = Serdes::i64().deserialize(Some(&[1, 2, 3])).unwrap_err();
    assert_eq!(err.to_string(), "i64: expected 8 bytes (big-endian), got 3");
}

#[test]
fn json_round_trips_and_reports_parse_errors() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct View {
        page: String,
        ms: u64,
    }
    let buf = round_trip(&Serdes::json::<View>(), View { page: "/a".into(), ms: 3 });
    assert_eq!(buf, br#"{"page":"/a","ms":3}"#);
    let err = Serdes::json::<View>().deserialize(Some(b"{\"page\":1}")).unwrap_err();
    assert!(err.serde.starts_with("json<") && err.reason.contains("invalid type"), "{err}");
}

#[test]
fn null_is_an_error_except_for_unit_and_optional() {
    let err = Serdes::string().deserialize(None).unwrap_err();
    assert!(err.reason.contains("Serdes::optional"), "{err}");
    assert!(Serdes::i64().deserialize(None).is_err());
    assert_eq!(Serdes::unit().deserialize(None), Ok(()));
    let mut buf = Vec::new();
    assert_eq!(Serdes::unit().serialize(&(), &mut buf), Ok(Encoded::Null));
    let opt = Serdes::optional(Serdes::string());
    assert_eq!(opt.deserialize(None), Ok(None));
    assert_eq!(opt.serialize(&None, &mut buf), Ok(Encoded::Null));
    assert_eq!(round_trip(&opt, Some("x".to_string())), b"x");
    assert_eq!(opt.name(), "optional<string>");
}

#[test]
fn bytes_pass_through_unchanged() {
    assert_eq!(round_trip(&Serdes::bytes(), vec![0, 159, 146, 150]), [0, 159, 146, 150]);
}
