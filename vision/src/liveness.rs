//! Active liveness: over a short burst of frames, the person must blink or turn their head.
//! A printed photo, a still image on a screen or a replayed still frame produces the same eye
//! openness and pose in every frame, so it cannot pass. The score goes to the fraud rules
//! (`liveness_low`); nothing here is a hard-coded pass.

/// What the face mesh measured in one frame of the burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameObservation {
    /// Eye aspect ratios (see [`crate::Mesh::eye_openness`]).
    pub eye_openness: [f32; 2],
    pub yaw: f32,
    /// Face presence from the mesh, in [0, 1].
    pub presence: f32,
}

impl From<&crate::Mesh> for FrameObservation {
    fn from(m: &crate::Mesh) -> Self {
        Self {
            eye_openness: m.eye_openness,
            yaw: m.pose.yaw,
            presence: m.presence,
        }
    }
}

/// What the kiosk asked the person to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    Blink,
    TurnHead,
    /// Either a blink or a head turn passes.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChallengePolicy {
    pub min_frames: usize,
    /// Eyes count as closed below this fraction of their open baseline.
    pub closed_fraction: f32,
    /// And as open again at or above this fraction.
    pub open_fraction: f32,
    /// Smallest head turn (yaw range, degrees) that passes.
    pub min_turn_deg: f32,
    /// Frames with a lower face presence break the burst (the face left or was swapped).
    pub min_presence: f32,
}

impl Default for ChallengePolicy {
    fn default() -> Self {
        Self {
            min_frames: 5,
            closed_fraction: 0.6,
            open_fraction: 0.85,
            min_turn_deg: 15.0,
            min_presence: 0.5,
        }
    }
}

