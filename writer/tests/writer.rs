//! The writer against a real sled log: decisions are durable, ordered, idempotent, and the
//! state it keeps equals the state rebuilt from the log.

use std::sync::Arc;

use domain::commands::{CreateTenant, TenantPatch, UpdateTenant};
use domain::model::TenantSpec;
use domain::{Command, DomainError, State, TenantId};
use eventlog::{
    AppendError, AppendRequest, Appended, EventLog, LogError, Position, RecordedEvent, SledLog,
};
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

/// A log that holds every append at a gate before passing it on (in arrival order), and can
/// fail one as a failed sync would, refusing everything after it like a poisoned log.
struct GatedLog {
    inner: Arc<SledLog>,
    gate: tokio::sync::Semaphore,
    submitted: tokio::sync::mpsc::UnboundedSender<()>,
    fail_next: std::sync::atomic::AtomicBool,
    poisoned: std::sync::atomic::AtomicBool,
}

impl GatedLog {
    fn open(dir: &std::path::Path) -> (Arc<GatedLog>, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let (submitted, arrivals) = tokio::sync::mpsc::unbounded_channel();
        let log = GatedLog {
            inner: Arc::new(SledLog::open(dir).unwrap()),
            gate: tokio::sync::Semaphore::new(0),
            submitted,
            fail_next: false.into(),
            poisoned: false.into(),
        };
        (Arc::new(log), arrivals)
    }
}

#[async_trait::async_trait]
impl EventLog for GatedLog {
    async fn append(&self, req: AppendRequest) -> Result<Appended, AppendError> {
        let mut appended = self.append_many(vec![req]).await?;
        Ok(appended.pop().unwrap())
    }
    async fn append_many(&self, reqs: Vec<AppendRequest>) -> Result<Vec<Appended>, AppendError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.submitted.send(()).unwrap();
        // The semaphore is fair: appends pass the gate in the order they arrived.
        self.gate.acquire().await.unwrap().forget();
        if self.poisoned.load(SeqCst) {
            return Err(AppendError::Poisoned);
        }
        if self.fail_next.swap(false, SeqCst) {
            self.poisoned.store(true, SeqCst);
            let e = std::io::Error::other("injected sync failure");
            return Err(AppendError::Io(Arc::new(e)));
        }
        self.inner.append_many(reqs).await
    }
    fn idempotent_result(&self, key: &str) -> Option<Appended> {
        self.inner.idempotent_result(key)
    }
    fn scan(
        &self,
        after: u64,
        until: u64,
        visit: &mut dyn FnMut(eventlog::RecordRef<'_>) -> std::ops::ControlFlow<()>,
    ) -> Result<(), LogError> {
        self.inner.scan(after, until, visit)
    }
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_stream(stream, from_version, limit).await
    }
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_all(after, limit).await
    }
    fn stream_version(&self, stream: &str) -> u64 {
        self.inner.stream_version(stream)
    }
    fn head(&self) -> Position {
        self.inner.head()
    }
    fn watch_head(&self) -> tokio::sync::watch::Receiver<Position> {
        self.inner.watch_head()
    }
}

fn rename_tenant(
    tenant: TenantId,
    version: Option<u64>,
    key: Option<&str>,
) -> (CommandMeta, Command) {
    let meta = CommandMeta {
        expected_version: version.map(|version| ExpectedStream {
            stream: tenant.to_string(),
            version,
        }),
        ..meta(key)
    };
    let command = UpdateTenant {
        tenant_id: tenant,
        patch: TenantPatch {
            name: Some(format!("Renamed {version:?}")),
            ..TenantPatch::default()
        },
    }
    .into();
    (meta, command)
}

fn tenant_of(command: &Command) -> TenantId {
    match command {
        Command::CreateTenant(c) => c.tenant_id,
        other => panic!("{other:?}"),
    }
}

/// Waits for the next append to reach the log; fails instead of hanging if none comes.
async fn next_arrival(arrivals: &mut tokio::sync::mpsc::UnboundedReceiver<()>) {
    tokio::time::timeout(std::time::Duration::from_secs(10), arrivals.recv())
        .await
        .expect("an append reaches the log while the previous one is still committing")
        .unwrap();
}

/// Rounds are pipelined: a command is decided and submitted while the one before it is still
/// committing, against the stream versions the writer submitted (not the log's, which lag),
/// and each is answered only once durable.
#[tokio::test]
async fn the_next_round_is_decided_while_the_previous_one_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut arrivals) = GatedLog::open(dir.path());
    let (writer, _task) = Writer::start(
        log.clone(),
        State::new(),
        Arc::new(ManualClock::new(1_750_000_000_000_000)),
    );
    let create = create_tenant(1);
    let tenant = tenant_of(&create);
    let first = tokio::spawn({
        let writer = writer.clone();
        async move { writer.execute(meta(Some("create")), create).await }
    });
    next_arrival(&mut arrivals).await;
    // The stream is at version 1 only in the writer's eyes: the create has not passed the gate.
    assert_eq!(log.stream_version(&tenant.to_string()), 0);
    let (m, command) = rename_tenant(tenant, Some(1), None);
    let second = tokio::spawn({
        let writer = writer.clone();
        async move { writer.execute(m, command).await }
    });
    next_arrival(&mut arrivals).await;
    // A retry of the create, while it is in flight, is answered as a replay once it lands.
    let retry = tokio::spawn({
        let writer = writer.clone();
        async move { writer.execute(meta(Some("create")), create_tenant(1)).await }
    });
    tokio::task::yield_now().await;
    assert!(!first.is_finished() && !second.is_finished());

    log.gate.add_permits(2);
    let first = first.await.unwrap().unwrap();
    let second = second.await.unwrap().unwrap();
    let retry = retry.await.unwrap().unwrap();
    assert_eq!((first.position, first.replayed), (1, false));
    assert_eq!((second.position, second.events.len()), (2, 1));
    assert_eq!((retry.position, retry.replayed), (1, true));
    assert_eq!(log.stream_version(&tenant.to_string()), 2);
    assert_eq!(log.head(), 2);
}

/// A failed append poisons the writer: the command gets the log's error, every command
/// decided after it (already submitted or not) is unavailable, and nothing more is appended.
#[tokio::test]
async fn a_failed_append_refuses_everything_decided_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut arrivals) = GatedLog::open(dir.path());
    let (writer, _task) = Writer::start(
        log.clone(),
        State::new(),
        Arc::new(ManualClock::new(1_750_000_000_000_000)),
    );
    let create = create_tenant(1);
    let tenant = tenant_of(&create);
    let first = tokio::spawn({
        let writer = writer.clone();
        async move { writer.execute(meta(None), create).await }
    });
    next_arrival(&mut arrivals).await;
    let (m, command) = rename_tenant(tenant, Some(1), None);
    let second = tokio::spawn({
        let writer = writer.clone();
        async move { writer.execute(m, command).await }
    });
    next_arrival(&mut arrivals).await;

    log.fail_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    log.gate.add_permits(2);
    let first = first.await.unwrap().unwrap_err();
    assert!(
        matches!(first, WriteError::Log(AppendError::Io(_))),
        "{first:?}"
    );
    let second = second.await.unwrap().unwrap_err();
    assert!(matches!(second, WriteError::Unavailable), "{second:?}");
    let third = writer
        .execute(meta(None), create_tenant(2))
        .await
        .unwrap_err();
    assert!(matches!(third, WriteError::Unavailable), "{third:?}");
    assert!(
        arrivals.try_recv().is_err(),
        "nothing submitted after the failure"
    );
    assert_eq!(log.head(), 0);
}
