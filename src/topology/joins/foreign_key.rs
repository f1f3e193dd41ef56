//! The foreign-key table-table join (Kafka Streams' KIP-213,
//! `KTableImpl#doJoinOnForeignKey` and the processors of
//! `kstream/internals/foreignkeyjoin`): each row of the left table names a
//! row of the right table by a foreign key extracted from its value, and
//! the result, keyed like the left table, follows updates on both sides.
//!
//! The two tables are partitioned by different keys, so the join goes
//! through two internal topics, both named after the join:
//!
//! ```text
//! left table (K -> V), left sub-topology       right table (KO -> VO), right sub-topology
//!   SubscriptionSend
//!     | (FK -> instruction, hash(V bytes), K)
//!     v
//!   <name>-subscription-registration ----------> SubscriptionReceive  (store <name>-subscription-store:
//!                                                  |                   (FK, K) -> subscription; answers
//!                                                  |                   with the right row of FK)
//!                                                  |  ForeignTableJoin (a right update answers
//!                                                  |    |              every subscriber of its key)
//!                                                  v    v
//!   <name>-subscription-response <---------------- (K -> hash, VO or none)
//!     v
//!   ResponseJoin: drops an answer whose hash is not the hash of the left row's
//!   current value, joins the others; the result table is kept in <name>-result
//! ```
//!
//! **Left updates** (Kafka Streams' `SubscriptionSendProcessorSupplier`):
//! an update subscribes the left key to its new foreign key, with the hash
//! (128-bit murmur3, [`super::murmur3`]) of the new value's serialized
//! bytes; when the foreign key changed, the old one is unsubscribed. The
//! instruction codes are Kafka Streams' (`SubscriptionWrapper.Instruction`):
//! 0 unsubscribe without an answer (the new foreign key answers), 1
//! unsubscribe and answer with no right value (the left row was deleted, or
//! an inner join's row lost its foreign key: the result is deleted), 2
//! subscribe and answer even without a right value (the row had a result
//! that the answer replaces or deletes), 3 subscribe and answer only with a
//! right value (a new row of an inner join).
//!
//! **Right side** (`SubscriptionReceiveProcessorSupplier` with
//! `SubscriptionJoinProcessorSupplier`, and
//! `ForeignTableJoinProcessorSupplier`): the subscription topic is keyed by
//! foreign key, so it is co-partitioned with the right table and read in
//! its sub-topology. The store `<name>-subscription-store` is keyed by the
//! foreign key's bytes, length-prefixed, then the primary key's bytes: a
//! right update finds its subscribers with a prefix scan and answers each.
//!
//! **Responses** (`ResponseJoinProcessorSupplier`): keyed by the primary
//! key, back in the left table's sub-topology. A response carries the hash
//! of the left value it answers; when that is not the hash of the left
//! table's current value, a newer subscription is on its way and the
//! response is dropped, so a result never pairs a left value with the right
//! value of a foreign key it no longer has. The result is a table: each
//! change carries the result it replaces, read from the result store, and
//! a delete where there was no result is not forwarded.
//!
//! A value without a foreign key (`fk` gives `None`) subscribes to
//! nothing: an inner join has no result for it, a left join joins it with
//! `None` at once, without a round trip (Kafka Streams sends it through the
//! subscription topic with a null key).
//!
//! Unlike Kafka Streams, whose result timestamp is the larger of the two
//! sides' timestamps, the result carries the timestamp of the update that
//! caused it (as rivulet's other table joins). A left update with the same
//! value bytes as before re-subscribes and its answer re-emits the same
//! result.

use std::sync::Arc;

use tracing::trace;

use super::murmur3::hash128;
use crate::processor::{ProcessError, Processor, ProcessorContext, StoreSpec};
use crate::record::Record;
use crate::serde::{Encoded, Serde, SerdeError, Serdes};
use crate::topology::builder::{ArcSerde, Data, KStream, KTable, TopologyBuilder};
use crate::topology::change::{append_value, Change};
use crate::topology::ops::Emit;

mod processors;
mod wire;

use processors::*;
use wire::*;