/// The outcome of a challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveLiveness {
    pub passed: bool,
    /// Liveness in [0, 1]: how clearly the blink or turn was seen (0 when neither was).
    pub score: f32,
    /// Deepest eye closure relative to the open baseline (1 = never closed).
    pub min_openness_ratio: f32,
    /// Yaw range over the burst, degrees.
    pub turn_deg: f32,
    /// Why it passed or failed, for the kiosk and the event's reasons.
    pub text: String,
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Judges a burst of observations, in time order.
pub fn evaluate(
    frames: &[FrameObservation],
    challenge: Challenge,
    policy: &ChallengePolicy,
) -> ActiveLiveness {
    let fail = |text: String| ActiveLiveness {
        passed: false,
        score: 0.0,
        min_openness_ratio: 1.0,
        turn_deg: 0.0,
        text,
    };
    if frames.len() < policy.min_frames {
        return fail(format!(
            "{} frames, need at least {}",
            frames.len(),
            policy.min_frames
        ));
    }
    if let Some(i) = frames
        .iter()
        // A NaN presence is a lost face too.
        .position(|f| f.presence.is_nan() || f.presence < policy.min_presence)
    {
        return fail(format!("the face was lost in frame {}", i + 1));
    }
    let openness: Vec<f32> = frames
        .iter()
        .map(|f| (f.eye_openness[0] + f.eye_openness[1]) / 2.0)
        .collect();
    let baseline = median(openness.clone());
    let ratios: Vec<f32> = openness
        .iter()
        .map(|o| if baseline > 0.0 { o / baseline } else { 1.0 })
        .collect();
    // A blink: open, then closed, then open again.
    let blink_at = ratios.iter().enumerate().position(|(i, r)| {
        *r < policy.closed_fraction
            && ratios[..i].iter().any(|b| *b >= policy.open_fraction)
            && ratios[i + 1..].iter().any(|a| *a >= policy.open_fraction)
    });
    let min_ratio = ratios.iter().copied().fold(f32::INFINITY, f32::min);
    let yaws = frames.iter().map(|f| f.yaw);
    let turn = yaws.clone().fold(f32::NEG_INFINITY, f32::max) - yaws.fold(f32::INFINITY, f32::min);
    let blink_score = if blink_at.is_some() {
        ((1.0 - min_ratio) / (1.0 - policy.closed_fraction))
            .clamp(0.0, 1.0)
            .max(0.5)
    } else {
        0.0
    };
    let turn_score = if turn >= policy.min_turn_deg {
        (turn / (2.0 * policy.min_turn_deg)).clamp(0.5, 1.0)
    } else {
        0.0
    };
    let (passed, score) = match challenge {
        Challenge::Blink => (blink_score > 0.0, blink_score),
        Challenge::TurnHead => (turn_score > 0.0, turn_score),
        Challenge::Any => (
            blink_score > 0.0 || turn_score > 0.0,
            blink_score.max(turn_score),
        ),
    };
    let text = if passed {
        format!(
            "live: {}",
            match (blink_score > 0.0, turn_score > 0.0) {
                (true, true) => format!(
                    "blinked (eyes to {:.0}%) and turned {turn:.0}°",
                    min_ratio * 100.0
                ),
                (true, false) => format!("blinked (eyes to {:.0}% of open)", min_ratio * 100.0),
                _ => format!("turned the head {turn:.0}°"),
            }
        )
    } else {
        format!(
            "no {} over {} frames (eyes never below {:.0}% of open, head turned {turn:.0}°): a still image cannot pass",
            match challenge {
                Challenge::Blink => "blink",
                Challenge::TurnHead => "head turn",
                Challenge::Any => "blink or head turn",
            },
            frames.len(),
            min_ratio * 100.0
        )
    };
    ActiveLiveness {
        passed,
        score,
        min_openness_ratio: min_ratio,
        turn_deg: turn,
        text,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frame(open: f32, yaw: f32) -> FrameObservation {
        FrameObservation {
            eye_openness: [open, open],
            yaw,
            presence: 0.99,
        }
    }

    #[test]
    fn a_blink_passes_and_a_still_burst_does_not() {
        let p = ChallengePolicy::default();
        let blink: Vec<_> = [0.30, 0.31, 0.08, 0.29, 0.30]
            .iter()
            .map(|o| frame(*o, 2.0))
            .collect();
        let r = evaluate(&blink, Challenge::Blink, &p);
        assert!(r.passed && r.score > 0.9, "{r:?}");
        let still = vec![frame(0.30, 2.0); 8];
        let r = evaluate(&still, Challenge::Any, &p);
        assert!(!r.passed && r.score == 0.0, "{r:?}");
        assert!(r.text.contains("still image"), "{}", r.text);
        // Closed eyes throughout (a photo of someone asleep) is not a blink.
        let shut: Vec<_> = [0.08, 0.07, 0.08, 0.07, 0.08]
            .iter()
            .map(|o| frame(*o, 0.0))
            .collect();
        assert!(!evaluate(&shut, Challenge::Blink, &p).passed);
        // Closing without reopening is not a blink either.
        let closing: Vec<_> = [0.30, 0.30, 0.30, 0.10, 0.08]
            .iter()
            .map(|o| frame(*o, 0.0))
            .collect();
        assert!(!evaluate(&closing, Challenge::Blink, &p).passed);
    }

    #[test]
    fn a_head_turn_passes_the_turn_challenge_only_if_large_enough() {
        let p = ChallengePolicy::default();
        let turn: Vec<_> = [0.0, 6.0, 12.0, 18.0, 24.0]
            .iter()
            .map(|y| frame(0.3, *y))
            .collect();
        assert!(evaluate(&turn, Challenge::TurnHead, &p).passed);
        assert!(!evaluate(&turn, Challenge::Blink, &p).passed);
        let nod: Vec<_> = [0.0, 3.0, 6.0, 3.0, 0.0]
            .iter()
            .map(|y| frame(0.3, *y))
            .collect();
        assert!(!evaluate(&nod, Challenge::TurnHead, &p).passed);
    }

    #[test]
    fn too_few_frames_or_a_lost_face_fail() {
        let p = ChallengePolicy::default();
        assert!(!evaluate(&[frame(0.3, 0.0); 3], Challenge::Any, &p).passed);
        let mut frames = vec![
            frame(0.3, 0.0),
            frame(0.05, 0.0),
            frame(0.3, 0.0),
            frame(0.3, 0.0),
            frame(0.3, 0.0),
        ];
        frames[3].presence = 0.1;
        let r = evaluate(&frames, Challenge::Any, &p);
        assert!(
            !r.passed && r.text.contains("lost in frame 4"),
            "{}",
            r.text
        );
    }

    proptest! {
        #[test]
        fn identical_frames_never_pass(open in 0.0f32..0.6, yaw in -60.0f32..60.0, n in 0usize..40) {
            let r = evaluate(&vec![frame(open, yaw); n], Challenge::Any, &ChallengePolicy::default());
            prop_assert!(!r.passed);
        }

        #[test]
        fn never_panics_and_scores_stay_in_range(frames in proptest::collection::vec((any::<f32>(), any::<f32>(), any::<f32>()), 0..20)) {
            let frames: Vec<_> = frames.into_iter().map(|(o, y, p)| FrameObservation { eye_openness: [o, o], yaw: y, presence: p }).collect();
            let r = evaluate(&frames, Challenge::Any, &ChallengePolicy::default());
            prop_assert!((0.0..=1.0).contains(&r.score) || !r.passed);
        }
    }
}
