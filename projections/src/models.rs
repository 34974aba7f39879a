//! [`ReadModels`]: every aggregate the API reads, behind tenant-first indexes and scoped
//! accessors.
//!
//! The effects of events come from `domain`: the aggregates live in a [`State`] evolved by
//! `State::apply`, the same code the writer uses, so projections never re-implement an event.
//! What this module adds is the read side's shape: for every tenant (and for the root scope,
//! which sees all) an ordered index per kind, jobs ordered by (start time, job id), and
//! accessors that take a [`Scope`] and never return another tenant's rows.

use std::collections::BTreeSet;
use std::ops::Bound;

use domain::ids::{AdminId, DeviceId, ItemId, JobId, PolicyId, ScheduleId, TenantId, TenantRef};
use domain::ids::{UserId, VaultId};
use domain::model::{
    Admin, Device, EmailSettings, Job, Policy, ProtectedItem, Schedule, ServerSettings, Tenant,
    User, Vault,
};
use domain::resolution::{self, EffectivePolicy};
use domain::{DecodeError, Event, State};
use eventlog::Envelope;
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use crate::Projection;
use keys::JobKeys;

/// Who is asking. Root sees every tenant's rows (and the top level's own); a tenant sees only
/// rows its tenant owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Root,
    Tenant(TenantId),
}

impl Scope {
    /// Whether rows owned by `owner` are visible in this scope.
    pub fn admits(self, owner: TenantRef) -> bool {
        match self {
            Scope::Root => true,
            Scope::Tenant(id) => owner == TenantRef::Tenant(id),
        }
    }
}

/// Ordered ids of one partition (a tenant's, or everything for the root scope).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Index {
    tenants: BTreeSet<TenantId>,
    admins: BTreeSet<AdminId>,
    policies: BTreeSet<PolicyId>,
    users: BTreeSet<UserId>,
    schedules: BTreeSet<ScheduleId>,
    devices: BTreeSet<DeviceId>,
    /// By (start time in Unix seconds, id), for time-range scans.
    jobs: JobKeys,
}

impl Index {
    fn is_empty(&self) -> bool {
        self.tenants.is_empty()
            && self.admins.is_empty()
            && self.policies.is_empty()
            && self.users.is_empty()
            && self.schedules.is_empty()
            && self.devices.is_empty()
            && self.jobs.is_empty()
    }

    fn insert(&mut self, key: Key, start: i64) {
        match key {
            Key::Tenant(id) => self.tenants.insert(id),
            Key::Admin(id) => self.admins.insert(id),
            Key::Policy(id) => self.policies.insert(id),
            Key::User(id) => self.users.insert(id),
            Key::Schedule(id) => self.schedules.insert(id),
            Key::Device(id) => self.devices.insert(id),
            Key::Job(id) => self.jobs.insert((start, id)),
        };
    }

    fn remove(&mut self, key: Key, start: i64) {
        match key {
            Key::Tenant(id) => self.tenants.remove(&id),
            Key::Admin(id) => self.admins.remove(&id),
            Key::Policy(id) => self.policies.remove(&id),
            Key::User(id) => self.users.remove(&id),
            Key::Schedule(id) => self.schedules.remove(&id),
            Key::Device(id) => self.devices.remove(&id),
            Key::Job(id) => self.jobs.remove(&(start, id)),
        };
    }
}

/// An indexed row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Tenant(TenantId),
    Admin(AdminId),
    Policy(PolicyId),
    User(UserId),
    Schedule(ScheduleId),
    Device(DeviceId),
    Job(JobId),
}

/// Where a row sits in the indexes: its owner, and its start time for jobs (0 otherwise).
type Slot = (TenantRef, i64);

/// The rows an event may move between partitions, create or remove.
enum Touched {
    None,
    One(Key),
    /// Cascades: a removed or transferred user takes its devices and schedules along, a
    /// removed tenant its admins and policies.
    Many(Vec<Key>),
}

/// Every read model, in memory. Built by the [`crate::Projector`] and snapshotted whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadModels {
    state: State,
    /// The root scope's view: every row of every owner.
    all: Index,
    /// One partition per owner (`root` owns top-level admins, for instance).
    owners: HashMap<TenantRef, Index>,
    /// Stream versions of the aggregates the API edits with `If-Match`, from the envelopes.
    versions: HashMap<String, u64>,
    job_indexes: search::JobIndexes,
    reports: reports::Reports,
    /// The searchable text of users, for `?q=`.
    user_search: users::UserSearch,
    /// Set during a catch-up nothing reads (see [`Projection::begin_catch_up`]): job events
    /// then only evolve the state, and every job is filed once at the end.
    #[serde(skip)]
    file_jobs_at_end: bool,
}

