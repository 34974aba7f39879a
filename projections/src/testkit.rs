//! A deterministic generator of valid event histories for the tests: tenants, admins,
//! policies, users with items and vaults, devices, schedules, jobs, transfers and removals,
//! mixed by a seeded xorshift so every run sees the same history.

use std::collections::BTreeMap;

use domain::events::*;
use domain::ids::{
    AdminId, DeviceId, ItemId, JobId, PolicyId, ScheduleId, TenantId, TenantRef, UserId, VaultId,
    WebhookId,
};
use domain::model::{
    AdminSpec, Classification, DeviceSpec, EmailSettings, ItemSpec, JobProgress, JobStatus,
    JobTotals, Permissions, PolicySpec, ScheduleSpec, ServerSettings, TenantSpec, UserSpec,
    VaultSpec, WebhookLevel, WebhookSpec,
};
use domain::{Event, State};
use eventlog::{AppendRequest, Appended, EventLog, ExpectedVersion, NewEvent};

pub struct World {
    rng: u64,
    next_id: u64,
    /// The generator's own view, to pick targets that exist.
    pub state: State,
    /// Every tenant ever created, removed ones included.
    pub tenants_ever: Vec<TenantId>,
    /// Jobs started and not finished yet.
    running: Vec<JobId>,
    abandoned: Vec<JobId>,
    now: i64,
}

