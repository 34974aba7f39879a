//! What every route shares: the OpenAPI document, problem+json for bad input, unknown routes
//! and wrong methods, and the body limit. Each bad request appends nothing.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestServer;

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_its_errors() {
    let app = TestServer::start().await;
    let doc = app.anonymous().get("/openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let doc = doc.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/tenants",
        "/api/v1/tenants/{id}",
        "/api/v1/tenants/{id}/email",
        "/api/v1/tenants/{id}/email/test",
        "/api/v1/server/settings",
        "/api/v1/admins",
        "/api/v1/admins/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("400"), "{method} {path}");
            let bad = &responses["400"]["content"]["application/problem+json"];
            assert!(bad.is_object(), "{method} {path}");
            if op.get("security").is_some() {
                assert!(responses.contains_key("401"), "{method} {path}");
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow_and_unknown_paths_404() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let res = root.delete("/api/v1/tenants").await;
    res.problem(405);
    let allow = res.header("allow").unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let res = root
        .put("/api/v1/tenants/ten_01HF7YAT00000000000000001A", json!({}))
        .await;
    res.problem(405);
    root.get("/api/v1/nothing-here").await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_400_413_or_415_naming_the_field_and_append_nothing() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let head = app.head();
    let raw = |body: &'static str, content_type: &'static str| {
        root.send(
            root.request(Method::POST, "/api/v1/tenants")
                .header("content-type", content_type)
                .body(body),
        )
    };
    let malformed = raw("{\"name\": ", "application/json").await;
    malformed.problem(400);
    assert!(malformed.body["type"]
        .as_str()
        .unwrap()
        .ends_with("/malformed"));
    raw("", "application/json").await.problem(400);
    raw("[1, 2]", "application/json").await.problem(400);
    raw("{\"name\": \"x\", \"slug\": \"x\"}", "text/plain")
        .await
        .problem(415);

    let fields = |body: Value| {
        let root = root.clone();
        async move {
            let res = root.post("/api/v1/tenants", body).await;
            res.problem(400);
            res.error_fields()
        }
    };
    assert_eq!(fields(json!({"name": 5, "slug": "x"})).await, ["name"]);
    assert_eq!(
        fields(json!({"name": "x", "slug": "x", "hosts": ["ok.example", 7]})).await,
        ["hosts[1]"]
    );
    assert_eq!(fields(json!({"name": "x"})).await, ["slug"]);
    assert_eq!(fields(json!("a string")).await, ["body"]);
    assert_eq!(
        fields(json!({"name": "x", "slug": "x", "owner": "me"})).await,
        ["owner"]
    );
    assert_eq!(
        fields(json!({"name": "x", "slug": "Not A Slug"})).await,
        ["slug"]
    );
    assert_eq!(
        fields(json!({"name": "x", "slug": "x", "hosts": ["UPPER"]})).await,
        ["hosts[0]"]
    );

    let big = format!(
        "{{\"name\": \"{}\", \"slug\": \"big\"}}",
        "x".repeat(300 * 1024)
    );
    let res = root
        .send(
            root.request(Method::POST, "/api/v1/tenants")
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    res.problem(413);

    let bad_id = root.get("/api/v1/tenants/not-an-id").await;
    bad_id.problem(400);
    assert_eq!(bad_id.error_fields(), ["id"]);
    let wrong_kind = root
        .get("/api/v1/tenants/usr_01HF7YAT00000000000000001A")
        .await;
    wrong_kind.problem(400);
    root.get("/api/v1/tenants/%FF%FE").await.problem(400);
    assert_eq!(app.head(), head);
    app.stop().await;
}
