//! The search bar: users, vaults and protected items matched by name, scoped, bounded.

use serde_json::{json, Value};

use crate::helpers::TestServer;

fn ids(v: &Value, kind: &str) -> Vec<String> {
    v[kind]
        .as_array()
        .unwrap_or_else(|| panic!("{kind} in {v}"))
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_matches_names_of_each_kind_in_scope() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let (_, b) = app.tenant_with_admin(&root, "b").await;
    let ua = a
        .post(
            "/api/v1/users",
            json!({"username": "finance-ann", "password": "a-long-password"}),
        )
        .await
        .body;
    let uid = ua["id"].as_str().unwrap();
    let item = a
        .post(
            &format!("/api/v1/users/{uid}/protected-items"),
            json!({"name": "Finance DB", "engine": "mysql"}),
        )
        .await
        .body;
    let vault = a
        .post(
            &format!("/api/v1/users/{uid}/vaults"),
            json!({"name": "finance offsite", "kind": "s3", "address": "s3.example"}),
        )
        .await
        .body;
    a.post(
        &format!("/api/v1/users/{uid}/vaults"),
        json!({"name": "Other", "kind": "s3", "address": "finance.example"}),
    )
    .await;
    b.post(
        "/api/v1/users",
        json!({"username": "finance-bob", "password": "a-long-password"}),
    )
    .await;

    let head = app.head();
    let res = a.get("/api/v1/search?q=FINANCE").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(ids(&res.body, "users"), [uid]);
    assert_eq!(
        ids(&res.body, "protected_items"),
        [item["id"].as_str().unwrap()]
    );
    // By name only: the vault whose address matches is not a hit.
    assert_eq!(ids(&res.body, "vaults"), [vault["id"].as_str().unwrap()]);
    assert_eq!(res.body["protected_items"][0]["user_id"], uid);

    // Root sees both tenants' users; `limit` bounds each kind.
    let all = root.get("/api/v1/search?q=finance").await;
    assert_eq!(ids(&all.body, "users").len(), 2);
    let one = root.get("/api/v1/search?q=finance&limit=1").await;
    assert_eq!(ids(&one.body, "users").len(), 1);
    let none = b.get("/api/v1/search?q=offsite").await;
    assert_eq!(
        none.body,
        json!({"users": [], "vaults": [], "protected_items": []})
    );

    for (path, field) in [
        ("/api/v1/search", "query"),
        ("/api/v1/search?q=", "q"),
        ("/api/v1/search?q=x&limit=101", "limit"),
        ("/api/v1/search?q=x&limit=0", "limit"),
        ("/api/v1/search?q=x&sort=name", "sort"),
    ] {
        let bad = a.get(path).await;
        bad.problem(400);
        assert_eq!(bad.error_fields(), [field], "{path}");
    }
    assert_eq!(app.head(), head);
    app.anonymous().get("/api/v1/search?q=x").await.problem(401);
    app.stop().await;
}
