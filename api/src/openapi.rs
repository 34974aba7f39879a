//! The OpenAPI 3.1 document, generated from the routes themselves: every `/api/v1` route is
//! registered through `utoipa_actix_web`, which collects each handler's `#[utoipa::path]`
//! as it registers the handler, so a route cannot be served without being documented.
//! [`document`] then adds what every operation shares (the problem+json error answers, the
//! bearer security scheme), and the same document drives the 405 fallback's `Allow` header.

use std::sync::OnceLock;

use actix_web::dev::ResourceDef;
use actix_web::http::Method;
use actix_web::{get, App, HttpResponse};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use crate::problem::{FieldError, Problem, PROBLEM_JSON};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "halley",
        description = "Multi-tenant control plane for managed backup fleets. Errors are \
                       RFC 9457 application/problem+json; lists page with ?limit= and ?cursor=; \
                       PATCH takes If-Match: <version>; POST takes Idempotency-Key."
    ),
    components(schemas(Problem, FieldError))
)]
struct Base;

/// The document served at `GET /openapi.json`.
pub fn document() -> &'static Document {
    &built().0
}

/// The document as JSON text.
pub fn json() -> &'static str {
    &built().1
}

/// Methods served at `path`, if any route matches it (for 405 and `Allow`).
pub fn allowed_methods(path: &str) -> Option<Vec<Method>> {
    built()
        .2
        .iter()
        .find(|(def, _)| def.is_match(path))
        .map(|(_, methods)| methods.clone())
}

type Built = (Document, String, Vec<(ResourceDef, Vec<Method>)>);

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (_, collected) = App::new()
            .into_utoipa_app()
            .configure(crate::register)
            .split_for_parts();
        let mut doc = Base::openapi().merge_from(collected);
        add_shared(&mut doc);
        let json = doc
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| (ResourceDef::new(path.as_str()), methods(item)))
            .collect();
        (doc, json, routes)
    })
}

fn methods(item: &PathItem) -> Vec<Method> {
    [
        (Method::GET, &item.get),
        (Method::POST, &item.post),
        (Method::PUT, &item.put),
        (Method::PATCH, &item.patch),
        (Method::DELETE, &item.delete),
    ]
    .into_iter()
    .filter(|(_, op)| op.is_some())
    .map(|(m, _)| m)
    .collect()
}

/// Adds the error answers every operation can give, by what the operation is: any can get
/// 400 and 503; authenticated ones 401 and 403; ones with a path id 404; writes 409, 413
/// and 415; POSTs 422 (a reused `Idempotency-Key`). A route states only its own extras
/// (such as 429 on login).
fn add_shared(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let has_id = path.contains('{');
        let ops = [
            (Method::GET, item.get.as_mut()),
            (Method::POST, item.post.as_mut()),
            (Method::PUT, item.put.as_mut()),
            (Method::PATCH, item.patch.as_mut()),
            (Method::DELETE, item.delete.as_mut()),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                op.operation_id = Some(operation_id(&method, path));
                add_errors(op, &method, has_id);
            }
        }
    }
}

/// `get_users_id_protected_items` for `GET /api/v1/users/{id}/protected-items`: unique,
/// as method and path are, and stable while the route is. utoipa would take the handler's
/// name, which many modules share (`list`, `get_one`) and a rename would change.
fn operation_id(method: &Method, path: &str) -> String {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let mut id = method.as_str().to_ascii_lowercase();
    for word in path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        id.push('_');
        id.push_str(word);
    }
    id
}

fn add_errors(op: &mut Operation, method: &Method, has_id: bool) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let write = [Method::POST, Method::PUT, Method::PATCH].contains(method);
    let mut codes = vec![
        (
            "400",
            "Malformed or invalid input; `errors` names the fields.",
        ),
        ("503", "The server cannot take the request now; retry."),
    ];
    if secured {
        codes.push(("401", "Missing, invalid or expired access token."));
        codes.push(("403", "The caller's role or permissions forbid this."));
    }
    if has_id {
        codes.push(("404", "No such object in the caller's scope."));
    }
    if write {
        codes.push(("409", "Conflict: a taken name, a version mismatch (If-Match), an object in use, or a request with this Idempotency-Key in flight."));
        codes.push(("413", "Request body too large."));
        codes.push(("415", "Request body is not JSON."));
    }
    if *method == Method::POST {
        codes.push(("422", "Idempotency-Key reused with a different body."));
    }
    for (code, description) in codes {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| RefOr::T(problem_response(description)));
    }
}

/// A problem+json response with `description`, for use in `#[utoipa::path]` helpers.
pub fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
}

/// This document.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object))
)]
#[get("/openapi.json")]
pub(crate) async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn every_operation_id_is_unique() {
        let mut seen: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (path, item) in &document().paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
            ] {
                if let Some(op) = op {
                    let id = op
                        .operation_id
                        .as_deref()
                        .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                    seen.entry(id).or_default().push(format!("{method} {path}"));
                }
            }
        }
        let duplicates: Vec<_> = seen.iter().filter(|(_, ops)| ops.len() > 1).collect();
        assert!(duplicates.is_empty(), "operationIds shared: {duplicates:?}");
        assert!(seen.len() > 50, "only {} operations", seen.len());
    }

    #[test]
    fn operation_ids_are_method_and_path() {
        assert_eq!(
            operation_id(&Method::GET, "/api/v1/users/{id}/protected-items"),
            "get_users_id_protected_items"
        );
        assert_eq!(
            operation_id(
                &Method::POST,
                "/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"
            ),
            "post_webhooks_id_deliveries_delivery_id_retry"
        );
        assert_eq!(
            operation_id(&Method::GET, "/openapi.json"),
            "get_openapi_json"
        );
    }
}
