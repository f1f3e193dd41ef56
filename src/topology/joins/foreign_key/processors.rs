//! The four processors of a foreign-key join, one per Kafka Streams
//! supplier.

use super::wire::*;
use super::*;

/// The hash of a left value's serialized bytes.
pub(super) fn hash_of<V: 'static>(serde: &dyn Serde<V>, value: &V) -> Result<Hash, ProcessError> {
    Ok(hash128(&bytes_of(serde, value, "a foreign-key join's left value (for its hash)")?))
}

/// Turns a left update into subscriptions (Kafka Streams'
/// `SubscriptionSendProcessorSupplier`).
pub(super) struct SubscriptionSend<V, KO> {
    pub(super) fk: FkFn<V, KO>,
    pub(super) value_serde: Arc<dyn Serde<V>>,
    pub(super) fk_serde: Arc<dyn Serde<KO>>,
    pub(super) left: bool,
}

impl<K: Data, V: Data, KO: Data> Processor<K, Change<V>, Option<KO>, Subscription<K>> for SubscriptionSend<V, KO> {
    fn process(
        &mut self,
        record: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, Option<KO>, Subscription<K>>,
    ) -> Result<(), ProcessError> {
        use Instruction::*;
        let Record { key, value: change, timestamp, headers } = record;
        let new_fk = change.new.as_ref().and_then(|v| (self.fk)(v));
        let old_fk = change.old.as_ref().and_then(|v| (self.fk)(v));
        let hash = change.new.as_ref().map(|v| hash_of(self.value_serde.as_ref(), v)).transpose()?;
        let what = "a foreign key (the subscription topic's key)";
        let fk_bytes = |fk: &Option<KO>| fk.as_ref().map(|k| bytes_of(self.fk_serde.as_ref(), k, what)).transpose();
        let fk_changed = fk_bytes(&new_fk)? != fk_bytes(&old_fk)?;
        let mut out: Vec<(Option<KO>, Instruction)> = Vec::with_capacity(2);
        match (&change.new, new_fk) {
            (Some(_), Some(new_fk)) => {
                if fk_changed {
                    out.extend(old_fk.map(|old| (Some(old), DeleteKeyNoPropagate)));
                }
                let answer_always = self.left || change.old.is_some();
                out.push((
                    Some(new_fk),
                    if answer_always { PropagateNullIfNoFkValAvailable } else { PropagateOnlyIfFkValAvailable },
                ));
            }
            // A row without a foreign key: a left join joins it with
            // `None` here; an inner join deletes the result the old
            // foreign key gave it.
            (Some(_), None) if self.left => {
                out.extend(old_fk.map(|old| (Some(old), DeleteKeyNoPropagate)));
                out.push((None, PropagateNullIfNoFkValAvailable));
            }
            (Some(_), None) => out.extend(old_fk.map(|old| (Some(old), DeleteKeyAndPropagate))),
            // A deleted row: its result is deleted.
            (None, _) => match old_fk {
                Some(old) => out.push((Some(old), DeleteKeyAndPropagate)),
                None if change.old.is_some() => out.push((None, DeleteKeyAndPropagate)),
                None => {}
            },
        }
        for (fk, instruction) in out {
            let value = Subscription { instruction, hash, primary_key: key.clone() };
            ctx.forward(Record { key: fk, value, timestamp, headers: headers.clone() })?;
        }
        Ok(())
    }
}

/// Records a subscription and answers it with the right table's current
/// value (Kafka Streams' `SubscriptionReceiveProcessorSupplier` followed by
/// `SubscriptionJoinProcessorSupplier`).
pub(super) struct SubscriptionReceive<KO, K> {
    pub(super) subscriptions: String,
    pub(super) right: String,
    pub(super) fk_serde: Arc<dyn Serde<KO>>,
    pub(super) key_serde: Arc<dyn Serde<K>>,
}

