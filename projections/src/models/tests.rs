use std::collections::BTreeSet;
use std::sync::Arc;

use domain::events::*;
use domain::ids::{AdminId, DeviceId, ItemId, JobId, ScheduleId, TenantId, TenantRef, UserId};
use domain::ids::{PolicyId, VaultId};
use domain::model::Classification;
use domain::Event;
use eventlog::{EventLog, SledLog};

use super::*;
use crate::testkit::{self, append_all, World};
use crate::{rebuild, Projector, ProjectorConfig};

const SEEDS: [u64; 3] = [1, 0x5eed, 0xdead_beef];

fn models_of(events: &[Event]) -> ReadModels {
    let mut models = ReadModels::default();
    for event in events {
        models.apply_event(event);
    }
    models
}

/// The indexes as they must be for `state`, computed from scratch.
fn expected_indexes(state: &State) -> (Index, HashMap<TenantRef, Index>) {
    let mut rows: Vec<(Key, Slot)> = Vec::new();
    rows.extend(
        state
            .tenants()
            .map(|t| (Key::Tenant(t.id), (TenantRef::Tenant(t.id), 0))),
    );
    rows.extend(state.admins().map(|a| (Key::Admin(a.id), (a.tenant, 0))));
    rows.extend(state.policies().map(|p| (Key::Policy(p.id), (p.tenant, 0))));
    rows.extend(state.users().map(|u| (Key::User(u.id), (u.tenant, 0))));
    rows.extend(
        state
            .schedules()
            .map(|s| (Key::Schedule(s.id), (s.tenant, 0))),
    );
    rows.extend(state.devices().map(|d| (Key::Device(d.id), (d.tenant, 0))));
    rows.extend(
        state
            .jobs()
            .map(|j| (Key::Job(j.id), (j.tenant, j.started_at))),
    );
    let mut all = Index::default();
    let mut owners: HashMap<TenantRef, Index> = HashMap::default();
    for (key, (owner, start)) in rows {
        all.insert(key, start);
        owners.entry(owner).or_default().insert(key, start);
    }
    (all, owners)
}

#[test]
fn indexes_match_the_state_after_long_histories() {
    for seed in SEEDS {
        let mut world = World::new(seed);
        let models = models_of(&world.events(4_000));
        assert_eq!(models.state, world.state, "seed {seed}: same evolve code");
        let (all, owners) = expected_indexes(&models.state);
        assert_eq!(models.all, all, "seed {seed}");
        assert_eq!(models.owners, owners, "seed {seed}");
        assert!(
            models.all.users.len() > 20,
            "seed {seed}: a history worth testing"
        );
        assert!(
            models.all.jobs.len() > 100,
            "seed {seed}: a history worth testing"
        );
    }
}

#[test]
fn every_kind_of_event_occurs_in_the_test_histories() {
    let mut seen = BTreeSet::new();
    for seed in SEEDS {
        seen.extend(World::new(seed).events(4_000).iter().map(Event::type_code));
    }
    let missing: Vec<u16> = EVENT_TYPES
        .iter()
        .map(|(code, _)| *code)
        .filter(|code| !seen.contains(code))
        .collect();
    assert_eq!(
        missing,
        Vec::<u16>::new(),
        "the generator must cover every event"
    );
}

const ALL: usize = usize::MAX;

