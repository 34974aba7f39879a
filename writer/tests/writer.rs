//! The writer against a real sled log: decisions are durable, ordered, idempotent, and the
//! state it keeps equals the state rebuilt from the log.

use std::sync::Arc;

use domain::commands::{CreateTenant, TenantPatch, UpdateTenant};
use domain::model::TenantSpec;
use domain::{Command, DomainError, State, TenantId};
use eventlog::{EventLog, SledLog};
use writer::{CommandMeta, ExpectedStream, ManualClock, WriteError, Writer};

fn meta(key: Option<&str>) -> CommandMeta {
    CommandMeta {
        actor: "adm_test".into(),
        correlation_id: "corr".into(),
        idempotency_key: key.map(str::to_owned),
        expected_version: None,
    }
}

fn create_tenant(n: u64) -> Command {
    CreateTenant {
        tenant_id: TenantId::new(1_700_000_000_000 + n, u128::from(n)),
        spec: TenantSpec {
            name: format!("Tenant {n}"),
            slug: format!("tenant-{n}"),
            hosts: vec![],
            suspended: false,
        },
    }
    .into()
}

async fn state_from_log(log: &dyn EventLog) -> State {
    let mut state = State::new();
    for record in log.read_all(0, usize::MAX).await.unwrap() {
        let e = &record.envelope;
        let event = domain::decode(e.type_code, e.schema_version, &record.payload).unwrap();
        state.apply(&event);
    }
    state
}

fn start(dir: &std::path::Path) -> (Arc<SledLog>, Writer, tokio::task::JoinHandle<()>) {
    let log = Arc::new(SledLog::open(dir).unwrap());
    let clock = Arc::new(ManualClock::new(1_750_000_000_000_000));
    let (writer, task) = Writer::start(log.clone(), State::new(), clock);
    (log, writer, task)
}

#[tokio::test]
async fn concurrent_commands_are_durable_ordered_and_match_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (log, writer, _task) = start(dir.path());
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.execute(meta(None), create_tenant(n)).await })
        })
        .collect();
    let mut positions = Vec::new();
    for task in tasks {
        let committed = task.await.unwrap().unwrap();
        assert_eq!(committed.events.len(), 1);
        assert!(committed.position <= log.head());
        positions.push(committed.position);
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=200).collect::<Vec<_>>());

    // A duplicate slug is refused by the state the writer keeps, and appends nothing.
    let mut dup = create_tenant(7);
    if let Command::CreateTenant(c) = &mut dup {
        c.tenant_id = TenantId::new(1, 1);
    }
    let err = writer.execute(meta(None), dup).await.unwrap_err();
    assert!(
        matches!(err, WriteError::Domain(DomainError::Conflict { .. })),
        "{err:?}"
    );
    assert_eq!(log.head(), 200);

    let rebuilt = state_from_log(log.as_ref()).await;
    assert_eq!(rebuilt.tenants().count(), 200);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_result_also_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (first, task) = {
        let (log, writer, task) = start(dir.path());
        let first = writer
            .execute(meta(Some("k1")), create_tenant(1))
            .await
            .unwrap();
        let again = writer
            .execute(meta(Some("k1")), create_tenant(1))
            .await
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.position, first.position);
        assert_eq!(log.head(), 1);
        // Retries racing inside one round.
        let racing: Vec<_> = (0..8)
            .map(|_| {
                let writer = writer.clone();
                tokio::spawn(
                    async move { writer.execute(meta(Some("k2")), create_tenant(2)).await },
                )
            })
            .collect();
        let mut fresh = 0;
        for r in racing {
            let c = r.await.unwrap().unwrap();
            assert_eq!(c.position, 2);
            fresh += usize::from(!c.replayed);
        }
        assert_eq!(fresh, 1);
        assert_eq!(log.head(), 2);
        (first, task)
    };
    task.await.unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let state = state_from_log(log.as_ref()).await;
    let (writer, _task) = Writer::start(log.clone(), state, Arc::new(ManualClock::new(0)));
    let replay = writer
        .execute(meta(Some("k1")), create_tenant(1))
        .await
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.position, first.position);
    assert_eq!(log.head(), 2);
}

/// `If-Match`: a command naming the stream version it read is refused once another command
/// moved the stream on, also when both are decided in the same round.
#[tokio::test]
async fn an_expected_stream_version_is_checked_within_the_round() {
    let dir = tempfile::tempdir().unwrap();
    let (log, writer, _task) = start(dir.path());
    let created = writer.execute(meta(None), create_tenant(1)).await.unwrap();
    let Some(domain::Event::TenantCreated(e)) = created.events.first() else {
        panic!("{created:?}");
    };
    let tenant = e.tenant_id;
    let rename = |name: &str, version: u64| {
        let meta = CommandMeta {
            expected_version: Some(ExpectedStream {
                stream: tenant.to_string(),
                version,
            }),
            ..meta(None)
        };
        let command: Command = UpdateTenant {
            tenant_id: tenant,
            patch: TenantPatch {
                name: Some(name.to_owned()),
                ..TenantPatch::default()
            },
        }
        .into();
        let writer = writer.clone();
        tokio::spawn(async move { writer.execute(meta, command).await })
    };
    // Eight edits all read version 1: exactly one wins, the others see the version it left.
    let racing: Vec<_> = (0..8).map(|n| rename(&format!("Name {n}"), 1)).collect();
    let mut won = 0;
    for r in racing {
        match r.await.unwrap() {
            Ok(c) => {
                assert_eq!(c.events.len(), 1);
                won += 1;
            }
            Err(WriteError::VersionMismatch {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (1, 2)),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(log.stream_version(&tenant.to_string()), 2);
    assert!(rename("Again", 2).await.unwrap().is_ok());
    assert_eq!(log.head(), 3);
}
