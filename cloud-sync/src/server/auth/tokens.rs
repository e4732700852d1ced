//! Access tokens: short-lived JWTs signed with HS256 under a platform key kept in the database
//! (so every replica verifies every other's tokens). Validation pins the algorithm — a token
//! whose header names any other (`none`, HS512, RS256, …) is refused before its signature is
//! looked at — and requires `exp`, `nbf`, `aud`, `iss` and `sub`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "rollcall-cloud";
pub const AUDIENCE: &str = "rollcall-api";
/// Access tokens live five minutes; clients renew them with their refresh token.
pub const ACCESS_TTL_S: i64 = 300;
/// Refresh tokens live thirty days (each use spends one and issues the next).
pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Clock skew tolerated between replicas and clients.
const LEEWAY_S: u64 = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The tenant slug the user belongs to.
    pub tenant: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// When the token was issued, in ms (`iat` has whole seconds): a user disabled after this
    /// instant is never served by the token again, even once re-enabled. Tokens without it
    /// count as issued at the epoch.
    #[serde(default)]
    pub iat_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is invalid: {0}")]
    Invalid(String),
    #[error("the access token cannot be made: {0}")]
    Issue(String),
}

pub struct AccessKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl AccessKeys {
    pub fn new(secret: &[u8; 32]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_S;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for `user_id` of `tenant`, valid from `now_ms` for [`ACCESS_TTL_S`].
    pub fn issue(&self, tenant: &str, user_id: &str, now_ms: i64) -> Result<String, TokenError> {
        let now_s = now_ms.div_euclid(1000);
        let mut jti = [0u8; 12];
        getrandom::fill(&mut jti).map_err(|e| TokenError::Issue(e.to_string()))?;
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user_id.into(),
            tenant: tenant.into(),
            iat: now_s,
            nbf: now_s,
            exp: now_s + ACCESS_TTL_S,
            jti: hex::encode(jti),
            iat_ms: now_ms,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Issue(e.to_string()))
    }

    pub fn check(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

/// Whether a bearer credential has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn now() -> i64 {
        rollcall_service::clock::now_ms() / 1000
    }

    fn claims(now: i64) -> serde_json::Value {
        serde_json::json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "tenant": "acme",
                            "iat": now, "nbf": now, "exp": now + 60, "jti": "j" })
    }

    #[test]
    fn a_token_round_trips_and_a_tampered_one_fails() {
        let keys = AccessKeys::new(&[7; 32]);
        let t = now();
        let token = keys.issue("acme", "u1", t * 1000 + 250).expect("issue");
        assert!(looks_like_jwt(&token));
        let c = keys.check(&token).expect("valid");
        assert_eq!((c.sub.as_str(), c.tenant.as_str()), ("u1", "acme"));
        assert_eq!((c.iat, c.iat_ms), (t, t * 1000 + 250));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(&serde_json::json!({ "tenant": "globex" }));
        assert!(keys.check(&parts.join(".")).is_err(), "payload changed");
        assert!(
            AccessKeys::new(&[8; 32]).check(&token).is_err(),
            "other key"
        );
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let keys = AccessKeys::new(&[7; 32]);
        let body = b64(&claims(now()));
        let none = format!(
            "{}.{body}.",
            b64(&serde_json::json!({ "alg": "none", "typ": "JWT" }))
        );
        assert!(keys.check(&none).is_err(), "alg none");
        let none_upper = format!("{}.{body}.", b64(&serde_json::json!({ "alg": "None" })));
        assert!(keys.check(&none_upper).is_err());
        // HS512 with the very same secret: still refused, the algorithm is pinned.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(now()),
            &EncodingKey::from_secret(&[7; 32]),
        )
        .expect("encode");
        assert!(keys.check(&hs512).is_err(), "HS512");
    }

    #[test]
    fn time_audience_issuer_and_required_claims_are_checked() {
        let keys = AccessKeys::new(&[7; 32]);
        let sign = |v: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &v,
                &EncodingKey::from_secret(&[7; 32]),
            )
            .expect("encode")
        };
        let t = now();
        assert!(keys.check(&sign(claims(t))).is_ok());
        let mut expired = claims(t);
        expired["exp"] = (t - 60).into();
        assert!(keys.check(&sign(expired)).is_err(), "expired");
        let mut early = claims(t);
        early["nbf"] = (t + 600).into();
        assert!(keys.check(&sign(early)).is_err(), "not yet valid");
        let mut aud = claims(t);
        aud["aud"] = "someone-else".into();
        assert!(keys.check(&sign(aud)).is_err(), "audience");
        let mut iss = claims(t);
        iss["iss"] = "evil".into();
        assert!(keys.check(&sign(iss)).is_err(), "issuer");
        let mut no_nbf = claims(t);
        no_nbf.as_object_mut().expect("object").remove("nbf");
        assert!(keys.check(&sign(no_nbf)).is_err(), "nbf required");
    }
}
