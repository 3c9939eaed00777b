//! Heroku-style error bodies: `{"id": "...", "message": "..."}` with a matching status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hoist_store::StoreError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub id: &'static str,
    pub message: String,
    pub resource: Option<&'static str>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            id,
            message: message.into(),
            resource: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid credentials provided. Run \"hoist login\" or set HOIST_API_KEY.",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(resource: &'static str) -> Self {
        let message = match resource {
            "app" => "Couldn't find that app. Run \"hoist apps\" to list yours.".to_string(),
            r => format!("Couldn't find that {r}."),
        };
        ApiError {
            status: StatusCode::NOT_FOUND,
            id: "not_found",
            message,
            resource: Some(resource),
        }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            format!("{what} is not available on this Hoist server yet."),
        )
    }
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
    /// The data disk is full: say so (a bare 500 told users nothing).
    pub fn disk_full() -> Self {
        tracing::error!("the data disk is full");
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            "The platform's data disk is full; nothing was changed. Ask the operator to free space.",
        )
    }
    /// A failed file operation: 507 when the disk is full, else internal.
    pub fn io(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::StorageFull {
            Self::disk_full()
        } else {
            Self::internal(e)
        }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Internal server error.",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { resource } => ApiError::not_found(resource),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Invalid(m) => ApiError::invalid(m),
            StoreError::Forbidden(m) => ApiError::forbidden(m),
            e if e.is_disk_full() => ApiError::disk_full(),
            e => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"id": self.id, "message": self.message});
        if let Some(r) = self.resource {
            body["resource"] = json!(r);
        }
        (self.status, axum::Json(body)).into_response()
    }
}
