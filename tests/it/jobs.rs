//! Jobs end to end with simulated agents: reports over the live connection, the job list and
//! log, cancel and abandon, and a killed device's job abandoned after the grace period (on
//! the manual clock) and revived when the device reports again.

use std::time::Duration;

use fixtures::fleet::{Agent, Behavior};
use serde_json::{json, Value};

use crate::agent::{device, is_online, online, until, user};
use crate::helpers::{Client, TestServer};

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

    let ids = |res: &crate::helpers::Res| -> Vec<String> {
        res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect()
    };
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
