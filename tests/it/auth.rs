//! Login, refresh rotation and reuse detection, logout, `me`, lockout, and what a token must
//! be to be accepted.

use eventlog::EventLog;
use serde_json::json;

use crate::helpers::{TestServer, PASSWORD, ROOT_PASSWORD};

#[tokio::test]
async fn root_logs_in_and_sees_itself() {
    let app = TestServer::start().await;
    let anon = app.anonymous();
    let res = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": ROOT_PASSWORD}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 900);
    assert!(res.body["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("rt_"));
    let root = anon.login("admin", ROOT_PASSWORD, None).await;
    let me = root.get("/api/v1/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["username"], "admin");
    assert_eq!(me.body["tenant_id"], "root");
    assert!(me.body["id"].as_str().unwrap().starts_with("adm_"));
    assert_eq!(me.body["mfa"], json!({"totp": false, "webauthn": false}));
    app.stop().await;
}

#[tokio::test]
async fn bad_credentials_are_one_answer_and_each_attempt_is_an_event() {
    let app = TestServer::start().await;
    let anon = app.anonymous();
    let head = app.head();
    let wrong_password = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": "not-the-password"}),
        )
        .await;
    let unknown_user = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "nobody", "password": "not-the-password"}),
        )
        .await;
    assert_eq!(wrong_password.problem(401), unknown_user.problem(401));
    // Two admin.login_failed events, neither with the password in it.
    assert_eq!(app.head(), head + 2);
    let events = app.server.log().read_all(head, 10).await.unwrap();
    assert!(events.iter().all(|e| e.envelope.type_code == 4154));
    for e in &events {
        let payload = String::from_utf8_lossy(&e.payload);
        assert!(!payload.contains("not-the-password"), "{payload}");
    }
    anon.login("admin", ROOT_PASSWORD, None).await;
    let last = app.server.log().read_all(app.head() - 1, 1).await.unwrap();
    assert_eq!(last[0].envelope.type_code, 4153);
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_username_is_a_400_and_no_event() {
    let app = TestServer::start().await;
    let head = app.head();
    let res = app
        .anonymous()
        .post(
            "/api/v1/auth/login",
            json!({"username": "bad name!", "password": "x"}),
        )
        .await;
    res.problem(400);
    assert_eq!(res.error_fields(), ["username"]);
    assert_eq!(app.head(), head);
    app.stop().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let first = root.refresh_token.clone().unwrap();
    let anon = app.anonymous();
    let refresh = |token: &str| {
        let anon = anon.clone();
        let body = json!({"refresh_token": token});
        async move { anon.post("/api/v1/auth/refresh", body).await }
    };
    let second = refresh(&first).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let second_token = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_token, first);
    // The new access token works.
    let mut renewed = root.clone();
    renewed.token = Some(second.body["access_token"].as_str().unwrap().to_owned());
    assert_eq!(renewed.get("/api/v1/auth/me").await.status, 200);
    // Presenting the spent token again revokes the family: the newest one is dead too.
    refresh(&first).await.problem(401);
    refresh(&second_token).await.problem(401);
    refresh("rt_garbage").await.problem(401);
    app.stop().await;
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let token = root.refresh_token.clone().unwrap();
    let res = root
        .post("/api/v1/auth/logout", json!({"refresh_token": token}))
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    app.anonymous()
        .post("/api/v1/auth/refresh", json!({"refresh_token": token}))
        .await
        .problem(401);
    // Logout needs a token.
    app.anonymous()
        .post("/api/v1/auth/logout", json!({"refresh_token": token}))
        .await
        .problem(401);
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account_with_retry_after() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (tenant, _) = app.tenant_with_admin(&root, "acme").await;
    let slug = tenant["slug"].as_str().unwrap();
    let anon = app.anonymous();
    let attempt = |password: &str| {
        let anon = anon.clone();
        let body = json!({"username": "acme-admin", "password": password, "tenant": slug});
        async move { anon.post("/api/v1/auth/login", body).await }
    };
    // Default login protection: 5 failures lock the account.
    for _ in 0..5 {
        attempt("wrong-password").await.problem(401);
    }
    let locked = attempt(PASSWORD).await;
    locked.problem(429);
    let retry_after: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    // Another account is not affected.
    anon.login("admin", ROOT_PASSWORD, None).await;
    app.stop().await;
}

#[tokio::test]
async fn the_source_address_is_limited_across_accounts() {
    let app = TestServer::start().await;
    let anon = app.anonymous();
    // Four times the account limit, spread over names that do not exist.
    for i in 0..20 {
        anon.post(
            "/api/v1/auth/login",
            json!({"username": format!("ghost{i}"), "password": "wrong-password"}),
        )
        .await
        .problem(401);
    }
    let res = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": ROOT_PASSWORD}),
        )
        .await;
    res.problem(429);
    assert!(res.header("retry-after").is_some());
    app.stop().await;
}