/// The foreign key of a left value, if it has one.
type FkFn<V, KO> = Arc<dyn Fn(&V) -> Option<KO> + Send + Sync>;
/// Joins a left value with the right value or none; `None` where the join
/// kind has no result.
type FkJoiner<K, V, VO, VR> = Arc<dyn Fn(&K, &V, Option<&VO>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KTable<K, V> {
    /// Joins each row with the row of `other` whose key `fk` extracts from
    /// the row's value, keeping this table's keys (Kafka Streams'
    /// `KTable#join(other, foreignKeyExtractor, joiner)`, KIP-213): a row
    /// whose foreign key names no row of `other`, or that has no foreign
    /// key (`fk` may return the key or an `Option` of it), has no result.
    /// Updates and deletes on either side update or delete the result,
    /// also when a row's foreign key changes.
    ///
    /// `name` names the join's internal topics,
    /// `<application_id>-<name>-subscription-registration` and
    /// `-subscription-response`, and its stores `<name>-subscription-store`
    /// and `<name>-result` (the result table's store). Both tables need a
    /// store (see [`materialize`](Self::materialize)); they need not be
    /// co-partitioned. See the module documentation of
    /// `topology/joins/foreign_key.rs` for how it works.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// // order id -> "customer id,item"; customer id -> name.
    /// let mut b = Topology::builder();
    /// let orders = b.table("orders", "orders", Serdes::string(), Serdes::string());
    /// let customers = b.table("customers", "customers", Serdes::string(), Serdes::string());
    /// orders
    ///     .join_foreign_key(
    ///         &customers,
    ///         "orders-customers",
    ///         |order: &String| order.split(',').next().unwrap_or_default().to_string(),
    ///         |_id, order, name| format!("{order} for {name}"),
    ///         Serdes::string(),
    ///     )
    ///     .to_change_stream()
    ///     .to("orders-with-names", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// let orders = driver.input_topic("orders", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let customers = driver.input_topic("customers", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let out = driver.output_topic("orders-with-names", Serdes::string(), Serdes::optional(Serdes::string()));
    /// driver.pipe(&orders, "o1".to_string(), Some("c1,pen".to_string()), 0)?;
    /// assert!(driver.read_key_values(&out)?.is_empty()); // no customer c1 yet
    /// driver.pipe(&customers, "c1".to_string(), Some("Ann".to_string()), 1)?;
    /// driver.pipe(&customers, "c1".to_string(), Some("Ann B.".to_string()), 2)?;
    /// driver.pipe(&customers, "c1".to_string(), None, 3)?;
    /// assert_eq!(
    ///     driver.read_key_values(&out)?,
    ///     vec![
    ///         ("o1".to_string(), Some("c1,pen for Ann".to_string())),
    ///         ("o1".to_string(), Some("c1,pen for Ann B.".to_string())),
    ///         ("o1".to_string(), None),
    ///     ]
    /// );
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn join_foreign_key<KO: Data, VO: Data, VR: Data, F: Into<Option<KO>>>(
        &self,
        other: &KTable<KO, VO>,
        name: &str,
        fk: impl Fn(&V) -> F + Send + Sync + 'static,
        joiner: impl Fn(&K, &V, &VO) -> VR + Send + Sync + 'static,
        value_serde: impl Serde<VR>,
    ) -> KTable<K, VR> {
        self.foreign_key_join(
            "FK_JOIN",
            other,
            name,
            Arc::new(move |v| fk(v).into()),
            Arc::new(move |k, v, vo| vo.map(|vo| joiner(k, v, vo))),
            false,
            Arc::new(value_serde),
        )
    }

    /// Joins each row with the row of `other` whose key `fk` extracts from
    /// the row's value, or with `None` when there is no such row or no
    /// foreign key (Kafka Streams' `KTable#leftJoin(other,
    /// foreignKeyExtractor, joiner)`). Every row of this table has a
    /// result. See [`join_foreign_key`](Self::join_foreign_key).
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// use rivulet::testing::TopologyTestDriver;
    ///
    /// // device -> site it is installed at (or "" when in stock); site -> city.
    /// let mut b = Topology::builder();
    /// let devices = b.table("devices", "devices", Serdes::string(), Serdes::string());
    /// let sites = b.table("sites", "sites", Serdes::string(), Serdes::string());
    /// devices
    ///     .left_join_foreign_key(
    ///         &sites,
    ///         "device-sites",
    ///         |site: &String| (!site.is_empty()).then(|| site.clone()),
    ///         |_, site, city| format!("{site}: {}", city.map_or("unknown", String::as_str)),
    ///         Serdes::string(),
    ///     )
    ///     .to_stream()
    ///     .to("device-cities", Serdes::string(), Serdes::string());
    /// let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// let devices = driver.input_topic("devices", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let sites = driver.input_topic("sites", Serdes::string(), Serdes::optional(Serdes::string()));
    /// let out = driver.output_topic("device-cities", Serdes::string(), Serdes::string());
    /// driver.pipe(&sites, "s1".to_string(), Some("Lyon".to_string()), 0)?;
    /// driver.pipe(&devices, "d1".to_string(), Some("s1".to_string()), 1)?;
    /// driver.pipe(&devices, "d2".to_string(), Some("".to_string()), 2)?;
    /// assert_eq!(
    ///     driver.read_key_values(&out)?,
    ///     vec![("d1".to_string(), "s1: Lyon".to_string()), ("d2".to_string(), ": unknown".to_string())]
    /// );
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn left_join_foreign_key<KO: Data, VO: Data, VR: Data, F: Into<Option<KO>>>(
        &self,
        other: &KTable<KO, VO>,
        name: &str,
        fk: impl Fn(&V) -> F + Send + Sync + 'static,
        joiner: impl Fn(&K, &V, Option<&VO>) -> VR + Send + Sync + 'static,
        value_serde: impl Serde<VR>,
    ) -> KTable<K, VR> {
        self.foreign_key_join(
            "FK_LEFT_JOIN",
            other,
            name,
            Arc::new(move |v| fk(v).into()),
            Arc::new(move |k, v, vo| Some(joiner(k, v, vo))),
            true,
            Arc::new(value_serde),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn foreign_key_join<KO: Data, VO: Data, VR: Data>(
        &self,
        op: &str,
        other: &KTable<KO, VO>,
        name: &str,
        fk: FkFn<V, KO>,
        joiner: FkJoiner<K, V, VO, VR>,
        left: bool,
        value_serde: Arc<dyn Serde<VR>>,
    ) -> KTable<K, VR> {
        let (Some(this_store), Some(other_store)) = (self.store_for(op), other.store_for(op)) else {
            return KTable::broken(&self.stream, self.key_serde.clone(), value_serde);
        };
        let subscription_store = format!("{name}-subscription-store");
        let result_store = format!("{name}-result");
        let subscription_serde: Arc<dyn Serde<Subscription<K>>> =
            Arc::new(SubscriptionSerde { key: self.key_serde.clone() });
        let response_serde: Arc<dyn Serde<Response<VO>>> =
            Arc::new(ResponseSerde { foreign: other.value_serde.clone() });
        let mut builder = TopologyBuilder { graph: self.stream.graph.clone() };
        builder.add_store(StoreSpec::key_value(
            &subscription_store,
            Serdes::bytes(),
            ArcSerde(subscription_serde.clone()),
        ));
        builder.add_store(StoreSpec::key_value(
            &result_store,
            ArcSerde(self.key_serde.clone()),
            ArcSerde(value_serde.clone()),
        ));

        // Left updates: subscriptions, keyed by foreign key (`None`: a
        // left join's row without a foreign key, answered here at once).
        let sent: KStream<Option<KO>, Subscription<K>> = self.stream.add_processor(op, Vec::new(), {
            let (value_serde, fk_serde) = (self.value_serde.clone(), other.key_serde.clone());
            move |_| SubscriptionSend {
                fk: fk.clone(),
                value_serde: value_serde.clone(),
                fk_serde: fk_serde.clone(),
                left,
            }
        });
        let subscriptions: KStream<KO, Subscription<K>> = sent.flat(
            "FK_SUBSCRIBE",
            true,
            Arc::new(|r: Record<Option<KO>, Subscription<K>>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(key.map_or(Emit::None, |key| Emit::One(Record { key, value, timestamp, headers })))
            }),
        );
        let no_foreign_key: KStream<K, Response<VO>> = sent.flat(
            "FK_NO_FOREIGN_KEY",
            true,
            Arc::new(|r: Record<Option<KO>, Subscription<K>>| {
                let Record { key, value, timestamp, headers } = r;
                Ok(match key {
                    Some(_) => Emit::None,
                    None => Emit::One(Record {
                        key: value.primary_key,
                        value: Response { hash: value.hash, foreign: None },
                        timestamp,
                        headers,
                    }),
                })
            }),
        );

        // The right side: subscriptions in, answers out.
        let received = subscriptions.through_internal(
            &format!("{name}-subscription-registration"),
            other.key_serde.clone(),
            subscription_serde,
        );
        let answers: KStream<K, Response<VO>> =
            received.add_processor("FK_SUBSCRIPTION_RECEIVE", vec![subscription_store.clone(), other_store.clone()], {
                let (subscriptions, right) = (subscription_store.clone(), other_store.clone());
                let (fk_serde, key_serde) = (other.key_serde.clone(), self.key_serde.clone());
                move |_| SubscriptionReceive {
                    subscriptions: subscriptions.clone(),
                    right: right.clone(),
                    fk_serde: fk_serde.clone(),
                    key_serde: key_serde.clone(),
                }
            });
        let broadcasts: KStream<K, Response<VO>> =
            other.stream.add_processor("FK_FOREIGN_JOIN", vec![subscription_store.clone()], {
                let (subscriptions, fk_serde, value_serde) =
                    (subscription_store.clone(), other.key_serde.clone(), other.value_serde.clone());
                move |_| ForeignTableJoin {
                    subscriptions: subscriptions.clone(),
                    fk_serde: fk_serde.clone(),
                    value_serde: value_serde.clone(),
                }
            });
        let responses = answers.merge(&broadcasts).through_internal(
            &format!("{name}-subscription-response"),
            self.key_serde.clone(),
            response_serde,
        );

        // Back on the left: drop stale answers, join the others.
        let resolved = responses.merge(&no_foreign_key).add_processor(
            "FK_RESPONSE_JOIN",
            vec![this_store.clone(), result_store.clone()],
            {
                let (left_store, results, value_serde) =
                    (this_store.clone(), result_store.clone(), self.value_serde.clone());
                move |_| ResponseJoin {
                    left_store: left_store.clone(),
                    results: results.clone(),
                    value_serde: value_serde.clone(),
                    joiner: joiner.clone(),
                }
            },
        );
        KTable { stream: resolved, key_serde: self.key_serde.clone(), value_serde, store: Some(result_store) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_responses_survive_their_topics() {
        let serde = SubscriptionSerde { key: Arc::new(Serdes::string()) as Arc<dyn Serde<String>> };
        for instruction in [0, 1, 2, 3].map(|c| Instruction::from_code(c).unwrap()) {
            for hash in [None, Some([7; 16])] {
                for primary_key in ["", "order-1"] {
                    let sub = Subscription { instruction, hash, primary_key: primary_key.to_string() };
                    let mut out = Vec::new();
                    serde.serialize(&sub, &mut out).unwrap();
                    assert_eq!(serde.deserialize(Some(&out)).unwrap(), sub);
                }
            }
        }
        let units = SubscriptionSerde { key: Arc::new(Serdes::unit()) as Arc<dyn Serde<()>> };
        let sub = Subscription { instruction: Instruction::DeleteKeyAndPropagate, hash: None, primary_key: () };
        let mut out = Vec::new();
        units.serialize(&sub, &mut out).unwrap();
        assert_eq!(units.deserialize(Some(&out)).unwrap(), sub);

        let serde = ResponseSerde { foreign: Arc::new(Serdes::string()) as Arc<dyn Serde<String>> };
        for hash in [None, Some([9; 16])] {
            for foreign in [None, Some(String::new()), Some("Ann".to_string())] {
                let response = Response { hash, foreign };
                let mut out = Vec::new();
                serde.serialize(&response, &mut out).unwrap();
                assert_eq!(serde.deserialize(Some(&out)).unwrap(), response);
            }
        }
        let units = ResponseSerde { foreign: Arc::new(Serdes::unit()) as Arc<dyn Serde<()>> };
        let response = Response { hash: Some([1; 16]), foreign: Some(()) };
        let mut out = Vec::new();
        units.serialize(&response, &mut out).unwrap();
        assert_eq!(units.deserialize(Some(&out)).unwrap(), response);
    }

    #[test]
    fn bytes_rivulet_did_not_write_are_refused() {
        let subs = SubscriptionSerde { key: Arc::new(Serdes::string()) as Arc<dyn Serde<String>> };
        let responses = ResponseSerde { foreign: Arc::new(Serdes::string()) as Arc<dyn Serde<String>> };
        for bad in [&b""[..], &[0][..], &[1, 0, 2][..], &[0, 0, 9][..], &[0, 64, 2][..], &[0, 1, 2, 5][..]] {
            let e = subs.deserialize(Some(bad)).unwrap_err();
            assert!(e.reason.contains("only rivulet itself"), "{bad:?}: {e}");
        }
        for bad in [&b""[..], &[0][..], &[1, 0][..], &[0, 64][..], &[0, 1, 5][..], &[0, 0, b'x'][..], &[0, 6, b'x'][..]]
        {
            let e = responses.deserialize(Some(bad)).unwrap_err();
            assert!(e.reason.contains("only rivulet itself"), "{bad:?}: {e}");
        }
        assert!(subs.deserialize(None).is_err() && responses.deserialize(None).is_err());
    }
}
