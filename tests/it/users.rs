//! Users: CRUD with a write-only password, `effective_policy`, `?q=`, duplicate usernames,
//! bad input, other tenants' users and policies as 404, restricted admins as 403.

use eventlog::EventLog;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::TestServer;

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn a_tenant_admin_manages_users_and_passwords_stay_write_only() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (tenant, admin) = app.tenant_with_admin(&root, "acme").await;
    let policy = admin
        .post(
            "/api/v1/policies",
            json!({"name": "Servers", "random_delay_secs": 300,
                   "settings": {"compression": "enforced_on", "vss": "optional_on"}}),
        )
        .await
        .body;
    let created = admin
        .post(
            "/api/v1/users",
            json!({
                "username": "alice",
                "password": "alice-password-1",
                "account_name": "Alice Example",
                "emails": ["alice@acme.example"],
                "timezone": "Europe/Amsterdam",
                "policy_id": id(&policy),
                "max_devices": 3,
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let u = &created.body;
    assert!(id(u).starts_with("usr_"));
    assert_eq!(u["tenant_id"], tenant["id"]);
    assert_eq!(u["language"], "en");
    assert_eq!(u["max_devices"], 3);
    assert_eq!(u["quota_bytes"], Value::Null);
    assert_eq!(u["suspended"], false);
    assert_eq!(u["version"], 1);
    assert!(u.get("password").is_none() && u.get("password_hash").is_none());
    assert!(!created.text.contains("alice-password-1") && !created.text.contains("argon2"));
    let effective = &u["effective_policy"];
    assert_eq!(effective["policy_id"], policy["id"]);
    assert_eq!(effective["random_delay_secs"], 300);
    assert_eq!(
        effective["settings"]["compression"],
        json!({"mode": "enforced_on", "read_only": true})
    );
    assert_eq!(
        effective["settings"]["vss"],
        json!({"mode": "optional_on", "read_only": false})
    );
    // The log holds a hash, never the password.
    let all = app.server.log().read_all(0, 1000).await.unwrap();
    assert!(all
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.payload).contains("alice-password-1")));

    let path = format!("/api/v1/users/{}", id(u));
    let read = admin.get(&path).await;
    assert_eq!(read.body, created.body);

    // A policy change shows in the user's effective policy at once.
    admin
        .patch(
            &format!("/api/v1/policies/{}", id(&policy)),
            json!({"settings": {"compression": "enforced_off"}}),
        )
        .await;
    let read = admin.get(&path).await;
    assert_eq!(
        read.body["effective_policy"]["settings"],
        json!({"compression": {"mode": "enforced_off", "read_only": true}})
    );

    let changed = admin
        .patch(
            &path,
            json!({"policy_id": null, "quota_bytes": 1_000_000, "password": "new-password-2"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["policy_id"], Value::Null);
    assert_eq!(changed.body["effective_policy"], Value::Null);
    assert_eq!(changed.body["quota_bytes"], 1_000_000);
    assert_eq!(changed.body["account_name"], "Alice Example");
    assert!(!changed.text.contains("new-password-2"));

    assert_eq!(admin.delete(&path).await.status, 204);
    admin.get(&path).await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn new_users_get_the_default_policy_and_a_used_policy_stays() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let default = admin
        .post(
            "/api/v1/policies",
            json!({"name": "Default", "is_default": true}),
        )
        .await
        .body;
    let u = admin
        .post(
            "/api/v1/users",
            json!({"username": "bob", "password": "bob-password-1"}),
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.text);
    assert_eq!(u.body["policy_id"], default["id"]);
    assert_eq!(u.body["effective_policy"]["name"], "Default");
    let head = app.head();
    let busy = admin
        .delete(&format!("/api/v1/policies/{}", id(&default)))
        .await;
    busy.problem(409);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn duplicate_and_invalid_input_name_the_field_and_append_nothing() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let (_, b) = app.tenant_with_admin(&root, "b").await;
    let first = a
        .post(
            "/api/v1/users",
            json!({"username": "carol", "password": "carol-password"}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let head = app.head();
    // User names are unique server-wide, across tenants too.
    let dup = b
        .post(
            "/api/v1/users",
            json!({"username": "carol", "password": "carol-password"}),
        )
        .await;
    dup.problem(409);
    assert_eq!(dup.error_fields(), ["username"]);
    let cases = [
        (
            json!({"username": "bad name", "password": "long-enough"}),
            "username",
        ),
        (
            json!({"username": "", "password": "long-enough"}),
            "username",
        ),
        (json!({"username": "dave", "password": "short"}), "password"),
        (json!({"username": "dave"}), "password"),
        (
            json!({"username": "dave", "password": "long-enough", "emails": ["x"]}),
            "emails[0]",
        ),
        (
            json!({"username": "dave", "password": "long-enough", "timezone": "Mars/Base"}),
            "timezone",
        ),
        (
            json!({"username": "dave", "password": "long-enough", "max_devices": "3"}),
            "max_devices",
        ),
        (
            json!({"username": "dave", "password": "long-enough", "policy_id": "pol_x"}),
            "policy_id",
        ),
        (
            json!({"username": "dave", "password": "long-enough", "admin": true}),
            "admin",
        ),
    ];
    for (body, field) in cases {
        let res = b.post("/api/v1/users", body.clone()).await;
        res.problem(400);
        assert!(
            res.error_fields().iter().any(|f| f == field),
            "{body}: {}",
            res.text
        );
    }
    let path = format!("/api/v1/users/{}", id(&first.body));
    let rename = a.patch(&path, json!({"username": "has space"})).await;
    rename.problem(400);
    assert_eq!(rename.error_fields(), ["username"]);
    a.get("/api/v1/users?q=").await.problem(400);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn q_matches_username_account_name_and_emails() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let (_, b) = app.tenant_with_admin(&root, "b").await;
    for (admin, username, account, email) in [
        (&a, "erin", "Erin Smith", "erin@a.example"),
        (&a, "frank", "Frank Jones", "f.jones@smithco.example"),
        (&a, "grace", "Grace Hopper", "grace@a.example"),
        (&b, "smithy", "Other Smith", "smithy@b.example"),
    ] {
        let res = admin
            .post(
                "/api/v1/users",
                json!({"username": username, "password": "a-long-password",
                       "account_name": account, "emails": [email]}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
    }
    let names = |res: &crate::helpers::Res| -> Vec<String> {
        res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect()
    };
    // Case-insensitive, over account names and emails, within the caller's tenant only.
    let smith = a.get("/api/v1/users?q=SMITH").await;
    assert_eq!(smith.status, 200, "{}", smith.text);
    let mut got = names(&smith);
    got.sort();
    assert_eq!(got, ["erin", "frank"]);
    assert_eq!(names(&a.get("/api/v1/users?q=gra").await), ["grace"]);
    assert_eq!(names(&a.get("/api/v1/users?q=nobody").await).len(), 0);
    // Paging a filtered list.
    let first = a.get("/api/v1/users?q=example&limit=2").await;
    assert_eq!(names(&first).len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = a
        .get(&format!("/api/v1/users?q=example&limit=2&cursor={cursor}"))
        .await;
    assert_eq!(names(&rest).len(), 1);
    assert_eq!(rest.body["next_cursor"], Value::Null);
    // Root sees every tenant's, or one tenant's with ?tenant_id=.
    assert_eq!(names(&root.get("/api/v1/users?q=smith").await).len(), 3);
    let b_id = b.get("/api/v1/auth/me").await.body["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        names(
            &root
                .get(&format!("/api/v1/users?q=smith&tenant_id={b_id}"))
                .await
        ),
        ["smithy"]
    );
    app.stop().await;
}

#[tokio::test]
async fn other_tenants_users_and_policies_are_not_found() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "a").await;
    let (_, b) = app.tenant_with_admin(&root, "b").await;
    let ua = a
        .post(
            "/api/v1/users",
            json!({"username": "ann", "password": "ann-password"}),
        )
        .await
        .body;
    let pa = a.post("/api/v1/policies", json!({"name": "A"})).await.body;
    let path = format!("/api/v1/users/{}", id(&ua));
    let head = app.head();
    b.get(&path).await.problem(404);
    b.patch(&path, json!({"suspended": true}))
        .await
        .problem(404);
    b.delete(&path).await.problem(404);
    assert_eq!(b.get("/api/v1/users").await.body["items"], json!([]));
    assert_eq!(b.get("/api/v1/users?q=ann").await.body["items"], json!([]));
    // A's policy named in B's body is not found either.
    b.post(
        "/api/v1/users",
        json!({"username": "bea", "password": "bea-password", "policy_id": id(&pa)}),
    )
    .await
    .problem(404);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn a_restricted_admin_assigns_only_its_allowed_policies() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let tenant = app.tenant(&root, "acme").await;
    let tid = id(&tenant).to_owned();
    let allowed = root
        .post(
            "/api/v1/policies",
            json!({"name": "Allowed", "tenant_id": tid}),
        )
        .await
        .body;
    let other = root
        .post(
            "/api/v1/policies",
            json!({"name": "Other", "tenant_id": tid, "is_default": true}),
        )
        .await
        .body;
    let restricted = app
        .tenant_admin(
            &root,
            &tid,
            "restricted",
            json!({"allowed_user_policies": [id(&allowed)]}),
        )
        .await;
    let head = app.head();
    restricted
        .post(
            "/api/v1/users",
            json!({"username": "u1", "password": "u1-password", "policy_id": id(&other)}),
        )
        .await
        .problem(403);
    // Without a policy the user would get the default, which is not allowed either.
    restricted
        .post(
            "/api/v1/users",
            json!({"username": "u1", "password": "u1-password"}),
        )
        .await
        .problem(403);
    assert_eq!(app.head(), head);
    let ok = restricted
        .post(
            "/api/v1/users",
            json!({"username": "u1", "password": "u1-password", "policy_id": id(&allowed)}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    restricted
        .patch(
            &format!("/api/v1/users/{}", id(&ok.body)),
            json!({"policy_id": id(&other)}),
        )
        .await
        .problem(403);
    app.stop().await;
}

#[tokio::test]
async fn if_match_and_idempotency_key() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let post = |body: Value| {
        admin.send(
            admin
                .request(Method::POST, "/api/v1/users")
                .header("idempotency-key", "user-1")
                .json(&body),
        )
    };
    let body = json!({"username": "ida", "password": "ida-password"});
    let first = post(body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let head = app.head();
    let again = post(body).await;
    assert_eq!(again.body, first.body);
    post(json!({"username": "other", "password": "ida-password"}))
        .await
        .problem(422);
    assert_eq!(app.head(), head);

    let path = format!("/api/v1/users/{}", id(&first.body));
    let patch = |version: &str| {
        admin.send(
            admin
                .request(Method::PATCH, &path)
                .header("if-match", version)
                .json(&json!({"account_name": format!("v{version}")})),
        )
    };
    assert_eq!(patch("1").await.status, 200);
    patch("1").await.problem(409);
    assert_eq!(patch("2").await.body["version"], 3);
    app.stop().await;
}
