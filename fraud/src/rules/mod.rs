//! The rules, by subject. Each looks at the context and adds [`Finding`]s; [`crate::assess`]
//! weighs them with the site's policy.
//!
//! INVARIANT: no rule depends on the order of `history` or `device_history` (each takes the
//! worst case over all relevant events, or the latest by time with ties broken by value).

mod device;
mod identity;
mod location;
mod time;

use crate::{context::CheckInContext, policy::Policy, reason::Code};

/// A rule's observation, before the policy weighs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub code: Code,
    /// How strongly the reason applies, in [0, 1]; the weight is `policy.weight(code) × factor`.
    pub factor: f64,
    pub values: Vec<(String, f64)>,
    pub text: String,
}

pub(crate) fn finding(code: Code, factor: f64, values: &[(&str, f64)], text: String) -> Finding {
    Finding {
        code,
        factor: factor.clamp(0.0, 1.0),
        values: values.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        text,
    }
}

/// Every rule's findings for `ctx`.
pub fn evaluate(ctx: &CheckInContext, policy: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    location::check(ctx, policy, &mut out);
    time::check(ctx, policy, &mut out);
    device::check(ctx, policy, &mut out);
    identity::check(ctx, policy, &mut out);
    out
}
