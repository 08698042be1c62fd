//! Zoom-shaped error answers: `{"code": int, "message": "..."}` with an HTTP status.

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answer of the simulated API.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    /// Per-field details, as Zoom sends with code 300 "Validation Failed.".
    pub errors: Vec<(String, String)>,
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// 400 code 300 naming the offending field.
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(400, 300, "Validation Failed.");
        e.errors.push((field.to_string(), message.into()));
        e
    }

    /// 400 code 300 with a plain message.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, 300, message)
    }

    pub(crate) fn invalid_token() -> Self {
        Self::new(401, 124, "Invalid access token.")
    }

    pub(crate) fn meeting_not_found() -> Self {
        Self::new(404, 3001, "Meeting does not exist")
    }

    pub(crate) fn recording_not_found() -> Self {
        Self::new(404, 3301, "This recording does not exist.")
    }

    pub(crate) fn user_not_found(user: &str) -> Self {
        Self::new(404, 1001, format!("User does not exist: {user}"))
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers
            .push((HeaderName::from_static(name), value.into()));
        self
    }

    pub(crate) fn body(&self) -> Value {
        let mut v = json!({"code": self.code, "message": self.message});
        if !self.errors.is_empty() {
            v["errors"] = self
                .errors
                .iter()
                .map(|(f, m)| json!({"field": f, "message": m}))
                .collect();
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name.clone(), v);
            }
        }
        (self.status, headers, Json(self.body())).into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
