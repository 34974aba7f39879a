//! The world `decide` judges commands against: every live aggregate by id, plus the indexes
//! that cross-aggregate rules need (server-wide unique user names, unique tenant slugs, admin
//! names unique per tenant, one default policy per tenant, who owns an item or vault).
//!
//! The writer keeps one `State` in memory and rebuilds it at start by applying the log in
//! order; `apply` must therefore be total and deterministic. Indexes are private so they
//! cannot drift from the maps they index.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::events::Event;
use crate::ids::{
    AdminId, DeviceId, ItemId, JobId, PolicyId, ScheduleId, TenantId, TenantRef, UserId, VaultId,
    WebhookId,
};
use crate::model::{
    Admin, Device, EmailSettings, Job, Policy, Schedule, ServerSettings, Tenant, User, Webhook,
};

/// Failed logins counted for one name, for lockout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailures {
    /// Failures since the last success, lockout or quiet period.
    pub count: u32,
    pub last_failure_at: i64,
    /// Logins are refused until this Unix time.
    pub locked_until: Option<i64>,
}

/// One vault found by [`State::vault_address_matches`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultMatch {
    pub vault_id: VaultId,
    pub user_id: UserId,
    pub tenant: TenantRef,
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    server: ServerSettings,
    root_email: EmailSettings,
    tenants: HashMap<TenantId, Tenant>,
    removed_tenants: HashSet<TenantId>,
    admins: HashMap<AdminId, Admin>,
    policies: HashMap<PolicyId, Policy>,
    users: HashMap<UserId, User>,
    schedules: HashMap<ScheduleId, Schedule>,
    devices: HashMap<DeviceId, Device>,
    jobs: Jobs,
    webhooks: HashMap<WebhookId, Webhook>,

    tenant_slugs: HashMap<String, TenantId>,
    admin_names: HashMap<(TenantRef, String), AdminId>,
    user_names: HashMap<String, UserId>,
    default_policies: HashMap<TenantRef, PolicyId>,
    item_owners: HashMap<ItemId, UserId>,
    vault_owners: HashMap<VaultId, UserId>,
    user_devices: HashMap<UserId, BTreeSet<DeviceId>>,
    user_schedules: HashMap<UserId, BTreeSet<ScheduleId>>,
    recorded_runs: HashSet<(ScheduleId, i64)>,
    dispatched_runs: HashMap<(ScheduleId, i64), JobId>,
    /// The latest due instant of each schedule's runs that were dispatched, missed or skipped.
    last_run_due: HashMap<ScheduleId, i64>,
    running_by_schedule: HashMap<ScheduleId, BTreeSet<JobId>>,
    admin_login_failures: HashMap<(TenantRef, String), LoginFailures>,
    user_login_failures: HashMap<String, LoginFailures>,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// The state of an empty log.
    pub fn new() -> Self {
        State {
            server: ServerSettings::initial(),
            root_email: EmailSettings::disabled(),
            tenants: HashMap::new(),
            removed_tenants: HashSet::new(),
            admins: HashMap::new(),
            policies: HashMap::new(),
            users: HashMap::new(),
            schedules: HashMap::new(),
            devices: HashMap::new(),
            jobs: Jobs::default(),
            webhooks: HashMap::new(),
            tenant_slugs: HashMap::new(),
            admin_names: HashMap::new(),
            user_names: HashMap::new(),
            default_policies: HashMap::new(),
            item_owners: HashMap::new(),
            vault_owners: HashMap::new(),
            user_devices: HashMap::new(),
            user_schedules: HashMap::new(),
            recorded_runs: HashSet::new(),
            dispatched_runs: HashMap::new(),
            last_run_due: HashMap::new(),
            running_by_schedule: HashMap::new(),
            admin_login_failures: HashMap::new(),
            user_login_failures: HashMap::new(),
        }
    }

    /// Builds the state of a log from its events, in order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = State::new();
        for event in events {
            state.apply(event);
        }
        state
    }

    // --- read access ---------------------------------------------------------------------

    pub fn server_settings(&self) -> &ServerSettings {
        &self.server
    }

    pub fn webhook(&self, id: WebhookId) -> Option<&Webhook> {
        self.webhooks.get(&id)
    }

    /// Every live webhook endpoint, in no particular order.
    pub fn webhooks(&self) -> impl Iterator<Item = &Webhook> {
        self.webhooks.values()
    }

    pub fn root_email(&self) -> &EmailSettings {
        &self.root_email
    }

    pub fn tenant(&self, id: TenantId) -> Option<&Tenant> {
        self.tenants.get(&id)
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.values()
    }

    pub fn tenant_removed(&self, id: TenantId) -> bool {
        self.removed_tenants.contains(&id)
    }

    pub fn tenant_by_slug(&self, slug: &str) -> Option<TenantId> {
        self.tenant_slugs.get(slug).copied()
    }

    pub fn admin(&self, id: AdminId) -> Option<&Admin> {
        self.admins.get(&id)
    }

    pub fn admins(&self) -> impl Iterator<Item = &Admin> {
        self.admins.values()
    }

    pub fn admin_by_name(&self, tenant: TenantRef, username: &str) -> Option<AdminId> {
        self.admin_names
            .get(&(tenant, username.to_owned()))
            .copied()
    }

    pub fn policy(&self, id: PolicyId) -> Option<&Policy> {
        self.policies.get(&id)
    }

    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }

    pub fn default_policy(&self, tenant: TenantRef) -> Option<PolicyId> {
        self.default_policies.get(&tenant).copied()
    }

    pub fn user(&self, id: UserId) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn user_by_name(&self, username: &str) -> Option<UserId> {
        self.user_names.get(username).copied()
    }

    /// The user owning a protected item.
    pub fn item_owner(&self, id: ItemId) -> Option<UserId> {
        self.item_owners.get(&id).copied()
    }

    /// The user owning a storage vault.
    pub fn vault_owner(&self, id: VaultId) -> Option<UserId> {
        self.vault_owners.get(&id).copied()
    }

    pub fn schedule(&self, id: ScheduleId) -> Option<&Schedule> {
        self.schedules.get(&id)
    }

    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }

    pub fn user_schedules(&self, user: UserId) -> impl Iterator<Item = &Schedule> {
        self.user_schedules
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.schedules.get(id))
    }

    pub fn device(&self, id: DeviceId) -> Option<&Device> {
        self.devices.get(&id)
    }

    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    pub fn user_devices(&self, user: UserId) -> impl Iterator<Item = &Device> {
        self.user_devices
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| self.devices.get(id))
    }

    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// Every job, in the order they were created.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.jobs.iter()
    }

    pub fn job_count(&self) -> usize {
        self.jobs.jobs.len()
    }

    /// Whether a missed or skipped run was already recorded for this schedule and due time.
    pub fn run_recorded(&self, schedule: ScheduleId, due_at: i64) -> bool {
        self.recorded_runs.contains(&(schedule, due_at))
    }

    /// The job id under which the run of `schedule` due at `due_at` was sent to a device.
    pub fn run_dispatched(&self, schedule: ScheduleId, due_at: i64) -> Option<JobId> {
        self.dispatched_runs.get(&(schedule, due_at)).copied()
    }

    /// The latest due instant among the schedule's dispatched, missed and skipped runs.
    pub fn last_run_due(&self, schedule: ScheduleId) -> Option<i64> {
        self.last_run_due.get(&schedule).copied()
    }

    fn note_run(&mut self, schedule: ScheduleId, due_at: i64) {
        let last = self.last_run_due.entry(schedule).or_insert(due_at);
        *last = (*last).max(due_at);
    }

    /// Running (not abandoned) jobs started for a schedule.
    pub fn running_jobs_of_schedule(&self, schedule: ScheduleId) -> impl Iterator<Item = &Job> {
        self.running_by_schedule
            .get(&schedule)
            .into_iter()
            .flatten()
            .filter_map(|id| self.jobs.get(*id))
    }

    /// Vaults whose address contains `find`, among those owned under `within` (`None`: all
    /// tenants), ordered by vault id. This is the dry run of a bulk address replacement.
    pub fn vault_address_matches(&self, within: Option<TenantRef>, find: &str) -> Vec<VaultMatch> {
        if find.is_empty() {
            return Vec::new();
        }
        let mut matches: Vec<VaultMatch> = self
            .users
            .values()
            .filter(|u| within.is_none_or(|t| t == u.tenant))
            .flat_map(|u| {
                u.vaults
                    .values()
                    .filter(|v| v.spec.address.contains(find))
                    .map(|v| VaultMatch {
                        vault_id: v.id,
                        user_id: u.id,
                        tenant: u.tenant,
                        address: v.spec.address.clone(),
                    })
            })
            .collect();
        matches.sort_by_key(|m| m.vault_id);
        matches
    }

    pub fn admin_login_failures(
        &self,
        tenant: TenantRef,
        username: &str,
    ) -> Option<&LoginFailures> {
        self.admin_login_failures
            .get(&(tenant, username.to_owned()))
    }

    pub fn user_login_failures(&self, username: &str) -> Option<&LoginFailures> {
        self.user_login_failures.get(username)
    }

    // --- evolution -----------------------------------------------------------------------

    /// Applies one event. Events are facts, so an event that does not fit (which `decide`
    /// never produces) changes nothing rather than failing.
    pub fn apply(&mut self, event: &Event) {
        use Event as E;
        match event {
            E::ServerStarted(_) => {
                for device in self.devices.values_mut() {
                    if device.online() {
                        *device = Device::evolve(Some(device.clone()), event)
                            .expect("a start never removes a device");
                    }
                }
            }
            E::ServerSettingsUpdated(_) => {
                self.server = self.server.clone().evolve(event);
            }
            E::TenantEmailUpdated(e) if e.tenant == TenantRef::Root => {
                self.root_email = e.settings.clone();
            }
            E::TenantCreated(e) => self.evolve_tenant(e.tenant_id, event),
            E::TenantUpdated(e) => self.evolve_tenant(e.tenant_id, event),
            E::TenantRemoved(e) => self.evolve_tenant(e.tenant_id, event),
            E::TenantEmailUpdated(e) => {
                if let TenantRef::Tenant(id) = e.tenant {
                    self.evolve_tenant(id, event);
                }
            }
            E::AdminCreated(e) => self.evolve_admin(e.admin_id, event),
            E::AdminUpdated(e) => self.evolve_admin(e.admin_id, event),
            E::AdminPasswordChanged(e) => self.evolve_admin(e.admin_id, event),
            E::AdminRemoved(e) => self.evolve_admin(e.admin_id, event),
            E::AdminLoggedIn(e) => {
                if let Some(admin) = self.admins.get(&e.admin_id) {
                    let key = (admin.tenant, admin.spec.username.clone());
                    self.admin_login_failures.remove(&key);
                }
            }
            E::AdminLoginFailed(e) => {
                let protection = self.server.login_protection.clone();
                let key = (e.tenant, e.username.clone());
                let entry = self.admin_login_failures.entry(key);
                count_failure(
                    entry.or_insert_with(|| fresh_failures(e.at)),
                    e.at,
                    &protection,
                );
            }
            E::PolicyCreated(e) => self.evolve_policy(e.policy_id, event),
            E::PolicyUpdated(e) => self.evolve_policy(e.policy_id, event),
            E::PolicyRemoved(e) => self.evolve_policy(e.policy_id, event),
            E::UserCreated(e) => self.evolve_user(e.user_id, event),
            E::UserUpdated(e) => self.evolve_user(e.user_id, event),
            E::UserPasswordChanged(e) => self.evolve_user(e.user_id, event),
            E::UserRemoved(e) => self.evolve_user(e.user_id, event),
            E::UserTransferred(e) => self.evolve_user(e.user_id, event),
            E::ItemCreated(e) => self.evolve_user(e.user_id, event),
            E::ItemUpdated(e) => self.evolve_user(e.user_id, event),
            E::ItemRemoved(e) => self.evolve_user(e.user_id, event),
            E::ItemDuplicated(e) => self.evolve_user(e.user_id, event),
            E::VaultCreated(e) => self.evolve_user(e.user_id, event),
            E::VaultUpdated(e) => self.evolve_user(e.user_id, event),
            E::VaultRemoved(e) => self.evolve_user(e.user_id, event),
            E::VaultAddressReplaced(e) => self.evolve_user(e.user_id, event),
            E::UserLoggedIn(e) => {
                if let Some(user) = self.users.get(&e.user_id) {
                    self.user_login_failures.remove(&user.spec.username);
                }
            }
            E::UserLoginFailed(e) => {
                let protection = self.server.login_protection.clone();
                let entry = self.user_login_failures.entry(e.username.clone());
                count_failure(
                    entry.or_insert_with(|| fresh_failures(e.at)),
                    e.at,
                    &protection,
                );
            }
            E::ScheduleCreated(e) => self.evolve_schedule(e.schedule_id, event),
            E::ScheduleUpdated(e) => self.evolve_schedule(e.schedule_id, event),
            E::ScheduleRemoved(e) => self.evolve_schedule(e.schedule_id, event),
            E::DeviceRegistered(e) => self.evolve_device(e.device_id, event),
            E::DeviceConnected(e) => self.evolve_device(e.device_id, event),
            E::DeviceDisconnected(e) => self.evolve_device(e.device_id, event),
            E::DeviceRemoved(e) => self.evolve_device(e.device_id, event),
            E::JobStarted(e) => self.evolve_job(e.job_id, event),
            E::JobProgressed(e) => self.evolve_job(e.job_id, event),
            E::JobLogged(e) => self.evolve_job(e.job_id, event),
            E::JobCompleted(e) => self.evolve_job(e.job_id, event),
            E::JobAbandoned(e) => self.evolve_job(e.job_id, event),
            E::JobRevived(e) => self.evolve_job(e.job_id, event),
            E::JobMissed(e) => {
                self.recorded_runs.insert((e.schedule_id, e.due_at));
                self.note_run(e.schedule_id, e.due_at);
                self.evolve_job(e.job_id, event);
            }
            E::JobSkipped(e) => {
                self.recorded_runs.insert((e.schedule_id, e.due_at));
                self.note_run(e.schedule_id, e.due_at);
                self.evolve_job(e.job_id, event);
            }
            E::RunDispatched(e) => {
                self.dispatched_runs
                    .insert((e.schedule_id, e.due_at), e.job_id);
                self.note_run(e.schedule_id, e.due_at);
            }
            E::WebhookCreated(e) => self.evolve_webhook(e.webhook_id, event),
            E::WebhookUpdated(e) => self.evolve_webhook(e.webhook_id, event),
            E::WebhookRemoved(e) => self.evolve_webhook(e.webhook_id, event),
            E::WebhookSecretRotated(e) => self.evolve_webhook(e.webhook_id, event),
            E::WebhookDisabled(e) => self.evolve_webhook(e.webhook_id, event),
        }
    }

    fn evolve_webhook(&mut self, id: WebhookId, event: &Event) {
        let old = self.webhooks.remove(&id);
        if let Some(w) = Webhook::evolve(old, event) {
            self.webhooks.insert(id, w);
        }
    }

    fn evolve_tenant(&mut self, id: TenantId, event: &Event) {
        let old = self.tenants.remove(&id);
        if let Some(t) = &old {
            remove_if(&mut self.tenant_slugs, &t.spec.slug, id);
        }
        match Tenant::evolve(old, event) {
            Some(t) => {
                self.tenant_slugs.insert(t.spec.slug.clone(), id);
                self.tenants.insert(id, t);
            }
            None if matches!(event, Event::TenantRemoved(_)) => {
                self.removed_tenants.insert(id);
                let owner = TenantRef::Tenant(id);
                let admins: Vec<AdminId> = self
                    .admins
                    .values()
                    .filter(|a| a.tenant == owner)
                    .map(|a| a.id)
                    .collect();
                for admin in admins {
                    self.drop_admin(admin);
                }
                let policies: Vec<PolicyId> = self
                    .policies
                    .values()
                    .filter(|p| p.tenant == owner)
                    .map(|p| p.id)
                    .collect();
                for policy in policies {
                    self.drop_policy(policy);
                }
                self.admin_login_failures.retain(|(t, _), _| *t != owner);
                self.webhooks.retain(|_, w| w.tenant != owner);
            }
            None => {}
        }
    }

    fn drop_admin(&mut self, id: AdminId) {
        if let Some(a) = self.admins.remove(&id) {
            remove_if(&mut self.admin_names, &(a.tenant, a.spec.username), id);
        }
    }

    fn drop_policy(&mut self, id: PolicyId) {
        if let Some(p) = self.policies.remove(&id) {
            remove_if(&mut self.default_policies, &p.tenant, id);
        }
    }

    fn evolve_admin(&mut self, id: AdminId, event: &Event) {
        let old = self.admins.remove(&id);
        if let Some(a) = &old {
            remove_if(
                &mut self.admin_names,
                &(a.tenant, a.spec.username.clone()),
                id,
            );
        }
        if let Some(a) = Admin::evolve(old, event) {
            self.admin_names
                .insert((a.tenant, a.spec.username.clone()), id);
            self.admins.insert(id, a);
        }
    }

    fn evolve_policy(&mut self, id: PolicyId, event: &Event) {
        let old = self.policies.remove(&id);
        if let Some(p) = &old {
            remove_if(&mut self.default_policies, &p.tenant, id);
        }
        if let Some(p) = Policy::evolve(old, event) {
            if p.spec.is_default {
                self.default_policies.insert(p.tenant, id);
            }
            self.policies.insert(id, p);
        }
    }

    fn evolve_user(&mut self, id: UserId, event: &Event) {
        let old = self.users.remove(&id);
        // The owner indexes change only where the user's items and vaults do (most events
        // add or remove one, or none): re-indexing all of them on every event made a user's
        // events cost in proportion to everything the user owns.
        let (old_items, old_vaults): (Vec<ItemId>, Vec<VaultId>) = match &old {
            Some(u) => {
                remove_if(&mut self.user_names, &u.spec.username, id);
                (
                    u.items.keys().copied().collect(),
                    u.vaults.keys().copied().collect(),
                )
            }
            None => Default::default(),
        };
        let new = User::evolve(old, event);
        reassign(
            &mut self.item_owners,
            &old_items,
            new.iter().flat_map(|u| u.items.keys().copied()),
            id,
        );
        reassign(
            &mut self.vault_owners,
            &old_vaults,
            new.iter().flat_map(|u| u.vaults.keys().copied()),
            id,
        );
        match new {
            Some(u) => {
                self.user_names.insert(u.spec.username.clone(), id);
                self.users.insert(id, u);
            }
            None if matches!(event, Event::UserRemoved(_)) => {
                for schedule in self.user_schedules.remove(&id).unwrap_or_default() {
                    self.schedules.remove(&schedule);
                }
                for device in self.user_devices.remove(&id).unwrap_or_default() {
                    self.devices.remove(&device);
                }
            }
            None => {}
        }
        if let Event::UserTransferred(_) = event {
            for schedule in self.user_schedules.get(&id).into_iter().flatten() {
                if let Some(s) = self.schedules.remove(schedule) {
                    if let Some(s) = Schedule::evolve(Some(s), event) {
                        self.schedules.insert(*schedule, s);
                    }
                }
            }
            for device in self.user_devices.get(&id).into_iter().flatten() {
                if let Some(d) = self.devices.remove(device) {
                    if let Some(d) = Device::evolve(Some(d), event) {
                        self.devices.insert(*device, d);
                    }
                }
            }
        }
    }

    fn evolve_schedule(&mut self, id: ScheduleId, event: &Event) {
        let old = self.schedules.remove(&id);
        let old_user = old.as_ref().map(|s| s.user);
        match Schedule::evolve(old, event) {
            Some(s) => {
                self.user_schedules.entry(s.user).or_default().insert(id);
                self.schedules.insert(id, s);
            }
            None => {
                if let Some(user) = old_user {
                    remove_from_set(&mut self.user_schedules, user, &id);
                }
            }
        }
    }

    fn evolve_device(&mut self, id: DeviceId, event: &Event) {
        let old = self.devices.remove(&id);
        let old_user = old.as_ref().map(|d| d.user);
        match Device::evolve(old, event) {
            Some(d) => {
                self.user_devices.entry(d.user).or_default().insert(id);
                self.devices.insert(id, d);
            }
            None => {
                if let Some(user) = old_user {
                    remove_from_set(&mut self.user_devices, user, &id);
                }
            }
        }
    }

    fn evolve_job(&mut self, id: JobId, event: &Event) {
        // In place: a job event changes a few fields of one of many jobs.
        let Some((job, before)) = self.jobs.evolve(id, event) else {
            return;
        };
        let after = running_schedule(job);
        if before != after {
            if let Some(schedule) = before {
                remove_from_set(&mut self.running_by_schedule, schedule, &id);
            }
            if let Some(schedule) = after {
                self.running_by_schedule
                    .entry(schedule)
                    .or_default()
                    .insert(id);
            }
        }
    }
}

