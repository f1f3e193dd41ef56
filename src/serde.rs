//! Serdes: how keys and values become bytes and back.
//!
//! A [`Serde<T>`] encodes into a caller-owned buffer (the record path reuses
//! one buffer per task instead of allocating per record) and decodes from a
//! Kafka key or value, which may be null (`None`). Most serdes reject null
//! with an error; wrap one in [`Serdes::optional`] to map null to `None`,
//! or use [`Serdes::unit`] for keyless records.
//!
//! Built in: [`Serdes::string`], [`Serdes::bytes`], [`Serdes::json`],
//! big-endian integers ([`Serdes::i32`], [`Serdes::i64`], [`Serdes::u32`],
//! [`Serdes::u64`]) and [`Serdes::unit`].
//!
//! ```
//! use rivulet::serde::{Encoded, Serde, Serdes};
//! let serde = Serdes::i64();
//! let mut buf = Vec::new();
//! assert_eq!(serde.serialize(&42, &mut buf).unwrap(), Encoded::Bytes);
//! assert_eq!(buf, 42i64.to_be_bytes());
//! assert_eq!(serde.deserialize(Some(&buf)).unwrap(), 42);
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A key or value that could not be encoded or decoded: which serde, and
/// what is wrong. It displays as `<serde>: <reason>`.
///
/// ```
/// use rivulet::serde::{Serde, Serdes};
/// let err = Serdes::i32().deserialize(Some(b"abc")).unwrap_err();
/// assert_eq!(err.serde, "i32");
/// assert_eq!(err.to_string(), "i32: expected 4 bytes (big-endian), got 3");
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{serde}: {reason}")]
pub struct SerdeError {
    /// The serde's name, as [`Serde::name`] gives it.
    pub serde: String,
    /// What is wrong with the bytes or the value.
    pub reason: String,
}

impl SerdeError {
    /// An error of the serde named `serde`: what a custom [`Serde`]
    /// returns for bytes or a value it cannot handle.
    ///
    /// ```
    /// use rivulet::serde::SerdeError;
    /// let err = SerdeError::new("csv", "3 fields, expected 4");
    /// assert_eq!(err.to_string(), "csv: 3 fields, expected 4");
    /// ```
    pub fn new(serde: impl Into<String>, reason: impl Into<String>) -> Self {
        SerdeError { serde: serde.into(), reason: reason.into() }
    }

    fn null(serde: &str) -> Self {
        SerdeError::new(
            serde,
            "got a null (absent) key or value; use Serdes::optional(..) or Serdes::unit() where null is expected",
        )
    }
}

/// Whether [`Serde::serialize`] wrote bytes or means a Kafka null.
///
/// ```
/// use rivulet::serde::{Encoded, Serde, Serdes};
/// let mut buf = Vec::new();
/// assert_eq!(Serdes::string().serialize(&"hi".to_string(), &mut buf), Ok(Encoded::Bytes));
/// assert_eq!(buf, b"hi");
/// // A tombstone: no bytes, a null value in Kafka.
/// buf.clear();
/// assert_eq!(Serdes::optional(Serdes::i64()).serialize(&None, &mut buf), Ok(Encoded::Null));
/// assert!(buf.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// The bytes appended to the buffer are the encoding.
    Bytes,
    /// The value is a Kafka null (no key, or a tombstone value).
    Null,
}

