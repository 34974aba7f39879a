//! Devices end to end: actions over the live connection (202, or 409 offline), revoking,
//! transferring a user and signalling its devices, and other tenants' devices being 404.

use fixtures::fleet::Behavior;
use serde_json::json;

use crate::agent::{device, is_online, online, until, user};
use crate::helpers::TestServer;

#[tokio::test]
async fn actions_reach_an_online_device_and_are_refused_offline() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "act").await;
    user(&admin, "act-user", None).await;
    let creds = device(&app, "act-user", "laptop").await;
    let id = creds.device_id.clone();
    let path = format!("/api/v1/devices/{id}/actions");

    let res = admin
        .post(&path, json!({"kind": "upgrade", "version": "25.0"}))
        .await;
    res.problem(409);

    let mut agent = online(&app, &creds, Behavior::default()).await;
    let res = admin
        .post(&path, json!({"kind": "upgrade", "version": "25.0"}))
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    let command_id = res.body["command_id"].as_str().unwrap().to_owned();
    assert!(command_id.starts_with("cmd_"), "{command_id}");
    let frame = agent.next_of("command").await.unwrap();
    assert_eq!(frame["command_id"], command_id.as_str());
    assert_eq!(frame["kind"], "upgrade");
    assert_eq!(frame["version"], "25.0");

    let res = admin
        .post(
            &path,
            json!({"kind": "update_login_url", "url": "https://backup.example.com/"}),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    let frame = agent.next_of("command").await.unwrap();
    assert_eq!(frame["url"], "https://backup.example.com/");

    // Bad actions name the field; nothing is sent.
    admin
        .post(&path, json!({"kind": "explode"}))
        .await
        .problem(400);
    admin
        .post(&path, json!({"kind": "upgrade"}))
        .await
        .problem(400);
    let res = admin
        .post(
            &path,
            json!({"kind": "cancel_job", "job_id": "job_01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        )
        .await;
    assert_eq!(res.problem(400)["errors"][0]["field"], "job_id");
    let res = admin
        .post(
            &path,
            json!({"kind": "run_backup", "schedule_id": "sch_01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        )
        .await;
    assert_eq!(res.problem(400)["errors"][0]["field"], "schedule_id");

    // drop_connection closes the socket; the device goes offline.
    let res = admin.post(&path, json!({"kind": "drop_connection"})).await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(
        agent.next_of("command").await.unwrap()["kind"],
        "drop_connection"
    );
    until("the device is offline", || async {
        !is_online(&admin, &id).await
    })
    .await;
    admin
        .post(&path, json!({"kind": "drop_connection"}))
        .await
        .problem(409);
}

/// An action takes only its kind's fields, each named where it is wrong; serde's internally
/// tagged enums would let `drop_connection` take anything and report a variant's field as
/// `body`.
#[tokio::test]
async fn an_action_takes_only_its_kinds_fields_and_names_the_wrong_one() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "actbad").await;
    user(&admin, "actbad-user", None).await;
    let creds = device(&app, "actbad-user", "laptop").await;
    let path = format!("/api/v1/devices/{}/actions", creds.device_id);
    let head = app.head();
    for (body, field) in [
        (
            json!({"kind": "drop_connection", "version": "2.0"}),
            "version",
        ),
        (json!({"kind": "drop_connection", "zz": 1}), "zz"),
        (json!({"kind": "upgrade", "version": 5}), "version"),
        (json!({"kind": "upgrade"}), "version"),
        (
            json!({"kind": "upgrade", "version": "2.0", "url": "https://x.example/"}),
            "url",
        ),
        (
            json!({"kind": "update_login_url", "url": ["https://x.example/"]}),
            "url",
        ),
        (
            json!({"kind": "run_backup", "schedule_id": 7}),
            "schedule_id",
        ),
        (json!({"kind": "cancel_job"}), "job_id"),
        (json!({"kind": "explode"}), "kind"),
        (json!({"kind": 5}), "kind"),
        (json!({"version": "2.0"}), "kind"),
    ] {
        let res = admin.post(&path, body.clone()).await;
        res.problem(400);
        assert_eq!(res.error_fields(), [field], "{body}: {}", res.text);
    }
    // Well-formed actions get as far as the device, which is offline.
    for body in [
        json!({"kind": "drop_connection"}),
        json!({"version": "2.0", "kind": "upgrade"}),
    ] {
        admin.post(&path, body).await.problem(409);
    }
    assert_eq!(app.head(), head, "refused actions appended events");
    app.stop().await;
}

#[tokio::test]
async fn revoking_a_device_ends_its_token_and_connection() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "rev").await;
    user(&admin, "rev-user", None).await;
    let creds = device(&app, "rev-user", "laptop").await;
    let mut agent = online(&app, &creds, Behavior::default()).await;
    let id = creds.device_id.clone();

    let res = admin.delete(&format!("/api/v1/devices/{id}")).await;
    assert_eq!(res.status, 204, "{}", res.text);
    // The server closes the socket: the agent's frames end.
    while agent.next_frame().await.is_some() {}
    admin
        .get(&format!("/api/v1/devices/{id}"))
        .await
        .problem(404);
    let mut as_device = app.anonymous();
    as_device.token = Some(creds.device_token.clone());
    as_device
        .post(
            "/api/v1/agent/jobs",
            json!({"started_at": "2026-01-01T00:00:00Z"}),
        )
        .await
        .problem(401);
    assert!(
        fixtures::fleet::Agent::connect(&app.server.url(), creds, Behavior::default())
            .await
            .is_err()
    );
    admin
        .delete(&format!("/api/v1/devices/{id}"))
        .await
        .problem(404);
}

#[tokio::test]
async fn transfer_signals_online_devices_and_lists_offline_ones() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, admin) = app.tenant_with_admin(&root, "from").await;
    let to = root
        .post(
            "/api/v1/tenants",
            json!({"name": "To", "slug": "to", "hosts": ["backup.to.example"]}),
        )
        .await;
    assert_eq!(to.status, 201, "{}", to.text);
    let to_id = to.body["id"].as_str().unwrap().to_owned();
    let moved = user(&admin, "moving-user", None).await;
    let user_id = moved["id"].as_str().unwrap().to_owned();
    let laptop = device(&app, "moving-user", "laptop").await;
    let desktop = device(&app, "moving-user", "desktop").await;
    let mut agent = online(&app, &laptop, Behavior::default()).await;

    let path = format!("/api/v1/users/{user_id}/transfer");
    // Root only; a tenant admin sees the user but may not move it.
    admin
        .post(&path, json!({"tenant_id": to_id}))
        .await
        .problem(403);
    root.post(&path, json!({"tenant_id": "ten_nope"}))
        .await
        .problem(400);

    let res = root.post(&path, json!({"tenant_id": to_id})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.body["user"]["tenant_id"], to_id.as_str());
    assert_eq!(res.body["signalled_devices"], json!([laptop.device_id]));
    assert_eq!(res.body["offline_devices"], json!([desktop.device_id]));
    let frame = agent.next_of("command").await.unwrap();
    assert_eq!(frame["kind"], "update_login_url");
    assert_eq!(frame["url"], "https://backup.to.example/");

    // The devices moved along: the old tenant no longer sees them.
    admin
        .get(&format!("/api/v1/devices/{}", laptop.device_id))
        .await
        .problem(404);
    let res = root
        .get(&format!("/api/v1/devices?user_id={user_id}"))
        .await;
    assert_eq!(
        res.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        res.text
    );
    assert!(res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["tenant_id"] == to_id.as_str()));
}