/// Jobs by id. They are most of the state (hundreds of bytes each, never removed) and each
/// job event looks one up several times, so the jobs sit in one vector in creation order and
/// the map holds only where each is: growing the map moves small entries instead of jobs,
/// and a job changes where it is. The map hashes with foldhash rather than SipHash: one
/// multiply per id, still under per-process random keys, since devices name the jobs they
/// start and could otherwise choose ids that collide.
#[derive(Clone, Debug, Default)]
struct Jobs {
    at: HashMap<JobId, usize, foldhash::fast::RandomState>,
    jobs: Vec<Job>,
}

impl Jobs {
    fn get(&self, id: JobId) -> Option<&Job> {
        self.at.get(&id).map(|i| &self.jobs[*i])
    }

    /// Applies a job event to its job, created by the event if it is the job's first, with
    /// one lookup either way (a replay makes a million of them, most missing the cache).
    /// Returns the job and the schedule it ran for before the event; `None` if there is no
    /// such job and the event creates none.
    fn evolve(&mut self, id: JobId, event: &Event) -> Option<(&Job, Option<ScheduleId>)> {
        match self.at.entry(id) {
            Entry::Occupied(at) => {
                let job = &mut self.jobs[*at.get()];
                let before = running_schedule(job);
                job.apply(event);
                Some((job, before))
            }
            Entry::Vacant(at) => {
                let job = Job::create(event)?;
                at.insert(self.jobs.len());
                self.jobs.push(job);
                self.jobs.last().map(|job| (job, None))
            }
        }
    }

