//! Job search, count, statistics and user activity through the API, with jobs reported by
//! registered devices over the agent's HTTP endpoints: results and paging stay inside the
//! caller's tenant, cursors are stable while new jobs arrive, and bad filters are 400s
//! naming the JSON path (or the byte offset of the text form).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::helpers::{Client, Res, TestServer, PASSWORD};

const DAY: i64 = 86_400;

/// A tenant's user with a registered device that reports jobs.
struct Reporter {
    user_id: String,
    item: String,
    vault: String,
    device: Client,
}

impl Reporter {
    async fn new(app: &TestServer, admin: &Client, username: &str) -> Reporter {
        let res = admin
            .post(
                "/api/v1/users",
                json!({
                    "username": username,
                    "password": PASSWORD,
                    "account_name": format!("{username} account"),
                    "emails": [format!("{username}@example.com")],
                }),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        let user_id = res.body["id"].as_str().unwrap().to_owned();
        let res = admin
            .post(
                &format!("/api/v1/users/{user_id}/protected-items"),
                json!({"name": format!("{username} files"), "engine": "files"}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        let item = res.body["id"].as_str().unwrap().to_owned();
        let res = admin
            .post(
                &format!("/api/v1/users/{user_id}/vaults"),
                json!({
                    "name": format!("{username} vault"),
                    "kind": "s3",
                    "address": format!("https://{username}.vault.example"),
                    "bucket": format!("bucket-{username}"),
                }),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        let vault = res.body["id"].as_str().unwrap().to_owned();
        let res = app
            .anonymous()
            .post(
                "/api/v1/agent/register",
                json!({
                    "username": username,
                    "password": PASSWORD,
                    "device": {
                        "friendly_name": format!("{username} laptop"),
                        "platform": "linux",
                        "arch": "x86_64",
                        "os_version": "6.1",
                        "client_version": "2.0.0",
                        "timezone": "UTC",
                    },
                }),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        let mut device = app.anonymous();
        device.token = Some(res.body["device_token"].as_str().unwrap().to_owned());
        Reporter {
            user_id,
            item,
            vault,
            device,
        }
    }

    /// Reports a job that started at `start` (Unix seconds); finished ten minutes later with
    /// `status` and `upload` bytes, or still running when `status` is `None`.
    async fn job(&self, start: i64, classification: u16, end: Option<(u16, u64)>) -> String {
        let res = self
            .device
            .post(
                "/api/v1/agent/jobs",
                json!({
                    "protected_item_id": self.item,
                    "vault_id": self.vault,
                    "classification": classification,
                    "started_at": rfc3339(start),
                }),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        let id = res.body["job_id"].as_str().unwrap().to_owned();
        if let Some((status, upload)) = end {
            let res = self
                .device
                .post(
                    &format!("/api/v1/agent/jobs/{id}/finish"),
                    json!({
                        "status": status,
                        "ended_at": rfc3339(start + 600),
                        "total_bytes": upload * 2,
                        "upload_bytes": upload,
                        "download_bytes": 1,
                        "total_files": 3,
                        "total_dirs": 1,
                    }),
                )
                .await;
            assert_eq!(res.status, 204, "{}", res.text);
        }
        id
    }
}

fn rfc3339(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0).unwrap().to_rfc3339()
}

fn date(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

fn ids(res: &Res) -> Vec<String> {
    res.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", res.text))
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn search(client: &Client, body: Value) -> Res {
    let res = client.post("/api/v1/jobs/search", body).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res
}

async fn count(client: &Client, filter: Value) -> u64 {
    let res = client
        .post("/api/v1/jobs/count", json!({"filter": filter}))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["count"].as_u64().unwrap()
}

/// Every page of a search, following `next_cursor`.
async fn all_pages(client: &Client, mut body: Value) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let res = search(client, body.clone()).await;
        out.extend(ids(&res));
        pages += 1;
        match res.body["next_cursor"].as_str() {
            Some(cursor) => body["cursor"] = json!(cursor),
            None => return (out, pages),
        }
    }
}

struct World {
    app: TestServer,
    root: Client,
    a: Client,
    b: Client,
    alice: Reporter,
    bob: Reporter,
    carol: Reporter,
    /// Start times of the jobs, newest first, per id.
    a_jobs: Vec<(i64, String)>,
    b_jobs: Vec<String>,
    alice_running: String,
    alice_success: String,
    now: i64,
}

/// Tenant `ja`: alice (six finished jobs, one a day back from now, and one running) and bob
/// (three errors). Tenant `jb`: carol (four successes).
async fn world() -> World {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "ja").await;
    let (_, b) = app.tenant_with_admin(&root, "jb").await;
    let alice = Reporter::new(&app, &a, "alice").await;
    let bob = Reporter::new(&app, &a, "bob").await;
    let carol = Reporter::new(&app, &b, "carol").await;
    let now = Utc::now().timestamp();
    let mut a_jobs = Vec::new();
    // alice, k days back: success today, error yesterday, then warning, success, ….
    let statuses = [5000, 7002, 7001, 5000, 7000, 5000];
    let mut alice_success = String::new();
    for (k, status) in statuses.iter().enumerate() {
        let start = now - 3600 - k as i64 * DAY;
        let class = if k % 2 == 0 { 4001 } else { 4002 };
        let id = alice
            .job(start, class, Some((*status, 100 * (k as u64 + 1))))
            .await;
        if k == 0 {
            alice_success = id.clone();
        }
        a_jobs.push((start, id));
    }
    let alice_running = alice.job(now - 60, 4001, None).await;
    a_jobs.push((now - 60, alice_running.clone()));
    for k in 0..3 {
        let start = now - 7200 - k * DAY;
        a_jobs.push((start, bob.job(start, 4001, Some((7002, 10))).await));
    }
    let mut b_jobs = Vec::new();
    for k in 0..4 {
        b_jobs.push(carol.job(now - 1800 - k * DAY, 4001, Some((5000, 1))).await);
    }
    a_jobs.sort_by(|x, y| y.cmp(x));
    World {
        app,
        root,
        a,
        b,
        alice,
        bob,
        carol,
        a_jobs,
        b_jobs,
        alice_running,
        alice_success,
        now,
    }
}

#[tokio::test]
async fn search_count_and_paging_stay_in_the_tenant() {
    let w = world().await;
    let newest_first: Vec<String> = w.a_jobs.iter().map(|(_, id)| id.clone()).collect();

    // Everything, newest first, one page; the DTO carries the username.
    let res = search(&w.a, json!({})).await;
    assert_eq!(ids(&res), newest_first);
    assert!(res.body["next_cursor"].is_null());
    let running = &res.body["items"][0];
    assert_eq!(running["id"], json!(w.alice_running));
    assert_eq!(running["username"], json!("alice"));
    assert_eq!(running["user_id"], json!(w.alice.user_id));
    assert!(running["ended_at"].is_null());
    assert_eq!(count(&w.a, json!(null)).await, 10);
    assert_eq!(count(&w.b, json!(null)).await, 4);
    assert_eq!(count(&w.root, json!(null)).await, 14);
    let (b_all, _) = all_pages(&w.b, json!({"limit": 3})).await;
    assert_eq!(
        b_all.iter().collect::<BTreeSet<_>>(),
        w.b_jobs.iter().collect::<BTreeSet<_>>()
    );

    // Paging by three, both directions and both sort keys, covers every job once.
    let (paged, pages) = all_pages(&w.a, json!({"limit": 3, "sort": "start_time:desc"})).await;
    assert_eq!((paged.clone(), pages), (newest_first.clone(), 4));
    let (asc, _) = all_pages(&w.a, json!({"limit": 4, "sort": "start_time:asc"})).await;
    assert_eq!(asc, newest_first.iter().rev().cloned().collect::<Vec<_>>());
    let (by_end, _) = all_pages(&w.a, json!({"limit": 2, "sort": "end_time:asc"})).await;
    assert_eq!(by_end.len(), 10);
    assert_eq!(by_end.last(), Some(&w.alice_running), "running sorts last");

    // A page after a cursor does not move when a newer job arrives meanwhile.
    let first = search(&w.a, json!({"limit": 4})).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let fresh = w.bob.job(w.now - 5, 4001, None).await;
    let second = search(&w.a, json!({"limit": 4, "cursor": cursor})).await;
    assert_eq!(ids(&second), newest_first[4..8].to_vec());
    assert!(!ids(&second).contains(&fresh));
    assert_eq!(count(&w.a, json!(null)).await, 11);
    // A cursor of one sort does not continue another.
    let res =
        w.a.post(
            "/api/v1/jobs/search",
            json!({"cursor": cursor, "sort": "end_time:asc"}),
        )
        .await;
    res.problem(400);
    assert_eq!(res.error_fields(), vec!["cursor".to_owned()]);

    // Filters: by status, by username (case-insensitive), nested negation, time since end.
    let errors = json!({"field": "status", "op": "int_eq", "value": 7002});
    assert_eq!(count(&w.a, errors.clone()).await, 4);
    let res = search(&w.a, json!({"filter": errors})).await;
    assert!(res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == json!(7002)));
    let alice_ci = json!({"field": "username", "op": "str_contains_ci", "value": "ALI"});
    assert_eq!(count(&w.a, alice_ci.clone()).await, 7);
    let not_alice_nor_running = json!({"not_or": [
        alice_ci,
        {"field": "running", "op": "bool_is", "value": true},
    ]});
    assert_eq!(count(&w.a, not_alice_nor_running).await, 3, "bob's errors");
    let recent_end = json!({"and": [
        {"field": "time_since_end", "op": "int_lte", "value": "86400"},
        {"field": "user_id", "op": "str_eq", "value": w.alice.user_id},
    ]});
    let res = search(&w.a, json!({"filter": recent_end, "now": w.now})).await;
    assert_eq!(ids(&res), vec![w.alice_success.clone()]);
    // A day later, nothing of alice's ended within a day.
    let res = search(&w.a, json!({"filter": recent_end, "now": w.now + 2 * DAY})).await;
    assert_eq!(ids(&res), Vec::<String>::new());

    // Another tenant's objects match nothing; root's search sees both tenants.
    let carol_rule = json!({"field": "user_id", "op": "str_eq", "value": w.carol.user_id});
    assert_eq!(count(&w.a, carol_rule.clone()).await, 0);
    assert_eq!(count(&w.b, carol_rule.clone()).await, 4);
    assert_eq!(count(&w.root, carol_rule).await, 4);
    let foreign_job = json!({"field": "job_id", "op": "str_eq", "value": w.b_jobs[0]});
    assert_eq!(count(&w.a, foreign_job).await, 0);

    // The text form on the list endpoint: the same filters, scoped the same way.
    let res = w.a.get("/api/v1/jobs?q=status%20%3D%207002").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(ids(&res).len(), 4);
    let q = format!(
        "username%20~*%20%22ALI%22%20and%20not%20(running%20is%20true)%20and%20user_id%20!%3D%20%22{}%22",
        w.carol.user_id
    );
    let res = w.a.get(&format!("/api/v1/jobs?q={q}")).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(ids(&res).len(), 6);
    let res = w.b.get("/api/v1/jobs?q=username%20%3D%20%22alice%22").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(ids(&res).is_empty());
    w.app.stop().await;
}

#[tokio::test]
async fn stats_and_activity() {
    let w = world().await;

    // By status: alice 3 successes, 2 errors… (bob's three errors), one running.
    let res = w.a.get("/api/v1/stats/jobs?group_by=status").await;
    assert_eq!(res.status, 200, "{}", res.text);
    let groups: Vec<(String, u64)> = res.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().to_owned(),
                g["jobs"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = [
        ("5000", 3),
        ("6001", 1),
        ("7000", 1),
        ("7001", 1),
        ("7002", 4),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), *n))
    .collect();
    assert_eq!(groups, expected, "{}", res.text);
    assert_eq!(res.body["totals"]["jobs"], json!(10));
    assert_eq!(
        res.body["totals"]["upload_bytes"],
        json!(100 * (1 + 2 + 3 + 4 + 5 + 6) + 3 * 10)
    );

    let res = w.a.get("/api/v1/stats/jobs?group_by=classification").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["groups"][0]["key"], json!("4001"));
    assert_eq!(res.body["groups"][0]["jobs"], json!(7));
    assert_eq!(res.body["groups"][1]["key"], json!("4002"));
    assert_eq!(res.body["groups"][1]["jobs"], json!(3));

    // By day, bounded: only the days starting in [from, to), oldest first, with bytes.
    let from = w.now - 3 * DAY;
    let url = format!(
        "/api/v1/stats/jobs?group_by=day&from={}&to={}",
        rfc3339(from).replace('+', "%2B"),
        rfc3339(w.now + DAY).replace('+', "%2B"),
    );
    let res = w.a.get(&url).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let days: Vec<&str> = res.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = w
        .a_jobs
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| t.div_euclid(DAY) >= from.div_euclid(DAY))
        .map(date)
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(days, expected);
    assert!(res.body["groups"][0]["upload_bytes"].is_u64());