impl World {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: seed | 1,
            next_id: 1,
            state: State::new(),
            tenants_ever: Vec::new(),
            running: Vec::new(),
            abandoned: Vec::new(),
            now: 1_700_000_000,
        }
    }

    fn roll(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.roll(items.len() as u64) as usize])
        }
    }

    fn id(&mut self) -> (u64, u128) {
        self.next_id += 1;
        (self.next_id, u128::from(self.next_id) * 7919)
    }

    fn tenants(&self) -> Vec<TenantId> {
        let mut ids: Vec<TenantId> = self.state.tenants().map(|t| t.id).collect();
        ids.sort_unstable();
        ids
    }

    fn owner(&mut self) -> TenantRef {
        let tenants = self.tenants();
        if self.roll(5) == 0 {
            return TenantRef::Root;
        }
        self.pick(&tenants)
            .map_or(TenantRef::Root, TenantRef::Tenant)
    }

    fn users(&self) -> Vec<UserId> {
        let mut ids: Vec<UserId> = self.state.users().map(|u| u.id).collect();
        ids.sort_unstable();
        ids
    }

    /// The next event of the history (already applied to the generator's state).
    pub fn next_event(&mut self) -> Event {
        loop {
            self.now += 1 + self.roll(600) as i64;
            if let Some(event) = self.try_event() {
                self.state.apply(&event);
                return event;
            }
        }
    }

    /// `n` events.
    pub fn events(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next_event()).collect()
    }

    fn try_event(&mut self) -> Option<Event> {
        let at = self.now;
        let users = self.users();
        Some(match self.roll(49) {
            0 | 1 if self.state.tenants().count() < 4 => {
                let (ms, r) = self.id();
                let tenant_id = TenantId::new(ms, r);
                self.tenants_ever.push(tenant_id);
                TenantCreated {
                    tenant_id,
                    spec: tenant_spec(&format!("t{ms}")),
                }
                .into()
            }
            2 => {
                let tenant_id = self.pick(&self.tenants())?;
                let (ms, _) = self.id();
                TenantUpdated {
                    tenant_id,
                    spec: tenant_spec(&format!("u{ms}")),
                }
                .into()
            }
            3 => {
                let tenant_id = self.pick(&self.tenants())?;
                if self
                    .state
                    .users()
                    .any(|u| u.tenant == TenantRef::Tenant(tenant_id))
                {
                    return None;
                }
                TenantRemoved { tenant_id }.into()
            }
            4 => {
                let tenant = self.owner();
                let mut settings = EmailSettings::disabled();
                settings.from_address = format!("x{at}@example.com");
                TenantEmailUpdated { tenant, settings }.into()
            }
            5 => {
                let mut settings = ServerSettings::initial();
                settings.random_delay_secs = Some(self.roll(18_000) as u32);
                ServerSettingsUpdated { settings }.into()
            }
            6 | 7 => {
                let (ms, r) = self.id();
                let tenant = self.owner();
                AdminCreated {
                    admin_id: AdminId::new(ms, r),
                    tenant,
                    spec: admin_spec(&format!("admin{ms}")),
                    password_hash: "h".into(),
                }
                .into()
            }
            8 => {
                let mut admins: Vec<(AdminId, TenantRef)> =
                    self.state.admins().map(|a| (a.id, a.tenant)).collect();
                admins.sort_unstable();
                let (admin_id, tenant) = self.pick(&admins)?;
                if self.roll(2) == 0 {
                    AdminRemoved { admin_id, tenant }.into()
                } else {
                    AdminLoggedIn {
                        admin_id,
                        tenant,
                        at,
                    }
                    .into()
                }
            }
            9 | 10 => {
                let (ms, r) = self.id();
                let tenant = self.owner();
                let is_default = self.state.default_policy(tenant).is_none() && self.roll(2) == 0;
                PolicyCreated {
                    policy_id: PolicyId::new(ms, r),
                    tenant,
                    spec: policy_spec(&format!("p{ms}"), is_default),
                }
                .into()
            }
            11 => {
                let mut policies: Vec<(PolicyId, TenantRef)> =
                    self.state.policies().map(|p| (p.id, p.tenant)).collect();
                policies.sort_unstable();
                let (policy_id, tenant) = self.pick(&policies)?;
                if self.roll(2) == 0 {
                    PolicyRemoved { policy_id, tenant }.into()
                } else {
                    PolicyUpdated {
                        policy_id,
                        tenant,
                        spec: policy_spec(&format!("q{at}"), false),
                    }
                    .into()
                }
            }
            12..=14 => {
                let (ms, r) = self.id();
                let tenant = self.owner();
                let policy = self.state.default_policy(tenant);
                UserCreated {
                    user_id: UserId::new(ms, r),
                    tenant,
                    spec: user_spec(&format!("user{ms}"), policy),
                    password_hash: "h".into(),
                }
                .into()
            }
            15 => {
                let user_id = self.pick(&users)?;
                let user = self.state.user(user_id)?;
                let mut policies: Vec<PolicyId> = self
                    .state
                    .policies()
                    .filter(|p| p.tenant == user.tenant)
                    .map(|p| p.id)
                    .collect();
                policies.sort_unstable();
                let tenant = user.tenant;
                let mut spec = user.spec.clone();
                spec.policy = self.pick(&policies);
                spec.account_name = format!("acct{at}");
                UserUpdated {
                    user_id,
                    tenant,
                    spec,
                }
                .into()
            }
            16 => {
                let user_id = self.pick(&users)?;
                let from = self.state.user(user_id)?.tenant;
                let to = TenantRef::Tenant(self.pick(&self.tenants())?);
                if to == from {
                    return None;
                }
                let (mut online, mut offline) = (Vec::new(), Vec::new());
                for d in self.state.user_devices(user_id) {
                    if d.online() {
                        online.push(d.id);
                    } else {
                        offline.push(d.id);
                    }
                }
                online.sort_unstable();
                offline.sort_unstable();
                UserTransferred {
                    user_id,
                    from,
                    to,
                    policy: self.state.default_policy(to),
                    online_devices: online,
                    offline_devices: offline,
                }
                .into()
            }
            17 => {
                let user_id = self.pick(&users)?;
                let tenant = self.state.user(user_id)?.tenant;
                UserRemoved { user_id, tenant }.into()
            }
            18 | 19 => {
                let user_id = self.pick(&users)?;
                let tenant = self.state.user(user_id)?.tenant;
                let (ms, r) = self.id();
                if self.roll(2) == 0 {
                    ItemCreated {
                        item_id: ItemId::new(ms, r),
                        tenant,
                        user_id,
                        spec: item_spec(&format!("item{ms}")),
                    }
                    .into()
                } else {
                    VaultCreated {
                        vault_id: VaultId::new(ms, r),
                        tenant,
                        user_id,
                        spec: vault_spec(&format!("vault{ms}")),
                    }
                    .into()
                }
            }
            20 => {
                let user_id = self.pick(&users)?;
                let user = self.state.user(user_id)?;
                let tenant = user.tenant;
                let items: Vec<ItemId> = user.items.keys().copied().collect();
                let vaults: Vec<VaultId> = user.vaults.keys().copied().collect();
                match self.roll(4) {
                    0 => {
                        let source_id = self.pick(&items)?;
                        let mut spec = self.state.user(user_id)?.items[&source_id].spec.clone();
                        spec.name.push_str(" (copy)");
                        let (ms, r) = self.id();
                        ItemDuplicated {
                            item_id: ItemId::new(ms, r),
                            source_id,
                            tenant,
                            user_id,
                            spec,
                        }
                        .into()
                    }
                    1 => ItemRemoved {
                        item_id: self.pick(&items)?,
                        tenant,
                        user_id,
                    }
                    .into(),
                    2 => VaultRemoved {
                        vault_id: self.pick(&vaults)?,
                        tenant,
                        user_id,
                    }
                    .into(),
                    _ => VaultAddressReplaced {
                        vault_id: self.pick(&vaults)?,
                        tenant,
                        user_id,
                        old_address: "s3.example".into(),
                        new_address: format!("s3-{at}.example"),
                    }
                    .into(),
                }
            }
            21 | 22 => {
                let user_id = self.pick(&users)?;
                let tenant = self.state.user(user_id)?.tenant;
                let (ms, r) = self.id();
                DeviceRegistered {
                    device_id: DeviceId::new(ms, r),
                    tenant,
                    user_id,
                    spec: device_spec(&format!("dev{ms}")),
                    token_hash: "t".into(),
                    at,
                }
                .into()
            }
            23 | 24 => {
                let device = self.any_device()?;
                let d = self.state.device(device)?;
                let (tenant, user_id, online) = (d.tenant, d.user, d.online());
                match self.roll(3) {
                    0 => DeviceRemoved {
                        device_id: device,
                        tenant,
                        user_id,
                    }
                    .into(),
                    1 if online => DeviceDisconnected {
                        device_id: device,
                        tenant,
                        user_id,
                        at,
                    }
                    .into(),
                    _ => DeviceConnected {
                        device_id: device,
                        tenant,
                        user_id,
                        at,
                        ip: Some("10.0.0.1".into()),
                        client_version: "24.1.0".into(),
                    }
                    .into(),
                }
            }
            25 | 26 => {
                let user_id = self.pick(&users)?;
                let user = self.state.user(user_id)?;
                let tenant = user.tenant;
                let item = *user.items.keys().next()?;
                let vault = *user.vaults.keys().next()?;
                let (ms, r) = self.id();
                ScheduleCreated {
                    schedule_id: ScheduleId::new(ms, r),
                    tenant,
                    user_id,
                    spec: schedule_spec(&format!("s{ms}"), item, vault),
                    at,
                }
                .into()
            }
            27 => {
                let schedule = self.any_schedule()?;
                let s = self.state.schedule(schedule)?;
                let (tenant, user_id, spec) = (s.tenant, s.user, s.spec.clone());
                if self.roll(2) == 0 {
                    ScheduleRemoved {
                        schedule_id: schedule,
                        tenant,
                        user_id,
                    }
                    .into()
                } else {
                    let mut spec = spec;
                    spec.name = format!("renamed{at}");
                    ScheduleUpdated {
                        schedule_id: schedule,
                        tenant,
                        user_id,
                        spec,
                    }
                    .into()
                }
            }
            28..=31 => {
                let device = self.any_device()?;
                let d = self.state.device(device)?;
                let (tenant, user_id) = (d.tenant, d.user);
                let (ms, r) = self.id();
                let job_id = JobId::new(ms, r);
                self.running.push(job_id);
                JobStarted {
                    job_id,
                    tenant,
                    user_id,
                    device_id: device,
                    item_id: None,
                    vault_id: None,
                    schedule_id: None,
                    classification: Classification::Backup,
                    // Starts are reported late and out of order, as devices do.
                    started_at: at - self.roll(3_600) as i64,
                    client_version: "24.1.0".into(),
                }
                .into()
            }
            32..=35 => {
                let index = self.roll(self.running.len() as u64) as usize;
                let job_id = *self.running.get(index)?;
                let job = self.state.job(job_id)?;
                let (tenant, user_id) = (job.tenant, job.user);
                match self.roll(4) {
                    0 => JobProgressed {
                        job_id,
                        tenant,
                        user_id,
                        progress: JobProgress {
                            bytes_done: at as u64,
                            items_done: 1,
                            items_total: 2,
                        },
                    }
                    .into(),
                    1 => JobLogged {
                        job_id,
                        tenant,
                        user_id,
                        lines: vec![LogLine {
                            at,
                            severity: LogSeverity::Info,
                            text: "working".into(),
                        }],
                    }
                    .into(),
                    2 => {
                        self.running.swap_remove(index);
                        self.abandoned.push(job_id);
                        JobAbandoned {
                            job_id,
                            tenant,
                            user_id,
                            at,
                        }
                        .into()
                    }
                    _ => {
                        self.running.swap_remove(index);
                        JobCompleted {
                            job_id,
                            tenant,
                            user_id,
                            status: JobStatus::Success,
                            ended_at: at,
                            totals: JobTotals {
                                total_bytes: 10,
                                ..JobTotals::default()
                            },
                        }
                        .into()
                    }
                }
            }
            36 => {
                let schedule = self.any_schedule()?;
                let s = self.state.schedule(schedule)?;
                let (tenant, user_id, item_id, vault_id) =
                    (s.tenant, s.user, s.spec.item, s.spec.vault);
                let (ms, r) = self.id();
                JobMissed {
                    job_id: JobId::new(ms, r),
                    tenant,
                    user_id,
                    schedule_id: schedule,
                    item_id,
                    vault_id,
                    due_at: at,
                }
                .into()
            }
            37 => {
                let user_id = self.pick(&users)?;
                let tenant = self.state.user(user_id)?.tenant;
                UserLoggedIn {
                    user_id,
                    tenant,
                    at,
                }
                .into()
            }
            38 => UserLoginFailed {
                tenant: TenantRef::Root,
                username: format!("nobody{}", self.roll(3)),
                user_id: None,
                at,
            }
            .into(),
            39 => {
                let mut admins: Vec<AdminId> = self.state.admins().map(|a| a.id).collect();
                admins.sort_unstable();
                let admin_id = self.pick(&admins)?;
                let admin = self.state.admin(admin_id)?.clone();
                match self.roll(3) {
                    0 => AdminUpdated {
                        admin_id: admin.id,
                        tenant: admin.tenant,
                        spec: admin_spec(&format!("{}x", admin.spec.username)),
                    }
                    .into(),
                    1 => AdminPasswordChanged {
                        admin_id: admin.id,
                        tenant: admin.tenant,
                        password_hash: format!("h{at}"),
                    }
                    .into(),
                    _ => AdminLoginFailed {
                        tenant: admin.tenant,
                        username: admin.spec.username,
                        admin_id: Some(admin.id),
                        at,
                    }
                    .into(),
                }
            }
            40 => ServerStarted {
                version: "0.0.0".into(),
                at,
            }
            .into(),
            41 => {
                let user_id = self.pick(&users)?;
                let tenant = self.state.user(user_id)?.tenant;
                UserPasswordChanged {
                    user_id,
                    tenant,
                    password_hash: format!("h{at}"),
                }
                .into()
            }
            42 => {
                let user_id = self.pick(&users)?;
                let user = self.state.user(user_id)?;
                let tenant = user.tenant;
                let items: Vec<ItemId> = user.items.keys().copied().collect();
                let vaults: Vec<VaultId> = user.vaults.keys().copied().collect();
                if self.roll(2) == 0 {
                    ItemUpdated {
                        item_id: self.pick(&items)?,
                        tenant,
                        user_id,
                        spec: item_spec(&format!("item{at}")),
                    }
                    .into()
                } else {
                    VaultUpdated {
                        vault_id: self.pick(&vaults)?,
                        tenant,
                        user_id,
                        spec: vault_spec(&format!("vault{at}")),
                    }
                    .into()
                }
            }
            43 => {
                let index = self.roll(self.abandoned.len() as u64) as usize;
                let job_id = *self.abandoned.get(index)?;
                let job = self.state.job(job_id)?;
                let (tenant, user_id) = (job.tenant, job.user);
                self.abandoned.swap_remove(index);
                self.running.push(job_id);
                JobRevived {
                    job_id,
                    tenant,
                    user_id,
                    at,
                }
                .into()
            }
            44 => {
                let schedule = self.any_schedule()?;
                let s = self.state.schedule(schedule)?;
                let (tenant, user_id, item_id, vault_id) =
                    (s.tenant, s.user, s.spec.item, s.spec.vault);
                let (ms, r) = self.id();
                JobSkipped {
                    job_id: JobId::new(ms, r),
                    tenant,
                    user_id,
                    schedule_id: schedule,
                    item_id,
                    vault_id,
                    due_at: at,
                }
                .into()
            }
            45 => {
                let schedule = self.any_schedule()?;
                let s = self.state.schedule(schedule)?;
                let (tenant, user_id) = (s.tenant, s.user);
                let device_id = self.state.user_devices(user_id).next()?.id;
                let (ms, r) = self.id();
                RunDispatched {
                    job_id: JobId::new(ms, r),
                    tenant,
                    user_id,
                    schedule_id: schedule,
                    device_id,
                    due_at: at,
                    at,
                }
                .into()
            }
            46 => {
                let tenant = self.owner();
                let (ms, r) = self.id();
                WebhookCreated {
                    webhook_id: WebhookId::new(ms, r),
                    tenant,
                    spec: webhook_spec(r),
                    secret_fingerprint: format!("sha256:{r:x}"),
                }
                .into()
            }
            47 => {
                let mut ids: Vec<WebhookId> = self.state.webhooks().map(|w| w.id).collect();
                ids.sort_unstable();
                let webhook_id = self.pick(&ids)?;
                let tenant = self.state.webhook(webhook_id)?.tenant;
                match self.roll(4) {
                    0 => WebhookUpdated {
                        webhook_id,
                        tenant,
                        spec: webhook_spec(at as u128),
                    }
                    .into(),
                    1 => WebhookSecretRotated {
                        webhook_id,
                        tenant,
                        secret_fingerprint: format!("sha256:{at:x}"),
                        previous_valid_until: at + 3600,
                    }
                    .into(),
                    2 => WebhookDisabled {
                        webhook_id,
                        tenant,
                        reason: "410 Gone".to_owned(),
                        at,
                    }
                    .into(),
                    _ => WebhookRemoved { webhook_id, tenant }.into(),
                }
            }
            _ => return None,
        })
    }

    fn any_device(&mut self) -> Option<DeviceId> {
        let mut ids: Vec<DeviceId> = self.state.devices().map(|d| d.id).collect();
        ids.sort_unstable();
        self.pick(&ids)
    }

    fn any_schedule(&mut self) -> Option<ScheduleId> {
        let mut ids: Vec<ScheduleId> = self.state.schedules().map(|s| s.id).collect();
        ids.sort_unstable();
        self.pick(&ids)
    }
}

