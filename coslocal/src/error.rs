//! `ApiError`: a COS error response (status + code + message) as the handlers raise it,
//! rendered as the COS `<Error>` document.

use hyper::StatusCode;

/// One COS error. The message must never contain a secret (keys, tokens, header values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
        }
    }

    pub fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "InvalidArgument", message)
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!("internal error: {e}");
        ApiError::new(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )
    }

    pub fn no_such_key() -> ApiError {
        ApiError::new(404, "NoSuchKey", "The specified key does not exist.")
    }

    pub fn no_such_upload() -> ApiError {
        ApiError::new(
            404,
            "NoSuchUpload",
            "The specified multipart upload does not exist.",
        )
    }

    /// The `<Error>` document.
    pub fn to_xml(&self, resource: &str, request_id: &str, trace_id: &str) -> String {
        let mut s = String::from(cos_wire::xml::DECL);
        s.push_str("<Error>");
        cos_wire::xml::elem(&mut s, "Code", self.code);
        cos_wire::xml::elem(&mut s, "Message", &self.message);
        cos_wire::xml::elem(&mut s, "Resource", resource);
        cos_wire::xml::elem(&mut s, "RequestId", request_id);
        cos_wire::xml::elem(&mut s, "TraceId", trace_id);
        s.push_str("</Error>");
        s
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(e)
    }
}
