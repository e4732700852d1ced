//! The site's enrolled faces in memory, searched 1:N by cosine similarity.

use std::{collections::HashMap, hash::Hash};

use crate::{
    embed::Embedding,
    quantized::{dot_i8, quantize},
};

/// From this many templates on, [`Gallery::identify`] searches the int8 copy first and
/// re-ranks its best candidates in `f32` ([`Gallery::top_k_quantized`]).
pub const QUANTIZED_FROM: usize = 50_000;

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
///
/// Templates live in one flat row-major `f32` matrix so a search is a straight scan the
/// compiler vectorises; each row points to its key by a dense index, so the best score per
/// person is kept in a plain vector rather than a map.
#[derive(Debug, Clone)]
pub struct Gallery<K> {
    dim: usize,
    data: Vec<f32>,
    /// The same rows in int8, and each row's factor back to `f32` (see `quantized`).
    qdata: Vec<i8>,
    unscale: Vec<f32>,
    owners: Vec<u32>,
    keys: Vec<K>,
    index: HashMap<K, u32>,
}

impl<K> Default for Gallery<K> {
    fn default() -> Self {
        Self {
            dim: 0,
            data: Vec::new(),
            qdata: Vec::new(),
            unscale: Vec::new(),
            owners: Vec::new(),
            keys: Vec::new(),
            index: HashMap::new(),
        }
    }
}

