//! The body of a node's push: JSON or CBOR (`Content-Type`), sent as it is or compressed
//! (`Content-Encoding: gzip` or `zstd`), at most [`MAX_BATCH_BYTES`] once inflated; and the
//! answer, in the push's own encoding. Anything else is refused with a problem document before
//! a byte is stored: another media type or encoding 415, too large 413, corrupt compression or
//! not well-formed 400, well-formed but of the wrong shape 422.

use axum::{
    extract::{FromRequest, Request},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use rollcall_protocol::{
    codec::{DecodeError, Encoding},
    gzip::{self, GzipError},
    wire::MAX_BATCH_BYTES,
    zstd::{self, ZstdError},
};
use rollcall_service::problem::Problem;

/// How a push body is compressed.
enum Coding {
    Identity,
    Gzip,
    Zstd,
}

/// A push body, and the encoding it came in (the answer uses it too).
pub(crate) struct SyncBody<T> {
    pub value: T,
    pub encoding: Encoding,
}

/// An answer in the encoding of the request it answers.
pub(crate) struct SyncReply<T>(pub Encoding, pub T);

impl<T: Serialize> IntoResponse for SyncReply<T> {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, self.0.content_type())],
            self.0.encode(&self.1),
        )
            .into_response()
    }
}

fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        format!("a push may hold at most {MAX_BATCH_BYTES} bytes, once inflated"),
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

impl<T, S> FromRequest<S> for SyncBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Problem> {
        let headers = req.headers();
        let Some(encoding) = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Encoding::from_content_type)
        else {
            return Err(unsupported(
                "a push is application/json or application/cbor (optionally Content-Encoding: gzip or zstd)"
                    .into(),
            ));
        };
        let coding = match headers
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("identity") => Coding::Identity,
            Some("gzip") => Coding::Gzip,
            Some("zstd") => Coding::Zstd,
            Some(other) => {
                return Err(unsupported(format!(
                    "Content-Encoding `{other}` is not understood: send gzip, zstd or nothing"
                )));
            }
        };
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BATCH_BYTES)
            .await
            .map_err(|_| too_large())?;
        let corrupt = |why: String| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "Invalid request body",
                why,
            )
        };
        let body = match coding {
            Coding::Identity => bytes.to_vec(),
            Coding::Gzip => {
                gzip::decompress_bounded(&bytes, MAX_BATCH_BYTES).map_err(|e| match e {
                    GzipError::TooLarge { .. } => too_large(),
                    GzipError::Corrupt(why) => corrupt(why),
                })?
            }
            Coding::Zstd => {
                zstd::decompress_bounded(&bytes, MAX_BATCH_BYTES).map_err(|e| match e {
                    ZstdError::TooLarge { .. } => too_large(),
                    ZstdError::Corrupt(why) => corrupt(why),
                })?
            }
        };
        match encoding.decode(&body) {
            Ok(value) => Ok(SyncBody { value, encoding }),
            Err(e) => {
                let status = match e {
                    DecodeError::Shape(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    DecodeError::Syntax(_) => StatusCode::BAD_REQUEST,
                };
                Err(Problem::new(
                    status,
                    "invalid-body",
                    "Invalid request body",
                    format!("the push is not a batch: {e}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, extract::FromRequest, http::Request};
    use rollcall_protocol::{
        golden::{self, Payload},
        wire::PushBatch,
    };

    use super::*;

    /// Every golden push (each stream alone, then all together), in JSON and CBOR, plain and
    /// compressed as nodes send them, is read by the push handler's own extractor into the
    /// batch it stands for: a node that pushes as version 1 did is understood.
    #[tokio::test]
    async fn the_golden_pushes_of_a_node_decode_as_the_cloud_reads_them() {
        let mut read = 0;
        for case in golden::cases() {
            let Payload::Push(want) = &case.payload else {
                continue;
            };
            for encoding in [Encoding::Json, Encoding::Cbor] {
                let bytes = std::fs::read(case.path(encoding)).expect("golden file");
                for (coding, body) in [
                    (None, bytes.clone()),
                    (Some("gzip"), gzip::compress(&bytes)),
                    (Some("zstd"), zstd::compress(&bytes)),
                ] {
                    let mut req = Request::builder()
                        .method("POST")
                        .header(header::CONTENT_TYPE, encoding.content_type());
                    if let Some(c) = coding {
                        req = req.header(header::CONTENT_ENCODING, c);
                    }
                    let req = req.body(Body::from(body)).expect("request");
                    let got = SyncBody::<PushBatch>::from_request(req, &())
                        .await
                        .unwrap_or_else(|p| panic!("{}: {}", case.name, p.detail));
                    assert_eq!(got.encoding, encoding);
                    assert_eq!(&got.value, want.as_ref(), "{} {coding:?}", case.name);
                    read += 1;
                }
            }
        }
        assert_eq!(read, 6 * 2 * 3);
    }
}