    /// Files `job` under its id, replacing any job filed there.
    fn insert(&mut self, job: Job) {
        match self.at.get(&job.id) {
            Some(i) => self.jobs[*i] = job,
            None => {
                self.at.insert(job.id, self.jobs.len());
                self.jobs.push(job);
            }
        }
    }
}

/// The same jobs, whatever their order.
impl PartialEq for Jobs {
    fn eq(&self, other: &Self) -> bool {
        self.jobs.len() == other.jobs.len()
            && self.jobs.iter().all(|job| other.get(job.id) == Some(job))
    }
}

/// A map from id to job, as the `HashMap` it replaces, so snapshots keep their format.
impl Serialize for Jobs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.jobs.iter().map(|job| (&job.id, job)))
    }
}

impl<'de> Deserialize<'de> for Jobs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JobMap;
        impl<'de> Visitor<'de> for JobMap {
            type Value = Jobs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of job ids to jobs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Jobs, A::Error> {
                let size = map.size_hint().unwrap_or(0).min(1 << 16);
                let mut jobs = Jobs {
                    at: HashMap::with_capacity_and_hasher(
                        size,
                        foldhash::fast::RandomState::default(),
                    ),
                    jobs: Vec::with_capacity(size),
                };
                while let Some((id, job)) = map.next_entry::<JobId, Job>()? {
                    if id != job.id {
                        return Err(serde::de::Error::custom(format!(
                            "job {} filed under {id}",
                            job.id
                        )));
                    }
                    jobs.insert(job);
                }
                Ok(jobs)
            }
        }
        deserializer.deserialize_map(JobMap)
    }
}

