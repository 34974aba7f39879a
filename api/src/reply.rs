//! [`Reply`]: a successful response as data (status and JSON bytes), so that a POST's answer
//! can be kept and replayed for a retried `Idempotency-Key`.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, Responder};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    /// JSON, or `None` for an empty body.
    pub body: Option<Vec<u8>>,
    /// The media type of `body` (problem+json for a kept error answer).
    pub content_type: &'static str,
}

impl Reply {
    pub fn ok<T: Serialize>(body: &T) -> Reply {
        Reply::json(StatusCode::OK, body)
    }

    pub fn created<T: Serialize>(body: &T) -> Reply {
        Reply::json(StatusCode::CREATED, body)
    }

    pub fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
            content_type: "application/json",
        }
    }

    pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Reply {
        Reply {
            status,
            body: Some(serde_json::to_vec(body).expect("DTOs serialize")),
            content_type: "application/json",
        }
    }

    pub fn response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        match &self.body {
            Some(body) => builder.content_type(self.content_type).body(body.clone()),
            None => builder.finish(),
        }
    }
}

impl Responder for Reply {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        self.response()
    }
}
