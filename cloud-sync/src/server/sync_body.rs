//! The body of a node's push: JSON, sent as it is or gzip-compressed (`Content-Encoding: gzip`),
//! at most [`MAX_BATCH_BYTES`] once inflated. Anything else is refused with a problem document
//! before a byte is stored: another encoding 415, too large 413, not gzip or not JSON 400, JSON
//! of the wrong shape 422.

use axum::{
    extract::{FromRequest, Request},
    http::{StatusCode, header},
};
use serde::de::DeserializeOwned;

use crate::{
    gzip::{self, GzipError},
    problem::Problem,
    protocol::MAX_BATCH_BYTES,
};

/// A JSON body that may come gzip-compressed.
pub(crate) struct SyncJson<T>(pub T);

fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        format!("a push may hold at most {MAX_BATCH_BYTES} bytes of JSON, once inflated"),
    )
}

fn unsupported(detail: String) -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
        detail,
    )
}

impl<T, S> FromRequest<S> for SyncJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Problem> {
        let headers = req.headers();
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(unsupported(
                "a push is application/json (optionally Content-Encoding: gzip)".into(),
            ));
        }
        let gzipped = match headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("identity") => false,
            Some("gzip") => true,
            Some(other) => {
                return Err(unsupported(format!(
                    "Content-Encoding `{other}` is not understood: send gzip or nothing"
                )));
            }
        };
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BATCH_BYTES)
            .await
            .map_err(|_| too_large())?;
        let json = if gzipped {
            gzip::decompress_bounded(&bytes, MAX_BATCH_BYTES).map_err(|e| match e {
                GzipError::TooLarge { .. } => too_large(),
                GzipError::Corrupt(why) => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-body",
                    "Invalid request body",
                    why,
                ),
            })?
        } else {
            bytes.to_vec()
        };
        serde_json::from_slice(&json).map(SyncJson).map_err(|e| {
            let status = if e.is_data() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::BAD_REQUEST
            };
            Problem::new(
                status,
                "invalid-body",
                "Invalid request body",
                format!("the push is not a batch: {e}"),
            )
        })
    }
}