fn running_schedule(job: &Job) -> Option<ScheduleId> {
    job.schedule.filter(|_| job.status.is_running())
}

/// Moves `owners` from the keys in `old` to those in `new` (both ascending), touching only the
/// keys that are in one and not the other.
fn reassign<K: Copy + Ord + std::hash::Hash>(
    owners: &mut HashMap<K, UserId>,
    old: &[K],
    new: impl Iterator<Item = K>,
    id: UserId,
) {
    let mut old = old.iter().copied().peekable();
    for key in new {
        while let Some(gone) = old.next_if(|o| *o < key) {
            owners.remove(&gone);
        }
        if old.next_if_eq(&key).is_none() {
            owners.insert(key, id);
        }
    }
    for gone in old {
        owners.remove(&gone);
    }
}

fn remove_if<K: std::hash::Hash + Eq, V: PartialEq>(map: &mut HashMap<K, V>, key: &K, value: V) {
    if map.get(key) == Some(&value) {
        map.remove(key);
    }
}

fn remove_from_set<K: std::hash::Hash + Eq, V: Ord>(
    map: &mut HashMap<K, BTreeSet<V>>,
    key: K,
    value: &V,
) {
    if let Some(set) = map.get_mut(&key) {
        set.remove(value);
        if set.is_empty() {
            map.remove(&key);
        }
    }
}

