//! The audit log: scoped (a tenant admin sees only its tenant's events), in position order,
//! filtered by type, paged by position, and with every secret removed from `data`.

use serde_json::{json, Value};

use crate::helpers::{Client, TestServer};

fn items(v: &Value) -> &Vec<Value> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {v}"))
}

/// Every event visible to `client`, following `next_cursor` with pages of `limit`.
async fn all_events(client: &Client, limit: u32, types: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = "0".to_owned();
    loop {
        let res = client
            .get(&format!(
                "/api/v1/events?after={after}&limit={limit}{types}"
            ))
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert!(items(&res.body).len() <= limit as usize);
        out.extend(items(&res.body).iter().cloned());
        match res.body["next_cursor"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return out,
        }
    }
}

#[tokio::test]
async fn events_are_scoped_ordered_filtered_and_paged() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (ta, a) = app.tenant_with_admin(&root, "a").await;
    let (_, b) = app.tenant_with_admin(&root, "b").await;
    let ua = a
        .post(
            "/api/v1/users",
            json!({"username": "ann", "password": "ann-password"}),
        )
        .await
        .body;
    b.post(
        "/api/v1/users",
        json!({"username": "bob", "password": "bob-password"}),
    )
    .await;
    a.patch(
        &format!("/api/v1/users/{}", ua["id"].as_str().unwrap()),
        json!({"account_name": "Ann"}),
    )
    .await;

    let head = app.head();
    let everything = all_events(&root, 1000, "").await;
    assert_eq!(everything.len() as u64, head);
    let positions: Vec<u64> = everything
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let first = &everything[0];
    for field in [
        "type_code",
        "type",
        "tenant_id",
        "actor",
        "resource_id",
        "stream",
        "stream_version",
        "recorded_at",
        "correlation_id",
        "data",
    ] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    assert!(first["recorded_at"].as_str().unwrap().ends_with('Z'));

    // Tenant A's admin sees only tenant A's events, whatever the page size.
    let mine = all_events(&a, 2, "").await;
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|e| e["tenant_id"] == ta["id"]), "{mine:?}");
    let expected: Vec<&Value> = everything
        .iter()
        .filter(|e| e["tenant_id"] == ta["id"])
        .collect();
    assert_eq!(mine.iter().collect::<Vec<_>>(), expected);
    assert!(!mine.iter().any(|e| e["data"].to_string().contains("bob")));

    // Types by code or name.
    let created = all_events(&root, 1000, "&types=user.created").await;
    assert_eq!(created.len(), 2);
    let code = created[0]["type_code"].as_u64().unwrap();
    let by_code = all_events(&a, 1000, &format!("&types={code}")).await;
    assert_eq!(by_code.len(), 1);
    assert_eq!(by_code[0]["resource_id"], ua["id"]);
    assert_eq!(by_code[0]["data"]["spec"]["username"], "ann");

    // Reading appends nothing; bad parameters name themselves.
    assert_eq!(app.head(), head);
    for (query, field) in [
        ("after=x", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("types=user.nope", "types"),
        ("cursor=abc", "cursor"),
    ] {
        let bad = a.get(&format!("/api/v1/events?{query}")).await;
        bad.problem(400);
        assert_eq!(bad.error_fields(), [field], "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn event_data_never_carries_secrets() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (t, admin) = app.tenant_with_admin(&root, "acme").await;
    let u = admin
        .post(
            "/api/v1/users",
            json!({"username": "sam", "password": "sam-password-1"}),
        )
        .await
        .body;
    admin
        .patch(
            &format!("/api/v1/users/{}", u["id"].as_str().unwrap()),
            json!({"password": "sam-password-2"}),
        )
        .await;
    let email = root
        .put(
            &format!("/api/v1/tenants/{}/email", t["id"].as_str().unwrap()),
            json!({
                "mode": "smtp_tls", "from_address": "ops@acme.example", "from_name": "Acme",
                "host": "smtp.acme.example", "port": 465, "username": "ops",
                "password": "smtp-secret-123",
            }),
        )
        .await;
    assert_eq!(email.status, 200, "{}", email.text);

    let res = root.get("/api/v1/events?limit=1000").await;
    assert_eq!(res.status, 200, "{}", res.text);
    let text = &res.text;
    for secret in [
        "sam-password",
        "smtp-secret-123",
        "argon2",
        "password_hash",
        "\"password\"",
    ] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    let email_event = items(&res.body)
        .iter()
        .find(|e| e["data"].to_string().contains("smtp.acme.example"))
        .expect("the email settings event");
    assert!(email_event["data"].to_string().contains("ops@acme.example"));
    let password_changed = items(&res.body)
        .iter()
        .filter(|e| e["resource_id"] == u["id"])
        .count();
    assert_eq!(password_changed, 2, "created and password changed");
    app.stop().await;
}

/// A log dominated by another tenant: each request reads a bounded stretch, so a tenant
/// admin's pages may come back short (or empty) with a `next_cursor`, and following it
/// reaches the events behind the flood.
#[tokio::test]
async fn paging_past_other_tenants_traffic_is_bounded_and_continues() {
    use std::sync::Arc;

    use eventlog::EventLog;

    const FLOOD: usize = 12_000;
    let app = TestServer::start().await;
    let root = app.root().await;
    let (ta, a) = app.tenant_with_admin(&root, "a").await;
    // Another fleet's history, appended as a writer would, concurrently so the log
    // commits it in groups.
    let log = Arc::clone(app.server.log());
    let fleet = fixtures::Fleet::new(fixtures::FleetConfig {
        tenants: 1,
        users_per_tenant: 4,
        devices_per_user: 2,
        ..fixtures::FleetConfig::default()
    });
    let mut appends = tokio::task::JoinSet::new();
    for generated in fleet.take(FLOOD) {
        let log = Arc::clone(&log);
        appends.spawn(async move { log.append(fixtures::append_request(&generated)).await });
    }
    while let Some(appended) = appends.join_next().await {
        appended.expect("append task").expect("append");
    }
    // A test holding the log past `stop` would keep the database open.
    drop(log);
    // A write after the flood: its answer waits until the read models applied everything.
    let late = a
        .post(
            "/api/v1/users",
            json!({"username": "late", "password": "late-password"}),
        )
        .await;
    assert_eq!(late.status, 201, "{}", late.text);

    let mut after = "0".to_owned();
    let mut pages = Vec::new();
    loop {
        let res = a
            .get(&format!("/api/v1/events?after={after}&limit=1000"))
            .await;
        assert_eq!(res.status, 200, "{}", res.text);
        assert!(items(&res.body).iter().all(|e| e["tenant_id"] == ta["id"]));
        pages.push(items(&res.body).clone());
        match res.body["next_cursor"].as_str() {
            Some(next) => after = next.to_owned(),
            None => break,
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    // The flood is more than one request reads, so the late event needs a later page.
    assert!(pages.len() >= 2, "{} pages", pages.len());
    assert!(!pages[0].iter().any(|e| e["resource_id"] == late.body["id"]));
    let found = pages
        .iter()
        .flatten()
        .filter(|e| e["resource_id"] == late.body["id"])
        .count();
    assert_eq!(found, 1);
    app.stop().await;
}
