//! The agent protocol end to end with simulated agents: registration, the live connection,
//! online/offline tracking, bad frames, and job reports over HTTP.

use std::future::Future;
use std::time::Duration;

use fixtures::fleet::{register, Agent, Behavior, Credentials};
use serde_json::{json, Value};

use crate::helpers::{Client, TestServer};

/// The password of every test user.
pub const USER_PASSWORD: &str = "user-password-for-tests";

/// Creates a user `username` through `admin`; returns its JSON.
pub async fn user(admin: &Client, username: &str, max_devices: Option<u32>) -> Value {
    let res = admin
        .post(
            "/api/v1/users",
            json!({"username": username, "password": USER_PASSWORD, "max_devices": max_devices}),
        )
        .await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body
}

/// Registers a device of `username`.
pub async fn device(app: &TestServer, username: &str, name: &str) -> Credentials {
    register(
        &app.client,
        &app.server.url(),
        username,
        USER_PASSWORD,
        name,
    )
    .await
    .expect("registration")
}

/// Connects an agent and waits for the server's welcome, so the device is online.
pub async fn online(app: &TestServer, credentials: &Credentials, behavior: Behavior) -> Agent {
    let mut agent = Agent::connect(&app.server.url(), credentials.clone(), behavior)
        .await
        .expect("agent connects");
    agent.next_of("welcome").await.expect("welcome frame");
    agent
}

/// Waits until `check` holds: for effects the server applies after a socket closes, which
/// no response announces.
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

pub async fn is_online(admin: &Client, device: &str) -> bool {
    let res = admin.get(&format!("/api/v1/devices/{device}")).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["online"] == true
}

#[tokio::test]
async fn registration_checks_credentials_and_the_device_limit() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "reg").await;
    user(&admin, "reg-user", Some(2)).await;
    let url = app.server.url();

    let wrong = register(&app.client, &url, "reg-user", "wrong-password", "a").await;
    assert!(matches!(
        wrong,
        Err(fixtures::fleet::FleetError::Refused { status: 401, .. })
    ));
    let unknown = register(&app.client, &url, "nobody", USER_PASSWORD, "a").await;
    assert!(matches!(
        unknown,
        Err(fixtures::fleet::FleetError::Refused { status: 401, .. })
    ));

    let first = device(&app, "reg-user", "laptop").await;
    assert!(first.device_id.starts_with("dev_"));
    assert!(first.device_token.starts_with(&first.device_id));
    device(&app, "reg-user", "desktop").await;
    let third = register(&app.client, &url, "reg-user", USER_PASSWORD, "third").await;
    assert!(
        matches!(
            third,
            Err(fixtures::fleet::FleetError::Refused { status: 409, .. })
        ),
        "{third:?}"
    );

    let res = admin
        .get(&format!("/api/v1/devices/{}", first.device_id))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["friendly_name"], "laptop");
    assert_eq!(res.body["online"], false);
    assert!(
        !res.text.contains(&first.device_token),
        "the token is never shown again"
    );

    // Invalid device fields name the field.
    user(&admin, "reg-other", None).await;
    let res = app
        .anonymous()
        .post(
            "/api/v1/agent/register",
            json!({"username": "reg-other", "password": USER_PASSWORD,
                   "device": {"friendly_name": "x", "platform": "linux", "arch": "x86_64",
                              "os_version": "1", "client_version": "1", "timezone": "Mars/Base"}}),
        )
        .await;
    assert_eq!(res.problem(400)["errors"][0]["field"], "timezone");
}

#[tokio::test]
async fn a_device_is_online_while_any_connection_lives() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "live").await;
    user(&admin, "live-user", None).await;
    let creds = device(&app, "live-user", "laptop").await;
    let id = creds.device_id.clone();

    let first = online(&app, &creds, Behavior::default()).await;
    assert!(is_online(&admin, &id).await);
    let second = online(&app, &creds, Behavior::default()).await;
    let res = admin.get(&format!("/api/v1/devices/{id}")).await;
    assert_eq!(res.body["connections"], 2, "{}", res.text);
    assert!(res.body["connected_since"].is_string());

    first.close();
    until("one connection is left", || async {
        admin.get(&format!("/api/v1/devices/{id}")).await.body["connections"] == 1
    })
    .await;
    assert!(is_online(&admin, &id).await);
    second.close();
    until("the device is offline", || async {
        !is_online(&admin, &id).await
    })
    .await;

    // One connected and one disconnected event: first connection, last disconnection.
    let events = root.get("/api/v1/events?limit=1000").await;
    assert_eq!(events.status, 200, "{}", events.text);
    let types: Vec<&str> = events.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.starts_with("device.") && *t != "device.registered")
        .collect();
    assert_eq!(
        types,
        ["device.connected", "device.disconnected"],
        "{}",
        events.text
    );
}