fn fresh_failures(at: i64) -> LoginFailures {
    LoginFailures {
        count: 0,
        last_failure_at: at,
        locked_until: None,
    }
}

/// Counts one failure. A quiet period as long as the lockout forgets earlier failures, so
/// occasional typos spread over days never add up to a lockout.
fn count_failure(
    failures: &mut LoginFailures,
    at: i64,
    protection: &crate::model::LoginProtection,
) {
    let window = i64::from(protection.lockout_secs);
    if at - failures.last_failure_at > window {
        failures.count = 0;
    }
    failures.count += 1;
    failures.last_failure_at = at;
    if protection.max_failures > 0 && failures.count >= protection.max_failures {
        failures.locked_until = Some(at + window);
        failures.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::{reassign, Jobs, State};
    use crate::events::{Event, JobAbandoned, JobCompleted, JobRevived};
    use crate::ids::{JobId, TenantRef, UserId};
    use crate::model::{Job, JobStatus, JobTotals};
    use crate::testing::fixtures::{job_started, world, D1, J1, J2, S1, T1, U1};

    fn bincode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    fn unbincode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .unwrap()
            .0
    }

    fn with_jobs() -> State {
        let t = TenantRef::Tenant(T1);
        let mut events = world();
        events.push(job_started(J1, t, U1, D1, Some(S1)));
        events.push(job_started(J2, t, U1, D1, None));
        events.push(
            JobCompleted {
                job_id: J2,
                tenant: t,
                user_id: U1,
                status: JobStatus::Success,
                ended_at: 1_800_000_000,
                totals: JobTotals::default(),
            }
            .into(),
        );
        State::from_events(&events)
    }

    /// Jobs are stored as the map of id to job they were before they moved into a vector, so
    /// snapshots taken before read the same.
    #[test]
    fn jobs_are_snapshotted_as_a_map_of_id_to_job() {
        let state = with_jobs();
        let map: HashMap<JobId, Job> = state.jobs().map(|j| (j.id, j.clone())).collect();
        let jobs: Jobs = unbincode(&bincode(&map));
        assert_eq!(jobs, state.jobs);
        assert_eq!(jobs.jobs.len(), 2);
        let one: HashMap<JobId, Job> = map.into_iter().filter(|(id, _)| *id == J1).collect();
        let mut single = Jobs::default();
        single.insert(one[&J1].clone());
        assert_eq!(bincode(&single), bincode(&one));
        let state_again: State = unbincode(&bincode(&state));
        assert_eq!(state_again, state);
    }

    /// A job changed in place keeps the schedule's running jobs as replacing it would.
    #[test]
    fn a_job_changed_in_place_keeps_its_schedule_running_jobs() {
        let t = TenantRef::Tenant(T1);
        let running = |state: &State| -> Vec<JobId> {
            state.running_jobs_of_schedule(S1).map(|j| j.id).collect()
        };
        let mut state = with_jobs();
        assert_eq!(running(&state), [J1]);
        let at = 1_800_000_000;
        let abandoned: Event = JobAbandoned {
            job_id: J1,
            tenant: t,
            user_id: U1,
            at,
        }
        .into();
        state.apply(&abandoned);
        assert_eq!(running(&state), []);
        assert_eq!(state.job(J1).unwrap().status, JobStatus::Abandoned);
        state.apply(
            &JobRevived {
                job_id: J1,
                tenant: t,
                user_id: U1,
                at,
            }
            .into(),
        );
        assert_eq!(running(&state), [J1]);
        let before = state.clone();
        // A second start of a known job changes nothing.
        state.apply(&job_started(J1, t, U1, D1, None));
        assert_eq!(state, before);
        assert_eq!(state.jobs().count(), 2);
    }

    proptest! {
        /// Touching only the difference leaves the index as removing every old key and
        /// inserting every new one would.
        #[test]
        fn reassign_equals_reindexing_everything(
            others in proptest::collection::hash_map(0u16..64, any::<u8>(), 0..16),
            old in proptest::collection::btree_set(0u16..64, 0..16),
            new in proptest::collection::btree_set(0u16..64, 0..16),
        ) {
            let id = UserId::new(1, 1);
            let other = UserId::new(1, 2);
            // Keys owned by someone else, then the user's old keys.
            let mut index: HashMap<u16, UserId> = others
                .keys()
                .filter(|k| !old.contains(k) && !new.contains(k))
                .map(|k| (*k, other))
                .collect();
            index.extend(old.iter().map(|k| (*k, id)));
            let mut expected = index.clone();
            for k in &old {
                expected.remove(k);
            }
            expected.extend(new.iter().map(|k| (*k, id)));
            let old: Vec<u16> = old.into_iter().collect();
            reassign(&mut index, &old, new.iter().copied(), id);
            prop_assert_eq!(index, expected);
        }
    }
}
