//! Tenants (root only), their email settings, admins with delegation rules, server settings,
//! and the shared conventions they show: problem+json, paging, If-Match, Idempotency-Key.

use eventlog::EventLog;
use serde_json::{json, Value};

use crate::helpers::{TestServer, PASSWORD};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test]
async fn root_creates_reads_changes_and_removes_a_tenant() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let created = root
        .post(
            "/api/v1/tenants",
            json!({"name": "Acme", "slug": "acme", "hosts": ["acme.example"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let t = &created.body;
    assert!(id(t).starts_with("ten_"));
    assert_eq!(t["hosts"], json!(["acme.example"]));
    assert_eq!(t["suspended"], false);
    assert_eq!(t["version"], 1);
    let path = format!("/api/v1/tenants/{}", id(t));
    let read = root.get(&path).await;
    assert_eq!(read.body, created.body);

    let changed = root.patch(&path, json!({"name": "Acme Inc."})).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["name"], "Acme Inc.");
    assert_eq!(changed.body["slug"], "acme");
    assert_eq!(changed.body["version"], 2);

    // A duplicate slug is a conflict naming the field.
    let dup = root
        .post("/api/v1/tenants", json!({"name": "Other", "slug": "acme"}))
        .await;
    dup.problem(409);
    assert_eq!(dup.error_fields(), ["slug"]);

    assert_eq!(root.delete(&path).await.status, 204);
    root.get(&path).await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn if_match_guards_a_patch() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let t = app.tenant(&root, "acme").await;
    let path = format!("/api/v1/tenants/{}", id(&t));
    let patch = |version: &str, name: &str| {
        root.send(
            root.request(reqwest::Method::PATCH, &path)
                .header("if-match", version)
                .json(&json!({ "name": name })),
        )
    };
    let ok = patch("1", "First").await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let head = app.head();
    let stale = patch("1", "Second").await;
    stale.problem(409);
    assert!(stale.body["type"]
        .as_str()
        .unwrap()
        .ends_with("/version-mismatch"));
    assert_eq!(app.head(), head);
    assert_eq!(patch("\"2\"", "Second").await.status, 200);
    let bad = patch("two", "Third").await;
    bad.problem(400);
    assert_eq!(bad.error_fields(), ["If-Match"]);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_key_replays_conflicts_and_rejects_a_changed_body() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let post = |key: &str, slug: &str| {
        root.send(
            root.request(reqwest::Method::POST, "/api/v1/tenants")
                .header("idempotency-key", key)
                .json(&json!({"name": "Acme", "slug": slug})),
        )
    };
    let first = post("k1", "acme").await;
    assert_eq!(first.status, 201, "{}", first.text);
    let head = app.head();
    let again = post("k1", "acme").await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(app.head(), head);
    post("k1", "other").await.problem(422);
    assert_eq!(post("k2", "other").await.status, 201);
    app.stop().await;
}

#[tokio::test]
async fn tenant_lists_page_with_a_cursor() {
    let app = TestServer::start().await;
    let root = app.root().await;
    for i in 0..5 {
        app.tenant(&root, &format!("t{i}")).await;
    }
    let first = root.get("/api/v1/tenants?limit=2").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| id(t).to_owned()),
        );
        let Some(cursor) = page.body["next_cursor"].as_str() else {
            break;
        };
        page = root
            .get(&format!("/api/v1/tenants?limit=2&cursor={cursor}"))
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    let over = root.get("/api/v1/tenants?limit=1001").await;
    over.problem(400);
    assert_eq!(over.error_fields(), ["limit"]);
    let typed = root.get("/api/v1/tenants?limit=many").await;
    typed.problem(400);
    assert_eq!(typed.error_fields(), ["limit"]);
    root.get("/api/v1/tenants?cursor=zzz").await.problem(400);
    root.get("/api/v1/tenants?colour=red").await.problem(400);
    app.stop().await;
}

