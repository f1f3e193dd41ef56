//! The HTTP answers of the store endpoints, apart from the server (so the
//! server only maps them to responses):
//!
//! - `GET /stores/{store}/keys/{key}`: 200 with
//!   `{"store","key","partition","value"}` when the key's task runs here
//!   and has a value; 404 when it runs here and has none (or there is no
//!   such store); 421 Misdirected Request when another instance owns the
//!   key, with its `host:port` in the `Rivulet-Owner` header, a `Location`
//!   of the same request there, and `{"error","partition","owner"}`; 503
//!   with `Retry-After: 1` when no instance can answer now (the owner is
//!   restoring or starting the task, or a rebalance left the key without a
//!   known owner). Never a value from a task that does not run here.
//! - `GET /stores/{store}/keys/{key}?from=..&to=..` on the store of a
//!   tumbling or hopping windowed aggregation: 200 with
//!   `{"store","key","partition","windows":[{"start","end","value"}]}`,
//!   the key's windows starting in `[from, to]` (ms since the epoch; each
//!   bound optional), in start order (an empty list when it has none);
//!   421 and 503 as above.
//! - `GET /stores/{store}/owner/{key}`: 200 with
//!   `{"store","key","partition","owner":{"instance_id","address"},"local"}`,
//!   or 503 with `Retry-After: 1` when no instance claims the key's
//!   partition.
//!
//! - `GET /instances`: the directory, `{"this","instances":[{"instance_id",
//!   "address","partitions":[[topic,partition],..],"updated_ms","sequence"}]}`.
//!
//! Errors of the request (a key the key serde refuses) are 400; a store
//! that cannot be queried (session, sliding or count windows, keyed state)
//! 501. Every body is JSON.

use serde_json::{json, Value};

use super::{Queries, QueryError};

/// One answer: status, extra headers, JSON body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Value,
}

impl Answer {
    fn new(status: u16, body: Value) -> Answer {
        Answer { status, headers: Vec::new(), body }
    }

    fn retry(reason: String, partition: i32) -> Answer {
        let mut a = Answer::new(503, json!({ "error": reason, "partition": partition }));
        a.headers.push(("retry-after", "1".into()));
        a
    }
}

fn error(e: &QueryError) -> Answer {
    let status = match e {
        QueryError::UnknownStore { .. } => 404,
        QueryError::NotQueryable { .. } => 501,
        QueryError::Serde { .. } | QueryError::WrongTypes { .. } => 400,
        QueryError::NotHere { .. } => 503,
        QueryError::State(_) => 500,
    };
    Answer::new(status, json!({ "error": e.to_string() }))
}

/// The `from` and `to` parameters (ms) of a query string.
fn time_range(store: &str, query: Option<&str>) -> Result<(Option<i64>, Option<i64>), QueryError> {
    let (mut from, mut to) = (None, None);
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "from" => &mut from,
            "to" => &mut to,
            _ => continue,
        };
        let ms = value.parse::<i64>().map_err(|_| QueryError::Serde {
            store: store.to_string(),
            reason: format!("{name}={value:?} is not a time in ms since the epoch"),
        })?;
        *slot = Some(ms);
    }
    Ok((from, to))
}

