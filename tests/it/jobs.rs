//! Jobs end to end with simulated agents: reports over the live connection, the job list and
//! log, cancel and abandon, and a killed device's job abandoned after the grace period (on
//! the manual clock) and revived when the device reports again.

use std::time::Duration;

use fixtures::fleet::{Agent, Behavior};
use serde_json::{json, Value};

use crate::agent::{device, is_online, online, until, user};
use crate::helpers::{Client, Res, TestServer};

async fn job(admin: &Client, id: &str) -> Value {
    let res = admin.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body
}

/// Starts a job of the agent's own over the live connection; returns its id.
async fn start(agent: &mut Agent) -> String {
    agent
        .send(json!({"type": "job_started", "classification": 4001,
                     "started_at": chrono_now()}))
        .unwrap();
    let frame = agent.next_of("job_accepted").await.expect("job accepted");
    frame["job_id"].as_str().unwrap().to_owned()
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[tokio::test]
async fn a_job_reported_over_the_live_connection_is_listed_with_its_log() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "wsjobs").await;
    user(&admin, "ws-user", None).await;
    let creds = device(&app, "ws-user", "laptop").await;
    let behavior = Behavior {
        status: 5000,
        total_bytes: 8192,
        total_files: 20,
        ..Behavior::default()
    };
    let mut agent = online(&app, &creds, behavior).await;
    let first = start(&mut agent).await;
    let second = start(&mut agent).await;
    for id in [&first, &second] {
        until("the job finished", || async {
            job(&admin, id).await["status"] == 5000
        })
        .await;
    }
    let j = job(&admin, &first).await;
    assert_eq!(j["device_id"], creds.device_id.as_str());
    assert_eq!(j["classification"], 4001);
    assert_eq!(j["total_bytes"], 8192);
    assert_eq!(j["upload_bytes"], 819);
    assert_eq!(j["total_files"], 20);
    assert_eq!(j["running"], false);
    assert!(j["ended_at"].is_string());
    assert_eq!(j["log_lines"], 1);
    let res = admin.get(&format!("/api/v1/jobs/{first}/log")).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["lines"][0]["text"], "backup running");
    assert_eq!(res.body["lines"][0]["severity"], "info");

    let ids = page_ids;
    let res = admin
        .get(&format!(
            "/api/v1/jobs?device_id={}&status=5000",
            creds.device_id
        ))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let mut both = ids(&res);
    both.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(both, expected);
    let page = admin.get("/api/v1/jobs?limit=1").await;
    assert_eq!(ids(&page).len(), 1);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = admin
        .get(&format!("/api/v1/jobs?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids(&rest).len(), 1);
    assert_ne!(ids(&page), ids(&rest));
    assert!(rest.body["next_cursor"].is_null());
    assert!(ids(&admin.get("/api/v1/jobs?status=7007").await).is_empty());
    assert!(ids(&admin.get("/api/v1/jobs?to=2000-01-01T00:00:00Z").await).is_empty());
    assert_eq!(
        ids(&admin.get("/api/v1/jobs?from=2000-01-01T00:00:00Z").await).len(),
        2
    );
    admin.get("/api/v1/jobs?status=1234").await.problem(400);
    admin.get("/api/v1/jobs?from=yesterday").await.problem(400);

    // Another tenant sees none of it.
    let (_, other) = app.tenant_with_admin(&root, "wsother").await;
    other
        .get(&format!("/api/v1/jobs/{first}"))
        .await
        .problem(404);
    other
        .get(&format!("/api/v1/jobs/{first}/log"))
        .await
        .problem(404);
    other
        .post(&format!("/api/v1/jobs/{first}/cancel"), json!({}))
        .await
        .problem(404);
    other
        .post(&format!("/api/v1/jobs/{first}/abandon"), json!({}))
        .await
        .problem(404);
    assert!(ids(&other.get("/api/v1/jobs").await).is_empty());
}

#[tokio::test]
async fn cancel_goes_to_the_device_and_abandon_ends_a_running_job() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "cancel").await;
    user(&admin, "cancel-user", None).await;
    let creds = device(&app, "cancel-user", "laptop").await;
    let slow = Behavior {
        job_duration: Duration::from_secs(3600),
        ..Behavior::default()
    };
    let mut agent = online(&app, &creds, slow).await;
    let running = start(&mut agent).await;
    let res = admin
        .post(&format!("/api/v1/jobs/{running}/cancel"), json!({}))
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert!(res.body["command_id"].as_str().unwrap().starts_with("cmd_"));
    until("the device reported the job cancelled", || async {
        job(&admin, &running).await["status"] == 7005
    })
    .await;
    admin
        .post(&format!("/api/v1/jobs/{running}/cancel"), json!({}))
        .await
        .problem(409);

    let other = start(&mut agent).await;
    // The agent reports progress and a log line right after the start; an abandon before
    // they arrive would be revived by them (6002), so abandon once they are in.
    until("the job's progress and log arrived", || async {
        job(&admin, &other).await["log_lines"] == 1
    })
    .await;
    let res = admin
        .post(&format!("/api/v1/jobs/{other}/abandon"), json!({}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["status"], 7007);
    admin
        .post(&format!("/api/v1/jobs/{other}/abandon"), json!({}))
        .await
        .problem(409);

    // A running job of an offline device cannot be cancelled.
    let third = start(&mut agent).await;
    agent.close();
    until("the device is offline", || async {
        !is_online(&admin, &creds.device_id).await
    })
    .await;
    admin
        .post(&format!("/api/v1/jobs/{third}/cancel"), json!({}))
        .await
        .problem(409);
}

