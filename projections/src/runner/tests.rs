//! The runner against a toy projection whose payloads are little-endian u64s, on a real
//! sled log in a tempdir.

use std::collections::BTreeMap;
use std::sync::Arc;

use eventlog::{AppendRequest, Envelope, EventLog, ExpectedVersion, NewEvent, SledLog};
use serde::{Deserialize, Serialize};

use super::*;
use crate::snapshot::SnapshotStore;

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Tally {
    events: u64,
    sum: u64,
    by_tenant: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("payload of {0} bytes is not a u64")]
struct NotAU64(usize);

impl Projection for Tally {
    const NAME: &'static str = "tally";
    const SCHEMA: u32 = 7;
    /// The envelope's tenant and the value.
    type Event = (String, u64);
    type Error = NotAU64;

    fn decode(envelope: &Envelope<&str>, payload: &[u8]) -> Result<(String, u64), NotAU64> {
        let bytes: [u8; 8] = payload.try_into().map_err(|_| NotAU64(payload.len()))?;
        Ok((envelope.tenant.to_owned(), u64::from_le_bytes(bytes)))
    }

    fn apply(&mut self, (tenant, value): (String, u64)) -> Result<(), NotAU64> {
        self.events += 1;
        self.sum += value;
        *self.by_tenant.entry(tenant).or_default() += value;
        Ok(())
    }
}

fn event(tenant: &str, payload: Vec<u8>) -> NewEvent {
    NewEvent {
        tenant: tenant.to_owned(),
        type_code: 1,
        schema_version: 1,
        recorded_at_us: 0,
        actor: "test".to_owned(),
        correlation_id: "c".to_owned(),
        payload,
    }
}

/// Appends values `from..to` in batches of 10, alternating two tenants; returns the head.
async fn append_values(log: &SledLog, from: u64, to: u64) -> Position {
    let mut head = log.head();
    let values: Vec<u64> = (from..to).collect();
    for chunk in values.chunks(10) {
        let events = chunk
            .iter()
            .map(|v| {
                event(
                    if v % 2 == 0 { "ten_a" } else { "ten_b" },
                    v.to_le_bytes().to_vec(),
                )
            })
            .collect();
        let appended = log
            .append(AppendRequest {
                stream: format!("s{}", chunk[0] % 3),
                expected: ExpectedVersion::Any,
                events,
                idempotency_key: None,
            })
            .await
            .expect("append");
        head = appended.last;
    }
    head
}

fn expected_tally(values: std::ops::Range<u64>) -> Tally {
    let mut tally = Tally::default();
    for v in values {
        tally.events += 1;
        tally.sum += v;
        let tenant = if v % 2 == 0 { "ten_a" } else { "ten_b" };
        *tally.by_tenant.entry(tenant.to_owned()).or_default() += v;
    }
    tally
}

struct Fixture {
    dir: tempfile::TempDir,
    log: Arc<SledLog>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(SledLog::open(dir.path()).expect("open log"));
        Self { dir, log }
    }

    fn reopen(self) -> Self {
        let Fixture { dir, log } = self;
        drop(log);
        let log = Arc::new(SledLog::open(dir.path()).expect("reopen log"));
        Self { dir, log }
    }

    fn projector(&self, config: ProjectorConfig) -> Projector<Tally> {
        Projector::open(self.log.clone(), self.log.db(), config).expect("open projector")
    }
}

fn small_batches() -> ProjectorConfig {
    ProjectorConfig {
        batch_size: 16,
        snapshot_every: u64::MAX,
    }
}

#[tokio::test]
async fn catch_up_applies_everything_up_to_the_head() {
    let fx = Fixture::new();
    let head = append_values(&fx.log, 0, 100).await;
    let mut projector = fx.projector(small_batches());
    let caught = projector.catch_up().await.unwrap();
    assert_eq!(
        caught,
        CaughtUp {
            applied: 100,
            position: head
        }
    );
    let handle = projector.handle();
    assert_eq!(*handle.read(), expected_tally(0..100));
    assert_eq!(handle.read().position(), head);
    assert_eq!(projector.catch_up().await.unwrap().applied, 0);
}