/// Checks every accessor in `scope` against the root view: a tenant scope sees exactly the
/// rows its tenant owns, no more and no fewer.
fn check_scope(models: &ReadModels, tenant: TenantId) {
    let scope = Scope::Tenant(tenant);
    let owner = TenantRef::Tenant(tenant);
    let root = Scope::Root;

    let tenants: Vec<TenantId> = models
        .tenants(scope, None, ALL)
        .iter()
        .map(|t| t.id)
        .collect();
    let alive = models.tenant(root, tenant).is_some();
    assert_eq!(tenants, if alive { vec![tenant] } else { vec![] });
    for t in models.tenants(root, None, ALL) {
        assert_eq!(models.tenant(scope, t.id).is_some(), t.id == tenant);
        assert_eq!(
            models.tenant_by_slug(scope, &t.spec.slug).is_some(),
            t.id == tenant
        );
        assert_eq!(
            models
                .email_settings(scope, TenantRef::Tenant(t.id))
                .is_some(),
            t.id == tenant
        );
        if t.id != tenant {
            assert!(models
                .default_policy(scope, TenantRef::Tenant(t.id))
                .is_none());
        }
    }
    assert!(models.email_settings(scope, TenantRef::Root).is_none());
    assert!(models.default_policy(scope, TenantRef::Root).is_none());

    macro_rules! check_kind {
        ($list:ident, $get:ident) => {{
            let seen: Vec<_> = models
                .$list(scope, None, ALL)
                .iter()
                .map(|r| r.id)
                .collect();
            let expected: Vec<_> = models
                .$list(root, None, ALL)
                .iter()
                .filter(|r| r.tenant == owner)
                .map(|r| r.id)
                .collect();
            assert_eq!(seen, expected, stringify!($list));
            for row in models.$list(root, None, ALL) {
                assert_eq!(
                    models.$get(scope, row.id).is_some(),
                    row.tenant == owner,
                    "{} {}",
                    stringify!($get),
                    row.id
                );
            }
        }};
    }
    check_kind!(admins, admin);
    check_kind!(policies, policy);
    check_kind!(users, user);
    check_kind!(schedules, schedule);
    check_kind!(devices, device);
    check_kind!(jobs, job);

    for user in models.users(root, None, ALL) {
        let mine = user.tenant == owner;
        assert_eq!(
            models
                .user_by_username(scope, &user.spec.username)
                .is_some(),
            mine
        );
        assert_eq!(models.user(scope, user.id).is_some(), mine);
        if !mine {
            assert!(models.effective_policy(scope, user.id).is_none());
            for schedule in models.user_schedules(root, user.id) {
                assert!(models
                    .schedule_random_delay(scope, schedule.id, 0)
                    .is_none());
            }
            assert!(models.user_schedules(scope, user.id).is_empty());
            assert!(models.user_devices(scope, user.id).is_empty());
        }
        for item in user.items.keys() {
            assert_eq!(models.item(scope, *item).is_some(), mine);
        }
        for vault in user.vaults.keys() {
            assert_eq!(models.vault(scope, *vault).is_some(), mine);
        }
    }
    for job in models.jobs_started_between(scope, i64::MIN, i64::MAX) {
        assert_eq!(job.tenant, owner);
    }
    for job in models.jobs(root, None, ALL) {
        if job.tenant != owner {
            assert!(
                models.jobs(scope, Some(&job.id), ALL).is_empty(),
                "another tenant's job is no cursor"
            );
        }
    }
}

#[test]
fn scoped_accessors_never_return_another_tenants_rows() {
    for seed in SEEDS {
        let mut world = World::new(seed);
        let models = models_of(&world.events(3_000));
        assert!(world.tenants_ever.len() >= 2);
        for tenant in &world.tenants_ever {
            check_scope(&models, *tenant);
        }
        check_scope(&models, TenantId::new(1, 1));
        // The root scope sees every row.
        assert_eq!(
            models.users(Scope::Root, None, ALL).len(),
            models.state.users().count()
        );
        assert_eq!(
            models.jobs(Scope::Root, None, ALL).len(),
            models.state.jobs().count()
        );
    }
}

#[test]
fn paging_visits_every_row_once_in_order() {
    let mut world = World::new(SEEDS[1]);
    let models = models_of(&world.events(3_000));
    let mut scopes = vec![Scope::Root];
    scopes.extend(world.tenants_ever.iter().map(|t| Scope::Tenant(*t)));
    for scope in scopes {
        let mut users = Vec::new();
        let mut after = None;
        loop {
            let page = models.users(scope, after.as_ref(), 7);
            assert!(page.len() <= 7);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            users.extend(page.iter().map(|u| u.id));
        }
        let all: Vec<UserId> = models
            .users(scope, None, ALL)
            .iter()
            .map(|u| u.id)
            .collect();
        assert_eq!(users, all);
        assert!(users.windows(2).all(|w| w[0] < w[1]));

        let mut jobs = Vec::new();
        let mut after = None;
        loop {
            let page = models.jobs(scope, after.as_ref(), 13);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            jobs.extend(page.iter().map(|j| (j.started_at, j.id)));
        }
        let all: Vec<(i64, JobId)> = models
            .jobs(scope, None, ALL)
            .iter()
            .map(|j| (j.started_at, j.id))
            .collect();
        assert_eq!(jobs, all);
        assert!(
            jobs.windows(2).all(|w| w[0] < w[1]),
            "by start time, then id"
        );
    }
}

fn job_started(job: u64, tenant: TenantRef, user: UserId, started_at: i64) -> Event {
    JobStarted {
        job_id: JobId::new(job, 0),
        tenant,
        user_id: user,
        device_id: DeviceId::new(1, 1),
        item_id: None,
        vault_id: None,
        schedule_id: None,
        classification: Classification::Backup,
        started_at,
        client_version: "1".into(),
    }
    .into()
}