/// The log record of `event`, as the writer would append it.
pub fn new_event(event: &Event, at: i64) -> NewEvent {
    let encoded = domain::codec::encode(event);
    NewEvent {
        tenant: event.tenant().to_string(),
        type_code: encoded.type_code,
        schema_version: encoded.schema_version,
        recorded_at_us: at,
        actor: "test".into(),
        correlation_id: "test".into(),
        payload: encoded.payload,
    }
}

/// Appends `events` in order, one append per run of events on the same stream.
pub async fn append_all(log: &dyn EventLog, events: &[Event]) -> Option<Appended> {
    let mut last = None;
    let mut i = 0;
    while i < events.len() {
        let stream = events[i].stream();
        let mut batch = Vec::new();
        while i < events.len() && events[i].stream() == stream && batch.len() < 8 {
            batch.push(new_event(&events[i], i as i64));
            i += 1;
        }
        let appended = log
            .append(AppendRequest {
                stream,
                expected: ExpectedVersion::Any,
                events: batch,
                idempotency_key: None,
            })
            .await
            .expect("append");
        last = Some(appended);
    }
    last
}

fn webhook_spec(n: u128) -> WebhookSpec {
    WebhookSpec {
        name: format!("hook {n}"),
        url: format!("https://hooks{}.example.com/in", n % 7),
        event_types: [4200, 4201].into_iter().take((n % 3) as usize).collect(),
        level: if n.is_multiple_of(2) {
            WebhookLevel::Full
        } else {
            WebhookLevel::None
        },
        custom_headers: BTreeMap::new(),
        enabled: true,
    }
}

