//! Errors of the control plane and their HTTP form.
//!
//! Every error leaves the API as `{"error": {"code": "<machine code>", "message": "<human text>"}}`
//! with a matching status code. Server-side failures (database, hashing) are logged in full and
//! answered with a generic message so no internals leak to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Result alias of the control plane.
pub type Result<T, E = ControlError> = std::result::Result<T, E>;

/// Alias for code outside the control plane that answers HTTP errors in the same shape.
pub type ApiError = ControlError;

/// An error of the control plane; also the error type of its HTTP handlers.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Malformed request: bad JSON, missing fields, wrong content.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed request whose values fail validation (empty name, duplicate pin, …).
    #[error("{0}")]
    Validation(String),
    /// Missing, malformed, unknown or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the role does not allow the action.
    #[error("{0}")]
    Forbidden(String),
    /// Unknown id, or an id of another organization.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with existing state (duplicate e-mail, …).
    #[error("{0}")]
    Conflict(String),
    /// Any other HTTP error, for callers that need their own status and code.
    #[error("{message}")]
    Http {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Database failure.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failure at start.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other server-side failure (password hashing, task join, …).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ControlError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation(message.into())
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// An error with any status and machine code, same JSON shape.
    pub fn http(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Http {
            status,
            code,
            message: message.into(),
        }
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Http { status, .. } => *status,
            Self::Database(_) | Self::Migrate(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Machine-readable code of this error (`"unauthorized"`, `"not_found"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Http { code, .. } => code,
            Self::Database(_) | Self::Migrate(_) | Self::Internal(_) => "internal",
        }
    }

    /// Message shown to the client; generic for server-side failures.
    fn public_message(&self) -> String {
        match self {
            Self::Database(_) | Self::Migrate(_) | Self::Internal(_) => {
                "internal server error".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// The JSON body of every error answer of the REST API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable `code` and a message for people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// E.g. `bad_request`, `validation_failed`, `unauthorized`, `forbidden`, `not_found`.
    #[schema(example = "not_found")]
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "control plane request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pinhouse\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (ControlError::bad_request("x"), 400, "bad_request"),
            (ControlError::validation("x"), 400, "validation_failed"),
            (ControlError::unauthorized("x"), 401, "unauthorized"),
            (ControlError::forbidden("x"), 403, "forbidden"),
            (ControlError::not_found("x"), 404, "not_found"),
            (ControlError::conflict("x"), 409, "conflict"),
            (ControlError::internal("x"), 500, "internal"),
            (
                ControlError::http(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "x"),
                413,
                "too_large",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status);
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn internal_details_do_not_leak() {
        let error = ControlError::internal("secret detail");
        assert_eq!(error.public_message(), "internal server error");
        assert_eq!(
            ControlError::not_found("device 7 not found").public_message(),
            "device 7 not found"
        );
    }
}