/// A log record as the read models apply it: the domain event, and the stream version of
/// an editable aggregate (see [`ReadModels::version`]).
#[derive(Debug)]
pub struct Recorded {
    event: Event,
    version: Option<(String, u64)>,
}

impl Projection for ReadModels {
    const NAME: &'static str = "read_models";
    // 3: stream versions for If-Match. 4: the domain state's dispatched runs. 5: flat
    // per-subject day counts in the reports. 6: the user search text.
    const SCHEMA: u32 = 6;

    type Event = Recorded;
    type Error = DecodeError;

    fn decode(envelope: &Envelope<&str>, payload: &[u8]) -> Result<Recorded, DecodeError> {
        // Only the editable aggregates' versions are kept: job and device streams are many
        // and never edited with `If-Match`.
        const EDITABLE: [&str; 6] = ["ten_", "adm_", "pol_", "usr_", "sch_", "server"];
        let event = domain::codec::decode(envelope.type_code, envelope.schema_version, payload)?;
        let version = EDITABLE
            .iter()
            .any(|p| envelope.stream.starts_with(p))
            .then(|| (envelope.stream.to_owned(), envelope.stream_version));
        Ok(Recorded { event, version })
    }

    fn apply(&mut self, recorded: Recorded) -> Result<(), DecodeError> {
        self.apply_event(&recorded.event);
        if let Some((stream, version)) = recorded.version {
            self.versions.insert(stream, version);
        }
        Ok(())
    }

    /// Most of a long log is job events, and filing a job as it starts and again as it ends
    /// (looking it up twice per event, moving it in several indexes) was most of a replay's
    /// cost. Filing every job once at the end costs one filing per job, in creation order
    /// (mostly appends), so it pays once the catch-up has as many events as there are jobs.
    fn begin_catch_up(&mut self, events: u64) {
        self.file_jobs_at_end = events >= self.state.job_count() as u64;
    }

    fn end_catch_up(&mut self) {
        if std::mem::take(&mut self.file_jobs_at_end) {
            self.file_all_jobs();
        }
    }
}

impl ReadModels {
    /// Applies one event: `domain` evolves the aggregates, then every row the event may have
    /// created, moved or removed is re-indexed from what the state now says.
    pub fn apply_event(&mut self, event: &Event) {
        if let Some(job) = search::job_touched(event) {
            self.apply_job_event(job, event);
            return;
        }
        match self.touched(event) {
            Touched::None => self.state.apply(event),
            Touched::One(key) => {
                let before = self.locate(key);
                self.state.apply(event);
                self.reindex(key, before);
            }
            Touched::Many(keys) => {
                let before: Vec<Option<Slot>> = keys.iter().map(|k| self.locate(*k)).collect();
                self.state.apply(event);
                for (key, before) in keys.into_iter().zip(before) {
                    self.reindex(key, before);
                }
            }
        }
    }

    /// Most of the log: a job event touches one job, whose facts before and after the event
    /// say where it moves in every index (start time, search, reports), so the job is looked
    /// up twice and re-filed only if something indexed changed.
    fn apply_job_event(&mut self, id: JobId, event: &Event) {
        if self.file_jobs_at_end {
            self.state.apply(event);
            return;
        }
        let before = self.state.job(id).map(search::JobFacts::of);
        self.state.apply(event);
        let after = self.state.job(id).map(search::JobFacts::of);
        if before == after {
            return;
        }
        let slot = |f: &search::JobFacts| (f.tenant, f.start);
        self.move_row(
            Key::Job(id),
            before.as_ref().map(slot),
            after.as_ref().map(slot),
        );
        self.job_indexes.refile(before.as_ref(), after.as_ref());
        self.reports.refile(before.as_ref(), after.as_ref());
    }