/// Encodes and decodes values of `T`. The built-in serdes come from
/// [`Serdes`]; implement this trait for a format of your own.
///
/// ```
/// use rivulet::serde::{Encoded, Serde, SerdeError};
///
/// /// A point as `x,y` text.
/// struct PointSerde;
/// impl Serde<(i32, i32)> for PointSerde {
///     fn serialize(&self, p: &(i32, i32), out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
///         out.extend_from_slice(format!("{},{}", p.0, p.1).as_bytes());
///         Ok(Encoded::Bytes)
///     }
///     fn deserialize(&self, bytes: Option<&[u8]>) -> Result<(i32, i32), SerdeError> {
///         let text = std::str::from_utf8(bytes.unwrap_or_default()).map_err(|e| SerdeError::new("point", e.to_string()))?;
///         let (x, y) = text.split_once(',').ok_or_else(|| SerdeError::new("point", "no comma"))?;
///         let int = |s: &str| s.parse().map_err(|_| SerdeError::new("point", format!("{s:?} is not an integer")));
///         Ok((int(x)?, int(y)?))
///     }
///     fn name(&self) -> String { "point".into() }
/// }
/// assert_eq!(PointSerde.deserialize(Some(b"3,-4")), Ok((3, -4)));
/// assert_eq!(PointSerde.deserialize(Some(b"3")).unwrap_err().to_string(), "point: no comma");
/// ```
pub trait Serde<T>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `out` (which the caller cleared),
    /// and says whether it is bytes or a Kafka null.
    ///
    /// ```
    /// use rivulet::serde::{Encoded, Serde, Serdes};
    /// let mut out = Vec::new();
    /// assert_eq!(Serdes::u32().serialize(&258, &mut out), Ok(Encoded::Bytes));
    /// assert_eq!(out, [0, 0, 1, 2]);
    /// ```
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<Encoded, SerdeError>;

    /// Decodes a Kafka key or value; `None` is a Kafka null.
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// assert_eq!(Serdes::string().deserialize(Some(b"abc")), Ok("abc".to_string()));
    /// // Null is an error, except for Serdes::optional and Serdes::unit.
    /// assert!(Serdes::string().deserialize(None).is_err());
    /// ```
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError>;

    /// A short name for `Topology::describe()` and errors, such as `string`
    /// or `json<orders::Order>`.
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// assert_eq!(Serdes::optional(Serdes::i64()).name(), "optional<i64>");
    /// assert_eq!(Serdes::windowed(Serdes::string()).name(), "windowed<string>");
    /// ```
    fn name(&self) -> String;
}

/// Constructors of the built-in serdes, passed wherever a topology reads or
/// writes a topic or declares a store.
///
/// ```
/// use rivulet::prelude::*;
/// let mut b = Topology::builder();
/// b.stream("readings", Serdes::string(), Serdes::i64())
///     .filter(|_, v: &i64| *v > 100)
///     .to("high-readings", Serdes::string(), Serdes::i64());
/// assert!(b.build().is_ok());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Serdes;