    // Tenant jb sees its own four jobs only; root sees both tenants together.
    let res = w.b.get("/api/v1/stats/jobs?group_by=status").await;
    assert_eq!(
        res.body["groups"],
        json!([{"key": "5000", "jobs": 4, "upload_bytes": null, "download_bytes": null}])
    );
    let res = w.root.get("/api/v1/stats/jobs").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["group_by"], json!("day"));
    assert_eq!(res.body["totals"]["jobs"], json!(14));
    for bad in [
        "group_by=tenant",
        "from=yesterday",
        "to=2026-01-01T00:00:00Z&from=2026-02-01T00:00:00Z",
    ] {
        let res = w.a.get(&format!("/api/v1/stats/jobs?{bad}")).await;
        res.problem(400);
    }

    // Activity: the running job started last; today's worst is running (alice's success
    // today is better), yesterday's the error.
    let res =
        w.a.get(&format!("/api/v1/users/{}/activity", w.alice.user_id))
            .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["last_job"]["id"], json!(w.alice_running));
    assert_eq!(res.body["last_success"]["id"], json!(w.alice_success));
    let days = res.body["days"].as_array().unwrap();
    assert_eq!(days.len(), 10);
    assert_eq!(days[0]["date"], json!(date(w.now)));
    let worst_on = |t: i64| {
        days.iter()
            .find(|d| d["date"] == json!(date(t)))
            .map(|d| d["worst_status"].clone())
    };
    assert_eq!(worst_on(w.now - 3600 - DAY), Some(json!(7002)));
    assert_eq!(worst_on(w.now - 3600 - 2 * DAY), Some(json!(7001)));
    assert_eq!(days[9]["worst_status"], json!(null));
    let res =
        w.a.get(&format!("/api/v1/users/{}/activity", w.bob.user_id))
            .await;
    assert!(res.body["last_success"].is_null());
    assert_eq!(res.body["last_job"]["username"], json!("bob"));

    // Another tenant's user is 404 both ways; root sees either.
    for (client, user) in [(&w.a, &w.carol.user_id), (&w.b, &w.alice.user_id)] {
        let res = client.get(&format!("/api/v1/users/{user}/activity")).await;
        res.problem(404);
        assert!(!res.text.contains("alice") && !res.text.contains("carol"));
    }
    let res = w
        .root
        .get(&format!("/api/v1/users/{}/activity", w.carol.user_id))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    w.app.stop().await;
}