/// Dot product with eight independent accumulators, so it vectorises.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl<K: Clone + Eq + Hash> Gallery<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The templates' dimension; `None` while the gallery is empty (any is accepted then).
    pub fn dim(&self) -> Option<usize> {
        (!self.owners.is_empty()).then_some(self.dim)
    }

    /// Adds a template; all templates must have the dimension of the first.
    pub fn insert(&mut self, key: K, embedding: Embedding) -> Result<(), crate::Error> {
        let v = embedding.as_slice();
        if self.owners.is_empty() {
            self.dim = v.len();
        } else if v.len() != self.dim {
            return Err(crate::Error::DimensionMismatch(self.dim, v.len()));
        }
        let owner = match self.index.get(&key) {
            Some(i) => *i,
            None => {
                let i = self.keys.len() as u32;
                self.keys.push(key.clone());
                self.index.insert(key, i);
                i
            }
        };
        self.data.extend_from_slice(v);
        let u = quantize(v, &mut self.qdata);
        self.unscale.push(u);
        self.owners.push(owner);
        Ok(())
    }

    /// Removes every template of `key`.
    pub fn remove(&mut self, key: &K) {
        let Some(&gone) = self.index.get(key) else {
            return;
        };
        let dim = self.dim;
        let mut data = Vec::with_capacity(self.data.len());
        let mut qdata = Vec::with_capacity(self.qdata.len());
        let mut unscale = Vec::with_capacity(self.unscale.len());
        let mut owners = Vec::with_capacity(self.owners.len());
        for (row, &o) in self.owners.iter().enumerate() {
            if o != gone {
                data.extend_from_slice(&self.data[row * dim..(row + 1) * dim]);
                qdata.extend_from_slice(&self.qdata[row * dim..(row + 1) * dim]);
                unscale.push(self.unscale[row]);
                // Keys after the removed one shift down by one.
                owners.push(if o > gone { o - 1 } else { o });
            }
        }
        self.data = data;
        self.qdata = qdata;
        self.unscale = unscale;
        self.owners = owners;
        self.keys.remove(gone as usize);
        self.index.remove(key);
        for i in self.index.values_mut() {
            if *i > gone {
                *i -= 1;
            }
        }
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// The best `k` distinct keys, each scored by its best template, highest first. A probe of
    /// another dimension matches nothing.
    pub fn top_k(&self, probe: &Embedding, k: usize) -> Vec<Match<K>> {
        let p = probe.as_slice();
        if p.len() != self.dim || self.keys.is_empty() || k == 0 {
            return Vec::new();
        }
        let mut best = vec![f32::NEG_INFINITY; self.keys.len()];
        for (row, &owner) in self.data.chunks_exact(self.dim).zip(&self.owners) {
            let s = dot(p, row);
            let b = &mut best[owner as usize];
            if s > *b {
                *b = s;
            }
        }
        self.ranked(best, k)
    }

    /// [`Gallery::top_k`] with a first pass over the int8 copy (a quarter of the bytes), then
    /// the best `max(4k, 32)` keys re-scored exactly in `f32` from all their templates: the
    /// similarities returned are exact; a key is missed only if int8 rounding (about 1 % of a
    /// similarity) pushes it below that many others.
    pub fn top_k_quantized(&self, probe: &Embedding, k: usize) -> Vec<Match<K>> {
        let p = probe.as_slice();
        if p.len() != self.dim || self.keys.is_empty() || k == 0 {
            return Vec::new();
        }
        let mut qp = Vec::with_capacity(p.len());
        let up = quantize(p, &mut qp);
        let mut approx = vec![f32::NEG_INFINITY; self.keys.len()];
        for ((row, &owner), &u) in self
            .qdata
            .chunks_exact(self.dim)
            .zip(&self.owners)
            .zip(&self.unscale)
        {
            let s = dot_i8(&qp, row) as f32 * u * up;
            let b = &mut approx[owner as usize];
            if s > *b {
                *b = s;
            }
        }
        let shortlist = self.ranked(approx, (4 * k).max(32));
        let mut chosen = vec![false; self.keys.len()];
        for m in &shortlist {
            chosen[self.index[&m.key] as usize] = true;
        }
        let mut exact = vec![f32::NEG_INFINITY; self.keys.len()];
        for (row, &owner) in self.data.chunks_exact(self.dim).zip(&self.owners) {
            if chosen[owner as usize] {
                let s = dot(p, row);
                let b = &mut exact[owner as usize];
                if s > *b {
                    *b = s;
                }
            }
        }
        self.ranked(exact, k)
    }

    /// The `k` best keys of per-key scores, highest first (ties by key order).
    fn ranked(&self, best: Vec<f32>, k: usize) -> Vec<Match<K>> {
        let mut order: Vec<u32> = (0..best.len() as u32)
            .filter(|i| best[*i as usize] > f32::NEG_INFINITY)
            .collect();
        let k = k.min(order.len());
        let by_score = |a: &u32, b: &u32| {
            best[*b as usize]
                .total_cmp(&best[*a as usize])
                .then(a.cmp(b))
        };
        if k < order.len() {
            order.select_nth_unstable_by(k - 1, by_score);
            order.truncate(k);
        }
        order.sort_by(by_score);
        order
            .into_iter()
            .map(|i| Match {
                key: self.keys[i as usize].clone(),
                similarity: best[i as usize],
            })
            .collect()
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
        let top = if self.owners.len() >= QUANTIZED_FROM {
            self.top_k_quantized(probe, 2)
        } else {
            self.top_k(probe, 2)
        };
        let mut top = top.into_iter();
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

    /// The similarity of `probe` to `key`'s closest template (a 1:1 verification, as with a
    /// card that names the person); `None` when `key` has no template or the dimension differs.
    pub fn similarity_to(&self, key: &K, probe: &Embedding) -> Option<f32> {
        let owner = *self.index.get(key)?;
        let p = probe.as_slice();
        if p.len() != self.dim {
            return None;
        }
        self.data
            .chunks_exact(self.dim)
            .zip(&self.owners)
            .filter(|(_, o)| **o == owner)
            .map(|(row, _)| dot(p, row))
            .reduce(f32::max)
    }

    /// How many templates `key` has.
    pub fn templates_of(&self, key: &K) -> usize {
        match self.index.get(key) {
            Some(i) => self.owners.iter().filter(|o| *o == i).count(),
            None => 0,
        }
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
        g.insert("ann", e(&[1.0, 0.0])).expect("same dim");
        g.insert("bob", e(&[0.6, 0.8])).expect("same dim");
        g.insert("bob", e(&[0.9, 0.1])).expect("same dim");
        g.insert("cy", e(&[-1.0, 0.0])).expect("same dim");
        let top = g.top_k(&e(&[1.0, 0.05]), 2);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].key, "ann");
        assert_eq!(top[1].key, "bob");
        assert!(top[1].similarity > 0.99);
        g.remove(&"ann");
        assert_eq!(g.top_k(&e(&[1.0, 0.0]), 1)[0].key, "bob");
        assert_eq!(g.len(), 3);
        assert_eq!(g.templates_of(&"bob"), 2);
        assert!(
            g.insert("dan", e(&[1.0, 0.0, 0.0])).is_err(),
            "another dimension"
        );
        g.remove(&"bob");
        assert_eq!(
            g.top_k(&e(&[0.0, 1.0]), 5)
                .iter()
                .map(|m| m.key)
                .collect::<Vec<_>>(),
            ["cy"]
        );
    }

    #[test]
    fn identify_needs_threshold_and_margin() {
        let mut g = Gallery::new();
        assert!(matches!(
            g.identify(&e(&[1.0, 0.0]), 0.5, 0.05),
            Identification::NoMatch { best: None }
        ));
        g.insert("ann", e(&[1.0, 0.0])).expect("same dim");
        match g.identify(&e(&[1.0, 0.1]), 0.5, 0.05) {
            Identification::Match {
                key, margin: None, ..
            } => assert_eq!(key, "ann"),
            other => panic!("{other:?}"),
        }
        g.insert("bea", e(&[0.98, 0.2])).expect("same dim");
        assert!(matches!(
            g.identify(&e(&[1.0, 0.1]), 0.5, 0.05),
            Identification::Ambiguous { .. }
        ));
        assert!(matches!(
            g.identify(&e(&[0.0, 1.0]), 0.5, 0.05),
            Identification::NoMatch { best: Some(_) }
        ));
    }

    /// 20 000 random 192-d templates (a third of the people have two), 60 probes each close to
    /// one template: the int8 search with re-ranking returns exactly the f32 top-5, and after
    /// removing people both still agree.
    #[test]
    fn the_int8_search_finds_the_same_top_5_as_the_exact_one() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut random = |dim: usize| -> Vec<f32> { (0..dim).map(|_| next()).collect() };
        let mut g = Gallery::new();
        let mut kept = Vec::new();
        for i in 0..20_000u32 {
            let v = random(192);
            g.insert(
                i / 3 * 2 + (i % 3 == 0) as u32,
                Embedding::from_raw(v.clone()).expect("unit"),
            )
            .expect("insert");
            kept.push(v);
        }
        let check =
            |g: &Gallery<u32>, kept: &[Vec<f32>], noise: &mut dyn FnMut(usize) -> Vec<f32>| {
                for (n, base) in kept.iter().step_by(333).enumerate() {
                    let probe: Vec<f32> = base
                        .iter()
                        .zip(noise(192))
                        .map(|(b, e)| b + 0.3 * e)
                        .collect();
                    let probe = Embedding::from_raw(probe).expect("probe");
                    let exact: Vec<u32> = g.top_k(&probe, 5).into_iter().map(|m| m.key).collect();
                    let fast: Vec<u32> = g
                        .top_k_quantized(&probe, 5)
                        .into_iter()
                        .map(|m| m.key)
                        .collect();
                    assert_eq!(fast, exact, "probe {n}");
                }
            };
        check(&g, &kept, &mut random);
        for key in (0..2_000u32).step_by(7) {
            g.remove(&key);
        }
        check(&g, &kept, &mut random);
        // Past QUANTIZED_FROM templates, identify takes the int8 path and decides the same.
        for i in 20_000..20_000 + QUANTIZED_FROM as u32 {
            g.insert(i, Embedding::from_raw(random(192)).expect("unit"))
                .expect("insert");
        }
        for base in kept.iter().step_by(2_000) {
            let probe: Vec<f32> = base
                .iter()
                .zip(random(192))
                .map(|(b, e)| b + 0.2 * e)
                .collect();
            let probe = Embedding::from_raw(probe).expect("probe");
            let exact = g.top_k(&probe, 2);
            let decided = g.identify(&probe, 0.5, 0.05);
            match decided {
                Identification::Match {
                    key, similarity, ..
                } => {
                    assert_eq!((key, similarity), (exact[0].key, exact[0].similarity));
                }
                other => assert!(exact[0].similarity < 0.5, "{other:?} vs {exact:?}"),
            }
        }
    }

    use proptest::prelude::*;

    proptest! {
        /// top_k and similarity_to agree with a brute-force reference: every key's best
        /// similarity, sorted.
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
                g.insert(key, t).expect("same dim");
            }
            for key in 0u8..7 {
                match (g.similarity_to(&key, &probe), reference.get(&key)) {
                    (Some(got), Some(want)) => prop_assert!((got - want).abs() < 1e-6),
                    (None, None) => {}
                    (got, want) => prop_assert!(false, "key {}: {:?} vs {:?}", key, got, want),
                }
            }
            let got = g.top_k(&probe, k);
            let mut want: Vec<(u8, f32)> = reference.into_iter().collect();
            want.sort_by(|a, b| b.1.total_cmp(&a.1));
            want.truncate(k);
            prop_assert_eq!(got.len(), want.len());
            for (m, (_, sim)) in got.iter().zip(&want) {
                prop_assert!((m.similarity - sim).abs() < 1e-6);
            }
            // With fewer keys than the shortlist, the int8 pass keeps them all: exact again.
            let quantized = g.top_k_quantized(&probe, k);
            prop_assert_eq!(quantized.len(), want.len());
            for (m, (_, sim)) in quantized.iter().zip(&want) {
                prop_assert!((m.similarity - sim).abs() < 1e-6);
            }
        }
    }
}
