//! The site's enrolled faces in memory, searched 1:N by cosine similarity.

use std::{collections::HashMap, hash::Hash};

use crate::embed::Embedding;

/// One candidate of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<K> {
    pub key: K,
    pub similarity: f32,
}

/// The 1:N decision for a probe: a match needs the threshold **and** a margin over the best
/// other person, so that two similar-looking people are never confused silently.
#[derive(Debug, Clone, PartialEq)]
pub enum Identification<K> {
    Match {
        key: K,
        similarity: f32,
        /// Lead over the second person; `None` with a single enrolled person.
        margin: Option<f32>,
    },
    /// Above the threshold, but the second person is within `min_margin`.
    Ambiguous { best: Match<K>, second: Match<K> },
    /// Nobody reaches the threshold (`best` is `None` for an empty gallery).
    NoMatch { best: Option<Match<K>> },
}

/// Enrolled templates, each under a key (a person id); a person may have several.
#[derive(Debug, Clone, Default)]
pub struct Gallery<K> {
    entries: Vec<(K, Embedding)>,
}

impl<K: Clone + Eq + Hash> Gallery<K> {
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    pub fn insert(&mut self, key: K, embedding: Embedding) {
        self.entries.push((key, embedding));
    }

    /// Removes every template of `key`.
    pub fn remove(&mut self, key: &K) {
        self.entries.retain(|(k, _)| k != key);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The best `k` distinct keys, each scored by its best template, highest first. Templates of
    /// a different dimension than the probe are skipped.
    pub fn top_k(&self, probe: &Embedding, k: usize) -> Vec<Match<K>> {
        let mut per_key: HashMap<&K, f32> = HashMap::new();
        for (key, template) in &self.entries {
            let Ok(similarity) = probe.cosine(template) else {
                continue;
            };
            per_key
                .entry(key)
                .and_modify(|s| *s = s.max(similarity))
                .or_insert(similarity);
        }
        let mut best: Vec<Match<K>> = per_key
            .into_iter()
            .map(|(key, similarity)| Match {
                key: key.clone(),
                similarity,
            })
            .collect();
        best.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        best.truncate(k);
        best
    }
}

impl<K: Clone + Eq + Hash> Gallery<K> {
    /// Decides who `probe` is: the best person if at or above `threshold` and ahead of the
    /// second by at least `min_margin`.
    pub fn identify(
        &self,
        probe: &Embedding,
        threshold: f32,
        min_margin: f32,
    ) -> Identification<K> {
        let mut top = self.top_k(probe, 2).into_iter();
        let (best, second) = (top.next(), top.next());
        match (best, second) {
            (Some(b), _) if b.similarity < threshold => Identification::NoMatch { best: Some(b) },
            (None, _) => Identification::NoMatch { best: None },
            (Some(b), Some(s)) if b.similarity - s.similarity < min_margin => {
                Identification::Ambiguous { best: b, second: s }
            }
            (Some(b), s) => Identification::Match {
                margin: s.map(|s| b.similarity - s.similarity),
                key: b.key,
                similarity: b.similarity,
            },
        }
    }

    /// How many templates `key` has.
    pub fn templates_of(&self, key: &K) -> usize {
        self.entries.iter().filter(|(k, _)| k == key).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: &[f32]) -> Embedding {
        Embedding::from_raw(v.to_vec()).expect("non-zero")
    }

    #[test]
    fn top_k_ranks_people_by_their_best_template() {
        let mut g = Gallery::new();
        g.insert("ann", e(&[1.0, 0.0]));
        g.insert("bob", e(&[0.6, 0.8]));
        g.insert("bob", e(&[0.9, 0.1]));
        g.insert("cy", e(&[-1.0, 0.0]));
        let top = g.top_k(&e(&[1.0, 0.05]), 2);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].key, "ann");
        assert_eq!(top[1].key, "bob");
        assert!(top[1].similarity > 0.99);
        g.remove(&"ann");
        assert_eq!(g.top_k(&e(&[1.0, 0.0]), 1)[0].key, "bob");
        assert_eq!(g.len(), 3);
        assert_eq!(g.templates_of(&"bob"), 2);
    }

    #[test]
    fn identify_needs_threshold_and_margin() {
        let mut g = Gallery::new();
        assert!(matches!(
            g.identify(&e(&[1.0, 0.0]), 0.5, 0.05),
            Identification::NoMatch { best: None }
        ));
        g.insert("ann", e(&[1.0, 0.0]));
        match g.identify(&e(&[1.0, 0.1]), 0.5, 0.05) {
            Identification::Match {
                key, margin: None, ..
            } => assert_eq!(key, "ann"),
            other => panic!("{other:?}"),
        }
        g.insert("bea", e(&[0.98, 0.2]));
        assert!(matches!(
            g.identify(&e(&[1.0, 0.1]), 0.5, 0.05),
            Identification::Ambiguous { .. }
        ));
        assert!(matches!(
            g.identify(&e(&[0.0, 1.0]), 0.5, 0.05),
            Identification::NoMatch { best: Some(_) }
        ));
    }

    use proptest::prelude::*;

    proptest! {
        /// top_k agrees with a brute-force reference: every key's best similarity, sorted.
        #[test]
        fn top_k_matches_brute_force(
            templates in proptest::collection::vec((0u8..6, proptest::collection::vec(-1.0f32..1.0, 4)), 1..40),
            probe in proptest::collection::vec(-1.0f32..1.0, 4),
            k in 1usize..8,
        ) {
            let Some(probe) = Embedding::from_raw(probe) else { return Ok(()) };
            let mut g = Gallery::new();
            let mut reference: std::collections::BTreeMap<u8, f32> = Default::default();
            for (key, v) in templates {
                let Some(t) = Embedding::from_raw(v) else { continue };
                let sim = probe.cosine(&t).expect("dim");
                let best = reference.entry(key).or_insert(f32::MIN);
                *best = best.max(sim);
                g.insert(key, t);
            }
            let got = g.top_k(&probe, k);
            let mut want: Vec<(u8, f32)> = reference.into_iter().collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1));
            want.truncate(k);
            prop_assert_eq!(got.len(), want.len());
            for (m, (_, sim)) in got.iter().zip(&want) {
                prop_assert!((m.similarity - sim).abs() < 1e-6);
            }
        }
    }
}