/// `text` percent-encoded for a URL path segment.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Queries {
    /// `GET /stores/{store}/keys/{key}`, `query` the URL's query string
    /// (`from` and `to` of a window store).
    pub(crate) fn http_get(&self, store: &str, key: &str, query: Option<&str>) -> Answer {
        let answer = || -> Result<Answer, QueryError> {
            let text = self.text(store)?;
            let bytes = text.key_from_text(key).map_err(|reason| QueryError::Serde {
                store: store.to_string(),
                reason: format!("the key {key:?}: {reason}"),
            })?;
            let (from, to) = time_range(store, query)?;
            if self.is_window_store(store) {
                return self.http_fetch(store, key, &bytes, from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX));
            }
            if from.is_some() || to.is_some() {
                return Err(QueryError::Serde {
                    store: store.to_string(),
                    reason: "from and to are for window stores; this is a key-value store".into(),
                });
            }
            match self.get_bytes(store, &bytes) {
                Ok((partition, Some(value))) => {
                    let value = text
                        .value_to_json(&value)
                        .map_err(|reason| QueryError::Serde { store: store.to_string(), reason })?;
                    Ok(Answer::new(200, json!({ "store": store, "key": key, "partition": partition, "value": value })))
                }
                Ok((partition, None)) => Ok(Answer::new(
                    404,
                    json!({ "error": format!("no value for this key in store `{store}`"), "partition": partition }),
                )),
                Err(QueryError::NotHere { partition, .. }) => Ok(self.elsewhere(store, key, &bytes, partition)),
                Err(e) => Err(e),
            }
        };
        answer().unwrap_or_else(|e| error(&e))
    }

    /// A key's windows starting in `[from, to]` in a window store.
    fn http_fetch(&self, store: &str, key: &str, bytes: &[u8], from: i64, to: i64) -> Result<Answer, QueryError> {
        let text = self.text(store)?;
        match self.fetch_bytes(store, bytes, from, to) {
            Ok((partition, windows)) => {
                let mut shown = Vec::with_capacity(windows.len());
                for w in windows {
                    let value = text
                        .value_to_json(&w.value)
                        .map_err(|reason| QueryError::Serde { store: store.to_string(), reason })?;
                    shown.push(json!({ "start": w.start, "end": w.end, "value": value }));
                }
                Ok(Answer::new(200, json!({ "store": store, "key": key, "partition": partition, "windows": shown })))
            }
            Err(QueryError::NotHere { partition, .. }) => Ok(self.elsewhere(store, key, bytes, partition)),
            Err(e) => Err(e),
        }
    }

    /// The answer for a key whose task does not run here.
    fn elsewhere(&self, store: &str, key: &str, bytes: &[u8], partition: i32) -> Answer {
        let owner = self.locate(store, bytes).ok().and_then(|at| at.owner);
        match owner {
            Some(o) if o.instance_id != self.instance_id => {
                let mut a = Answer::new(
                    421,
                    json!({
                        "error": format!("instance {} owns this key", o.instance_id),
                        "partition": partition,
                        "owner": { "instance_id": o.instance_id, "address": o.address },
                    }),
                );
                let location = format!("http://{}/stores/{}/keys/{}", o.address, path_segment(store), path_segment(key));
                a.headers.push(("rivulet-owner", o.address));
                a.headers.push(("location", location));
                a
            }
            Some(_) => Answer::retry(
                format!("this instance owns partition {partition} of store `{store}` but its task is not running yet (restoring or starting)"),
                partition,
            ),
            None => Answer::retry(
                format!("no instance owns partition {partition} of store `{store}` now (a rebalance is under way)"),
                partition,
            ),
        }
    }

    /// `GET /instances`: the instances directory, each instance's latest record.
    pub(crate) fn http_instances(&self) -> Answer {
        let instances: Vec<Value> = self
            .directory
            .instances()
            .into_iter()
            .map(|r| {
                let partitions: Vec<Value> = r.partitions.iter().map(|(t, p)| json!([t, p])).collect();
                json!({
                    "instance_id": r.instance_id, "address": r.address, "partitions": partitions,
                    "updated_ms": r.updated_ms, "sequence": r.sequence,
                })
            })
            .collect();
        Answer::new(200, json!({ "this": self.instance_id, "instances": instances }))
    }

    /// `GET /stores/{store}/owner/{key}`.
    pub(crate) fn http_owner(&self, store: &str, key: &str) -> Answer {
        let answer = || -> Result<Answer, QueryError> {
            let bytes = self.text(store)?.key_from_text(key).map_err(|reason| QueryError::Serde {
                store: store.to_string(),
                reason: format!("the key {key:?}: {reason}"),
            })?;
            let at = self.locate(store, &bytes)?;
            Ok(match at.owner {
                Some(o) => Answer::new(
                    200,
                    json!({
                        "store": store, "key": key, "partition": at.partition,
                        "owner": { "instance_id": o.instance_id, "address": o.address },
                        "local": at.local,
                    }),
                ),
                None => Answer::retry(
                    format!(
                        "no instance owns partition {} of store `{store}` now (a rebalance is under way)",
                        at.partition
                    ),
                    at.partition,
                ),
            })
        };
        answer().unwrap_or_else(|e| error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ranges_come_from_the_query_string() {
        assert_eq!(time_range("w", None).unwrap(), (None, None));
        assert_eq!(time_range("w", Some("from=5&x=y&to=-7")).unwrap(), (Some(5), Some(-7)));
        assert!(time_range("w", Some("from=yesterday")).unwrap_err().to_string().contains("from=\"yesterday\""));
    }

    #[test]
    fn keys_are_percent_encoded_in_the_owners_location() {
        assert_eq!(path_segment("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(path_segment("plain-key_1.x~"), "plain-key_1.x~");
    }
}
