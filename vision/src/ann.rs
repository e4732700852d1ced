//! Approximate 1:N search for galleries too large to scan: a Hierarchical Navigable Small World
//! graph (Malkov & Yashunin) over the templates, from the `hnsw_rs` crate. The graph only
//! proposes candidates; the gallery scores them exactly in `f32` from its own rows, so the
//! similarities it returns are exact and only the choice of candidates is approximate.
//!
//! Graph ids are never reused: a template added later gets the next id, and a removed one is
//! marked dead (its id maps to [`DEAD`]) and filtered out of searches until so many are dead
//! that the graph is rebuilt.

use hnsw_rs::prelude::{Distance, Hnsw};

/// Settings of the approximate index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnnParams {
    /// From this many templates on, [`crate::Gallery::identify`] searches the graph.
    pub min_templates: usize,
    /// Links per node and layer (HNSW's M; layer 0 keeps twice as many).
    pub max_connections: usize,
    /// Candidates considered while linking a new template (efConstruction).
    pub ef_construction: usize,
    /// Candidates considered per search (ef); at least the number of templates asked for.
    pub ef_search: usize,
}

impl Default for AnnParams {
    fn default() -> Self {
        Self {
            min_templates: 1_000_000,
            max_connections: 16,
            ef_construction: 64,
            ef_search: 128,
        }
    }
}

impl AnnParams {
    /// Why the parameters cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if !(4..=64).contains(&self.max_connections) {
            return Some(format!(
                "max_connections must be between 4 and 64, got {}",
                self.max_connections
            ));
        }
        if self.ef_construction < self.max_connections || self.ef_search == 0 {
            return Some(format!(
                "ef_construction ({}) must be at least max_connections and ef_search ({}) at least 1",
                self.ef_construction, self.ef_search
            ));
        }
        None
    }
}

/// Cosine distance of unit vectors, `1 − a·b`, never below 0. (hnsw_rs's own `DistDot`
/// asserts a non-negative distance, which float rounding breaks for a template inserted twice,
/// and sums in one lane.)
pub(crate) struct Cosine;

impl Distance<f32> for Cosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - crate::gallery::dot(a, b)).max(0.0)
    }
}

/// A graph id whose template was removed.
const DEAD: u32 = u32::MAX;
/// Layers of the graph (hnsw_rs caps it at 16).
const MAX_LAYERS: usize = 16;

pub(crate) struct Ann {
    graph: Hnsw<'static, f32, Cosine>,
    /// Graph id → the gallery row that holds its template, or [`DEAD`].
    rows: Vec<u32>,
    dead: usize,
    params: AnnParams,
}

impl std::fmt::Debug for Ann {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ann")
            .field("points", &self.rows.len())
            .field("dead", &self.dead)
            .field("params", &self.params)
            .finish()
    }
}

impl Ann {
    /// A graph over the rows of `data` (row-major, `dim` wide, unit length), built on all cores.
    pub(crate) fn build(data: &[f32], dim: usize, params: AnnParams) -> Self {
        let n = data.len() / dim.max(1);
        let mut graph = Hnsw::new(
            params.max_connections,
            n.max(1),
            MAX_LAYERS,
            params.ef_construction,
            Cosine,
        );
        let items: Vec<(&[f32], usize)> = data
            .chunks_exact(dim.max(1))
            .enumerate()
            .map(|(i, row)| (row, i))
            .collect();
        graph.parallel_insert_slice(&items);
        graph.set_searching_mode(true);
        Self {
            graph,
            rows: (0..n as u32).collect(),
            dead: 0,
            params,
        }
    }

    /// Templates in the graph, removed ones included.
    #[cfg(test)]
    pub(crate) fn points(&self) -> usize {
        self.rows.len()
    }

    /// Removed templates still in the graph (filtered out of searches).
    #[cfg(test)]
    pub(crate) fn dead(&self) -> usize {
        self.dead
    }

    pub(crate) fn params(&self) -> AnnParams {
        self.params
    }

    /// Links the template of gallery row `row`.
    pub(crate) fn insert(&mut self, row: u32, v: &[f32]) {
        self.graph.set_searching_mode(false);
        self.graph.insert_slice((v, self.rows.len()));
        self.graph.set_searching_mode(true);
        self.rows.push(row);
    }

    /// After the gallery dropped rows: `new_row[old]` is each old row's new index, or `None`
    /// for a removed one. Returns whether so many templates are dead (a quarter) that the
    /// graph should be rebuilt.
    pub(crate) fn remap(&mut self, new_row: &[Option<u32>]) -> bool {
        for r in self.rows.iter_mut().filter(|r| **r != DEAD) {
            match new_row.get(*r as usize).copied().flatten() {
                Some(n) => *r = n,
                None => {
                    *r = DEAD;
                    self.dead += 1;
                }
            }
        }
        self.dead * 4 > self.rows.len()
    }

    /// Gallery rows of up to `n` templates nearest to `probe` (none removed).
    pub(crate) fn nearest_rows(&self, probe: &[f32], n: usize) -> Vec<u32> {
        let rows = &self.rows;
        let alive = |id: &usize| rows.get(*id).is_some_and(|r| *r != DEAD);
        let ef = self.params.ef_search.max(n);
        // Without removed templates there is nothing to filter (the filtered search costs more).
        let filter: Option<&dyn hnsw_rs::prelude::FilterT> = (self.dead > 0).then_some(&alive);
        self.graph
            .search_filter(probe, n, ef, filter)
            .into_iter()
            .filter_map(|nb| rows.get(nb.d_id).copied())
            .filter(|r| *r != DEAD)
            .collect()
    }
}
