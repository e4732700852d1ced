//! The site's enrolled faces in memory, searched 1:N by cosine similarity.

use std::{collections::HashMap, hash::Hash};

use crate::embed::Embedding;

/// One candidate of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<K> {
    pub key: K,
    pub similarity: f32,
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
    }
}