impl Serdes {
    /// UTF-8 text; bytes that are not UTF-8 fail to decode.
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// let mut buf = Vec::new();
    /// Serdes::string().serialize(&"héllo".to_string(), &mut buf).unwrap();
    /// assert_eq!(Serdes::string().deserialize(Some(&buf)), Ok("héllo".to_string()));
    /// let err = Serdes::string().deserialize(Some(&[b'o', b'k', 0xff])).unwrap_err();
    /// assert_eq!(err.reason, "not valid UTF-8 at byte 2");
    /// ```
    pub fn string() -> StringSerde {
        StringSerde
    }
    /// Raw bytes, unchanged.
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// let mut buf = Vec::new();
    /// Serdes::bytes().serialize(&vec![0, 159, 146], &mut buf).unwrap();
    /// assert_eq!(buf, [0, 159, 146]);
    /// assert_eq!(Serdes::bytes().deserialize(Some(&buf)), Ok(vec![0, 159, 146]));
    /// ```
    pub fn bytes() -> BytesSerde {
        BytesSerde
    }
    /// JSON through serde, for any type that derives `Serialize` and
    /// `Deserialize`.
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// struct View { page: String, ms: u64 }
    /// let serde = Serdes::json::<View>();
    /// let mut buf = Vec::new();
    /// serde.serialize(&View { page: "/a".into(), ms: 3 }, &mut buf).unwrap();
    /// assert_eq!(buf, br#"{"page":"/a","ms":3}"#);
    /// assert_eq!(serde.deserialize(Some(&buf)), Ok(View { page: "/a".into(), ms: 3 }));
    /// assert!(serde.deserialize(Some(b"{\"page\":1}")).is_err());
    /// ```
    pub fn json<T: Serialize + DeserializeOwned + Send + Sync + 'static>() -> JsonSerde<T> {
        JsonSerde(PhantomData)
    }
    /// 4-byte big-endian signed integers (Kafka's IntegerSerializer).
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// let mut buf = Vec::new();
    /// Serdes::i32().serialize(&-2, &mut buf).unwrap();
    /// assert_eq!(buf, [0xff, 0xff, 0xff, 0xfe]);
    /// assert_eq!(Serdes::i32().deserialize(Some(&buf)), Ok(-2));
    /// ```
    pub fn i32() -> IntSerde<i32> {
        IntSerde(PhantomData)
    }
    /// 8-byte big-endian signed integers (Kafka's LongSerializer): what
    /// [`count`](crate::topology::KGroupedStream::count) produces.
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// let mut buf = Vec::new();
    /// Serdes::i64().serialize(&42, &mut buf).unwrap();
    /// assert_eq!(buf, 42i64.to_be_bytes());
    /// let err = Serdes::i64().deserialize(Some(&[1, 2, 3])).unwrap_err();
    /// assert_eq!(err.to_string(), "i64: expected 8 bytes (big-endian), got 3");
    /// ```
    pub fn i64() -> IntSerde<i64> {
        IntSerde(PhantomData)
    }
    /// 4-byte big-endian unsigned integers.
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// let mut buf = Vec::new();
    /// Serdes::u32().serialize(&u32::MAX, &mut buf).unwrap();
    /// assert_eq!(buf, [255; 4]);
    /// assert_eq!(Serdes::u32().deserialize(Some(&buf)), Ok(u32::MAX));
    /// ```
    pub fn u32() -> IntSerde<u32> {
        IntSerde(PhantomData)
    }
    /// 8-byte big-endian unsigned integers.
    ///
    /// ```
    /// use rivulet::serde::{Serde, Serdes};
    /// let mut buf = Vec::new();
    /// Serdes::u64().serialize(&1, &mut buf).unwrap();
    /// assert_eq!(buf, [0, 0, 0, 0, 0, 0, 0, 1]);
    /// assert_eq!(Serdes::u64().deserialize(Some(&buf)), Ok(1));
    /// ```
    pub fn u64() -> IntSerde<u64> {
        IntSerde(PhantomData)
    }
    /// `()`: always a Kafka null; decodes anything (keyless records).
    ///
    /// ```
    /// use rivulet::serde::{Encoded, Serde, Serdes};
    /// let mut buf = Vec::new();
    /// assert_eq!(Serdes::unit().serialize(&(), &mut buf), Ok(Encoded::Null));
    /// assert_eq!(Serdes::unit().deserialize(None), Ok(()));
    /// assert_eq!(Serdes::unit().deserialize(Some(b"any key")), Ok(()));
    /// ```
    pub fn unit() -> UnitSerde {
        UnitSerde
    }
    /// `Option<T>` over `inner`: `None` is a Kafka null (a tombstone value).
    ///
    /// ```
    /// use rivulet::serde::{Encoded, Serde, Serdes};
    /// let serde = Serdes::optional(Serdes::string());
    /// let mut buf = Vec::new();
    /// assert_eq!(serde.serialize(&None, &mut buf), Ok(Encoded::Null));
    /// assert_eq!(serde.deserialize(None), Ok(None));
    /// assert_eq!(serde.deserialize(Some(b"x")), Ok(Some("x".to_string())));
    /// ```
    pub fn optional<T, S: Serde<T>>(inner: S) -> OptionalSerde<T, S> {
        OptionalSerde { inner, _t: PhantomData }
    }
    /// A windowed key ([`Windowed`](crate::record::Windowed)): the key
    /// as `inner` writes it, then the window start and end as 8-byte
    /// big-endian integers.
    ///
    /// ```
    /// use rivulet::record::Windowed;
    /// use rivulet::serde::{Serde, Serdes};
    /// let serde = Serdes::windowed(Serdes::string());
    /// let key = Windowed { key: "a".to_string(), start: 60_000, end: 120_000 };
    /// let mut buf = Vec::new();
    /// serde.serialize(&key, &mut buf).unwrap();
    /// assert_eq!(buf.len(), 1 + 8 + 8);
    /// assert_eq!(serde.deserialize(Some(&buf)), Ok(key));
    /// ```
    pub fn windowed<K, S: Serde<K>>(inner: S) -> WindowedSerde<K, S> {
        WindowedSerde { inner, _t: PhantomData }
    }
}