pub fn tenant_spec(name: &str) -> TenantSpec {
    TenantSpec {
        name: name.to_owned(),
        slug: name.to_lowercase(),
        hosts: vec![format!("{name}.example.com")],
        suspended: false,
    }
}

pub fn admin_spec(username: &str) -> AdminSpec {
    AdminSpec {
        username: username.to_owned(),
        permissions: Permissions::default(),
    }
}

pub fn policy_spec(name: &str, is_default: bool) -> PolicySpec {
    PolicySpec {
        name: name.to_owned(),
        description: String::new(),
        is_default,
        random_delay_secs: Some(60),
        settings: BTreeMap::new(),
    }
}

pub fn user_spec(username: &str, policy: Option<PolicyId>) -> UserSpec {
    UserSpec {
        username: username.to_owned(),
        account_name: username.to_uppercase(),
        emails: vec![format!("{username}@example.com")],
        timezone: "Europe/Berlin".into(),
        language: "en".into(),
        policy,
        suspended: false,
        max_devices: None,
        quota_bytes: None,
    }
}

pub fn item_spec(name: &str) -> ItemSpec {
    ItemSpec {
        name: name.to_owned(),
        engine: "files".into(),
        owner_device: None,
        settings: BTreeMap::new(),
    }
}

pub fn vault_spec(name: &str) -> VaultSpec {
    VaultSpec {
        name: name.to_owned(),
        kind: "s3".into(),
        address: "s3.example".into(),
        bucket: "bucket".into(),
        quota_bytes: None,
    }
}

pub fn schedule_spec(name: &str, item: ItemId, vault: VaultId) -> ScheduleSpec {
    ScheduleSpec {
        name: name.to_owned(),
        item,
        vault,
        skip_if_running: true,
        triggers: Vec::new(),
    }
}

pub fn device_spec(name: &str) -> DeviceSpec {
    DeviceSpec {
        friendly_name: name.to_owned(),
        platform: "linux".into(),
        arch: "x86_64".into(),
        os_version: "6.1".into(),
        client_version: "24.1.0".into(),
        timezone: "UTC".into(),
    }
}