#[tokio::test]
async fn tenant_admins_get_403_on_root_routes_and_404_for_other_tenants() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (a, admin_a) = app.tenant_with_admin(&root, "a").await;
    let (b, _) = app.tenant_with_admin(&root, "b").await;
    admin_a.get("/api/v1/tenants").await.problem(403);
    admin_a
        .post("/api/v1/tenants", json!({"name": "X", "slug": "x"}))
        .await
        .problem(403);
    admin_a.get("/api/v1/server/settings").await.problem(403);
    // Its own tenant is visible (403 for a root-only action), B's is not there at all.
    admin_a
        .get(&format!("/api/v1/tenants/{}", id(&a)))
        .await
        .problem(403);
    let head = app.head();
    let b_path = format!("/api/v1/tenants/{}", id(&b));
    admin_a.get(&b_path).await.problem(404);
    admin_a
        .patch(&b_path, json!({"name": "Mine"}))
        .await
        .problem(404);
    admin_a.delete(&b_path).await.problem(404);
    admin_a.get(&format!("{b_path}/email")).await.problem(404);
    admin_a
        .put(&format!("{b_path}/email"), json!({"mode": "disabled"}))
        .await
        .problem(404);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn email_settings_keep_the_password_write_only_and_sealed() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let t = app.tenant(&root, "acme").await;
    let path = format!("/api/v1/tenants/{}/email", id(&t));
    let initial = root.get(&path).await;
    assert_eq!(initial.status, 200, "{}", initial.text);
    assert_eq!(initial.body["mode"], "inherit");
    assert_eq!(initial.body["password_set"], false);
    let settings = json!({
        "mode": "smtp_tls", "from_address": "ops@acme.example", "from_name": "Acme",
        "host": "smtp.acme.example", "port": 465, "username": "ops",
        "password": "smtp-secret-123",
    });
    let put = root.put(&path, settings.clone()).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["password_set"], true);
    assert!(!put.text.contains("smtp-secret-123"));
    let all = app.server.log().read_all(0, 1000).await.unwrap();
    assert!(all
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.payload).contains("smtp-secret-123")));
    // Leaving the password out keeps it; "" clears it.
    let mut keep = settings.clone();
    keep.as_object_mut().unwrap().remove("password");
    keep["from_name"] = json!("Acme Ops");
    assert_eq!(
        root.put(&path, keep.clone()).await.body["password_set"],
        true
    );
    keep["password"] = json!("");
    assert_eq!(root.put(&path, keep).await.body["password_set"], false);
    // Validation names the field.
    let mut bad = settings.clone();
    bad["port"] = json!(0);
    let res = root.put(&path, bad).await;
    res.problem(400);
    assert_eq!(res.error_fields(), ["port"]);
    // Sending is not served yet.
    root.post(&format!("{path}/test"), json!({}))
        .await
        .problem(501);

    // A tenant admin needs allow_edit_email_options to change them, not to read them.
    let plain = app.tenant_admin(&root, id(&t), "plain", json!({})).await;
    assert_eq!(plain.get(&path).await.status, 200);
    plain.put(&path, settings.clone()).await.problem(403);
    let editor = app
        .tenant_admin(
            &root,
            id(&t),
            "editor",
            json!({"allow_edit_email_options": true}),
        )
        .await;
    assert_eq!(editor.put(&path, settings).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn server_settings_are_root_only_and_validated() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let read = root.get("/api/v1/server/settings").await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body["random_delay_secs"], Value::Null);
    assert_eq!(read.body["session_ttl_secs"], 3600);
    let head = app.head();
    let too_long = root
        .patch(
            "/api/v1/server/settings",
            json!({"random_delay_secs": 18001}),
        )
        .await;
    too_long.problem(400);
    assert_eq!(too_long.error_fields(), ["random_delay_secs"]);
    assert_eq!(app.head(), head);
    let set = root
        .patch(
            "/api/v1/server/settings",
            json!({"random_delay_secs": 18000}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["random_delay_secs"], 18000);
    let cleared = root
        .patch(
            "/api/v1/server/settings",
            json!({"random_delay_secs": null}),
        )
        .await;
    assert_eq!(cleared.body["random_delay_secs"], Value::Null);
    let typed = root
        .patch(
            "/api/v1/server/settings",
            json!({"login_protection": {"max_failures": "five", "lockout_secs": 60}}),
        )
        .await;
    typed.problem(400);
    assert_eq!(typed.error_fields(), ["login_protection.max_failures"]);
    app.stop().await;
}

