//! Errors as HTTP responses: the status follows the code, the body is the
//! SDK's `ErrorBody`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pyro_sdk::api::{ErrorBody, ErrorCode};

use crate::error::SupervisorError;

/// An error on its way to a client.
#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    /// A bad request.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self(ErrorBody::new(ErrorCode::InvalidArgument, message))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl From<SupervisorError> for ApiError {
    fn from(err: SupervisorError) -> Self {
        Self(err.to_body())
    }
}

impl From<ErrorBody> for ApiError {
    fn from(body: ErrorBody) -> Self {
        Self(body)
    }
}

/// The HTTP status for an error code.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::UnknownEnvironment
        | ErrorCode::UnknownVm
        | ErrorCode::UnknownWorkspace
        | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict | ErrorCode::VersionMismatch => StatusCode::CONFLICT,
        ErrorCode::LimitReached => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::BackendUnavailable | ErrorCode::SupervisorUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::EnvironmentInstallFailed
        | ErrorCode::VmBootFailed
        | ErrorCode::GuestUnavailable
        | ErrorCode::GuestError
        | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_for(self.0.code)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(&self.0)
    }
}
