//! Who is calling: the bootstrap administrator or a registered node, by bearer token.
//! Tokens are random 256-bit values; only their sha256 is stored.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};
use sha2::{Digest, Sha256};

use super::{api::AppState, store::NodeRow};
use crate::problem::Problem;

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token, hex-encoded.
pub(crate) fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("missing Authorization: Bearer <token> header"))?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::unauthorized("Authorization header must be `Bearer <token>`"))
}

/// Compares two equal-length hex digests without an early exit.
fn same_digest(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The caller is the administrator.
pub(crate) struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let token = bearer(parts)?;
        if same_digest(&token_hash(token), &state.admin_token_sha256) {
            Ok(Admin)
        } else {
            Err(Problem::unauthorized("invalid administrator token"))
        }
    }
}

/// The caller is this registered, unrevoked node.
pub(crate) struct Node(pub NodeRow);

impl FromRequestParts<Arc<AppState>> for Node {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Problem> {
        let hash = token_hash(bearer(parts)?);
        let store = state.store.clone();
        let row = tokio::task::spawn_blocking(move || {
            store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .node_by_token_hash(&hash)
        })
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| Problem::internal(e.to_string()))?;
        row.map(Node)
            .ok_or_else(|| Problem::unauthorized("unknown or revoked node token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_exactly() {
        let a = token_hash("secret");
        assert!(same_digest(&a, &token_hash("secret")));
        assert!(!same_digest(&a, &token_hash("secreT")));
        assert!(!same_digest(&a, ""));
        assert_eq!(new_token().expect("random").len(), 64);
        assert_ne!(new_token().expect("random"), new_token().expect("random"));
    }
}