#[tokio::test]
async fn a_bad_token_cannot_connect_and_bad_frames_get_error_frames() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "frames").await;
    user(&admin, "frames-user", None).await;
    let creds = device(&app, "frames-user", "laptop").await;

    let forged = Credentials {
        device_token: format!("{}.forged", creds.device_id),
        ..creds.clone()
    };
    assert!(
        Agent::connect(&app.server.url(), forged, Behavior::default())
            .await
            .is_err()
    );

    let mut agent = online(&app, &creds, Behavior::default()).await;
    let bad = [
        ("not json".to_owned(), None),
        (json!({"no": "type"}).to_string(), None),
        (json!({"type": "teleport"}).to_string(), Some("teleport")),
        (
            json!({"type": "job_progress", "job_id": "job_01ARZ3NDEKTSV4RRFFQ69G5FAV"}).to_string(),
            Some("job_progress"),
        ),
        (
            json!({"type": "job_started", "started_at": "yesterday"}).to_string(),
            Some("job_started"),
        ),
        (
            json!({"type": "job_finished", "job_id": "nope", "status": 5000}).to_string(),
            Some("job_finished"),
        ),
    ];
    for (text, in_reply_to) in bad {
        agent.send_text(text.clone()).unwrap();
        let frame = agent.next_of("error").await.expect("an error frame");
        assert_eq!(
            frame["in_reply_to"].as_str(),
            in_reply_to,
            "{text}: {frame}"
        );
        let status = frame["problem"]["status"].as_u64().unwrap();
        assert!(status == 400 || status == 404, "{text}: {frame}");
    }
    // Still connected and served.
    agent
        .send(json!({"type": "hello", "client_version": "2"}))
        .unwrap();
    agent
        .next_of("welcome")
        .await
        .expect("welcome after errors");
    assert!(is_online(&admin, &creds.device_id).await);
}

#[tokio::test]
async fn job_reports_over_http() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "http").await;
    user(&admin, "http-user", None).await;
    let creds = device(&app, "http-user", "laptop").await;
    let other = device(&app, "http-user", "desktop").await;
    let agent = |c: &Credentials| {
        let mut client = app.anonymous();
        client.token = Some(c.device_token.clone());
        client
    };
    let (me, them) = (agent(&creds), agent(&other));

    let started = json!({"classification": 4001, "started_at": "2026-01-01T10:00:00Z"});
    assert_eq!(
        app.anonymous()
            .post("/api/v1/agent/jobs", started.clone())
            .await
            .status,
        401
    );
    assert_eq!(
        admin
            .post("/api/v1/agent/jobs", started.clone())
            .await
            .status,
        401
    );
    let res = me.post("/api/v1/agent/jobs", started).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let job = res.body["job_id"].as_str().unwrap().to_owned();

    let progress = json!({"bytes_done": 10, "items_done": 1, "items_total": 4});
    let res = me
        .post(
            &format!("/api/v1/agent/jobs/{job}/progress"),
            progress.clone(),
        )
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    // Another device cannot report on this job.
    them.post(&format!("/api/v1/agent/jobs/{job}/progress"), progress)
        .await
        .problem(404);
    let res = admin.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(res.body["status"], 6001, "{}", res.text);
    assert_eq!(res.body["progress"]["items_done"], 1);

    let finish = json!({"status": 7001, "ended_at": "2026-01-01T10:05:00Z", "total_bytes": 4096,
                        "upload_bytes": 1024, "download_bytes": 0, "total_files": 4, "total_dirs": 1});
    me.post(
        &format!("/api/v1/agent/jobs/{job}/finish"),
        json!({"status": 5000}),
    )
    .await
    .problem(400);
    let res = me
        .post(&format!("/api/v1/agent/jobs/{job}/finish"), finish.clone())
        .await;
    assert_eq!(res.status, 204, "{}", res.text);
    let res = admin.get(&format!("/api/v1/jobs/{job}")).await;
    assert_eq!(res.body["status"], 7001, "{}", res.text);
    assert_eq!(res.body["total_bytes"], 4096);
    assert_eq!(res.body["upload_bytes"], 1024);
    assert_eq!(res.body["ended_at"], "2026-01-01T10:05:00Z");
    // A finished job takes no more reports.
    me.post(&format!("/api/v1/agent/jobs/{job}/finish"), finish)
        .await
        .problem(409);
}
