//! Verification and identification metrics over labelled embeddings: every same-person
//! (genuine) and different-person (impostor) pair, ROC, EER, TAR at a FAR, the best threshold,
//! and rank-1 identification with one enrolled photo per person.

use crate::embed::Embedding;

/// One labelled face embedding.
#[derive(Debug, Clone)]
pub struct Sample {
    pub person: String,
    pub file: String,
    pub embedding: Embedding,
}

/// Similarities of all genuine and impostor pairs.
#[derive(Debug, Clone, Default)]
pub struct PairScores {
    pub genuine: Vec<f32>,
    pub impostor: Vec<f32>,
}

impl PairScores {
    pub fn from_samples(samples: &[Sample]) -> Self {
        let mut s = Self::default();
        for (i, a) in samples.iter().enumerate() {
            for b in &samples[i + 1..] {
                let Ok(sim) = a.embedding.cosine(&b.embedding) else {
                    continue;
                };
                if a.person == b.person {
                    s.genuine.push(sim);
                } else {
                    s.impostor.push(sim);
                }
            }
        }
        s
    }

    /// True accept rate: genuine pairs at or above `threshold`.
    pub fn tar(&self, threshold: f32) -> f64 {
        rate(&self.genuine, |s| s >= threshold)
    }

    /// False accept rate: impostor pairs at or above `threshold`.
    pub fn far(&self, threshold: f32) -> f64 {
        rate(&self.impostor, |s| s >= threshold)
    }

    /// Mean of the genuine accept and impostor reject rates (pairs are very unbalanced).
    pub fn balanced_accuracy(&self, threshold: f32) -> f64 {
        (self.tar(threshold) + 1.0 - self.far(threshold)) / 2.0
    }

    /// ROC points at every distinct score, from the strictest threshold down.
    pub fn roc(&self) -> Vec<RocPoint> {
        let mut thresholds: Vec<f32> = self.genuine.iter().chain(&self.impostor).copied().collect();
        thresholds.sort_by(|a, b| b.total_cmp(a));
        thresholds.dedup();
        thresholds
            .into_iter()
            .map(|t| RocPoint {
                threshold: t,
                far: self.far(t),
                tar: self.tar(t),
            })
            .collect()
    }

    /// Equal error rate: where FAR meets FRR (1 − TAR), and its threshold.
    pub fn eer(&self) -> (f64, f32) {
        self.roc()
            .into_iter()
            .map(|p| {
                (
                    ((p.far + (1.0 - p.tar)) / 2.0, (p.far - (1.0 - p.tar)).abs()),
                    p.threshold,
                )
            })
            .min_by(|a, b| a.0.1.total_cmp(&b.0.1))
            .map_or((f64::NAN, f32::NAN), |((eer, _), t)| (eer, t))
    }

    /// The highest TAR with FAR at most `max_far`, and its threshold.
    pub fn tar_at_far(&self, max_far: f64) -> (f64, f32) {
        self.roc()
            .into_iter()
            .filter(|p| p.far <= max_far)
            .max_by(|a, b| {
                a.tar
                    .total_cmp(&b.tar)
                    .then(b.threshold.total_cmp(&a.threshold))
            })
            .map_or((0.0, f32::NAN), |p| (p.tar, p.threshold))
    }

    /// The threshold with the best balanced accuracy.
    pub fn best_threshold(&self) -> (f32, f64) {
        self.roc()
            .into_iter()
            .map(|p| (p.threshold, (p.tar + 1.0 - p.far) / 2.0))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((f32::NAN, f64::NAN))
    }
}

fn rate(values: &[f32], pred: impl Fn(f32) -> bool) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().filter(|v| pred(**v)).count() as f64 / values.len() as f64
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    pub threshold: f32,
    pub far: f64,
    pub tar: f64,
}

/// Rank-1 identification: the first photo of each person (by file name) is enrolled, every
/// other photo is a probe; returns (correct, probes).
pub fn rank1(samples: &[Sample]) -> (usize, usize) {
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| (&a.person, &a.file).cmp(&(&b.person, &b.file)));
    let mut gallery = crate::Gallery::new();
    let mut enrolled = std::collections::HashSet::new();
    let mut probes = Vec::new();
    for s in sorted {
        if enrolled.insert(s.person.clone()) {
            // Every sample comes from one embedder, so all share one dimension.
            let _ = gallery.insert(s.person.clone(), s.embedding.clone());
        } else {
            probes.push(s);
        }
    }
    let correct = probes
        .iter()
        .filter(|p| {
            gallery
                .top_k(&p.embedding, 1)
                .first()
                .is_some_and(|m| m.key == p.person)
        })
        .count();
    (correct, probes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores() -> PairScores {
        PairScores {
            genuine: vec![0.9, 0.8, 0.7, 0.4],
            impostor: vec![0.1, 0.2, 0.3, 0.5, 0.0, -0.1, 0.05, 0.15],
        }
    }

    #[test]
    fn rates_at_a_threshold() {
        let s = scores();
        assert_eq!(s.tar(0.5), 0.75);
        assert_eq!(s.far(0.5), 0.125);
        assert_eq!(s.balanced_accuracy(0.5), (0.75 + 0.875) / 2.0);
        // At 0.4 every genuine pair passes and one impostor in eight: better balanced than 0.7.
        let (t, acc) = s.best_threshold();
        assert_eq!(t, 0.4);
        assert_eq!(acc, (1.0 + 0.875) / 2.0);
        assert_eq!(s.tar_at_far(0.0), (0.75, 0.7));
        let (eer, _) = s.eer();
        assert!((0.0..=0.25).contains(&eer), "{eer}");
        let roc = s.roc();
        assert_eq!(roc.first().map(|p| p.threshold), Some(0.9));
        assert!(
            roc.windows(2)
                .all(|w| w[0].far <= w[1].far && w[0].tar <= w[1].tar)
        );
    }

    fn e(v: &[f32]) -> Embedding {
        Embedding::from_raw(v.to_vec()).expect("non-zero")
    }

    #[test]
    fn pairs_and_rank1_from_samples() {
        let sample = |p: &str, f: &str, v: &[f32]| Sample {
            person: p.into(),
            file: f.into(),
            embedding: e(v),
        };
        let samples = vec![
            sample("a", "1", &[1.0, 0.0]),
            sample("a", "2", &[0.9, 0.1]),
            sample("b", "1", &[0.0, 1.0]),
            sample("b", "2", &[0.8, 0.2]), // looks like a
        ];
        let s = PairScores::from_samples(&samples);
        assert_eq!((s.genuine.len(), s.impostor.len()), (2, 4));
        assert_eq!(rank1(&samples), (1, 2));
    }
}