#[test]
fn job_time_ranges_are_half_open_and_per_tenant() {
    let a = TenantId::new(1, 1);
    let b = TenantId::new(2, 2);
    let user = UserId::new(3, 3);
    let (ta, tb) = (TenantRef::Tenant(a), TenantRef::Tenant(b));
    let models = models_of(&[
        job_started(10, ta, user, 100),
        job_started(11, tb, user, 100),
        job_started(12, ta, user, 200),
        job_started(9, ta, user, 200),
        job_started(13, ta, user, 300),
    ]);
    let ids = |jobs: Vec<&Job>| -> Vec<u64> { jobs.iter().map(|j| j.id.timestamp_ms()).collect() };
    let between = |scope, from, to| ids(models.jobs_started_between(scope, from, to).collect());
    assert_eq!(between(Scope::Tenant(a), 100, 300), [10, 9, 12]);
    assert_eq!(between(Scope::Tenant(a), 101, 301), [9, 12, 13]);
    assert_eq!(between(Scope::Tenant(b), 0, 1_000), [11]);
    assert_eq!(between(Scope::Root, 100, 101), [10, 11]);
    assert_eq!(between(Scope::Tenant(a), 300, 300), Vec::<u64>::new());
    assert_eq!(between(Scope::Tenant(a), 300, 100), Vec::<u64>::new());
    let newest_first = ids(models
        .jobs_started_between(Scope::Tenant(a), 0, 1_000)
        .rev()
        .collect());
    assert_eq!(newest_first, [13, 12, 9, 10]);
    let after_nine = models.jobs(Scope::Tenant(a), Some(&JobId::new(9, 0)), 10);
    assert_eq!(ids(after_nine), [12, 13]);
}

#[test]
fn logins_find_users_server_wide_and_admins_per_owner() {
    let a = TenantId::new(1, 1);
    let b = TenantId::new(2, 2);
    let admin_a = AdminId::new(3, 3);
    let admin_b = AdminId::new(4, 4);
    let user = UserId::new(5, 5);
    let admin = |admin_id, tenant| -> Event {
        AdminCreated {
            admin_id,
            tenant,
            spec: testkit::admin_spec("ops"),
            password_hash: "h".into(),
        }
        .into()
    };
    let models = models_of(&[
        TenantCreated {
            tenant_id: a,
            spec: testkit::tenant_spec("a"),
        }
        .into(),
        TenantCreated {
            tenant_id: b,
            spec: testkit::tenant_spec("b"),
        }
        .into(),
        admin(admin_a, TenantRef::Tenant(a)),
        admin(admin_b, TenantRef::Tenant(b)),
        UserCreated {
            user_id: user,
            tenant: TenantRef::Tenant(b),
            spec: testkit::user_spec("alice", None),
            password_hash: "h".into(),
        }
        .into(),
    ]);
    let login = |owner| models.admin_for_login(owner, "ops").map(|a| a.id);
    assert_eq!(login(TenantRef::Tenant(a)), Some(admin_a));
    assert_eq!(login(TenantRef::Tenant(b)), Some(admin_b));
    assert_eq!(login(TenantRef::Root), None);
    assert_eq!(models.user_for_login("alice").map(|u| u.id), Some(user));
    assert_eq!(models.user_for_login("Alice"), None, "case-sensitive");
    assert!(models.user_by_username(Scope::Tenant(a), "alice").is_none());
    assert!(models.user_by_username(Scope::Tenant(b), "alice").is_some());
}

