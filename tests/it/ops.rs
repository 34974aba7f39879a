//! `verify` and `rebuild` on a log the server wrote, and a restart on the same data.

use eventlog::EventLog;
use fixtures::{Fleet, FleetConfig};

use crate::helpers::{metric, TestServer};

const EVENTS: usize = 3_000;

/// A server appends a fleet's worth of events; its read models apply them; after a clean
/// stop the log verifies clean, a rebuild yields the same read models the running server
/// had built incrementally, and a restart serves from the stored state.
#[tokio::test]
async fn verify_and_rebuild_a_log_written_by_the_server() {
    let app = TestServer::start().await;
    let log = app.server.log().clone();
    // A first start records the root admin.
    let bootstrap = log.head();
    let fleet = Fleet::new(FleetConfig {
        tenants: 3,
        users_per_tenant: 10,
        devices_per_user: 2,
        ..FleetConfig::default()
    });
    // Concurrent writers, so group commits carry several appends.
    let mut writers = tokio::task::JoinSet::new();
    let events: Vec<_> = fleet.take(EVENTS).collect();
    for chunk in events.chunks(EVENTS / 8) {
        let log = log.clone();
        let chunk = chunk.to_vec();
        writers.spawn(async move {
            for generated in &chunk {
                log.append(fixtures::append_request(generated))
                    .await
                    .expect("append");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer task");
    }
    let head = log.head();
    assert_eq!(head, bootstrap + EVENTS as u64);
    drop(log);

    app.server.read_models().wait_for(head).await.unwrap();
    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(metric(&text, "halley_log_head_position"), Some(head));
    assert_eq!(metric(&text, "halley_projection_lag_events"), Some(0));
    assert_eq!(metric(&text, "halley_log_appends_total"), Some(head));
    let commits = metric(&text, "halley_log_group_commits_total").unwrap();
    assert!((1..=EVENTS as u64).contains(&commits), "{commits} commits");
    let incremental = app.server.read_models().read().clone();

    let stopped = app.stop().await;

    let report = halley::ops::verify(stopped.data_dir.path()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.records, head);
    assert_eq!(report.head, head);

    let mut last_progress = 0;
    let rebuilt = halley::ops::rebuild(stopped.data_dir.path(), |p| {
        assert!(p.position >= last_progress);
        last_progress = p.position;
    })
    .await
    .unwrap();
    assert_eq!(rebuilt.events, head);
    assert_eq!(rebuilt.position, head);
    assert_eq!(last_progress, head);

    // The restarted server loads the rebuilt snapshot: ready at once, same state.
    let app = stopped.start().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(app.server.read_models().position(), head);
    assert!(*app.server.read_models().read() == incremental);
    app.stop().await;
}

#[tokio::test]
async fn verify_refuses_a_directory_without_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let err = halley::ops::verify(dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("no sled database"), "{err:#}");
}

#[tokio::test]
async fn offline_commands_refuse_a_directory_the_server_holds() {
    let app = TestServer::start().await;
    let err = halley::ops::verify(app.data_dir.path()).unwrap_err();
    assert!(
        format!("{err:#}").contains("stop the halley server"),
        "{err:#}"
    );
    let err = halley::ops::rebuild(app.data_dir.path(), |_| {})
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("stop the halley server"),
        "{err:#}"
    );
    app.stop().await;
}

/// A record the read models cannot decode stops the projector (applying past it would serve
/// state that never existed); the node then reports itself not ready.
#[tokio::test]
async fn readyz_is_503_once_the_projector_has_stopped() {
    let app = TestServer::start().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let appended = app
        .server
        .log()
        .append(eventlog::AppendRequest {
            stream: "garbage".to_owned(),
            expected: eventlog::ExpectedVersion::NoStream,
            events: vec![eventlog::NewEvent {
                tenant: "root".to_owned(),
                type_code: 65_000,
                schema_version: 1,
                recorded_at_us: 0,
                actor: "test".to_owned(),
                correlation_id: "test".to_owned(),
                payload: vec![0xff; 8],
            }],
            idempotency_key: None,
        })
        .await
        .unwrap();
    // Resolves (with an error) once the projector has given up on that record.
    let halted = app.server.read_models().wait_for(appended.last).await;
    assert!(halted.is_err());

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["type"].as_str().unwrap().ends_with("/not-ready"),
        "{body}"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
}
