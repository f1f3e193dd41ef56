//! Named branches of a stream.

use super::*;

impl<K: Data, V: Data> Split<K, V> {
    /// A branch taking the records for which `predicate` holds (and no
    /// earlier branch's did): each record goes to one branch at most, the
    /// first that matches, in the order the branches were added.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// let sizes = b
    ///     .stream("orders", Serdes::string(), Serdes::i64())
    ///     .split()
    ///     .branch("large", |_, amount| *amount >= 1_000)
    ///     .branch("medium", |_, amount| *amount >= 100) // only what "large" did not take
    ///     .finish();
    /// sizes.get("medium").to("medium-orders", Serdes::string(), Serdes::i64());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let orders = driver.input_topic("orders", Serdes::string(), Serdes::i64());
    /// # let medium = driver.output_topic("medium-orders", Serdes::string(), Serdes::i64());
    /// for amount in [5_000, 500, 5] {
    ///     driver.pipe(&orders, "o".to_string(), amount, 0)?;
    /// }
    /// assert_eq!(driver.read_key_values(&medium)?, vec![("o".to_string(), 500)]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn branch(mut self, name: &str, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.branches.push((name.to_string(), Arc::new(predicate)));
        self
    }

    /// A last branch taking every record no other branch took, and the end
    /// of the split.
    ///
    /// ```
    /// # use rivulet::prelude::*;
    /// # use rivulet::testing::TopologyTestDriver;
    /// let mut b = Topology::builder();
    /// let parsed = b
    ///     .stream("raw", Serdes::unit(), Serdes::string())
    ///     .split()
    ///     .branch("numbers", |_, s| s.parse::<i64>().is_ok())
    ///     .default_branch("unparsable");
    /// parsed.get("unparsable").to("raw-rejected", Serdes::unit(), Serdes::string());
    /// # let mut driver = TopologyTestDriver::new(b.build()?)?;
    /// # let raw = driver.input_topic("raw", Serdes::unit(), Serdes::string());
    /// # let rejected = driver.output_topic("raw-rejected", Serdes::unit(), Serdes::string());
    /// driver.pipe(&raw, (), "42".to_string(), 0)?;
    /// driver.pipe(&raw, (), "forty-two".to_string(), 0)?;
    /// assert_eq!(driver.read_key_values(&rejected)?, vec![((), "forty-two".to_string())]);
    /// # Ok::<(), rivulet::Error>(())
    /// ```
    pub fn default_branch(self, name: &str) -> Branches<K, V> {
        self.branch(name, |_, _| true).finish()
    }

    /// Ends the split without a default branch: records no branch takes are
    /// dropped. `build()` fails on a split with no branch or with two
    /// branches of the same name.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let branches = b
    ///     .stream("events", Serdes::string(), Serdes::string())
    ///     .split()
    ///     .branch("clicks", |_, e| e == "click")
    ///     .finish(); // other events go nowhere
    /// branches.get("clicks").to("clicks", Serdes::string(), Serdes::string());
    /// assert!(b.build()?.describe().contains("SPLIT"));
    /// # Ok::<(), rivulet::Error>(())
    /// ```
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
    /// no records. A branch can be taken several times; each stream gets
    /// all its records.
    ///
    /// ```
    /// use rivulet::prelude::*;
    /// let mut b = Topology::builder();
    /// let branches = b
    ///     .stream("events", Serdes::string(), Serdes::string())
    ///     .split()
    ///     .branch("clicks", |_, e| e == "click")
    ///     .default_branch("rest");
    /// branches.get("clicks").to("clicks", Serdes::string(), Serdes::string());
    /// branches.get("click").to("typo", Serdes::string(), Serdes::string());
    /// let err = b.build().unwrap_err();
    /// assert!(err.to_string().contains("split has no branch `click`"));
    /// ```
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
