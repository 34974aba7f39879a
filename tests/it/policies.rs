//! Policies: CRUD in a tenant admin's own tenant, root's `tenant_id`, validation naming the
//! field, other tenants' policies as 404, `allowed_user_policies` as 403, If-Match and
//! Idempotency-Key.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestServer;

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn a_tenant_admin_manages_its_policies() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (tenant, admin) = app.tenant_with_admin(&root, "acme").await;
    let created = admin
        .post(
            "/api/v1/policies",
            json!({
                "name": "Servers",
                "description": "nightly",
                "random_delay_secs": 600,
                "settings": {"compression": "enforced_on", "notifications": "optional_off"},
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let p = &created.body;
    assert!(id(p).starts_with("pol_"));
    assert_eq!(p["tenant_id"], tenant["id"]);
    assert_eq!(p["is_default"], false);
    assert_eq!(p["random_delay_secs"], 600);
    assert_eq!(p["settings"]["compression"], "enforced_on");
    assert_eq!(p["version"], 1);
    let path = format!("/api/v1/policies/{}", id(p));
    assert_eq!(admin.get(&path).await.body, created.body);

    let changed = admin
        .patch(
            &path,
            json!({"random_delay_secs": null, "is_default": true}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["random_delay_secs"], Value::Null);
    assert_eq!(changed.body["is_default"], true);
    assert_eq!(changed.body["description"], "nightly");
    assert_eq!(changed.body["version"], 2);

    // A second default is a conflict naming the field; nothing is appended.
    let head = app.head();
    let second = admin
        .post(
            "/api/v1/policies",
            json!({"name": "Laptops", "is_default": true}),
        )
        .await;
    second.problem(409);
    assert_eq!(second.error_fields(), ["is_default"]);
    assert_eq!(app.head(), head);

    let list = admin.get("/api/v1/policies").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["next_cursor"], Value::Null);

    assert_eq!(admin.delete(&path).await.status, 204);
    admin.get(&path).await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_names_the_field_and_appends_nothing() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let head = app.head();
    let cases = [
        (
            json!({"name": "x", "random_delay_secs": 18001}),
            "random_delay_secs",
        ),
        (
            json!({"name": "x", "random_delay_secs": -1}),
            "random_delay_secs",
        ),
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "settings": {"a": "sometimes"}}),
            "settings.a",
        ),
        (json!({"name": "x", "colour": "red"}), "colour"),
        (json!({"description": "no name"}), "name"),
        (json!({"name": "x", "tenant_id": "nope"}), "tenant_id"),
    ];
    for (body, field) in cases {
        let res = admin.post("/api/v1/policies", body.clone()).await;
        res.problem(400);
        assert!(
            res.error_fields().iter().any(|f| f == field),
            "{body}: {}",
            res.text
        );
    }
    let bad_id = admin.get("/api/v1/policies/pol_nope").await;
    bad_id.problem(400);
    assert_eq!(bad_id.error_fields(), ["id"]);
    let bad_limit = admin.get("/api/v1/policies?limit=1001").await;
    assert_eq!(bad_limit.error_fields(), ["limit"]);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn other_tenants_policies_are_not_found() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let (tenant_b, b) = app.tenant_with_admin(&root, "b").await;
    let pa = a.post("/api/v1/policies", json!({"name": "A"})).await.body;
    let path = format!("/api/v1/policies/{}", id(&pa));
    let head = app.head();
    b.get(&path).await.problem(404);
    b.patch(&path, json!({"name": "mine"})).await.problem(404);
    b.delete(&path).await.problem(404);
    let listed = b.get("/api/v1/policies").await;
    assert_eq!(listed.body["items"], json!([]));
    // Naming another tenant in the list filter shows nothing either.
    let filtered = a
        .get(&format!("/api/v1/policies?tenant_id={}", id(&tenant_b)))
        .await;
    assert_eq!(filtered.body["items"], json!([]));
    // Creating in another tenant: that tenant is not found.
    a.post(
        "/api/v1/policies",
        json!({"name": "x", "tenant_id": id(&tenant_b)}),
    )
    .await
    .problem(404);
    assert_eq!(app.head(), head);
    assert_eq!(a.get(&path).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn root_creates_in_any_tenant_and_filters_lists() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let a = app.tenant(&root, "a").await;
    let b = app.tenant(&root, "b").await;
    for (t, name) in [(&a, "A1"), (&a, "A2"), (&b, "B1")] {
        let res = root
            .post(
                "/api/v1/policies",
                json!({"name": name, "tenant_id": id(t)}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        assert_eq!(res.body["tenant_id"], t["id"]);
    }
    let all = root.get("/api/v1/policies").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 3);
    let only_a = root
        .get(&format!("/api/v1/policies?tenant_id={}&limit=1", id(&a)))
        .await;
    let cursor = only_a.body["next_cursor"].as_str().unwrap().to_owned();
    let next = root
        .get(&format!(
            "/api/v1/policies?tenant_id={}&limit=1&cursor={cursor}",
            id(&a)
        ))
        .await;
    // Ids created in one millisecond order randomly; together the pages are A's two.
    let mut names = [
        only_a.body["items"][0]["name"].as_str().unwrap(),
        next.body["items"][0]["name"].as_str().unwrap(),
    ];
    names.sort();
    assert_eq!(names, ["A1", "A2"]);
    assert_eq!(next.body["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn allowed_user_policies_restrict_which_policies_an_admin_edits() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let tenant = app.tenant(&root, "acme").await;
    let tid = id(&tenant).to_owned();
    let mut ids = Vec::new();
    for name in ["Allowed", "Other"] {
        let res = root
            .post("/api/v1/policies", json!({"name": name, "tenant_id": tid}))
            .await;
        ids.push(id(&res.body).to_owned());
    }
    let restricted = app
        .tenant_admin(
            &root,
            &tid,
            "restricted",
            json!({"allowed_user_policies": [ids[0]]}),
        )
        .await;
    let head = app.head();
    // Reading is fine; changing one outside the list, or creating, is forbidden.
    assert_eq!(
        restricted
            .get(&format!("/api/v1/policies/{}", ids[1]))
            .await
            .status,
        200
    );
    restricted
        .patch(
            &format!("/api/v1/policies/{}", ids[1]),
            json!({"name": "mine"}),
        )
        .await
        .problem(403);
    restricted
        .delete(&format!("/api/v1/policies/{}", ids[1]))
        .await
        .problem(403);
    restricted
        .post("/api/v1/policies", json!({"name": "New"}))
        .await
        .problem(403);
    assert_eq!(app.head(), head);
    let ok = restricted
        .patch(
            &format!("/api/v1/policies/{}", ids[0]),
            json!({"description": "edited"}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    app.stop().await;
}

#[tokio::test]
async fn if_match_and_idempotency_key() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let post = || {
        admin.send(
            admin
                .request(Method::POST, "/api/v1/policies")
                .header("idempotency-key", "pol-1")
                .json(&json!({"name": "Once"})),
        )
    };
    let first = post().await;
    assert_eq!(first.status, 201, "{}", first.text);
    let head = app.head();
    let again = post().await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(app.head(), head);

    let path = format!("/api/v1/policies/{}", id(&first.body));
    let patch = |version: &str, name: &str| {
        admin.send(
            admin
                .request(Method::PATCH, &path)
                .header("if-match", version)
                .json(&json!({ "name": name })),
        )
    };
    assert_eq!(patch("1", "Twice").await.status, 200);
    let stale = patch("1", "Thrice").await;
    stale.problem(409);
    assert_eq!(app.head(), head + 1);
    app.stop().await;
}
