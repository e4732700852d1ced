//! The site's enrolled faces in memory, searched 1:N by cosine similarity.

use std::{collections::HashMap, hash::Hash};

use crate::{
    ann::{Ann, AnnParams},
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

/// How a gallery finds the best people for a probe. [`Gallery::identify`] picks one by the
/// gallery's size ([`Gallery::strategy`]); each is also callable on its own.
pub trait Search<K> {
    /// The best `k` distinct keys, each scored by its best template, highest first.
    fn top_k(&self, gallery: &Gallery<K>, probe: &Embedding, k: usize) -> Vec<Match<K>>;
}

/// The search strategies of a gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every template in `f32` ([`Gallery::top_k`]): exact.
    Exact,
    /// The int8 copy, then the best candidates exactly ([`Gallery::top_k_quantized`]).
    Quantized,
    /// The HNSW graph's candidates, scored exactly ([`Gallery::top_k_graph`]); needs
    /// [`Gallery::use_graph`], else it is [`Strategy::Exact`].
    Graph,
}

impl<K: Clone + Eq + Hash> Search<K> for Strategy {
    fn top_k(&self, gallery: &Gallery<K>, probe: &Embedding, k: usize) -> Vec<Match<K>> {
        match self {
            Strategy::Exact => gallery.top_k(probe, k),
            Strategy::Quantized => gallery.top_k_quantized(probe, k),
            Strategy::Graph => gallery.top_k_graph(probe, k),
        }
    }
}

/// Enrolled templates, each under a key (a person id); a person may have several.
///
/// Templates live in one flat row-major `f32` matrix so a search is a straight scan the
/// compiler vectorises; each row points to its key by a dense index, so the best score per
/// person is kept in a plain vector rather than a map. Past about a million templates an HNSW
/// graph over the same rows ([`Gallery::use_graph`]) proposes candidates instead of a scan.
#[derive(Debug)]
pub struct Gallery<K> {
    dim: usize,
    data: Vec<f32>,
    /// The same rows in int8, and each row's factor back to `f32` (see `quantized`).
    qdata: Vec<i8>,
    unscale: Vec<f32>,
    owners: Vec<u32>,
    keys: Vec<K>,
    index: HashMap<K, u32>,
    /// When to keep an HNSW graph ([`Gallery::use_graph`]), and the graph once built; kept in
    /// step with inserts and removals.
    graph_params: Option<AnnParams>,
    graph: Option<Ann>,
}

/// A copy without the graph (which cannot be copied): it is built again when the copy next
/// grows, or by [`Gallery::use_graph`].
impl<K: Clone> Clone for Gallery<K> {
    fn clone(&self) -> Self {
        Self {
            dim: self.dim,
            data: self.data.clone(),
            qdata: self.qdata.clone(),
            unscale: self.unscale.clone(),
            owners: self.owners.clone(),
            keys: self.keys.clone(),
            index: self.index.clone(),
            graph_params: self.graph_params,
            graph: None,
        }
    }
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
            graph_params: None,
            graph: None,
        }
    }
}