#[tokio::test]
async fn restart_from_a_snapshot_replays_only_the_tail() {
    let fx = Fixture::new();
    append_values(&fx.log, 0, 100).await;
    let mut projector = fx.projector(small_batches());
    projector.catch_up().await.unwrap();
    let info = projector.snapshot().await.unwrap().expect("a new snapshot");
    assert_eq!(info.position, 100);
    assert_eq!(
        projector.snapshot().await.unwrap(),
        None,
        "nothing new to store"
    );
    drop(projector);

    let fx = fx.reopen();
    append_values(&fx.log, 100, 130).await;
    let mut projector = fx.projector(small_batches());
    assert_eq!(projector.position(), 100, "starts from the snapshot");
    let caught = projector.catch_up().await.unwrap();
    assert_eq!(
        caught,
        CaughtUp {
            applied: 30,
            position: 130
        }
    );
    assert_eq!(*projector.handle().read(), expected_tally(0..130));
}

#[tokio::test]
async fn snapshots_are_taken_every_n_positions_once_caught_up() {
    let fx = Fixture::new();
    append_values(&fx.log, 0, 50).await;
    let config = ProjectorConfig {
        batch_size: 16,
        snapshot_every: 40,
    };
    let mut projector = fx.projector(config);
    projector.catch_up().await.unwrap();
    append_values(&fx.log, 50, 70).await;
    projector.catch_up().await.unwrap();
    drop(projector);

    // 50 was due (>= 40 past 0); 70 was not (20 past 50).
    let mut projector = fx.projector(config);
    assert_eq!(projector.position(), 50);
    assert_eq!(projector.catch_up().await.unwrap().applied, 20);
}

#[tokio::test]
async fn an_unusable_snapshot_is_ignored_and_the_model_rebuilt() {
    let fx = Fixture::new();
    append_values(&fx.log, 0, 40).await;
    let store = SnapshotStore::open(fx.log.db(), Tally::NAME).unwrap();
    let older_schema = snapshot::encode(Tally::SCHEMA - 1, &expected_tally(0..40)).unwrap();
    let cases = [
        ("older schema", older_schema),
        ("unknown format", vec![9, 0, 0, 0, 7, 1, 2]),
        ("truncated", vec![snapshot::FORMAT_BINCODE_2_0_1, 0]),
        (
            "garbage body",
            vec![snapshot::FORMAT_BINCODE_2_0_1, 0, 0, 0, 7, 0xff, 0xff],
        ),
    ];
    for (case, bytes) in cases {
        store.put(40, bytes).unwrap();
        let mut projector = fx.projector(small_batches());
        assert_eq!(projector.position(), 0, "{case}");
        assert_eq!(projector.catch_up().await.unwrap().applied, 40, "{case}");
        assert_eq!(*projector.handle().read(), expected_tally(0..40), "{case}");
    }
}

#[tokio::test]
async fn a_snapshot_ahead_of_the_log_is_ignored() {
    let fx = Fixture::new();
    append_values(&fx.log, 0, 10).await;
    let store = SnapshotStore::open(fx.log.db(), Tally::NAME).unwrap();
    store
        .save(Tally::SCHEMA, 500, &expected_tally(0..500))
        .unwrap();
    let mut projector = fx.projector(small_batches());
    assert_eq!(projector.position(), 0);
    projector.catch_up().await.unwrap();
    assert_eq!(*projector.handle().read(), expected_tally(0..10));
}

/// The reader decodes the first part of each batch and the applier the rest (copied as
/// stored), so a bad event is tried at the start of a batch and near its end: both sides
/// must stop at it.
#[tokio::test]
async fn an_undecodable_event_stops_the_runner_at_its_position() {
    for bad in [21, 31] {
        let fx = Fixture::new();
        append_values(&fx.log, 0, bad - 1).await;
        fx.log
            .append(AppendRequest {
                stream: "bad".to_owned(),
                expected: ExpectedVersion::Any,
                events: vec![event("ten_a", vec![1, 2, 3])],
                idempotency_key: None,
            })
            .await
            .unwrap();
        append_values(&fx.log, bad - 1, 40).await;
        let mut projector = fx.projector(small_batches());
        let handle = projector.handle();
        let err = projector.catch_up().await.unwrap_err();
        assert!(
            matches!(
                err,
                ProjectionError::Decode {
                    position,
                    type_code: 1,
                    ..
                } if position == bad
            ),
            "{err:?}"
        );
        assert_eq!(
            handle.position(),
            bad - 1,
            "everything before the bad event is applied"
        );
        assert_eq!(*handle.read(), expected_tally(0..bad - 1));
        let waited = handle.wait_for(bad).await.unwrap_err();
        assert!(
            matches!(
                waited,
                ProjectionError::Halted { wanted, reached } if wanted == bad && reached == bad - 1
            ),
            "{waited:?}"
        );
    }
}

