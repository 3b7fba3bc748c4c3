//! MLflow error codes and the one place an error becomes an HTTP response.
//!
//! Every failure a client can see is an [`MlflowError`]: a code from MLflow's
//! `ErrorCode` proto plus a message. Handlers and stores return it; only
//! [`IntoResponse`] here turns it into `{"error_code": ..., "message": ...}`
//! with the HTTP status MLflow uses (mlflow/exceptions.py). Internal errors are
//! logged and answered with a generic message, never with their text.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The MLflow error codes ferroflow emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidParameterValue,
    BadRequest,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    EndpointNotFound,
    Unauthenticated,
    PermissionDenied,
    InternalError,
    NotImplemented,
    TemporarilyUnavailable,
    /// The request is fine but the resource's state forbids it (deleting a
    /// workspace that still holds resources).
    InvalidState,
    RequestLimitExceeded,
}

impl ErrorCode {
    /// The status MLflow pairs with the code; "already exists" is 400, not 409.
    pub fn status(self) -> StatusCode {
        match self {
            // MLflow answers INVALID_STATE with 500, which its client retries
            // five times; the caller has to act, so it is a 400 here.
            Self::InvalidParameterValue
            | Self::BadRequest
            | Self::ResourceAlreadyExists
            | Self::InvalidState => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::ResourceDoesNotExist | Self::EndpointNotFound => StatusCode::NOT_FOUND,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::RequestLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An error with an MLflow error code, ready to be sent to a client.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct MlflowError {
    pub code: ErrorCode,
    pub message: String,
    /// What went wrong inside, for an internal error: logged when the
    /// response is built, never sent.
    detail: Option<String>,
}

pub type Result<T, E = MlflowError> = std::result::Result<T, E>;

impl MlflowError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// An unexpected failure. The detail is logged with the response; the
    /// client sees a generic text.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self {
            detail: Some(detail.to_string()),
            ..Self::new(ErrorCode::InternalError, "Internal server error")
        }
    }

    /// The error MLflow's client expects for a required field that is absent,
    /// `null` or `""`.
    pub fn missing_parameter(name: &str) -> Self {
        Self::invalid_parameter(format!("Missing value for required parameter '{name}'."))
    }

    /// Logs what went wrong inside an internal error; called wherever an
    /// error leaves the server (a response here, a GraphQL error message).
    pub fn log_detail(&self) {
        if let Some(detail) = &self.detail {
            tracing::error!(code = ?self.code, %detail, "request failed");
        }
    }
}

/// When a client should retry a 503: a database restart or failover takes
/// seconds.
const RETRY_AFTER_SECONDS: &str = "2";

#[derive(Serialize)]
struct ErrorBody<'a> {
    error_code: ErrorCode,
    message: &'a str,
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        self.log_detail();
        let body = ErrorBody {
            error_code: self.code,
            message: &self.message,
        };
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if self.code == ErrorCode::TemporarilyUnavailable {
            // The stock client retries a 503 with its own backoff; other
            // clients and proxies read when to come back from here.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_mlflow_names() {
        let json = serde_json::to_string(&ErrorCode::ResourceDoesNotExist).unwrap();
        assert_eq!(json, "\"RESOURCE_DOES_NOT_EXIST\"");
        assert_eq!(
            ErrorCode::ResourceAlreadyExists.status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ErrorCode::NotImplemented.status(),
            StatusCode::NOT_IMPLEMENTED
        );
    }
}