#[test]
fn a_transfer_moves_user_devices_and_schedules_but_not_jobs() {
    let a = TenantId::new(1, 1);
    let b = TenantId::new(2, 2);
    let (ta, tb) = (TenantRef::Tenant(a), TenantRef::Tenant(b));
    let user = UserId::new(3, 3);
    let device = DeviceId::new(4, 4);
    let item = ItemId::new(5, 5);
    let vault = VaultId::new(6, 6);
    let schedule = ScheduleId::new(7, 7);
    let policy_b = PolicyId::new(8, 8);
    let mut events: Vec<Event> = vec![
        TenantCreated {
            tenant_id: a,
            spec: testkit::tenant_spec("a"),
        }
        .into(),
        TenantCreated {
            tenant_id: b,
            spec: testkit::tenant_spec("b"),
        }
        .into(),
        PolicyCreated {
            policy_id: policy_b,
            tenant: tb,
            spec: testkit::policy_spec("b-default", true),
        }
        .into(),
        UserCreated {
            user_id: user,
            tenant: ta,
            spec: testkit::user_spec("alice", None),
            password_hash: "h".into(),
        }
        .into(),
        ItemCreated {
            item_id: item,
            tenant: ta,
            user_id: user,
            spec: testkit::item_spec("docs"),
        }
        .into(),
        VaultCreated {
            vault_id: vault,
            tenant: ta,
            user_id: user,
            spec: testkit::vault_spec("s3"),
        }
        .into(),
        DeviceRegistered {
            device_id: device,
            tenant: ta,
            user_id: user,
            spec: testkit::device_spec("laptop"),
            token_hash: "t".into(),
            at: 1,
        }
        .into(),
        ScheduleCreated {
            schedule_id: schedule,
            tenant: ta,
            user_id: user,
            spec: testkit::schedule_spec("nightly", item, vault),
            at: 1,
        }
        .into(),
        job_started(9, ta, user, 50),
    ];
    events.push(
        UserTransferred {
            user_id: user,
            from: ta,
            to: tb,
            policy: Some(policy_b),
            online_devices: vec![],
            offline_devices: vec![device],
        }
        .into(),
    );
    let models = models_of(&events);
    let (sa, sb) = (Scope::Tenant(a), Scope::Tenant(b));
    assert!(models.user(sa, user).is_none());
    assert!(models.user(sb, user).is_some());
    assert!(models.device(sa, device).is_none());
    assert_eq!(models.user_devices(sb, user).len(), 1);
    assert!(models.schedule(sa, schedule).is_none());
    assert_eq!(models.schedules(sb, None, ALL).len(), 1);
    assert_eq!(models.item(sb, item).map(|(u, _)| u.id), Some(user));
    assert!(models.vault(sa, vault).is_none());
    assert_eq!(
        models.effective_policy(sb, user).map(|p| p.policy_id),
        Some(policy_b)
    );
    assert!(models.effective_policy(sa, user).is_none());
    // History stays where it happened.
    assert_eq!(models.jobs(sa, None, ALL).len(), 1);
    assert!(models.jobs(sb, None, ALL).is_empty());

    let mut removed = events.clone();
    removed.push(
        UserRemoved {
            user_id: user,
            tenant: tb,
        }
        .into(),
    );
    let models = models_of(&removed);
    assert!(models.devices(Scope::Root, None, ALL).is_empty());
    assert!(models.schedules(Scope::Root, None, ALL).is_empty());
    assert_eq!(models.jobs(sa, None, ALL).len(), 1);
    assert!(!models.owners.contains_key(&tb) || models.owners[&tb].users.is_empty());
}

struct Node {
    dir: tempfile::TempDir,
    log: Arc<SledLog>,
}

impl Node {
    fn open(dir: tempfile::TempDir) -> Self {
        let log = Arc::new(SledLog::open(dir.path()).expect("open log"));
        Self { dir, log }
    }

    fn projector(&self) -> Projector<ReadModels> {
        let config = ProjectorConfig {
            batch_size: 64,
            snapshot_every: 250,
        };
        Projector::open(self.log.clone(), self.log.db(), config).expect("open projector")
    }
}

