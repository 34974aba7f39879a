//! The operations endpoints of a freshly started server.

use serde_json::Value;

use crate::helpers::{metric, TestServer};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestServer::start().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_ready_once_started() {
    let app = TestServer::start().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    // The first start recorded the root admin.
    assert_eq!(body["log_head"], 1);
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = TestServer::start().await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().await.unwrap();
    assert_eq!(metric(&text, "halley_log_head_position"), Some(1), "{text}");
    assert_eq!(
        metric(&text, "halley_projection_lag_events"),
        Some(0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE halley_log_head_position gauge"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let app = TestServer::start().await;
    let res = app.get("/no/such/thing").await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["title"], "Not Found");
    assert!(body["type"].as_str().unwrap().ends_with("/not-found"));
    assert!(body["detail"].as_str().unwrap().contains("/no/such/thing"));
    app.stop().await;
}