#[tokio::test]
async fn tokens_must_verify_and_name_a_live_admin() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let mut bad = root.clone();
    for token in ["", "garbage", "a.b.c"] {
        bad.token = Some(token.to_owned());
        bad.get("/api/v1/auth/me").await.problem(401);
    }
    // A tampered payload (another tenant claimed) does not verify.
    let token = root.token.clone().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    bad.token = Some(format!("{}.{}x.{}", parts[0], parts[1], parts[2]));
    bad.get("/api/v1/auth/me").await.problem(401);
    app.anonymous().get("/api/v1/auth/me").await.problem(401);

    // A removed admin's token stops working at once.
    let (tenant, admin) = app.tenant_with_admin(&root, "acme").await;
    let me = admin.get("/api/v1/auth/me").await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["tenant_id"], tenant["id"]);
    let id = me.body["id"].as_str().unwrap();
    assert_eq!(
        root.delete(&format!("/api/v1/admins/{id}")).await.status,
        204
    );
    admin.get("/api/v1/auth/me").await.problem(401);
    app.stop().await;
}

#[tokio::test]
async fn login_picks_the_tenant_by_slug_id_or_host() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let tenant = app.tenant(&root, "acme").await;
    let id = tenant["id"].as_str().unwrap();
    let res = root
        .patch(
            &format!("/api/v1/tenants/{id}"),
            json!({"hosts": ["backup.acme.example"]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    app.tenant_admin(&root, id, "boss", json!({})).await;
    let anon = app.anonymous();
    anon.login("boss", PASSWORD, Some("acme")).await;
    anon.login("boss", PASSWORD, Some(id)).await;
    let by_host = anon
        .send(
            anon.request(reqwest::Method::POST, "/api/v1/auth/login")
                .header("host", "backup.acme.example")
                .json(&json!({"username": "boss", "password": PASSWORD})),
        )
        .await;
    assert_eq!(by_host.status, 200, "{}", by_host.text);
    // Without a tenant or a matching host the login is a root admin's: no `boss` there.
    anon.post(
        "/api/v1/auth/login",
        json!({"username": "boss", "password": PASSWORD}),
    )
    .await
    .problem(401);
    anon.post(
        "/api/v1/auth/login",
        json!({"username": "boss", "password": PASSWORD, "tenant": "nope"}),
    )
    .await
    .problem(401);
    app.stop().await;
}

#[tokio::test]
async fn a_suspended_tenants_admins_are_refused() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (tenant, admin) = app.tenant_with_admin(&root, "acme").await;
    let id = tenant["id"].as_str().unwrap();
    let res = root
        .patch(&format!("/api/v1/tenants/{id}"), json!({"suspended": true}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    admin.get("/api/v1/auth/me").await.problem(403);
    app.anonymous()
        .post(
            "/api/v1/auth/login",
            json!({"username": "acme-admin", "password": PASSWORD, "tenant": "acme"}),
        )
        .await
        .problem(403);
    app.stop().await;
}

#[tokio::test]
async fn an_expired_access_token_is_refused_and_the_session_refreshes_it() {
    let app = TestServer::start().await;
    let root = app.root().await;
    app.clock.advance_secs(899);
    assert_eq!(root.get("/api/v1/auth/me").await.status, 200);
    app.clock.advance_secs(1);
    root.get("/api/v1/auth/me").await.problem(401);
    let res = app
        .anonymous()
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": root.refresh_token.clone().unwrap()}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    // The session itself lasts `session_ttl_secs` (3600) from its last use.
    app.clock.advance_secs(3600);
    app.anonymous()
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": res.body["refresh_token"]}),
        )
        .await
        .problem(401);
    app.stop().await;
}

#[tokio::test]
async fn a_lockout_ends_after_its_time() {
    let app = TestServer::start().await;
    let anon = app.anonymous();
    for _ in 0..5 {
        anon.post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": "wrong-password"}),
        )
        .await
        .problem(401);
    }
    let locked = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": ROOT_PASSWORD}),
        )
        .await;
    locked.problem(429);
    assert_eq!(locked.header("retry-after"), Some("900"));
    app.clock.advance_secs(600);
    let still = anon
        .post(
            "/api/v1/auth/login",
            json!({"username": "admin", "password": ROOT_PASSWORD}),
        )
        .await;
    assert_eq!(still.header("retry-after"), Some("300"));
    app.clock.advance_secs(301);
    anon.login("admin", ROOT_PASSWORD, None).await;
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_the_sessions_opened_before_it() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let me = root.get("/api/v1/auth/me").await;
    let path = format!("/api/v1/admins/{}", me.body["id"].as_str().unwrap());
    let changed = root
        .patch(&path, json!({"password": "a-brand-new-password"}))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    app.anonymous()
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": root.refresh_token.clone().unwrap()}),
        )
        .await
        .problem(401);
    let fresh = app
        .anonymous()
        .login("admin", "a-brand-new-password", None)
        .await;
    let res = app
        .anonymous()
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": fresh.refresh_token.clone().unwrap()}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    app.stop().await;
}