#[tokio::test]
async fn tenant_admins_manage_their_own_admins_within_their_abilities() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let t = app.tenant(&root, "acme").await;
    let (other, _) = app.tenant_with_admin(&root, "other").await;
    let boss = app
        .tenant_admin(&root, id(&t), "boss", json!({"allow_edit_webhooks": true}))
        .await;
    let create = |username: &str, permissions: Value| {
        boss.post(
            "/api/v1/admins",
            json!({"username": username, "password": PASSWORD, "permissions": permissions}),
        )
    };
    let helper = create("helper", json!({"allow_edit_webhooks": true})).await;
    assert_eq!(helper.status, 201, "{}", helper.text);
    assert_eq!(helper.body["tenant_id"], t["id"]);
    // Cannot grant what it lacks.
    create("mailer", json!({"allow_edit_email_options": true}))
        .await
        .problem(403);
    // Cannot place an admin in another tenant, nor see the other tenant's admins.
    boss.post(
        "/api/v1/admins",
        json!({"username": "spy", "password": PASSWORD, "tenant_id": other["id"]}),
    )
    .await
    .problem(404);
    let list = boss.get("/api/v1/admins").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"boss") && names.contains(&"helper"));
    let other_list = boss
        .get(&format!("/api/v1/admins?tenant_id={}", id(&other)))
        .await;
    assert_eq!(other_list.body["items"], json!([]));
    // Root sees everyone, or one tenant.
    let all = root.get("/api/v1/admins").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 4);
    // Invalid names and short passwords name their field and append nothing.
    let head = app.head();
    let bad = create("no spaces", json!({})).await;
    bad.problem(400);
    assert_eq!(bad.error_fields(), ["username"]);
    let short = boss
        .post(
            "/api/v1/admins",
            json!({"username": "short", "password": "1234567"}),
        )
        .await;
    short.problem(400);
    assert_eq!(short.error_fields(), ["password"]);
    let unknown = boss
        .post(
            "/api/v1/admins",
            json!({"username": "x", "password": PASSWORD, "role": "god"}),
        )
        .await;
    unknown.problem(400);
    assert_eq!(app.head(), head);
    // Changing a password takes effect for the next login.
    let helper_path = format!("/api/v1/admins/{}", id(&helper.body));
    let changed = boss
        .patch(&helper_path, json!({"password": "a-new-password"}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    app.anonymous()
        .login("helper", "a-new-password", Some("acme"))
        .await;
    assert_eq!(boss.delete(&helper_path).await.status, 204);
    boss.get(&helper_path).await.problem(404);
    app.stop().await;
}

/// After a restart the kept answers are gone, but the log still knows the key: the retry
/// changes nothing and answers with the tenant the first attempt created.
#[tokio::test]
async fn an_idempotency_key_survives_a_restart() {
    let app = TestServer::start().await;
    let root = app.root().await;
    async fn post(root: &crate::helpers::Client) -> crate::helpers::Res {
        root.send(
            root.request(reqwest::Method::POST, "/api/v1/tenants")
                .header("idempotency-key", "restart-key")
                .json(&json!({"name": "Acme", "slug": "acme"})),
        )
        .await
    }
    let first = post(&root).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let app = app.restart().await;
    let root = app.root().await;
    let head = app.head();
    let again = post(&root).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn admins_and_server_settings_honour_if_match_and_password_rules() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let settings = root.get("/api/v1/server/settings").await;
    let version = settings.body["version"].as_u64().unwrap().to_string();
    let patch = |version: &str, ttl: u32| {
        root.send(
            root.request(reqwest::Method::PATCH, "/api/v1/server/settings")
                .header("if-match", version)
                .json(&json!({ "session_ttl_secs": ttl })),
        )
    };
    assert_eq!(patch(&version, 7200).await.status, 200);
    patch(&version, 600).await.problem(409);

    let t = app.tenant(&root, "acme").await;
    let locked = app
        .tenant_admin(
            &root,
            id(&t),
            "locked",
            json!({"prevent_change_password": true}),
        )
        .await;
    let me = locked.get("/api/v1/auth/me").await;
    let path = format!("/api/v1/admins/{}", id(&me.body));
    locked
        .patch(&path, json!({"password": "another-password"}))
        .await
        .problem(403);
    // It cannot lift its own restriction either, nor create an admin without it.
    locked
        .patch(&path, json!({"permissions": {}}))
        .await
        .problem(403);
    locked
        .post(
            "/api/v1/admins",
            json!({"username": "free", "password": PASSWORD}),
        )
        .await
        .problem(403);
    // Root may; If-Match applies to admins too (logins moved the version on).
    let current = root.get(&path).await.body["version"].as_u64().unwrap();
    let stale = root
        .send(
            root.request(reqwest::Method::PATCH, &path)
                .header("if-match", (current - 1).to_string())
                .json(&json!({"password": "another-password"})),
        )
        .await;
    stale.problem(409);
    let ok = root
        .send(
            root.request(reqwest::Method::PATCH, &path)
                .header("if-match", current.to_string())
                .json(&json!({"password": "another-password"})),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    app.anonymous()
        .login("locked", "another-password", Some("acme"))
        .await;
    app.stop().await;
}