    /// Files every job of the state afresh in the start-time index, the job search indexes
    /// and the reports, as filing each on its own would. The search indexes are filed on a
    /// second thread: this runs at the end of a catch-up, when the reader that kept the other
    /// core busy is done.
    fn file_all_jobs(&mut self) {
        let ReadModels {
            state,
            all,
            owners,
            job_indexes,
            reports,
            ..
        } = self;
        let jobs = || state.jobs().map(search::JobFacts::of);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                *job_indexes = search::JobIndexes::default();
                for facts in jobs() {
                    job_indexes.refile(None, Some(&facts));
                }
            });
            all.jobs = JobKeys::default();
            for index in owners.values_mut() {
                index.jobs = JobKeys::default();
            }
            owners.retain(|_, index| !index.is_empty());
            *reports = reports::Reports::default();
            for facts in jobs() {
                let row = (facts.start, facts.id);
                all.jobs.insert(row);
                owners.entry(facts.tenant).or_default().jobs.insert(row);
                reports.refile(None, Some(&facts));
            }
        });
    }

    fn touched(&self, event: &Event) -> Touched {
        use Event as E;
        let one = Touched::One;
        match event {
            E::ServerStarted(_)
            | E::ServerSettingsUpdated(_)
            | E::TenantEmailUpdated(_)
            | E::AdminLoggedIn(_)
            | E::AdminLoginFailed(_)
            | E::UserLoggedIn(_)
            | E::UserLoginFailed(_) => Touched::None,
            E::TenantCreated(e) => one(Key::Tenant(e.tenant_id)),
            E::TenantUpdated(e) => one(Key::Tenant(e.tenant_id)),
            E::TenantRemoved(e) => {
                let mut keys = vec![Key::Tenant(e.tenant_id)];
                if let Some(index) = self.owners.get(&TenantRef::Tenant(e.tenant_id)) {
                    keys.extend(index.admins.iter().map(|id| Key::Admin(*id)));
                    keys.extend(index.policies.iter().map(|id| Key::Policy(*id)));
                }
                Touched::Many(keys)
            }
            E::AdminCreated(e) => one(Key::Admin(e.admin_id)),
            E::AdminUpdated(e) => one(Key::Admin(e.admin_id)),
            E::AdminPasswordChanged(e) => one(Key::Admin(e.admin_id)),
            E::AdminRemoved(e) => one(Key::Admin(e.admin_id)),
            E::PolicyCreated(e) => one(Key::Policy(e.policy_id)),
            E::PolicyUpdated(e) => one(Key::Policy(e.policy_id)),
            E::PolicyRemoved(e) => one(Key::Policy(e.policy_id)),
            E::UserRemoved(e) => self.user_with_belongings(e.user_id),
            E::UserTransferred(e) => self.user_with_belongings(e.user_id),
            E::UserCreated(e) => one(Key::User(e.user_id)),
            E::UserUpdated(e) => one(Key::User(e.user_id)),
            E::UserPasswordChanged(e) => one(Key::User(e.user_id)),
            // Items and vaults live inside their user and are found through it.
            E::ItemCreated(_)
            | E::ItemUpdated(_)
            | E::ItemRemoved(_)
            | E::ItemDuplicated(_)
            | E::VaultCreated(_)
            | E::VaultUpdated(_)
            | E::VaultRemoved(_)
            | E::VaultAddressReplaced(_) => Touched::None,
            E::ScheduleCreated(e) => one(Key::Schedule(e.schedule_id)),
            E::ScheduleUpdated(e) => one(Key::Schedule(e.schedule_id)),
            E::ScheduleRemoved(e) => one(Key::Schedule(e.schedule_id)),
            E::DeviceRegistered(e) => one(Key::Device(e.device_id)),
            E::DeviceConnected(e) => one(Key::Device(e.device_id)),
            E::DeviceDisconnected(e) => one(Key::Device(e.device_id)),
            E::DeviceRemoved(e) => one(Key::Device(e.device_id)),
            // Jobs are re-filed by `apply_job_event`; progress and log lines change nothing
            // indexed.
            E::JobStarted(_)
            | E::JobMissed(_)
            | E::JobSkipped(_)
            | E::JobProgressed(_)
            | E::JobLogged(_)
            | E::JobCompleted(_)
            | E::JobAbandoned(_)
            | E::JobRevived(_) => Touched::None,
            // A dispatched run is not a job until its device reports it started.
            E::RunDispatched(_) => Touched::None,
            // Webhook endpoints are read from the webhooks crate's registry, not indexed here.
            E::WebhookCreated(_)
            | E::WebhookUpdated(_)
            | E::WebhookRemoved(_)
            | E::WebhookSecretRotated(_)
            | E::WebhookDisabled(_) => Touched::None,
        }
    }

    fn user_with_belongings(&self, user: UserId) -> Touched {
        let mut keys = vec![Key::User(user)];
        keys.extend(self.state.user_devices(user).map(|d| Key::Device(d.id)));
        keys.extend(self.state.user_schedules(user).map(|s| Key::Schedule(s.id)));
        Touched::Many(keys)
    }

    fn locate(&self, key: Key) -> Option<Slot> {
        let s = &self.state;
        match key {
            Key::Tenant(id) => s.tenant(id).map(|_| (TenantRef::Tenant(id), 0)),
            Key::Admin(id) => s.admin(id).map(|a| (a.tenant, 0)),
            Key::Policy(id) => s.policy(id).map(|p| (p.tenant, 0)),
            Key::User(id) => s.user(id).map(|u| (u.tenant, 0)),
            Key::Schedule(id) => s.schedule(id).map(|x| (x.tenant, 0)),
            Key::Device(id) => s.device(id).map(|d| (d.tenant, 0)),
            Key::Job(id) => s.job(id).map(|j| (j.tenant, j.started_at)),
        }
    }

    fn reindex(&mut self, key: Key, before: Option<Slot>) {
        let after = self.locate(key);
        if let Key::User(id) = key {
            // Any user event may change the searchable fields, not only its partition.
            let owner = before.map(|(owner, _)| owner);
            self.user_search.refile(id, owner, self.state.user(id));
        }
        self.move_row(key, before, after);
    }

    fn move_row(&mut self, key: Key, before: Option<Slot>, after: Option<Slot>) {
        if before == after {
            return;
        }
        if let Some((owner, start)) = before {
            self.all.remove(key, start);
            if let Some(index) = self.owners.get_mut(&owner) {
                index.remove(key, start);
                if index.is_empty() {
                    self.owners.remove(&owner);
                }
            }
        }
        if let Some((owner, start)) = after {
            self.all.insert(key, start);
            self.owners.entry(owner).or_default().insert(key, start);
        }
    }

    fn index(&self, scope: Scope) -> Option<&Index> {
        match scope {
            Scope::Root => Some(&self.all),
            Scope::Tenant(id) => self.owners.get(&TenantRef::Tenant(id)),
        }
    }

    /// The version of an aggregate's stream (`ten_…`, `adm_…`, `pol_…`, `usr_…` with its items
    /// and vaults, `sch_…`, `server`): the number of events in it, 0 if none. A resource's `version`
    /// in the API, compared with `If-Match`.
    pub fn version(&self, stream: &str) -> u64 {
        self.versions.get(stream).copied().unwrap_or(0)
    }

    /// The domain state these read models are built on, as of the position they reflect:
    /// the command writer starts from a copy taken when the models have caught up.
    pub fn state(&self) -> &State {
        &self.state
    }

    // --- server-wide -------------------------------------------------------------------

    /// Server-wide settings. Not a tenant's row: every scope may read them (random delay and
    /// login protection apply to every tenant); the API decides who may see them.
    pub fn server_settings(&self) -> &ServerSettings {
        self.state.server_settings()
    }

    /// The SMTP settings of `owner` (the top level's for root), if visible in `scope`.
    pub fn email_settings(&self, scope: Scope, owner: TenantRef) -> Option<&EmailSettings> {
        if !scope.admits(owner) {
            return None;
        }
        match owner {
            TenantRef::Root => Some(self.state.root_email()),
            TenantRef::Tenant(id) => self.state.tenant(id).map(|t| &t.email),
        }
    }

    // --- tenants -----------------------------------------------------------------------

    pub fn tenant(&self, scope: Scope, id: TenantId) -> Option<&Tenant> {
        self.state
            .tenant(id)
            .filter(|_| scope.admits(TenantRef::Tenant(id)))
    }

    /// Tenants by id after `after`; a tenant scope sees only itself.
    pub fn tenants(&self, scope: Scope, after: Option<&TenantId>, limit: usize) -> Vec<&Tenant> {
        page(self.index(scope).map(|i| &i.tenants), after, limit, |id| {
            self.state.tenant(id)
        })
    }

    pub fn tenant_by_slug(&self, scope: Scope, slug: &str) -> Option<&Tenant> {
        self.state
            .tenant_by_slug(slug)
            .and_then(|id| self.tenant(scope, id))
    }

    // --- admins ------------------------------------------------------------------------

    pub fn admin(&self, scope: Scope, id: AdminId) -> Option<&Admin> {
        self.state.admin(id).filter(|a| scope.admits(a.tenant))
    }

    pub fn admins(&self, scope: Scope, after: Option<&AdminId>, limit: usize) -> Vec<&Admin> {
        page(self.index(scope).map(|i| &i.admins), after, limit, |id| {
            self.state.admin(id)
        })
    }

    /// The admin a login names: admin usernames are unique per owner (`root` or a tenant,
    /// chosen by the login's host), so the owner is part of the lookup.
    pub fn admin_for_login(&self, owner: TenantRef, username: &str) -> Option<&Admin> {
        self.state
            .admin_by_name(owner, username)
            .and_then(|id| self.state.admin(id))
    }

    // --- policies ----------------------------------------------------------------------

    pub fn policy(&self, scope: Scope, id: PolicyId) -> Option<&Policy> {
        self.state.policy(id).filter(|p| scope.admits(p.tenant))
    }

    pub fn policies(&self, scope: Scope, after: Option<&PolicyId>, limit: usize) -> Vec<&Policy> {
        page(self.index(scope).map(|i| &i.policies), after, limit, |id| {
            self.state.policy(id)
        })
    }

    /// The default policy for new users of `owner`, if visible in `scope`.
    pub fn default_policy(&self, scope: Scope, owner: TenantRef) -> Option<&Policy> {
        self.state
            .default_policy(owner)
            .and_then(|id| self.policy(scope, id))
    }

    /// The read-only policy a user is held to, resolved by `domain`; `None` for a user
    /// without a policy or not visible in `scope`.
    pub fn effective_policy(&self, scope: Scope, user: UserId) -> Option<EffectivePolicy> {
        self.user(scope, user)?;
        resolution::effective_policy(&self.state, user)
    }

    // --- users, protected items, vaults -------------------------------------------------

    pub fn user(&self, scope: Scope, id: UserId) -> Option<&User> {
        self.state.user(id).filter(|u| scope.admits(u.tenant))
    }

    pub fn users(&self, scope: Scope, after: Option<&UserId>, limit: usize) -> Vec<&User> {
        page(self.index(scope).map(|i| &i.users), after, limit, |id| {
            self.state.user(id)
        })
    }

    /// Users of `scope` after `after`, in id order, whose username, account name or an email
    /// may contain `term`, ASCII case ignored: every user that does, and maybe a few more
    /// (a term spanning two fields), so decide each row with the real predicate.
    pub fn user_candidates<'a>(
        &'a self,
        scope: Scope,
        term: &str,
        after: Option<UserId>,
    ) -> impl Iterator<Item = &'a User> + 'a {
        self.user_search
            .candidates(scope, term, after)
            .filter_map(|id| self.state.user(id))
    }

    /// The user a login names. User names are unique server-wide, so a login (which has no
    /// scope yet) finds the user, and with it the tenant that becomes the session's scope.
    pub fn user_for_login(&self, username: &str) -> Option<&User> {
        self.state
            .user_by_name(username)
            .and_then(|id| self.state.user(id))
    }

    /// A user by name, if visible in `scope`.
    pub fn user_by_username(&self, scope: Scope, username: &str) -> Option<&User> {
        self.user_for_login(username)
            .filter(|u| scope.admits(u.tenant))
    }

    /// A protected item with the user owning it.
    pub fn item(&self, scope: Scope, id: ItemId) -> Option<(&User, &ProtectedItem)> {
        let user = self.user(scope, self.state.item_owner(id)?)?;
        user.items.get(&id).map(|item| (user, item))
    }

    /// A storage vault with the user owning it.
    pub fn vault(&self, scope: Scope, id: VaultId) -> Option<(&User, &Vault)> {
        let user = self.user(scope, self.state.vault_owner(id)?)?;
        user.vaults.get(&id).map(|vault| (user, vault))
    }

    // --- schedules ---------------------------------------------------------------------

    pub fn schedule(&self, scope: Scope, id: ScheduleId) -> Option<&Schedule> {
        self.state.schedule(id).filter(|s| scope.admits(s.tenant))
    }

    pub fn schedules(
        &self,
        scope: Scope,
        after: Option<&ScheduleId>,
        limit: usize,
    ) -> Vec<&Schedule> {
        page(
            self.index(scope).map(|i| &i.schedules),
            after,
            limit,
            |id| self.state.schedule(id),
        )
    }

    /// The random delay that applies to runs of one trigger of a schedule (server-wide, else
    /// the owner's policy, else the trigger's own), resolved by `domain`.
    pub fn schedule_random_delay(
        &self,
        scope: Scope,
        schedule: ScheduleId,
        trigger: usize,
    ) -> Option<u32> {
        self.schedule(scope, schedule)?;
        resolution::schedule_random_delay(&self.state, schedule, trigger)
    }

    /// A user's schedules by id; empty if the user is not visible in `scope`.
    pub fn user_schedules(&self, scope: Scope, user: UserId) -> Vec<&Schedule> {
        if self.user(scope, user).is_none() {
            return Vec::new();
        }
        let mut schedules: Vec<&Schedule> = self.state.user_schedules(user).collect();
        schedules.sort_unstable_by_key(|s| s.id);
        schedules
    }

    // --- devices -----------------------------------------------------------------------

    pub fn device(&self, scope: Scope, id: DeviceId) -> Option<&Device> {
        self.state.device(id).filter(|d| scope.admits(d.tenant))
    }

    pub fn devices(&self, scope: Scope, after: Option<&DeviceId>, limit: usize) -> Vec<&Device> {
        page(self.index(scope).map(|i| &i.devices), after, limit, |id| {
            self.state.device(id)
        })
    }

    /// A user's devices by id; empty if the user is not visible in `scope`.
    pub fn user_devices(&self, scope: Scope, user: UserId) -> Vec<&Device> {
        if self.user(scope, user).is_none() {
            return Vec::new();
        }
        let mut devices: Vec<&Device> = self.state.user_devices(user).collect();
        devices.sort_unstable_by_key(|d| d.id);
        devices
    }

    // --- jobs --------------------------------------------------------------------------

    pub fn job(&self, scope: Scope, id: JobId) -> Option<&Job> {
        self.state.job(id).filter(|j| scope.admits(j.tenant))
    }

    /// Jobs in (start time, id) order after the job `after`. A cursor naming a job not
    /// visible in `scope` yields nothing rather than restarting from the beginning.
    pub fn jobs(&self, scope: Scope, after: Option<&JobId>, limit: usize) -> Vec<&Job> {
        let Some(index) = self.index(scope) else {
            return Vec::new();
        };
        let from = match after {
            None => Bound::Unbounded,
            Some(id) => match self.job(scope, *id) {
                Some(job) => Bound::Excluded((job.started_at, *id)),
                None => return Vec::new(),
            },
        };
        index
            .jobs
            .range((from, Bound::Unbounded))
            .filter_map(|(_, id)| self.state.job(*id))
            .take(limit)
            .collect()
    }

    /// Jobs that started in `[from, to)` (Unix seconds), oldest first (`.rev()` for newest
    /// first). Touches only the scope's jobs in that time range.
    pub fn jobs_started_between(
        &self,
        scope: Scope,
        from: i64,
        to: i64,
    ) -> impl DoubleEndedIterator<Item = &Job> + '_ {
        let lowest = JobId::new(0, 0);
        let window = (
            Bound::Included((from, lowest)),
            Bound::Excluded((to, lowest)),
        );
        self.index(scope)
            .map(|index| index.jobs.range(window))
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| self.state.job(*id))
    }
}

/// Up to `limit` rows whose ids follow `after` in `ids`.
fn page<'a, K: Ord + Copy, T: 'a>(
    ids: Option<&BTreeSet<K>>,
    after: Option<&K>,
    limit: usize,
    get: impl Fn(K) -> Option<&'a T>,
) -> Vec<&'a T> {
    let Some(ids) = ids else {
        return Vec::new();
    };
    let from = after.map_or(Bound::Unbounded, |id| Bound::Excluded(*id));
    ids.range((from, Bound::Unbounded))
        .filter_map(|id| get(*id))
        .take(limit)
        .collect()
}

mod keys;
pub(crate) mod reports;
pub(crate) mod search;
#[cfg(test)]
mod tests;
mod users;
