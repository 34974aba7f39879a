//! Our own extractors, so that every bad input is a problem+json naming what was wrong:
//! [`Json`] (body → field path), [`Query`] (query string → parameter), [`IfMatch`], and
//! [`parse_id`] for ids in paths.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// SHA-256 of the request body, left in the request's extensions by [`Json`] for the
/// idempotency check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDigest(pub [u8; 32]);

/// A JSON request body. Unlike actix's, a wrong type or an unknown field answers 400 with
/// `errors[].field` set to the JSON path (`hosts[1]`, `login_protection.max_failures`), a
/// body over the limit 413, and a non-JSON content type 415.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Json<T>, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = match req.headers().get(header::CONTENT_TYPE) {
            None => true,
            Some(v) => v.to_str().is_ok_and(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
                    || essence.to_ascii_lowercase().ends_with("+json")
            }),
        };
        let limit = limit_of(req);
        let body = web::Payload::from_request(req, payload).into_inner();
        let req = req.clone();
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::UnsupportedMediaType);
            }
            let body = body.map_err(|e| ApiError::Malformed(e.to_string()))?;
            let bytes = body
                .to_bytes_limited(limit)
                .await
                .map_err(|_| ApiError::PayloadTooLarge { limit })?
                .map_err(|e| ApiError::Malformed(format!("reading the request body: {e}")))?;
            req.extensions_mut()
                .insert(BodyDigest(Sha256::digest(&bytes).into()));
            parse_json(&bytes).map(Json)
        })
    }
}

fn limit_of(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<crate::AppState>>()
        .map_or(crate::DEFAULT_BODY_LIMIT, |s| s.config.body_limit_bytes)
}

/// Deserializes a JSON body, naming the path of the first offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Malformed(
            "the request body is empty; a JSON object is expected".into(),
        ));
    }
    // serde fills a struct from a JSON array too (fields by position), so `[1, 2]` would be
    // taken for an object; every body is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid("body", "a JSON object is expected"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let message = strip_position(&inner.to_string());
            ApiError::invalid(field_of(&path, &message), message)
        } else {
            ApiError::Malformed(format!("the request body is not valid JSON: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::Malformed(format!("trailing data after the JSON body: {e}")))?;
    Ok(value)
}

/// The path of the offending field. A missing field is reported at its parent, so its name
/// is taken from serde's message.
fn field_of(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "body".to_owned(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (path, None) => path.to_owned(),
    }
}

/// serde_json appends " at line L column C" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string, deserialized with the offending parameter named in the 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Query<T>, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(
            req.query_string().as_bytes(),
        ));
        ready(
            serde_path_to_error::deserialize(de)
                .map(Query)
                .map_err(|e| {
                    let path = e.path().to_string();
                    let message = e.into_inner().to_string();
                    let field = if path == "." {
                        // Unknown parameters and missing ones are reported at the root;
                        // the message names them.
                        "query".to_owned()
                    } else {
                        path
                    };
                    ApiError::invalid(field, message)
                }),
        )
    }
}

/// `If-Match: <version>` (quotes and a weak `W/` prefix are accepted); absent means "any".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Option<u64>);

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<IfMatch, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = match req.headers().get(header::IF_MATCH) {
            None => Ok(IfMatch(None)),
            Some(v) => v
                .to_str()
                .ok()
                .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
                .and_then(|v| v.parse().ok())
                .map(|v| IfMatch(Some(v)))
                .ok_or_else(|| {
                    ApiError::invalid("If-Match", "must be a resource version, e.g. \"3\"")
                }),
        };
        ready(parsed)
    }
}

/// For nullable PATCH fields: tells a field given as `null` (`Some(None)`) from one left out
/// (`None`). Use as `#[serde(default, deserialize_with = "crate::extract::present")]` on an
/// `Option<Option<T>>`, with `#[schema(value_type = Option<T>)]`.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Parses an id from a path or body field; a malformed id is a 400 naming `field`.
pub fn parse_id<T>(field: &str, raw: &str) -> Result<T, ApiError>
where
    T: FromStr<Err = domain::IdError>,
{
    raw.parse()
        .map_err(|e: domain::IdError| ApiError::invalid(field, e.to_string()))
}
