//! Storage vaults: CRUD under a user, other tenants' vaults as 404, and replace-address:
//! scoped to the caller, a dry run appends nothing, a real run is one atomic command.

use eventlog::EventLog;
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

async fn vault(admin: &Client, user: &Value, name: &str, address: &str) -> Value {
    let res = admin
        .post(
            &format!("/api/v1/users/{}/vaults", id(user)),
            json!({"name": name, "kind": "s3", "address": address, "bucket": "backups"}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body
}

#[tokio::test]
async fn vaults_are_created_listed_changed_and_removed() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let u = user(&admin, "alice").await;
    let v = vault(&admin, &u, "Offsite", "s3.old.example:443").await;
    assert!(id(&v).starts_with("vlt_"));
    assert_eq!(v["user_id"], u["id"]);
    assert_eq!(v["kind"], "s3");
    assert_eq!(v["bucket"], "backups");
    assert_eq!(v["quota_bytes"], Value::Null);
    assert_eq!(v["version"], 2);
    let path = format!("/api/v1/vaults/{}", id(&v));
    assert_eq!(admin.get(&path).await.body, v);
    let changed = admin
        .patch(
            &path,
            json!({"quota_bytes": 5_000_000_000u64, "name": "Cloud"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["quota_bytes"], 5_000_000_000u64);
    assert_eq!(changed.body["address"], "s3.old.example:443");
    let cleared = admin.patch(&path, json!({"quota_bytes": null})).await;
    assert_eq!(cleared.body["quota_bytes"], Value::Null);
    let list = admin.get(&format!("/api/v1/users/{}/vaults", id(&u))).await;
    assert_eq!(list.body["items"][0]["name"], "Cloud");
    // A stale If-Match is refused.
    let stale = admin
        .send(
            admin
                .request(Method::PATCH, &path)
                .header("if-match", "2")
                .json(&json!({"name": "Again"})),
        )
        .await;
    stale.problem(409);
    assert_eq!(admin.delete(&path).await.status, 204);
    admin.get(&path).await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_and_other_tenants_vaults() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let (_, b) = app.tenant_with_admin(&root, "b").await;
    let ua = user(&a, "ann").await;
    let va = vault(&a, &ua, "Main", "s3.a.example").await;
    let vaults = format!("/api/v1/users/{}/vaults", id(&ua));
    let path = format!("/api/v1/vaults/{}", id(&va));
    let head = app.head();
    let cases = [
        (json!({"name": "x", "kind": "s3"}), "address"),
        (
            json!({"name": "x", "kind": "s3", "address": "  "}),
            "address",
        ),
        (json!({"name": "x", "kind": "S 3", "address": "h"}), "kind"),
        (
            json!({"name": "x", "kind": "s3", "address": "h", "quota_bytes": -5}),
            "quota_bytes",
        ),
        (
            json!({"name": "x", "kind": "s3", "address": "h", "region": "eu"}),
            "region",
        ),
    ];
    for (body, field) in cases {
        let res = a.post(&vaults, body.clone()).await;
        res.problem(400);
        assert!(
            res.error_fields().iter().any(|f| f == field),
            "{body}: {}",
            res.text
        );
    }
    b.get(&vaults).await.problem(404);
    b.post(&vaults, json!({"name": "x", "kind": "s3", "address": "h"}))
        .await
        .problem(404);
    b.get(&path).await.problem(404);
    b.patch(&path, json!({"name": "x"})).await.problem(404);
    b.delete(&path).await.problem(404);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn replace_address_is_scoped_and_a_dry_run_changes_nothing() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let (_, b) = app.tenant_with_admin(&root, "b").await;
    let ua1 = user(&a, "ann").await;
    let ua2 = user(&a, "amy").await;
    let ub = user(&b, "bob").await;
    let v1 = vault(&a, &ua1, "One", "https://old.example/one").await;
    let v2 = vault(&a, &ua2, "Two", "https://old.example/two").await;
    let v3 = vault(&a, &ua2, "Three", "https://elsewhere.example").await;
    let vb = vault(&b, &ub, "B", "https://old.example/b").await;

    let head = app.head();
    let dry = a
        .post(
            "/api/v1/vaults/replace-address",
            json!({"find": "old.example", "replace": "new.example", "dry_run": true}),
        )
        .await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    let matches = dry.body["matches"].as_array().unwrap();
    let mut ids: Vec<&str> = matches
        .iter()
        .map(|m| m["vault_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![id(&v1), id(&v2)];
    expected.sort();
    assert_eq!(ids, expected);
    let m1 = matches.iter().find(|m| m["vault_id"] == v1["id"]).unwrap();
    assert_eq!(m1["user_id"], ua1["id"]);
    assert_eq!(m1["address"], "https://old.example/one");
    assert_eq!(m1["new_address"], "https://new.example/one");
    assert_eq!(app.head(), head, "a dry run appends nothing");

    let real = a
        .post(
            "/api/v1/vaults/replace-address",
            json!({"find": "old.example", "replace": "new.example", "dry_run": false}),
        )
        .await;
    assert_eq!(real.status, 200, "{}", real.text);
    assert_eq!(real.body["matches"].as_array().unwrap().len(), 2);
    // Two events from one command: one correlation id.
    let appended = app.server.log().read_all(head, 100).await.unwrap();
    assert_eq!(appended.len(), 2);
    assert_eq!(
        appended[0].envelope.correlation_id,
        appended[1].envelope.correlation_id
    );
    let a = &a;
    let read = |v: &Value| {
        let path = format!("/api/v1/vaults/{}", id(v));
        async move { a.get(&path).await }
    };
    assert_eq!(read(&v1).await.body["address"], "https://new.example/one");
    assert_eq!(read(&v2).await.body["address"], "https://new.example/two");
    assert_eq!(read(&v3).await.body["address"], "https://elsewhere.example");
    // Tenant B's vault was not in A's scope.
    assert_eq!(
        b.get(&format!("/api/v1/vaults/{}", id(&vb))).await.body["address"],
        "https://old.example/b"
    );
    // Root's scope is every tenant.
    let all = root
        .post(
            "/api/v1/vaults/replace-address",
            json!({"find": "example", "dry_run": true}),
        )
        .await;
    assert_eq!(all.body["matches"].as_array().unwrap().len(), 4);
    assert_eq!(all.body["matches"][0]["new_address"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn replace_address_bad_input_appends_nothing() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let head = app.head();
    for (body, field) in [
        (json!({"find": "", "replace": "x"}), "find"),
        (json!({"find": "x"}), "replace"),
        (json!({"replace": "x"}), "find"),
        (
            json!({"find": "x", "replace": "y", "dry_run": "yes"}),
            "dry_run",
        ),
        (
            json!({"find": "x", "replace": "y", "everywhere": true}),
            "everywhere",
        ),
    ] {
        let res = a.post("/api/v1/vaults/replace-address", body.clone()).await;
        res.problem(400);
        assert_eq!(res.error_fields(), [field], "{body}");
    }
    assert_eq!(app.head(), head);
    app.stop().await;
}
