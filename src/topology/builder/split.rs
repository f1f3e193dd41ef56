//! Named branches of a stream.

use super::*;

impl<K: Data, V: Data> Split<K, V> {
    /// A branch taking the records for which `predicate` holds (and no
    /// earlier branch's did).
    pub fn branch(mut self, name: &str, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.branches.push((name.to_string(), Arc::new(predicate)));
        self
    }

    /// A last branch taking every record no other branch took.
    pub fn default_branch(self, name: &str) -> Branches<K, V> {
        self.branch(name, |_, _| true).finish()
    }

    /// Ends the split without a default branch: records no branch takes are dropped.
    pub fn finish(self) -> Branches<K, V> {
        let mut names: Vec<&str> = self.branches.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        let mut twice: Vec<&str> = names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
        twice.dedup();
        if !twice.is_empty() {
            self.stream.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                "split has more than one branch named {twice:?}; give each branch its own name"
            )));
        }
        if self.branches.is_empty() {
            self.stream.graph.borrow_mut().errors.push(TopologyError::Invalid(
                "split has no branch; add one with .branch(name, predicate) or .default_branch(name)".into(),
            ));
        }
        let predicates: Vec<_> = self.branches.iter().map(|(_, p)| p.clone()).collect();
        let split = self.stream.add_processor("SPLIT", Vec::new(), move |name| SplitProcessor {
            name: name.to_string(),
            predicates: predicates.clone(),
        });
        let split = self.stream.same_serdes(split);
        let branches = self
            .branches
            .iter()
            .map(|(name, _)| {
                let b = split.add_processor("BRANCH", Vec::new(), |name| FlatMapProcessor {
                    name: name.to_string(),
                    f: Arc::new(|r| Ok(Emit::One(r))),
                });
                (name.clone(), split.same_serdes(b))
            })
            .collect();
        Branches { source: split, branches }
    }
}

impl<K: Data, V: Data> Branches<K, V> {
    /// The stream of the branch `name`. A name that was not declared is a
    /// topology error reported by `build()`; the stream returned then takes
    /// no records.
    pub fn get(&self, name: &str) -> KStream<K, V> {
        match self.branches.iter().find(|(n, _)| n == name) {
            Some((_, s)) => s.clone(),
            None => {
                self.source.graph.borrow_mut().errors.push(TopologyError::Invalid(format!(
                    "split has no branch `{name}`; its branches are {:?}",
                    self.branches.iter().map(|(n, _)| n).collect::<Vec<_>>()
                )));
                self.source.filter(|_, _| false)
            }
        }
    }
}