#[tokio::test]
async fn wait_for_resolves_once_the_position_is_applied() {
    let fx = Fixture::new();
    let mut projector = fx.projector(small_batches());
    let handle = projector.handle();
    let head = append_values(&fx.log, 0, 5).await;
    let waiter = tokio::spawn({
        let handle = handle.clone();
        async move {
            handle.wait_for(head).await.unwrap();
            // Read your writes: once the wait returns, the model shows the write.
            handle.read().events
        }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    projector.catch_up().await.unwrap();
    assert_eq!(waiter.await.unwrap(), 5);
    handle.wait_for(head).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_tails_live_appends_and_snapshots_on_shutdown() {
    let fx = Fixture::new();
    append_values(&fx.log, 0, 25).await;
    let projector = fx.projector(ProjectorConfig::default());
    let handle = projector.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(projector.run(async {
        stopped.await.ok();
    }));
    handle.wait_for(25).await.unwrap();
    let head = append_values(&fx.log, 25, 60).await;
    handle.wait_for(head).await.unwrap();
    assert_eq!(*handle.read(), expected_tally(0..60));
    stop.send(()).unwrap();
    runner.await.unwrap().unwrap();
    assert!(handle.status().borrow().halted);
    assert!(matches!(
        handle.wait_for(head + 1).await,
        Err(ProjectionError::Halted { .. })
    ));

    let store = SnapshotStore::open(fx.log.db(), Tally::NAME).unwrap();
    match store.load::<Tally>(Tally::SCHEMA).unwrap() {
        Loaded::Found { position, model } => {
            assert_eq!(position, head);
            assert_eq!(model, expected_tally(0..60));
        }
        other => panic!("expected a snapshot, found {other:?}"),
    }
}

#[tokio::test]
async fn rebuild_reports_progress_and_ignores_snapshots() {
    let fx = Fixture::new();
    let head = append_values(&fx.log, 0, 75).await;
    let store = SnapshotStore::open(fx.log.db(), Tally::NAME).unwrap();
    store.save(Tally::SCHEMA, 10, &Tally::default()).unwrap();
    let mut reports = Vec::new();
    let rebuilt = rebuild::<Tally>(fx.log.clone(), 32, |p| reports.push(p))
        .await
        .unwrap();
    assert_eq!(rebuilt.position, head);
    assert_eq!(rebuilt.events, 75);
    assert_eq!(rebuilt.model, expected_tally(0..75));
    let events: Vec<u64> = reports.iter().map(|p| p.events).collect();
    assert_eq!(events, [32, 64, 75]);
    assert!(reports.iter().all(|p| p.target == head));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_undecodable_event_stops_the_running_projector() {
    let fx = Fixture::new();
    let head = append_values(&fx.log, 0, 10).await;
    let projector = fx.projector(small_batches());
    let handle = projector.handle();
    let runner = tokio::spawn(projector.run(std::future::pending()));
    handle.wait_for(head).await.unwrap();
    let bad = fx
        .log
        .append(AppendRequest {
            stream: "bad".to_owned(),
            expected: ExpectedVersion::Any,
            events: vec![event("ten_a", Vec::new())],
            idempotency_key: None,
        })
        .await
        .unwrap();
    let err = runner.await.unwrap().unwrap_err();
    assert!(
        matches!(err, ProjectionError::Decode { position, .. } if position == bad.last),
        "{err:?}"
    );
    assert!(matches!(
        handle.wait_for(bad.last).await,
        Err(ProjectionError::Halted { .. })
    ));
    assert_eq!(*handle.read(), expected_tally(0..10));
}
