//! RFC 9457 problem details: the one shape every HTTP error of rollcall takes.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// A `application/problem+json` response.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI reference naming the problem type; stable, documented per type.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    #[serde(serialize_with = "status_code")]
    #[schema(value_type = u16, example = 400)]
    pub status: StatusCode,
    pub detail: String,
    /// Machine-readable extras, e.g. the reasons a face was refused.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<ProblemReason>)]
    pub reasons: Box<[ProblemReason]>,
    /// The request fields that are wrong, and why (RFC 9457's `invalid-params`).
    #[serde(rename = "invalid-params", skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Vec<InvalidParam>)]
    pub invalid_params: Box<[InvalidParam]>,
    /// Sent as `Retry-After` (seconds), e.g. with 429 or 503.
    #[serde(skip)]
    pub retry_after_s: Option<u32>,
}

/// One wrong field of a request: its name (a body field, `site_ids[2]`, a query parameter or a
/// header) and why.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

/// The field a validation message is about. Every rollcall message names it first —
/// `field: reason`, `field must …`, `field is …` — and serde's and axum's name it their way
/// (`unknown field `x``, `missing field `x``, `a.b: reason`); anything else names no field.
pub fn invalid_param(detail: &str) -> Option<InvalidParam> {
    let text = detail
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| detail.strip_prefix("Failed to deserialize query string: "))
        .unwrap_or(detail);
    let field = |name: &str| InvalidParam {
        name: name.to_owned(),
        reason: text.to_owned(),
    };
    for marker in ["unknown field `", "missing field `"] {
        if let Some((_, rest)) = text.split_once(marker) {
            let name = rest.split('`').next().filter(|n| !n.is_empty())?;
            return Some(field(name));
        }
    }
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || "_-.[]".contains(c)))
        .unwrap_or(text.len());
    let (name, rest) = text.split_at(end);
    let names_field = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && [": ", " must ", " is "].iter().any(|m| rest.starts_with(m));
    names_field.then(|| field(name))
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct ProblemReason {
    pub code: String,
    pub text: String,
}

fn status_code<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

/// A documented kind of problem: its `type` URI's last part, title, status and what it means.
/// Each domain declares the kinds it answers with, and the OpenAPI document lists them all.
#[derive(Debug, PartialEq, Eq)]
pub struct ProblemType {
    /// `person-exists` → `urn:rollcall:problem:person-exists`.
    pub slug: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// When it is answered, for the documentation.
    pub meaning: &'static str,
}

impl ProblemType {
    /// The full `type` URI.
    pub fn uri(&self) -> String {
        format!("urn:rollcall:problem:{}", self.slug)
    }
}

impl Problem {
    /// A problem of a documented kind; a 400's `invalid-params` names the field the detail
    /// names, as [`Problem::bad_request`] does.
    pub fn of(kind: &ProblemType, detail: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(kind.status).unwrap_or(StatusCode::BAD_REQUEST);
        let p = Self::new(status, kind.slug, kind.title, detail);
        if status == StatusCode::BAD_REQUEST {
            p.with_invalid_param()
        } else {
            p
        }
    }

    /// `kind` becomes the type URI `urn:rollcall:problem:<kind>`.
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:rollcall:problem:{kind}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            reasons: Box::default(),
            invalid_params: Box::default(),
            retry_after_s: None,
        }
    }

    pub fn with_reasons(mut self, reasons: Vec<ProblemReason>) -> Self {
        self.reasons = reasons.into_boxed_slice();
        self
    }

    /// 400, with the field the detail names (if it names one) in `invalid-params`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
        .with_invalid_param()
    }

    /// 422: the request is well-formed but `field` breaks a rule; `detail` says which. The type
    /// URI is `urn:rollcall:problem:<kind>`, and `invalid-params` names the field.
    pub fn unprocessable(kind: &str, field: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            kind,
            "Unprocessable content",
            format!("{field}: {detail}"),
        );
        p.invalid_params = Box::new([InvalidParam {
            name: field.to_owned(),
            reason: detail,
        }]);
        p
    }

    fn with_invalid_param(mut self) -> Self {
        self.invalid_params = invalid_param(&self.detail).into_iter().collect();
        self
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
        response
    }
}

/// JSON extraction whose failures are problem documents, not axum's plain-text rejections. A
/// body holding the NUL character in any string is refused here (400 naming the field, see
/// [`crate::text`]), so no handler ever passes one on to storage.
pub struct Json<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = |status, detail: String| {
            Problem::new(status, "invalid-body", "Invalid request body", detail)
                .with_invalid_param()
        };
        if !json_content_type(req.headers()) {
            return Err(invalid(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(rejection) => return Err(invalid(rejection.status(), rejection.body_text())),
        };
        if crate::text::json_has_nul(&bytes) {
            let field = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| crate::text::json_nul_path(&v));
            if let Some(field) = field {
                return Err(invalid(
                    StatusCode::BAD_REQUEST,
                    format!("{field}: {}", crate::text::NUL_REFUSED),
                ));
            }
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(invalid(rejection.status(), rejection.body_text())),
        }
    }
}

/// `application/json` or `application/<something>+json`, as axum's own extractor requires.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_read_from_each_kind_of_message() {
        let name = |d: &str| invalid_param(d).map(|p| p.name);
        for (detail, field) in [
            ("email must look like name@example.com", Some("email")),
            (
                "site_ids[3]: 1-64 characters of a-z, 0-9, - or _",
                Some("site_ids[3]"),
            ),
            (
                "config_toml is not valid TOML: expected `=`",
                Some("config_toml"),
            ),
            (
                "Idempotency-Key must be 1-255 visible ASCII characters",
                Some("Idempotency-Key"),
            ),
            (
                "Failed to deserialize query string: unknown field `colour`, expected one of `a`",
                Some("colour"),
            ),
            (
                "Failed to deserialize the JSON body into the target type: missing field `email` at line 1 column 2",
                Some("email"),
            ),
            (
                "Failed to deserialize the JSON body into the target type: owner.password: invalid type: integer `5`",
                Some("owner.password"),
            ),
            (
                "Failed to deserialize query string: decision: unknown variant `maybe`",
                Some("decision"),
            ),
            ("a shift lasts at most 24 hours", None),
            ("the Host header is not a valid host name", None),
            ("say which tenant: use your tenant's host name", None),
            ("", None),
            (": nothing", None),
        ] {
            assert_eq!(name(detail).as_deref(), field, "{detail}");
        }
        let p = Problem::bad_request("limit must be between 1 and 1000");
        assert_eq!(
            p.invalid_params.to_vec(),
            vec![InvalidParam {
                name: "limit".into(),
                reason: "limit must be between 1 and 1000".into()
            }]
        );
        let json = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(json["invalid-params"][0]["name"], "limit");
        let none = serde_json::to_value(Problem::not_found("x")).unwrap_or_default();
        assert!(none.get("invalid-params").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_message_is_read_without_panicking(s in "\\PC{0,80}") {
            if let Some(p) = invalid_param(&s) {
                proptest::prop_assert!(!p.name.is_empty());
            }
        }
    }
}