#[tokio::test]
async fn bad_filters_name_the_json_path_or_the_byte_offset() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "jbad").await;
    let head = app.head();

    let cases = [
        (
            json!({"filter": {"and": [
                {"field": "status", "op": "int_eq", "value": 5000},
                {"field": "nope", "op": "int_eq", "value": 1},
            ]}}),
            "filter.and[1].field",
        ),
        (
            json!({"filter": {"or": [{"not_and": [
                {"field": "status", "op": "str_eq", "value": "x"},
            ]}]}}),
            "filter.or[0].not_and[0].op",
        ),
        (
            json!({"filter": {"and": [
                {"field": "status", "op": "int_eq", "value": 1},
                {"field": "status", "op": "int_eq", "value": 1},
                {"field": "status", "op": "bogus", "value": 1},
            ]}}),
            "filter.and[2].op",
        ),
        (
            json!({"filter": {"field": "upload_bytes", "op": "int_gt", "value": "12x"}}),
            "filter.value",
        ),
        (
            json!({"filter": {"field": "username", "op": "str_regexmatch", "value": "("}}),
            "filter.value",
        ),
        (json!({"sort": "size:desc"}), "sort"),
        (json!({"limit": 1001}), "limit"),
        (json!({"limit": 0}), "limit"),
        (json!({"cursor": "not-a-cursor"}), "cursor"),
        (json!({"filter": {}, "colour": "red"}), "colour"),
    ];
    for (body, field) in cases {
        let res = admin.post("/api/v1/jobs/search", body.clone()).await;
        res.problem(400);
        assert_eq!(
            res.error_fields(),
            vec![field.to_owned()],
            "{body}: {}",
            res.text
        );
        if let Some(filter) = body
            .get("filter")
            .filter(|f| !f.as_object().unwrap().is_empty())
        {
            let res = admin
                .post("/api/v1/jobs/count", json!({"filter": filter}))
                .await;
            res.problem(400);
            assert_eq!(res.error_fields(), vec![field.to_owned()], "count {body}");
        }
    }

    // Nesting deeper than 32 levels.
    let mut deep = json!({"field": "status", "op": "int_eq", "value": 5000});
    for _ in 0..40 {
        deep = json!({"and": [deep]});
    }
    let res = admin
        .post("/api/v1/jobs/count", json!({"filter": deep}))
        .await;
    res.problem(400);
    assert!(
        res.error_fields()[0].starts_with("filter.and[0]"),
        "{}",
        res.text
    );

    // The text form: 400 naming `q`, with the byte offset.
    for (q, offset) in [
        ("status%20%3D%20", 9),
        ("status%20%3D%207002%20and%20nope%20%3D%201", 18),
    ] {
        let res = admin.get(&format!("/api/v1/jobs?q={q}")).await;
        let problem = res.problem(400);
        assert_eq!(res.error_fields(), vec!["q".to_owned()]);
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("at byte {offset}")),
            "{message}"
        );
    }
    assert_eq!(app.head(), head, "bad searches appended nothing");
    app.stop().await;
}
