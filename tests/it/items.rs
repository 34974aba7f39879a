//! Protected items: CRUD under a user, duplicate, the user's version for If-Match, bad input,
//! other tenants' items as 404.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Client, TestServer};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

async fn user(admin: &Client, username: &str) -> Value {
    let res = admin
        .post(
            "/api/v1/users",
            json!({"username": username, "password": "a-long-password"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body
}

#[tokio::test]
async fn items_are_created_listed_changed_duplicated_and_removed() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let u = user(&admin, "alice").await;
    let items = format!("/api/v1/users/{}/protected-items", id(&u));
    let created = admin
        .post(
            &items,
            json!({"name": "Documents", "engine": "files", "settings": {"path": "C:\\Users"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let item = &created.body;
    assert!(id(item).starts_with("itm_"));
    assert_eq!(item["user_id"], u["id"]);
    assert_eq!(item["owner_device_id"], Value::Null);
    assert_eq!(item["settings"]["path"], "C:\\Users");
    // Items live in the user's stream: the user's version.
    assert_eq!(item["version"], 2);
    let path = format!("/api/v1/protected-items/{}", id(item));
    assert_eq!(admin.get(&path).await.body, created.body);

    let changed = admin
        .patch(&path, json!({"name": "Docs", "engine": "files-v2"}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["name"], "Docs");
    assert_eq!(changed.body["settings"]["path"], "C:\\Users");

    let copy = admin.post(&format!("{path}/duplicate"), json!({})).await;
    assert_eq!(copy.status, 201, "{}", copy.text);
    assert_ne!(copy.body["id"], item["id"]);
    assert_eq!(copy.body["name"], "Docs (copy)");
    assert_eq!(copy.body["engine"], "files-v2");
    assert_eq!(copy.body["settings"], changed.body["settings"]);

    let page = admin.get(&format!("{items}?limit=1")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = admin.get(&format!("{items}?limit=1&cursor={cursor}")).await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["next_cursor"], Value::Null);
    assert_ne!(page.body["items"][0]["id"], rest.body["items"][0]["id"]);

    assert_eq!(admin.delete(&path).await.status, 204);
    admin.get(&path).await.problem(404);
    assert_eq!(
        admin.get(&items).await.body["items"][0]["id"],
        copy.body["id"]
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_input_names_the_field_and_appends_nothing() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let u = user(&admin, "alice").await;
    let items = format!("/api/v1/users/{}/protected-items", id(&u));
    let head = app.head();
    let cases = [
        (json!({"name": "x"}), "engine"),
        (json!({"name": "", "engine": "files"}), "name"),
        (json!({"name": "x", "engine": "Not An Engine"}), "engine"),
        (
            json!({"name": "x", "engine": "files", "owner_device_id": "dev_nope"}),
            "owner_device_id",
        ),
        (
            json!({"name": "x", "engine": "files", "settings": {"a": 1}}),
            "settings.a",
        ),
        (json!({"name": "x", "engine": "files", "extra": 1}), "extra"),
    ];
    for (body, field) in cases {
        let res = admin.post(&items, body.clone()).await;
        res.problem(400);
        assert!(
            res.error_fields().iter().any(|f| f == field),
            "{body}: {}",
            res.text
        );
    }
    admin
        .post(
            "/api/v1/users/usr_bad/protected-items",
            json!({"name": "x", "engine": "files"}),
        )
        .await
        .problem(400);
    let bad = admin.get("/api/v1/protected-items/nope").await;
    bad.problem(400);
    assert_eq!(bad.error_fields(), ["id"]);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn other_tenants_items_are_not_found() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let (_, b) = app.tenant_with_admin(&root, "b").await;
    let ua = user(&a, "ann").await;
    let items = format!("/api/v1/users/{}/protected-items", id(&ua));
    let item = a
        .post(&items, json!({"name": "Mail", "engine": "files"}))
        .await
        .body;
    let path = format!("/api/v1/protected-items/{}", id(&item));
    let head = app.head();
    b.get(&items).await.problem(404);
    b.post(&items, json!({"name": "x", "engine": "files"}))
        .await
        .problem(404);
    b.get(&path).await.problem(404);
    b.patch(&path, json!({"name": "x"})).await.problem(404);
    b.delete(&path).await.problem(404);
    b.post(&format!("{path}/duplicate"), json!({}))
        .await
        .problem(404);
    assert_eq!(app.head(), head);
    assert_eq!(root.get(&path).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn if_match_uses_the_users_version_and_duplicate_is_idempotent() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let u = user(&admin, "alice").await;
    let item = admin
        .post(
            &format!("/api/v1/users/{}/protected-items", id(&u)),
            json!({"name": "Mail", "engine": "files"}),
        )
        .await
        .body;
    let path = format!("/api/v1/protected-items/{}", id(&item));
    // Another change to the same user moves the version on.
    admin
        .patch(
            &format!("/api/v1/users/{}", id(&u)),
            json!({"account_name": "Alice"}),
        )
        .await;
    let head = app.head();
    let stale = admin
        .send(
            admin
                .request(Method::PATCH, &path)
                .header("if-match", item["version"].to_string())
                .json(&json!({"name": "Post"})),
        )
        .await;
    stale.problem(409);
    assert_eq!(app.head(), head);

    let dup = || {
        admin.send(
            admin
                .request(Method::POST, &format!("{path}/duplicate"))
                .header("idempotency-key", "dup-1"),
        )
    };
    let first = dup().await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = dup().await;
    assert_eq!(again.body, first.body);
    assert_eq!(app.head(), head + 1);
    app.stop().await;
}
