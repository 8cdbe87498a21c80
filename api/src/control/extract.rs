//! Request extractors that answer failures in the control-plane JSON error shape instead of
//! axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::error::ControlError;

/// `axum::Json` whose rejections become JSON errors:
/// malformed JSON, missing or mistyped fields → 400 `bad_request`;
/// missing `Content-Type: application/json` → 415 `unsupported_media_type`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ControlError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ControlError {
    match rejection {
        JsonRejection::JsonDataError(e) => ControlError::bad_request(e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ControlError::bad_request(e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ControlError::http(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected request with `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(e) => {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ControlError::http(status, "payload_too_large", e.body_text())
            } else {
                ControlError::bad_request(e.body_text())
            }
        }
        other => ControlError::bad_request(other.body_text()),
    }
}

/// `axum::extract::Path` whose rejections become 400 JSON errors.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ControlError::bad_request(rejection.body_text())),
        }
    }
}