/// Dot product with eight independent accumulators, so it vectorises.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
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
        if let Some(graph) = &mut self.graph {
            graph.insert(self.owners.len() as u32, v);
        }
        self.owners.push(owner);
        self.build_graph_when_due();
        Ok(())
    }

    /// Keeps an HNSW graph over the templates from `params.min_templates` on: built now if the
    /// gallery is that large, else by the insert that makes it so (on all cores, and that call
    /// waits for it: ~90 s per 100 000 random 192-d templates on a 2-core box at the default
    /// settings), then kept up to date. [`Gallery::identify`] searches it from that size on.
    pub fn use_graph(&mut self, params: AnnParams) -> Result<(), crate::Error> {
        if let Some(problem) = params.problem() {
            return Err(crate::Error::Settings(problem));
        }
        self.graph_params = Some(params);
        self.graph = None;
        self.build_graph_when_due();
        Ok(())
    }

    fn build_graph_when_due(&mut self) {
        if let (None, Some(params)) = (&self.graph, self.graph_params)
            && self.owners.len() >= params.min_templates.max(1)
        {
            self.graph = Some(Ann::build(&self.data, self.dim, params));
        }
    }

    /// Whether an HNSW graph is kept.
    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
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
        let mut new_row = Vec::with_capacity(self.owners.len());
        for (row, &o) in self.owners.iter().enumerate() {
            new_row.push((o != gone).then_some(owners.len() as u32));
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
        let stale = self.graph.as_mut().map(|g| g.remap(&new_row));
        if let (Some(true), Some(graph)) = (stale, &self.graph) {
            let params = graph.params();
            self.graph = Some(Ann::build(&self.data, self.dim, params));
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

    /// [`Gallery::top_k`] over the candidates of the HNSW graph: the `max(8k, 64)` templates
    /// nearest to the probe are scored exactly, best per key. A key is missed only when none of
    /// its templates is among the graph's candidates. Without a graph it is [`Gallery::top_k`].
    pub fn top_k_graph(&self, probe: &Embedding, k: usize) -> Vec<Match<K>> {
        let Some(graph) = &self.graph else {
            return self.top_k(probe, k);
        };
        let p = probe.as_slice();
        if p.len() != self.dim || self.keys.is_empty() || k == 0 {
            return Vec::new();
        }
        let mut best: HashMap<u32, f32> = HashMap::new();
        for row in graph.nearest_rows(p, (8 * k).max(64)) {
            let row = row as usize;
            let s = dot(p, &self.data[row * self.dim..(row + 1) * self.dim]);
            let b = best.entry(self.owners[row]).or_insert(f32::NEG_INFINITY);
            if s > *b {
                *b = s;
            }
        }
        let mut found: Vec<(u32, f32)> = best.into_iter().collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found
            .into_iter()
            .take(k)
            .map(|(owner, similarity)| Match {
                key: self.keys[owner as usize].clone(),
                similarity,
            })
            .collect()
    }

    /// The strategy [`Gallery::identify`] uses at the gallery's present size: the graph from its
    /// `min_templates`, the int8 scan from [`QUANTIZED_FROM`], else the exact scan.
    pub fn strategy(&self) -> Strategy {
        let n = self.owners.len();
        match &self.graph {
            Some(g) if n >= g.params().min_templates => Strategy::Graph,
            _ if n >= QUANTIZED_FROM => Strategy::Quantized,
            _ => Strategy::Exact,
        }
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
        self.identify_with(&self.strategy(), probe, threshold, min_margin)
    }

    /// [`Gallery::identify`] with the given search instead of the one chosen by size.
    pub fn identify_with(
        &self,
        search: &dyn Search<K>,
        probe: &Embedding,
        threshold: f32,
        min_margin: f32,
    ) -> Identification<K> {
        let mut top = search.top_k(self, probe, 2).into_iter();
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
        let mut random = xorshift(0x9e37_79b9_7f4a_7c15);
        let (mut g, kept) = people_gallery(20_000, &mut random);
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

    use super::Strategy as GalleryStrategy;

    fn xorshift(mut seed: u64) -> impl FnMut(usize) -> Vec<f32> {
        move |dim| {
            (0..dim)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                })
                .collect()
        }
    }

    /// `n` random 192-d templates; a third of the people have two. Also returns the vectors.
    fn people_gallery(
        n: u32,
        random: &mut dyn FnMut(usize) -> Vec<f32>,
    ) -> (Gallery<u32>, Vec<Vec<f32>>) {
        let mut g = Gallery::new();
        let mut kept = Vec::new();
        for i in 0..n {
            let v = random(192);
            g.insert(
                i / 3 * 2 + (i % 3 == 0) as u32,
                Embedding::from_raw(v.clone()).expect("unit"),
            )
            .expect("insert");
            kept.push(v);
        }
        (g, kept)
    }

    fn near(base: &[f32], noise: Vec<f32>, amount: f32) -> Embedding {
        let v = base
            .iter()
            .zip(noise)
            .map(|(b, e)| b + amount * e)
            .collect();
        Embedding::from_raw(v).expect("probe")
    }

    /// 10 000 random 192-d templates behind an HNSW graph, 31 probes each close to one
    /// template: the graph path finds the same best person with the same (exact) similarity
    /// and identify decides as the exact scan; removed people never come back, people added
    /// later are found, and the graph is rebuilt once a quarter of it is dead.
    #[test]
    fn the_graph_search_finds_whom_the_exact_scan_finds() {
        let mut random = xorshift(0x2545_f491_4f6c_dd1d);
        let (mut g, kept) = people_gallery(10_000, &mut random);
        assert_eq!(g.strategy(), GalleryStrategy::Exact);
        let params = AnnParams {
            min_templates: 5_000,
            ..AnnParams::default()
        };
        g.use_graph(params).expect("valid");
        assert!(g.has_graph());
        assert_eq!(g.strategy(), GalleryStrategy::Graph);
        let check =
            |g: &Gallery<u32>, kept: &[Vec<f32>], random: &mut dyn FnMut(usize) -> Vec<f32>| {
                let mut matched = 0;
                for (n, base) in kept.iter().step_by(333).enumerate() {
                    let probe = near(base, random(192), 0.3);
                    let exact = g.top_k(&probe, 5);
                    let graph = GalleryStrategy::Graph.top_k(g, &probe, 5);
                    assert_eq!(graph.first(), exact.first(), "probe {n}");
                    let decided = |i: Identification<u32>| match i {
                        Identification::Match { key, .. } => Some(key),
                        _ => None,
                    };
                    assert_eq!(
                        decided(g.identify(&probe, 0.5, 0.02)),
                        decided(g.identify_with(&GalleryStrategy::Exact, &probe, 0.5, 0.02)),
                        "probe {n}"
                    );
                    matched += usize::from(decided(g.identify(&probe, 0.5, 0.02)).is_some());
                }
                matched
            };
        assert_eq!(
            check(&g, &kept, &mut random),
            31,
            "every probe is its template's person"
        );
        let removed: Vec<u32> = (0..2_000u32).step_by(7).collect();
        for key in &removed {
            g.remove(key);
        }
        // The first 2 000 keys' templates (the removed among them) are the first 3 000 rows.
        for base in kept.iter().take(3_000).step_by(5) {
            let probe = near(base, random(192), 0.3);
            for m in g.top_k_graph(&probe, 5) {
                assert!(!removed.contains(&m.key), "removed {} came back", m.key);
            }
        }
        check(&g, &kept, &mut random);
        let newcomer = random(192);
        g.insert(99_999, Embedding::from_raw(newcomer.clone()).expect("unit"))
            .expect("insert");
        let found = g.top_k_graph(&near(&newcomer, random(192), 0.3), 1);
        assert_eq!(found[0].key, 99_999);

        // A small gallery: removing over a quarter of its templates rebuilds the graph.
        let mut small = Gallery::new();
        small
            .use_graph(AnnParams {
                min_templates: 100,
                ..AnnParams::default()
            })
            .expect("valid");
        let vectors: Vec<Vec<f32>> = (0..400).map(|_| random(64)).collect();
        for (i, v) in vectors.iter().enumerate() {
            small
                .insert(i as u32, Embedding::from_raw(v.clone()).expect("unit"))
                .expect("insert");
            assert_eq!(small.has_graph(), i + 1 >= 100, "built at the threshold");
        }
        for key in 0..100u32 {
            small.remove(&key);
        }
        let graph = small.graph.as_ref().expect("kept");
        assert_eq!((graph.points(), graph.dead()), (400, 100));
        small.remove(&100);
        let graph = small.graph.as_ref().expect("rebuilt");
        assert_eq!((graph.points(), graph.dead()), (299, 0));
        for (i, v) in vectors.iter().enumerate().skip(101).step_by(17) {
            assert_eq!(
                small.top_k_graph(&near(v, random(64), 0.2), 1)[0].key,
                i as u32
            );
        }
        // A copy has no graph until it grows; bad settings are refused.
        let mut copy = small.clone();
        assert!(!copy.has_graph());
        copy.insert(1_000, Embedding::from_raw(random(64)).expect("unit"))
            .expect("insert");
        assert!(copy.has_graph());
        let bad = AnnParams {
            max_connections: 300,
            ..AnnParams::default()
        };
        assert!(matches!(
            small.use_graph(bad),
            Err(crate::Error::Settings(_))
        ));
    }
}