impl<KO: Data, K: Data, VO: Data> Processor<KO, Subscription<K>, K, Response<VO>> for SubscriptionReceive<KO, K> {
    fn process(
        &mut self,
        record: Record<KO, Subscription<K>>,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
    ) -> Result<(), ProcessError> {
        use Instruction::*;
        let Record { key: fk, value: sub, timestamp, headers } = record;
        let mut store_key = prefix_of(&bytes_of(self.fk_serde.as_ref(), &fk, "a foreign key")?);
        store_key.extend(bytes_of(self.key_serde.as_ref(), &sub.primary_key, "a foreign-key join's primary key")?);
        let mut subscriptions = ctx.store::<Vec<u8>, Subscription<K>>(&self.subscriptions)?;
        match sub.instruction {
            DeleteKeyNoPropagate | DeleteKeyAndPropagate => subscriptions.delete(&store_key)?,
            PropagateNullIfNoFkValAvailable | PropagateOnlyIfFkValAvailable => subscriptions.put(&store_key, &sub)?,
        }
        let foreign = match sub.instruction {
            DeleteKeyNoPropagate => return Ok(()),
            DeleteKeyAndPropagate => None,
            _ => ctx.store::<KO, VO>(&self.right)?.get(&fk)?,
        };
        if foreign.is_none() && sub.instruction == PropagateOnlyIfFkValAvailable {
            return Ok(());
        }
        let value = Response { hash: sub.hash, foreign };
        ctx.forward(Record { key: sub.primary_key, value, timestamp, headers })
    }
}

/// Answers every subscriber of a right row that changed (Kafka Streams'
/// `ForeignTableJoinProcessorSupplier`).
pub(super) struct ForeignTableJoin<KO, VO> {
    pub(super) subscriptions: String,
    pub(super) fk_serde: Arc<dyn Serde<KO>>,
    pub(super) value_serde: Arc<dyn Serde<VO>>,
}

impl<KO: Data, VO: Data, K: Data> Processor<KO, Change<VO>, K, Response<VO>> for ForeignTableJoin<KO, VO> {
    fn process(
        &mut self,
        record: Record<KO, Change<VO>>,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
    ) -> Result<(), ProcessError> {
        let Record { key, value: change, timestamp, headers } = record;
        if let (Some(new), Some(old)) = (&change.new, &change.old) {
            // The same bytes again: every subscriber has its answer already.
            let what = "a foreign-key join's right value";
            if bytes_of(self.value_serde.as_ref(), new, what)? == bytes_of(self.value_serde.as_ref(), old, what)? {
                return Ok(());
            }
        }
        let prefix = prefix_of(&bytes_of(self.fk_serde.as_ref(), &key, "a foreign key")?);
        let subscribers = ctx.store::<Vec<u8>, Subscription<K>>(&self.subscriptions)?.prefix_scan(&prefix)?;
        for (_, sub) in subscribers {
            let value = Response { hash: sub.hash, foreign: change.new.clone() };
            ctx.forward(Record { key: sub.primary_key, value, timestamp, headers: headers.clone() })?;
        }
        Ok(())
    }
}

/// Joins an answer with the left row it answers, unless the row changed
/// since (Kafka Streams' `ResponseJoinProcessorSupplier`), and keeps the
/// result table.
pub(super) struct ResponseJoin<K, V, VO, VR> {
    pub(super) left_store: String,
    pub(super) results: String,
    pub(super) value_serde: Arc<dyn Serde<V>>,
    pub(super) joiner: FkJoiner<K, V, VO, VR>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor<K, Response<VO>, K, Change<VR>> for ResponseJoin<K, V, VO, VR> {
    fn process(
        &mut self,
        record: Record<K, Response<VO>>,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
    ) -> Result<(), ProcessError> {
        let Record { key, value: response, timestamp, headers } = record;
        let current = ctx.store::<K, V>(&self.left_store)?.get(&key)?;
        let current_hash = current.as_ref().map(|v| hash_of(self.value_serde.as_ref(), v)).transpose()?;
        if current_hash != response.hash {
            trace!("dropping a foreign-key join response for an older left value");
            return Ok(());
        }
        let result = current.and_then(|v| (self.joiner)(&key, &v, response.foreign.as_ref()));
        let mut results = ctx.store::<K, VR>(&self.results)?;
        let old = results.get(&key)?;
        match &result {
            Some(r) => results.put(&key, r)?,
            None => results.delete(&key)?,
        }
        let change = Change::new(result, old);
        if change.is_empty() {
            return Ok(());
        }
        ctx.forward(Record { key, value: change, timestamp, headers })
    }
}