#[tokio::test]
async fn a_killed_device_leaves_its_job_abandoned_after_the_grace_period_and_revives_it() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "kill").await;
    user(&admin, "kill-user", None).await;
    let creds = device(&app, "kill-user", "laptop").await;
    let hang = Behavior {
        hang: true,
        ..Behavior::default()
    };
    let mut agent = online(&app, &creds, hang.clone()).await;
    let id = start(&mut agent).await;
    agent.kill();
    until("the device is offline", || async {
        !is_online(&admin, &creds.device_id).await
    })
    .await;

    // Within the grace period nothing happens.
    let grace = i64::try_from(api::ApiConfig::default().job_abandon_grace_secs).unwrap();
    app.clock.advance_secs(grace - 1);
    assert!(app.server.sweep_abandoned().await.unwrap().is_empty());
    assert_eq!(job(&admin, &id).await["status"], 6001);

    app.clock.advance_secs(2);
    app.server.sweep_abandoned().await.unwrap();
    let j = job(&admin, &id).await;
    assert_eq!(j["status"], 7007, "{j}");
    assert_eq!(j["running"], false);
    assert!(app.server.sweep_abandoned().await.unwrap().is_empty());

    // The device comes back and reports on the job: revived, then finished.
    let back = online(&app, &creds, hang).await;
    back.send(json!({"type": "job_progress", "job_id": id, "bytes_done": 5}))
        .unwrap();
    until("the job is revived", || async {
        job(&admin, &id).await["status"] == 6002
    })
    .await;
    back.send(json!({"type": "job_finished", "job_id": id, "status": 5000,
                     "ended_at": chrono_now(), "total_bytes": 77}))
        .unwrap();
    until("the job finished", || async {
        job(&admin, &id).await["status"] == 5000
    })
    .await;
    assert_eq!(job(&admin, &id).await["total_bytes"], 77);
}