/// A windowed key; see [`Serdes::windowed`].
///
/// The type names the serde where one is stored, for example in a field:
///
/// ```
/// use rivulet::serde::{WindowedSerde, IntSerde, Serde, Serdes};
/// let serde: WindowedSerde<i64, IntSerde<i64>> = Serdes::windowed(Serdes::i64());
/// assert_eq!(serde.name(), "windowed<i64>");
/// ```
pub struct WindowedSerde<K, S> {
    inner: S,
    _t: PhantomData<fn() -> K>,
}

impl<K, S: Clone> Clone for WindowedSerde<K, S> {
    fn clone(&self) -> Self {
        WindowedSerde { inner: self.inner.clone(), _t: PhantomData }
    }
}

impl<K: 'static, S: Serde<K>> Serde<crate::record::Windowed<K>> for WindowedSerde<K, S> {
    fn serialize(&self, value: &crate::record::Windowed<K>, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        self.inner.serialize(&value.key, out)?;
        out.extend_from_slice(&value.start.to_be_bytes());
        out.extend_from_slice(&value.end.to_be_bytes());
        Ok(Encoded::Bytes)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<crate::record::Windowed<K>, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::null(&self.name()))?;
        let Some(split) = bytes.len().checked_sub(16) else {
            return Err(SerdeError::new(
                self.name(),
                format!("{} bytes, fewer than the 16 of start and end", bytes.len()),
            ));
        };
        let (key, window) = bytes.split_at(split);
        let mut start = [0u8; 8];
        let mut end = [0u8; 8];
        start.copy_from_slice(&window[..8]);
        end.copy_from_slice(&window[8..]);
        let key = self.inner.deserialize(Some(key))?;
        Ok(crate::record::Windowed { key, start: i64::from_be_bytes(start), end: i64::from_be_bytes(end) })
    }
    fn name(&self) -> String {
        format!("windowed<{}>", self.inner.name())
    }
}

/// UTF-8 text; see [`Serdes::string`].
///
/// The type names the serde where one is stored, for example in a field:
///
/// ```
/// use rivulet::serde::{StringSerde, Serde, Serdes};
/// let serde: StringSerde = Serdes::string();
/// assert_eq!(serde.name(), "string");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        out.extend_from_slice(value.as_bytes());
        Ok(Encoded::Bytes)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<String, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::null("string"))?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| SerdeError::new("string", format!("not valid UTF-8 at byte {}", e.utf8_error().valid_up_to())))
    }
    fn name(&self) -> String {
        "string".into()
    }
}

/// Raw bytes; see [`Serdes::bytes`].
///
/// The type names the serde where one is stored, for example in a field:
///
/// ```
/// use rivulet::serde::{BytesSerde, Serde, Serdes};
/// let serde: BytesSerde = Serdes::bytes();
/// assert_eq!(serde.name(), "bytes");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        out.extend_from_slice(value);
        Ok(Encoded::Bytes)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Vec<u8>, SerdeError> {
        bytes.map(<[u8]>::to_vec).ok_or_else(|| SerdeError::null("bytes"))
    }
    fn name(&self) -> String {
        "bytes".into()
    }
}