/// Appends `events` in slices while a running projector follows, waiting for each slice to
/// become visible; returns the projector's model at the end and stops it.
async fn run_while_appending(node: &Node, events: &[Event]) -> ReadModels {
    let projector = node.projector();
    let handle = projector.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(projector.run(async {
        stopped.await.ok();
    }));
    for slice in events.chunks(97) {
        let appended = append_all(node.log.as_ref(), slice).await.expect("events");
        handle.wait_for(appended.last).await.expect("applied");
    }
    let models = handle.read().clone();
    stop.send(()).expect("runner alive");
    runner.await.expect("runner task").expect("runner");
    models
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_state_equals_incrementally_built_state() {
    let mut world = World::new(SEEDS[2]);
    let events = world.events(3_000);
    let (first, second) = events.split_at(1_700);

    let node = Node::open(tempfile::tempdir().expect("tempdir"));
    run_while_appending(&node, first).await;

    // Restart in the middle: the snapshot written at shutdown covers everything so far.
    let Node { dir, log } = node;
    drop(log);
    let node = Node::open(dir);
    let mut projector = node.projector();
    assert_eq!(projector.position(), node.log.head());
    assert_eq!(projector.catch_up().await.expect("catch up").applied, 0);
    drop(projector);
    let incremental = run_while_appending(&node, second).await;

    let mut progress = Vec::new();
    let rebuilt = rebuild::<ReadModels>(node.log.clone(), 512, |p| progress.push(p))
        .await
        .expect("rebuild");
    assert_eq!(rebuilt.position, node.log.head());
    assert_eq!(rebuilt.events, node.log.head());
    assert_eq!(progress.last().map(|p| p.events), Some(rebuilt.events));
    assert!(rebuilt.model == incremental, "rebuilt != incremental");
    // The aggregates are exactly what `domain` folds from the same events.
    assert_eq!(rebuilt.model.state, world.state);
}

#[tokio::test]
async fn a_restart_replays_only_the_tail_after_the_snapshot() {
    let mut world = World::new(SEEDS[0]);
    let node = Node::open(tempfile::tempdir().expect("tempdir"));
    append_all(node.log.as_ref(), &world.events(600)).await;
    let mut projector = node.projector();
    let caught = projector.catch_up().await.expect("catch up");
    assert_eq!(caught.applied, node.log.head());
    // The catch-up crossed `snapshot_every` and stored a snapshot at its end.
    drop(projector);

    append_all(node.log.as_ref(), &world.events(40)).await;
    let mut projector = node.projector();
    assert_eq!(projector.position(), caught.position);
    let tail = projector.catch_up().await.expect("catch up");
    assert_eq!(tail.applied, node.log.head() - caught.position);
    assert!(tail.applied >= 40 && tail.applied < 100);
    let rebuilt = rebuild::<ReadModels>(node.log.clone(), 64, |_| {})
        .await
        .expect("rebuild");
    assert!(*projector.handle().read() == rebuilt.model);
    assert_eq!(rebuilt.model.state, world.state);
}

/// A catch-up nothing reads files its jobs at the end when it is at least as long as the
/// model has jobs, from a snapshot as from empty, and one by one when it is shorter: either
/// way the model is the one applying each event on its own gives.
#[tokio::test]
async fn a_catch_up_files_jobs_as_applying_one_event_at_a_time_would() {
    let mut world = World::new(SEEDS[1]);
    let node = Node::open(tempfile::tempdir().expect("tempdir"));
    let mut events = world.events(600);
    append_all(node.log.as_ref(), &events).await;
    let mut projector = node.projector();
    projector.catch_up().await.expect("catch up");
    let jobs = projector.handle().read().state.job_count();
    assert!(jobs > 50, "the history has jobs ({jobs})");
    drop(projector);

    for tail in [jobs / 2, jobs + 50] {
        let more = world.events(tail);
        append_all(node.log.as_ref(), &more).await;
        events.extend(more);
        // Each projector starts from the snapshot its predecessor stored.
        let mut projector = node.projector();
        let before = projector.position();
        let caught = projector.catch_up().await.expect("catch up");
        assert!(before > 0 && caught.applied >= tail as u64);
        let model = projector.handle().read().clone();
        // Stream versions come from the log's envelopes, which `models_of` has not got.
        let expected = ReadModels {
            versions: model.versions.clone(),
            ..models_of(&events)
        };
        assert!(model == expected, "tail of {tail} after {jobs} jobs");
    }
}

#[tokio::test]
async fn a_write_is_visible_once_wait_for_returns() {
    let node = Node::open(tempfile::tempdir().expect("tempdir"));
    let projector = node.projector();
    let handle = projector.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(projector.run(async {
        stopped.await.ok();
    }));
    let user = UserId::new(42, 42);
    let created: Event = UserCreated {
        user_id: user,
        tenant: TenantRef::Root,
        spec: testkit::user_spec("bob", None),
        password_hash: "h".into(),
    }
    .into();
    let appended = append_all(node.log.as_ref(), &[created])
        .await
        .expect("append");
    handle.wait_for(appended.last).await.expect("applied");
    assert_eq!(
        handle.read().user(Scope::Root, user).map(|u| u.id),
        Some(user)
    );
    stop.send(()).expect("runner alive");
    runner.await.expect("task").expect("runner");
}

#[test]
fn a_snapshot_round_trips_the_read_models() {
    let mut world = World::new(SEEDS[0]);
    let models = models_of(&world.events(2_000));
    let bytes = crate::snapshot::encode(ReadModels::SCHEMA, &models).expect("encode");
    let back: ReadModels = crate::snapshot::decode(&bytes, ReadModels::SCHEMA).expect("decode");
    assert!(back == models);
    assert!(crate::snapshot::decode::<ReadModels>(&bytes, ReadModels::SCHEMA + 1).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    #[test]
    fn indexes_match_the_state_for_any_history(seed in proptest::prelude::any::<u64>(), n in 0usize..1_500) {
        let mut world = World::new(seed);
        let models = models_of(&world.events(n));
        let (all, owners) = expected_indexes(&models.state);
        proptest::prop_assert_eq!(&models.all, &all);
        proptest::prop_assert_eq!(&models.owners, &owners);
    }
}
