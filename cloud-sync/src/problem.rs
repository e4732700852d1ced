//! RFC 9457 problem details: the one shape every HTTP error of rollcall takes.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// A `application/problem+json` response.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI reference naming the problem type; stable, documented per type.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    #[serde(serialize_with = "status_code")]
    #[cfg_attr(feature = "server", schema(value_type = u16, example = 400))]
    pub status: StatusCode,
    pub detail: String,
    /// Machine-readable extras, e.g. the reasons a face was refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<ProblemReason>,
    /// Sent as `Retry-After` (seconds), e.g. with 429 or 503.
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ProblemReason {
    pub code: String,
    pub text: String,
}

fn status_code<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

impl Problem {
    /// `kind` becomes the type URI `urn:rollcall:problem:<kind>`.
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:rollcall:problem:{kind}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            reasons: Vec::new(),
            retry_after_s: None,
        }
    }

    pub fn with_reasons(mut self, reasons: Vec<ProblemReason>) -> Self {
        self.reasons = reasons;
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
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

/// JSON extraction whose failures are problem documents, not axum's plain-text rejections.
pub struct Json<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(Problem::new(
                rejection.status(),
                "invalid-body",
                "Invalid request body",
                rejection.body_text(),
            )),
        }
    }
}