/// JSON via serde; see [`Serdes::json`]. Its name carries the type's
/// path, as `describe()` and errors show it.
///
/// ```
/// use rivulet::serde::{JsonSerde, Serde, Serdes};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Order { id: u64 }
/// let serde: JsonSerde<Order> = Serdes::json();
/// assert!(serde.name().starts_with("json<") && serde.name().ends_with("Order>"));
/// ```
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSerde<{}>", std::any::type_name::<T>())
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for JsonSerde<T> {
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        serde_json::to_writer(&mut *out, value).map_err(|e| SerdeError::new(self.name(), e.to_string()))?;
        Ok(Encoded::Bytes)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::null(&self.name()))?;
        serde_json::from_slice(bytes).map_err(|e| SerdeError::new(self.name(), e.to_string()))
    }
    fn name(&self) -> String {
        format!("json<{}>", std::any::type_name::<T>())
    }
}

/// Fixed-width big-endian integers; see [`Serdes::i64`] and friends.
///
/// The type names the serde where one is stored, for example in a field:
///
/// ```
/// use rivulet::serde::{IntSerde, Serde, Serdes};
/// let serde: IntSerde<u64> = Serdes::u64();
/// assert_eq!(serde.name(), "u64");
/// ```
pub struct IntSerde<T>(PhantomData<fn() -> T>);

impl<T> Clone for IntSerde<T> {
    fn clone(&self) -> Self {
        IntSerde(PhantomData)
    }
}

impl<T> fmt::Debug for IntSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntSerde<{}>", std::any::type_name::<T>())
    }
}

macro_rules! int_serde {
    ($($t:ty => $name:literal),*) => {$(
        impl Serde<$t> for IntSerde<$t> {
            fn serialize(&self, value: &$t, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
                out.extend_from_slice(&value.to_be_bytes());
                Ok(Encoded::Bytes)
            }
            fn deserialize(&self, bytes: Option<&[u8]>) -> Result<$t, SerdeError> {
                let bytes = bytes.ok_or_else(|| SerdeError::null($name))?;
                let array = bytes.try_into().map_err(|_| {
                    SerdeError::new(
                        $name,
                        format!("expected {} bytes (big-endian), got {}", std::mem::size_of::<$t>(), bytes.len()),
                    )
                })?;
                Ok(<$t>::from_be_bytes(array))
            }
            fn name(&self) -> String {
                $name.into()
            }
        }
    )*};
}
int_serde!(i32 => "i32", i64 => "i64", u32 => "u32", u64 => "u64");

/// `()`; see [`Serdes::unit`].
///
/// The type names the serde where one is stored, for example in a field:
///
/// ```
/// use rivulet::serde::{UnitSerde, Serde, Serdes};
/// let serde: UnitSerde = Serdes::unit();
/// assert_eq!(serde.name(), "unit");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _: &(), _: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        Ok(Encoded::Null)
    }
    fn deserialize(&self, _: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
    fn name(&self) -> String {
        "unit".into()
    }
}

/// `Option<T>`; see [`Serdes::optional`].
///
/// The type names the serde where one is stored, for example in a field:
///
/// ```
/// use rivulet::serde::{OptionalSerde, StringSerde, Serde, Serdes};
/// let serde: OptionalSerde<String, StringSerde> = Serdes::optional(Serdes::string());
/// assert_eq!(serde.name(), "optional<string>");
/// ```
pub struct OptionalSerde<T, S> {
    inner: S,
    _t: PhantomData<fn() -> T>,
}

impl<T, S: Clone> Clone for OptionalSerde<T, S> {
    fn clone(&self) -> Self {
        OptionalSerde { inner: self.inner.clone(), _t: PhantomData }
    }
}

impl<T, S: fmt::Debug> fmt::Debug for OptionalSerde<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OptionalSerde({:?})", self.inner)
    }
}

impl<T: 'static, S: Serde<T>> Serde<Option<T>> for OptionalSerde<T, S> {
    fn serialize(&self, value: &Option<T>, out: &mut Vec<u8>) -> Result<Encoded, SerdeError> {
        match value {
            Some(v) => self.inner.serialize(v, out),
            None => Ok(Encoded::Null),
        }
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        bytes.map(|b| self.inner.deserialize(Some(b))).transpose()
    }
    fn name(&self) -> String {
        format!("optional<{}>", self.inner.name())
    }
}

pub mod registry;
#[cfg(test)]
mod tests;
pub(crate) mod text;
