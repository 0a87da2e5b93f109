//! The management API's errors: a code scripts match on, an HTTP status, and a
//! message that says what to fix (never a key or a signature).

use serde_json::json;

/// The error codes of `design.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    SignInvalid,
    TimeExpired,
    InvalidParam,
    /// A field longer than allowed (`InvalidParam.Length`).
    InvalidParamLength,
    ResourceNotFound,
    StreamNotOnline,
    RequestLimitExceeded,
    PayloadTooLarge,
    MethodNotAllowed,
    StoreUnavailable,
    InternalError,
}

impl Code {
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::SignInvalid => "SignInvalid",
            Code::TimeExpired => "TimeExpired",
            Code::InvalidParam => "InvalidParam",
            Code::InvalidParamLength => "InvalidParam.Length",
            Code::ResourceNotFound => "ResourceNotFound",
            Code::StreamNotOnline => "StreamNotOnline",
            Code::RequestLimitExceeded => "RequestLimitExceeded",
            Code::PayloadTooLarge => "PayloadTooLarge",
            Code::MethodNotAllowed => "MethodNotAllowed",
            Code::StoreUnavailable => "StoreUnavailable",
            Code::InternalError => "InternalError",
        }
    }

    pub const fn status(self) -> u16 {
        match self {
            Code::SignInvalid | Code::TimeExpired => 403,
            Code::InvalidParam | Code::InvalidParamLength => 400,
            Code::ResourceNotFound | Code::StreamNotOnline => 404,
            Code::RequestLimitExceeded => 429,
            Code::PayloadTooLarge => 413,
            Code::MethodNotAllowed => 405,
            Code::StoreUnavailable => 503,
            Code::InternalError => 500,
        }
    }
}

/// A refused call.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidParam, message)
    }

    pub fn body(&self) -> serde_json::Value {
        json!({ "code": self.code.as_str(), "message": self.message })
    }
}