#[tokio::test]
async fn lists_filter_and_other_tenants_devices_are_not_found() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let (_, a) = app.tenant_with_admin(&root, "ta").await;
    let (_, b) = app.tenant_with_admin(&root, "tb").await;
    let a_user = user(&a, "a-user", None).await;
    user(&b, "b-user", None).await;
    let a1 = device(&app, "a-user", "a1").await;
    let a2 = device(&app, "a-user", "a2").await;
    let b1 = device(&app, "b-user", "b1").await;
    let _online = online(&app, &a1, Behavior::default()).await;

    let ids = |res: &crate::helpers::Res| -> Vec<String> {
        res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Lists are ordered by id; two devices registered within one millisecond may sort
    // either way (an id's body is time plus random bits), so compare against id order.
    let mut by_id = [a1.device_id.as_str(), a2.device_id.as_str()];
    by_id.sort_unstable();
    let res = a.get("/api/v1/devices").await;
    assert_eq!(ids(&res), by_id);
    let res = a.get("/api/v1/devices?online=true").await;
    assert_eq!(ids(&res), [a1.device_id.as_str()]);
    let res = a.get("/api/v1/devices?online=false&limit=1").await;
    assert_eq!(ids(&res), [a2.device_id.as_str()]);
    assert!(res.body["next_cursor"].is_null());
    let res = a.get("/api/v1/devices?limit=1").await;
    assert_eq!(ids(&res), [by_id[0]]);
    let cursor = res.body["next_cursor"].as_str().unwrap().to_owned();
    let res = a
        .get(&format!("/api/v1/devices?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids(&res), [by_id[1]]);
    let res = a
        .get(&format!(
            "/api/v1/devices?user_id={}",
            a_user["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&res).len(), 2);
    a.get("/api/v1/devices?user_id=nope").await.problem(400);
    a.get("/api/v1/devices?color=red").await.problem(400);
    assert_eq!(ids(&root.get("/api/v1/devices").await).len(), 3);

    // Tenant B sees none of A's devices, and A none of B's.
    let res = b.get("/api/v1/devices").await;
    assert_eq!(ids(&res), [b1.device_id.as_str()]);
    for id in [&a1.device_id, &a2.device_id] {
        b.get(&format!("/api/v1/devices/{id}")).await.problem(404);
        b.delete(&format!("/api/v1/devices/{id}"))
            .await
            .problem(404);
        b.post(
            &format!("/api/v1/devices/{id}/actions"),
            json!({"kind": "drop_connection"}),
        )
        .await
        .problem(404);
    }
    a.get(&format!("/api/v1/devices/{}", b1.device_id))
        .await
        .problem(404);
    let res = b
        .get(&format!(
            "/api/v1/devices?user_id={}",
            a_user["id"].as_str().unwrap()
        ))
        .await;
    assert!(ids(&res).is_empty());
    assert!(is_online(&a, &a1.device_id).await);
}