/// The ids of a list or search page.
fn page_ids(res: &Res) -> Vec<String> {
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `GET /jobs?{query}`, two jobs a page, following `next_cursor`.
async fn list_all(admin: &Client, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let res = admin
            .get(&format!("/api/v1/jobs?limit=2&{query}{cursor}"))
            .await;
        ids.extend(page_ids(&res));
        match res.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

/// Every page of `POST /jobs/search` with `filter`, oldest first, two jobs a page.
async fn search_all(admin: &Client, filter: Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut body = json!({"filter": filter, "sort": "start_time:asc", "limit": 2});
    loop {
        let res = admin.post("/api/v1/jobs/search", body.clone()).await;
        ids.extend(page_ids(&res));
        match res.body["next_cursor"].as_str() {
            Some(next) => body["cursor"] = json!(next),
            None => return ids,
        }
    }
}

/// `GET /jobs?q=` is a job search by start time: page for page, the same jobs as
/// `POST /jobs/search` with the same filter in its JSON form, also with the list's own
/// parameters added as rules.
#[tokio::test]
async fn the_list_with_q_pages_like_a_search_with_the_same_filter() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "listq").await;
    // The other tenant's jobs must not show up in either.
    let (_, other) = app.tenant_with_admin(&root, "listq-other").await;
    let mut reporters = Vec::new();
    for (tenant_admin, username) in [
        (&admin, "qa-alice"),
        (&admin, "qa-bob"),
        (&other, "qa-alicia"),
    ] {
        let user_id = user(tenant_admin, username, None).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let creds = device(&app, username, "laptop").await;
        let mut client = app.anonymous();
        client.token = Some(creds.device_token.clone());
        reporters.push((user_id, client));
    }
    // Start times repeat, so ties are broken by id; the last job of each device runs on.
    let statuses = [5000, 7002, 5000, 7001, 5000, 0];
    let starts = [0, 60, 60, 120, 240, 240];
    for (_, device) in &reporters {
        for (status, start) in statuses.iter().zip(starts) {
            let started_at = chrono::DateTime::from_timestamp(1_767_225_600 + start, 0).unwrap();
            let res = device
                .post(
                    "/api/v1/agent/jobs",
                    json!({"classification": 4001, "started_at": started_at.to_rfc3339()}),
                )
                .await;
            assert_eq!(res.status, 201, "{}", res.text);
            if *status == 0 {
                continue;
            }
            let job = res.body["job_id"].as_str().unwrap();
            let ended_at = started_at + chrono::Duration::seconds(30);
            let res = device
                .post(
                    &format!("/api/v1/agent/jobs/{job}/finish"),
                    json!({"status": status, "ended_at": ended_at.to_rfc3339()}),
                )
                .await;
            assert_eq!(res.status, 204, "{}", res.text);
        }
    }
    let alice = &reporters[0].0;
    let everything = list_all(&admin, "").await;
    assert_eq!(everything.len(), 12);
    assert_eq!(everything, search_all(&admin, Value::Null).await);

    let rule =
        |field: &str, op: &str, value: Value| json!({"field": field, "op": op, "value": value});
    let cases = [
        ("status = 5000", rule("status", "int_eq", json!(5000)), 6),
        (
            r#"username ~* "ALI" and not (running is true)"#,
            json!({"and": [
                rule("username", "str_contains_ci", json!("ALI")),
                {"not_and": [rule("running", "bool_is", json!(true))]},
            ]}),
            5,
        ),
        (
            "start_time >= 1767225660 and (status = 7002 or running is true)",
            json!({"and": [
                rule("start_time", "int_gte", json!(1_767_225_660)),
                {"or": [rule("status", "int_eq", json!(7002)), rule("running", "bool_is", json!(true))]},
            ]}),
            4,
        ),
    ];
    for (text, filter, expected) in cases {
        let q = format!("q={}", urlencode(text));
        let listed = list_all(&admin, &q).await;
        assert_eq!(listed.len(), expected, "{text}: {listed:?}");
        assert_eq!(listed, search_all(&admin, filter.clone()).await, "{text}");
        // The list's own parameters are rules of the same search.
        let listed = list_all(&admin, &format!("user_id={alice}&{q}")).await;
        let both = json!({"and": [rule("user_id", "str_eq", json!(alice)), filter]});
        assert_eq!(listed, search_all(&admin, both).await, "{text} for alice");
        assert!(!listed.is_empty(), "{text}");
    }
    // A search's cursor carries its sort: newest first does not continue the list.
    let res = admin.post("/api/v1/jobs/search", json!({"limit": 1})).await;
    let cursor = res.body["next_cursor"].as_str().unwrap();
    let res = admin.get(&format!("/api/v1/jobs?cursor={cursor}")).await;
    res.problem(400);
    assert_eq!(res.error_fields(), ["cursor"], "{}", res.text);
    app.stop().await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
