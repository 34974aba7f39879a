//! Schedules over HTTP: CRUD, triggers that fail naming their field, upcoming runs across a
//! daylight-saving change, and the scheduler inside the real server (manual clock, ticks on
//! request): a run sent to a simulated device comes back as a finished job; an offline
//! device's run is recorded as missed; a restart in between neither repeats nor loses a run.

use fixtures::fleet::Behavior;
use serde_json::{json, Value};

use crate::agent::{device, online, until, user};
use crate::helpers::{Client, TestServer};

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

/// A user in `timezone` with one protected item (owned by `owner_device`, if given) and one
/// vault; returns (user, item, vault).
async fn setup(
    admin: &Client,
    username: &str,
    timezone: &str,
    owner_device: Option<&str>,
) -> (Value, Value, Value) {
    let u = user(admin, username, None).await;
    let res = admin
        .patch(
            &format!("/api/v1/users/{}", id(&u)),
            json!({"timezone": timezone}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let item = admin
        .post(
            &format!("/api/v1/users/{}/protected-items", id(&u)),
            json!({"name": "Documents", "engine": "files", "owner_device_id": owner_device}),
        )
        .await;
    assert_eq!(item.status, 201, "{}", item.text);
    let vault = admin
        .post(
            &format!("/api/v1/users/{}/vaults", id(&u)),
            json!({"name": "Offsite", "kind": "s3", "address": "s3.example.test", "bucket": "b"}),
        )
        .await;
    assert_eq!(vault.status, 201, "{}", vault.text);
    (u, item.body, vault.body)
}

fn schedule_body(item: &Value, vault: &Value, triggers: Value) -> Value {
    json!({
        "name": "nightly",
        "protected_item_id": item["id"],
        "vault_id": vault["id"],
        "triggers": triggers,
    })
}

#[tokio::test]
async fn schedules_are_created_listed_changed_and_removed() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let (u, item, vault) = setup(&admin, "alice", "Europe/Berlin", None).await;
    let list = format!("/api/v1/users/{}/schedules", id(&u));
    let created = admin
        .post(
            &list,
            schedule_body(
                &item,
                &vault,
                json!([{"frequency": 8012, "seconds_past": 0, "window": {"from": "09:00", "to": "17:00"},
                        "days": ["mon", "tue", "wed", "thu", "fri"], "random_delay_secs": 300},
                       {"cron": "0 30 2 * * * *"}]),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let s = &created.body;
    assert!(id(s).starts_with("sch_"));
    assert_eq!(s["user_id"], u["id"]);
    assert_eq!(s["skip_if_running"], false);
    assert_eq!(s["triggers"][0]["frequency"], 8012);
    assert_eq!(s["triggers"][0]["window"]["to"], "17:00");
    assert_eq!(s["triggers"][0]["days"][4], "fri");
    assert_eq!(s["triggers"][1]["cron"], "0 30 2 * * * *");
    assert!(s["triggers"][1].get("frequency").is_none());
    assert_eq!(s["version"], 1);

    let path = format!("/api/v1/schedules/{}", id(s));
    assert_eq!(admin.get(&path).await.body, created.body);
    let listed = admin.get(&list).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["items"][0]["id"], s["id"]);

    let stale = admin
        .send(
            admin
                .request(reqwest::Method::PATCH, &path)
                .header("If-Match", "7")
                .json(&json!({"name": "other"})),
        )
        .await;
    stale.problem(409);
    let changed = admin
        .send(
            admin
                .request(reqwest::Method::PATCH, &path)
                .header("If-Match", "1")
                .json(&json!({"skip_if_running": true,
                               "triggers": [{"frequency": 8011, "seconds_past": 9000}]})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["skip_if_running"], true);
    assert_eq!(changed.body["name"], "nightly");
    assert_eq!(changed.body["triggers"].as_array().unwrap().len(), 1);
    assert_eq!(changed.body["triggers"][0]["seconds_past"], 9000);
    assert_eq!(changed.body["version"], 2);

    // Another tenant sees nothing.
    let (_, other) = app.tenant_with_admin(&root, "globex").await;
    other.get(&path).await.problem(404);
    other.get(&format!("{path}/upcoming")).await.problem(404);
    other.get(&list).await.problem(404);

    assert_eq!(admin.delete(&path).await.status, 204);
    admin.get(&path).await.problem(404);
    app.stop().await;
}

#[tokio::test]
async fn bad_triggers_are_400s_naming_the_field() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let (u, item, vault) = setup(&admin, "bob", "UTC", None).await;
    let list = format!("/api/v1/users/{}/schedules", id(&u));
    let cases = [
        (json!([{"cron": "not a cron"}]), "triggers[0].cron"),
        (
            json!([{"frequency": 8012, "seconds_past": 0}, {"cron": "0 0 25 * * *"}]),
            "triggers[1].cron",
        ),
        (
            json!([{"frequency": 8011, "seconds_past": 0, "window": {"from": "9:00", "to": "17:00"}}]),
            "triggers[0].window.from",
        ),
        (
            json!([{"frequency": 8011, "seconds_past": 0, "window": {"from": "09:00", "to": "24:00"}}]),
            "triggers[0].window.to",
        ),
        (
            json!([{"frequency": 8011, "seconds_past": 0, "days": ["mon", "funday"]}]),
            "triggers[0].days[1]",
        ),
        (json!([{"frequency": 8011}]), "triggers[0].seconds_past"),
        (
            json!([{"frequency": 8011, "seconds_past": 86400}]),
            "triggers[0].seconds_past",
        ),
        (json!([{"frequency": 9999}]), "triggers[0].frequency"),
        (json!([{}]), "triggers[0].frequency"),
        (
            json!([{"frequency": 8015, "period_secs": 0}]),
            "triggers[0].period_secs",
        ),
        (
            json!([{"frequency": 8012, "seconds_past": 0, "random_delay_secs": 18001}]),
            "triggers[0].random_delay_secs",
        ),
    ];
    let head = app.head();
    for (triggers, field) in cases {
        let res = admin
            .post(&list, schedule_body(&item, &vault, triggers.clone()))
            .await;
        res.problem(400);
        assert_eq!(res.error_fields(), vec![field.to_owned()], "{triggers}");
    }
    let res = admin
        .post(
            &list,
            json!({"name": "x", "protected_item_id": "itm_nope", "vault_id": vault["id"], "triggers": []}),
        )
        .await;
    res.problem(400);
    assert_eq!(res.error_fields(), vec!["protected_item_id".to_owned()]);
    assert_eq!(app.head(), head, "no bad schedule reached the log");

    let created = admin
        .post(
            &list,
            schedule_body(
                &item,
                &vault,
                json!([{"frequency": 8012, "seconds_past": 0}]),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let upcoming = format!("/api/v1/schedules/{}/upcoming", id(&created.body));
    for (query, field) in [
        ("count=0", "count"),
        ("count=1001", "count"),
        ("from=yesterday", "from"),
    ] {
        let res = admin.get(&format!("{upcoming}?{query}")).await;
        res.problem(400);
        assert_eq!(res.error_fields(), vec![field.to_owned()], "{query}");
    }
    let res = admin
        .patch(
            &format!("/api/v1/schedules/{}", id(&created.body)),
            json!({"triggers": [{"frequency": 8012, "seconds_past": 0}, {"cron": "* * *"}]}),
        )
        .await;
    res.problem(400);
    assert_eq!(res.error_fields(), vec!["triggers[1].cron".to_owned()]);
    app.stop().await;
}

#[tokio::test]
async fn upcoming_runs_follow_the_wall_clock_across_a_daylight_saving_change() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let (u, item, vault) = setup(&admin, "carol", "Europe/Berlin", None).await;
    // Daily at 02:30 local: on 2027-03-28 Berlin skips from 02:00 to 03:00, so that run
    // fires at 03:30 CEST, the same distance after the gap's start.
    let created = admin
        .post(
            &format!("/api/v1/users/{}/schedules", id(&u)),
            schedule_body(
                &item,
                &vault,
                json!([{"frequency": 8011, "seconds_past": 9000}]),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let upcoming = format!("/api/v1/schedules/{}/upcoming", id(&created.body));
    let res = admin
        .get(&format!("{upcoming}?count=3&from=2027-03-26T12:00:00Z"))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let dues: Vec<&str> = res
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["due_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        dues,
        [
            "2027-03-27T01:30:00Z",
            "2027-03-28T01:30:00Z",
            "2027-03-29T00:30:00Z"
        ]
    );
    for run in res.body.as_array().unwrap() {
        assert_eq!(run["delay_secs"], 0);
        assert_eq!(run["fire_at"], run["due_at"]);
    }

    // With a random delay, each run fires its own delay after its due time.
    let res = admin
        .patch(
            &format!("/api/v1/schedules/{}", id(&created.body)),
            json!({"triggers": [{"frequency": 8012, "seconds_past": 0, "random_delay_secs": 900}]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    // Hourly follows elapsed time: around the autumn change (2027-10-31 03:00 CEST → 02:00
    // CET) every real hour has its run, including the repeated one.
    let res = admin
        .get(&format!("{upcoming}?count=4&from=2027-10-30T23:30:00Z"))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let runs = res.body.as_array().unwrap();
    let dues: Vec<&str> = runs.iter().map(|r| r["due_at"].as_str().unwrap()).collect();
    assert_eq!(
        dues,
        [
            "2027-10-31T00:00:00Z",
            "2027-10-31T01:00:00Z",
            "2027-10-31T02:00:00Z",
            "2027-10-31T03:00:00Z"
        ]
    );
    let mut delays = std::collections::BTreeSet::new();
    for run in runs {
        let due = chrono::DateTime::parse_from_rfc3339(run["due_at"].as_str().unwrap()).unwrap();
        let fire = chrono::DateTime::parse_from_rfc3339(run["fire_at"].as_str().unwrap()).unwrap();
        let delay = run["delay_secs"].as_i64().unwrap();
        assert!((0..=900).contains(&delay));
        assert_eq!((fire - due).num_seconds(), delay);
        delays.insert(delay);
    }
    assert!(delays.len() > 1, "delays differ from run to run");
    app.stop().await;
}

/// The next full hour after the server clock, in Unix seconds.
fn next_hour(app: &TestServer) -> i64 {
    use writer::Clock;
    (app.clock.now_secs() / 3600 + 1) * 3600
}

#[tokio::test]
async fn a_schedule_fires_and_the_simulated_device_runs_the_job() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let u = user(&admin, "dave", None).await;
    let creds = device(&app, "dave", "laptop").await;
    let _agent = online(
        &app,
        &creds,
        Behavior {
            total_bytes: 5_000_000,
            total_files: 42,
            ..Behavior::default()
        },
    )
    .await;
    let item = admin
        .post(
            &format!("/api/v1/users/{}/protected-items", id(&u)),
            json!({"name": "Documents", "engine": "files", "owner_device_id": creds.device_id}),
        )
        .await;
    assert_eq!(item.status, 201, "{}", item.text);
    let vault = admin
        .post(
            &format!("/api/v1/users/{}/vaults", id(&u)),
            json!({"name": "Offsite", "kind": "s3", "address": "s3.example.test", "bucket": "b"}),
        )
        .await;
    let created = admin
        .post(
            &format!("/api/v1/users/{}/schedules", id(&u)),
            schedule_body(
                &item.body,
                &vault.body,
                json!([{"frequency": 8012, "seconds_past": 0}]),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);

    let due = next_hour(&app);
    app.clock.set_us((due - 1) * 1_000_000);
    let report = app.server.tick_scheduler().await.unwrap();
    assert!(report.dispatched.is_empty());
    app.clock.set_us(due * 1_000_000);
    let report = app.server.tick_scheduler().await.unwrap();
    assert_eq!(report.dispatched.len(), 1, "{report:?}");
    let (schedule, due_at, device_id, job) = report.dispatched[0];
    assert_eq!(schedule.to_string(), id(&created.body));
    assert_eq!(due_at, due);
    assert_eq!(device_id.to_string(), creds.device_id);
    // The clock jumped ahead of the admin's access token; the root admin logs in again.
    let admin = app.root().await;
    let job_path = format!("/api/v1/jobs/{job}");
    until("the device finished the scheduled job", || async {
        let res = admin.get(&job_path).await;
        res.status == 200 && res.body["status"] == 5000
    })
    .await;
    let job = admin.get(&job_path).await.body;
    assert_eq!(job["schedule_id"], created.body["id"]);
    assert_eq!(job["device_id"], creds.device_id.as_str());
    assert_eq!(job["protected_item_id"], item.body["id"]);
    assert_eq!(job["vault_id"], vault.body["id"]);
    assert_eq!(job["classification"], 4001);
    assert_eq!(job["total_bytes"], 5_000_000);
    assert_eq!(job["total_files"], 42);

    // A restart at the same instant sends nothing again; the next hour goes out once.
    let app = app.restart().await;
    app.clock.set_us(due * 1_000_000);
    let report = app.server.tick_scheduler().await.unwrap();
    assert!(report.dispatched.is_empty(), "{report:?}");
    assert!(report.missed.is_empty(), "{report:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_offline_device_yields_a_missed_job() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "acme").await;
    let (u, item, vault) = setup(&admin, "erin", "America/New_York", None).await;
    let created = admin
        .post(
            &format!("/api/v1/users/{}/schedules", id(&u)),
            schedule_body(
                &item,
                &vault,
                json!([{"frequency": 8012, "seconds_past": 0}]),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let due = next_hour(&app);
    app.clock.set_us(due * 1_000_000);
    let report = app.server.tick_scheduler().await.unwrap();
    assert!(report.dispatched.is_empty() && report.missed.is_empty());
    // The window closes 15 minutes after the fire time.
    app.clock.set_us((due + 900) * 1_000_000);
    let report = app.server.tick_scheduler().await.unwrap();
    assert_eq!(report.missed.len(), 1, "{report:?}");
    let admin = app.root().await;
    let res = admin
        .get(&format!("/api/v1/jobs?status=7004&user_id={}", id(&u)))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let jobs = res.body["items"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{}", res.text);
    let start = chrono::DateTime::from_timestamp(due, 0).unwrap();
    let started =
        chrono::DateTime::parse_from_rfc3339(jobs[0]["started_at"].as_str().unwrap()).unwrap();
    assert_eq!(started, start);
    assert_eq!(jobs[0]["started_at"], jobs[0]["ended_at"]);
    assert_eq!(jobs[0]["schedule_id"], created.body["id"]);
    // Never twice.
    let report = app.server.tick_scheduler().await.unwrap();
    assert!(report.missed.is_empty());
    app.stop().await;
}
