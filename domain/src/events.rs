//! Past-tense facts. Each event is its own struct, stored as the payload of one log record
//! whose type code says which struct it is (see `codec`). Codes 4000–4799 are the reference
//! system's; halley's own additions use 4900–4999 and are listed in `EVENTS.md`.
//!
//! Every event carries the owning tenant and the ids needed to place it, so `stream()`,
//! `tenant()` and `resource_id()` need no other state.

use serde::{Deserialize, Serialize};

mod webhooks;
pub use webhooks::*;

use crate::ids::{
    AdminId, DeviceId, ItemId, JobId, PolicyId, ResourceId, ScheduleId, TenantId, TenantRef,
    UserId, VaultId,
};
use crate::model::{
    AdminSpec, Classification, DeviceSpec, EmailSettings, ItemSpec, JobProgress, JobStatus,
    JobTotals, PolicySpec, ScheduleSpec, ServerSettings, TenantSpec, UserSpec, VaultSpec,
};

/// Stream of the server-wide singleton (settings, start-up, the top level's email).
pub const SERVER_STREAM: &str = "server";
/// Stream of failed logins for user names that match no account.
pub const LOGIN_STREAM: &str = "login";

// --- tenants ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantCreated {
    pub tenant_id: TenantId,
    pub spec: TenantSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantUpdated {
    pub tenant_id: TenantId,
    pub spec: TenantSpec,
}

/// Only an empty tenant (no users) is removed; its admins and policies go with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantRemoved {
    pub tenant_id: TenantId,
}

/// New email settings of a tenant, or of the top level when `tenant` is root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantEmailUpdated {
    pub tenant: TenantRef,
    pub settings: EmailSettings,
}

// --- server ----------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerStarted {
    pub version: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerSettingsUpdated {
    pub settings: ServerSettings,
}

// --- admins ----------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminCreated {
    pub admin_id: AdminId,
    pub tenant: TenantRef,
    pub spec: AdminSpec,
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminUpdated {
    pub admin_id: AdminId,
    pub tenant: TenantRef,
    pub spec: AdminSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminPasswordChanged {
    pub admin_id: AdminId,
    pub tenant: TenantRef,
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminRemoved {
    pub admin_id: AdminId,
    pub tenant: TenantRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminLoggedIn {
    pub admin_id: AdminId,
    pub tenant: TenantRef,
    pub at: i64,
}

/// A failed admin login. Never carries the attempted password.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminLoginFailed {
    pub tenant: TenantRef,
    pub username: String,
    /// The admin the name belongs to, if any.
    pub admin_id: Option<AdminId>,
    pub at: i64,
}

// --- policies --------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyCreated {
    pub policy_id: PolicyId,
    pub tenant: TenantRef,
    pub spec: PolicySpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyUpdated {
    pub policy_id: PolicyId,
    pub tenant: TenantRef,
    pub spec: PolicySpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRemoved {
    pub policy_id: PolicyId,
    pub tenant: TenantRef,
}

// --- users -----------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserCreated {
    pub user_id: UserId,
    pub tenant: TenantRef,
    pub spec: UserSpec,
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserUpdated {
    pub user_id: UserId,
    pub tenant: TenantRef,
    pub spec: UserSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserPasswordChanged {
    pub user_id: UserId,
    pub tenant: TenantRef,
    pub password_hash: String,
}

/// The user's schedules and devices go with it; its jobs stay as history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRemoved {
    pub user_id: UserId,
    pub tenant: TenantRef,
}

/// The user, its schedules and its devices now belong to `to`. The old tenant's policy does
/// not travel: `policy` is the new tenant's default, if any. The device lists say which
/// devices were online (to be sent "update login URL") and which were offline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserTransferred {
    pub user_id: UserId,
    pub from: TenantRef,
    pub to: TenantRef,
    pub policy: Option<PolicyId>,
    pub online_devices: Vec<DeviceId>,
    pub offline_devices: Vec<DeviceId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserLoggedIn {
    pub user_id: UserId,
    pub tenant: TenantRef,
    pub at: i64,
}

/// A failed user login (agent registration or user portal). Never carries the password.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserLoginFailed {
    /// The user's tenant, or root when the name matches nobody.
    pub tenant: TenantRef,
    pub username: String,
    pub user_id: Option<UserId>,
    pub at: i64,
}

// --- protected items and vaults (in the owning user's stream) --------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemCreated {
    pub item_id: ItemId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub spec: ItemSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemUpdated {
    pub item_id: ItemId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub spec: ItemSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemRemoved {
    pub item_id: ItemId,
    pub tenant: TenantRef,
    pub user_id: UserId,
}

/// A copy of `source_id` created as `item_id`, its name suffixed " (copy)".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemDuplicated {
    pub item_id: ItemId,
    pub source_id: ItemId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub spec: ItemSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaultCreated {
    pub vault_id: VaultId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub spec: VaultSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaultUpdated {
    pub vault_id: VaultId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub spec: VaultSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaultRemoved {
    pub vault_id: VaultId,
    pub tenant: TenantRef,
    pub user_id: UserId,
}

/// One vault touched by a bulk address replacement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaultAddressReplaced {
    pub vault_id: VaultId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub old_address: String,
    pub new_address: String,
}

// --- schedules -------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleCreated {
    pub schedule_id: ScheduleId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub spec: ScheduleSpec,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleUpdated {
    pub schedule_id: ScheduleId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub spec: ScheduleSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRemoved {
    pub schedule_id: ScheduleId,
    pub tenant: TenantRef,
    pub user_id: UserId,
}

// --- devices ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRegistered {
    pub device_id: DeviceId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub spec: DeviceSpec,
    pub token_hash: String,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceConnected {
    pub device_id: DeviceId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub at: i64,
    pub ip: Option<String>,
    /// The version the device announced on this connection.
    pub client_version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceDisconnected {
    pub device_id: DeviceId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRemoved {
    pub device_id: DeviceId,
    pub tenant: TenantRef,
    pub user_id: UserId,
}

// --- jobs ------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStarted {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub item_id: Option<ItemId>,
    pub vault_id: Option<VaultId>,
    pub schedule_id: Option<ScheduleId>,
    pub classification: Classification,
    pub started_at: i64,
    pub client_version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobProgressed {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub progress: JobProgress,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: i64,
    pub severity: LogSeverity,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogSeverity {
    Debug,
    Info,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobLogged {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub lines: Vec<LogLine>,
}

/// A device finished a job (success or a reportable failure).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobCompleted {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub status: JobStatus,
    pub ended_at: i64,
    pub totals: JobTotals,
}

/// A running job whose device did not come back in time; status 7007.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobAbandoned {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub at: i64,
}

/// An abandoned job its device reported again; status 6002.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRevived {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub at: i64,
}

/// A scheduled run that no job covered; status 7004, start = end = `due_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobMissed {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub schedule_id: ScheduleId,
    pub item_id: ItemId,
    pub vault_id: VaultId,
    pub due_at: i64,
}

/// A scheduled run that came due while the schedule's previous job was still running and the
/// schedule skips in that case; status 7006, start = end = `due_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSkipped {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub schedule_id: ScheduleId,
    pub item_id: ItemId,
    pub vault_id: VaultId,
    pub due_at: i64,
}

/// The scheduler handed the run of `schedule_id` due at `due_at` to `device_id` as job
/// `job_id` (`run_backup`). Recorded before the command is sent, so a restart never sends it
/// twice; a run the device then never starts is recorded as missed under the same job id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDispatched {
    pub job_id: JobId,
    pub tenant: TenantRef,
    pub user_id: UserId,
    pub schedule_id: ScheduleId,
    pub device_id: DeviceId,
    pub due_at: i64,
    /// When the command was sent (the due time plus the random delay, or later).
    pub at: i64,
}

macro_rules! events {
    ($( $variant:ident = $code:literal, $name:literal; )*) => {
        /// Every event halley stores.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum Event {
            $( $variant($variant), )*
        }

        /// Every `(type code, dotted name)`, in code-table order.
        pub const EVENT_TYPES: &[(u16, &str)] = &[ $( ($code, $name), )* ];

        impl Event {
            /// The numeric type code webhook receivers filter on.
            pub fn type_code(&self) -> u16 {
                match self { $( Event::$variant(_) => $code, )* }
            }

            /// The dotted name, e.g. `user.created`.
            pub fn type_name(&self) -> &'static str {
                match self { $( Event::$variant(_) => $name, )* }
            }

            /// The dotted name for a type code, if the code is known.
            pub fn name_of(type_code: u16) -> Option<&'static str> {
                match type_code { $( $code => Some($name), )* _ => None }
            }

            /// Encodes the inner struct alone, so a payload's bytes depend only on its own
            /// type, never on the position of its variant in this enum.
            pub(crate) fn encode_payload(
                &self,
                config: bincode::config::Configuration,
            ) -> Result<Vec<u8>, bincode::error::EncodeError> {
                match self {
                    $( Event::$variant(e) => bincode::serde::encode_to_vec(e, config), )*
                }
            }

            /// Decodes a payload written in the current schema; `None` for an unknown code.
            pub(crate) fn decode_payload(
                type_code: u16,
                bytes: &[u8],
                config: bincode::config::Configuration,
            ) -> Option<Result<(Event, usize), bincode::error::DecodeError>> {
                match type_code {
                    $( $code => Some(
                        bincode::serde::borrow_decode_from_slice::<$variant, _>(bytes, config)
                            .map(|(e, n)| (Event::$variant(e), n)),
                    ), )*
                    _ => None,
                }
            }
        }

        $(
            impl From<$variant> for Event {
                fn from(e: $variant) -> Event {
                    Event::$variant(e)
                }
            }
        )*
    };
}

events! {
    UserCreated = 4100, "user.created";
    UserRemoved = 4101, "user.removed";
    UserUpdated = 4102, "user.updated";
    UserLoggedIn = 4103, "user.login";
    UserLoginFailed = 4104, "user.login_failed";
    AdminCreated = 4150, "admin.created";
    AdminRemoved = 4151, "admin.removed";
    AdminUpdated = 4152, "admin.updated";
    AdminLoggedIn = 4153, "admin.login";
    AdminLoginFailed = 4154, "admin.login_failed";
    JobStarted = 4200, "job.started";
    JobCompleted = 4201, "job.completed";
    ServerStarted = 4400, "server.started";
    TenantCreated = 4500, "tenant.created";
    TenantRemoved = 4501, "tenant.removed";
    TenantUpdated = 4502, "tenant.updated";
    PolicyCreated = 4600, "policy.created";
    PolicyRemoved = 4601, "policy.removed";
    PolicyUpdated = 4602, "policy.updated";
    DeviceRegistered = 4700, "device.registered";
    DeviceRemoved = 4701, "device.removed";
    DeviceConnected = 4702, "device.connected";
    DeviceDisconnected = 4703, "device.disconnected";
    ServerSettingsUpdated = 4900, "server.settings_updated";
    TenantEmailUpdated = 4901, "tenant.email_updated";
    UserTransferred = 4902, "user.transferred";
    UserPasswordChanged = 4903, "user.password_changed";
    AdminPasswordChanged = 4904, "admin.password_changed";
    ItemCreated = 4910, "protected_item.created";
    ItemUpdated = 4911, "protected_item.updated";
    ItemRemoved = 4912, "protected_item.removed";
    ItemDuplicated = 4913, "protected_item.duplicated";
    VaultCreated = 4920, "vault.created";
    VaultUpdated = 4921, "vault.updated";
    VaultRemoved = 4922, "vault.removed";
    VaultAddressReplaced = 4923, "vault.address_replaced";
    ScheduleCreated = 4930, "schedule.created";
    ScheduleUpdated = 4931, "schedule.updated";
    ScheduleRemoved = 4932, "schedule.removed";
    JobProgressed = 4940, "job.progress";
    JobLogged = 4941, "job.log";
    JobAbandoned = 4942, "job.abandoned";
    JobRevived = 4943, "job.revived";
    JobMissed = 4944, "job.missed";
    JobSkipped = 4945, "job.skipped";
    RunDispatched = 4946, "schedule.run_dispatched";
    WebhookCreated = 4950, "webhook.created";
    WebhookUpdated = 4951, "webhook.updated";
    WebhookRemoved = 4952, "webhook.removed";
    WebhookSecretRotated = 4953, "webhook.secret_rotated";
    WebhookDisabled = 4954, "webhook.disabled";
}

impl Event {
    /// The aggregate stream the event belongs to: `ten_…`, `adm_…`, `pol_…`, `usr_…` (users
    /// with their protected items and vaults), `sch_…`, `dev_…`, `job_…`, or `server` / `login`.
    pub fn stream(&self) -> String {
        use Event as E;
        match self {
            E::TenantCreated(e) => e.tenant_id.to_string(),
            E::TenantUpdated(e) => e.tenant_id.to_string(),
            E::TenantRemoved(e) => e.tenant_id.to_string(),
            E::TenantEmailUpdated(e) => match e.tenant {
                TenantRef::Root => SERVER_STREAM.to_owned(),
                TenantRef::Tenant(id) => id.to_string(),
            },
            E::ServerStarted(_) | E::ServerSettingsUpdated(_) => SERVER_STREAM.to_owned(),
            E::AdminCreated(e) => e.admin_id.to_string(),
            E::AdminUpdated(e) => e.admin_id.to_string(),
            E::AdminPasswordChanged(e) => e.admin_id.to_string(),
            E::AdminRemoved(e) => e.admin_id.to_string(),
            E::AdminLoggedIn(e) => e.admin_id.to_string(),
            E::AdminLoginFailed(e) => e
                .admin_id
                .map_or_else(|| LOGIN_STREAM.to_owned(), |id| id.to_string()),
            E::PolicyCreated(e) => e.policy_id.to_string(),
            E::PolicyUpdated(e) => e.policy_id.to_string(),
            E::PolicyRemoved(e) => e.policy_id.to_string(),
            E::UserCreated(e) => e.user_id.to_string(),
            E::UserUpdated(e) => e.user_id.to_string(),
            E::UserPasswordChanged(e) => e.user_id.to_string(),
            E::UserRemoved(e) => e.user_id.to_string(),
            E::UserTransferred(e) => e.user_id.to_string(),
            E::UserLoggedIn(e) => e.user_id.to_string(),
            E::UserLoginFailed(e) => e
                .user_id
                .map_or_else(|| LOGIN_STREAM.to_owned(), |id| id.to_string()),
            E::ItemCreated(e) => e.user_id.to_string(),
            E::ItemUpdated(e) => e.user_id.to_string(),
            E::ItemRemoved(e) => e.user_id.to_string(),
            E::ItemDuplicated(e) => e.user_id.to_string(),
            E::VaultCreated(e) => e.user_id.to_string(),
            E::VaultUpdated(e) => e.user_id.to_string(),
            E::VaultRemoved(e) => e.user_id.to_string(),
            E::VaultAddressReplaced(e) => e.user_id.to_string(),
            E::ScheduleCreated(e) => e.schedule_id.to_string(),
            E::ScheduleUpdated(e) => e.schedule_id.to_string(),
            E::ScheduleRemoved(e) => e.schedule_id.to_string(),
            E::DeviceRegistered(e) => e.device_id.to_string(),
            E::DeviceConnected(e) => e.device_id.to_string(),
            E::DeviceDisconnected(e) => e.device_id.to_string(),
            E::DeviceRemoved(e) => e.device_id.to_string(),
            E::JobStarted(e) => e.job_id.to_string(),
            E::JobProgressed(e) => e.job_id.to_string(),
            E::JobLogged(e) => e.job_id.to_string(),
            E::JobCompleted(e) => e.job_id.to_string(),
            E::JobAbandoned(e) => e.job_id.to_string(),
            E::JobRevived(e) => e.job_id.to_string(),
            E::JobMissed(e) => e.job_id.to_string(),
            E::JobSkipped(e) => e.job_id.to_string(),
            E::RunDispatched(e) => e.job_id.to_string(),
            E::WebhookCreated(e) => e.webhook_id.to_string(),
            E::WebhookUpdated(e) => e.webhook_id.to_string(),
            E::WebhookRemoved(e) => e.webhook_id.to_string(),
            E::WebhookSecretRotated(e) => e.webhook_id.to_string(),
            E::WebhookDisabled(e) => e.webhook_id.to_string(),
        }
    }

    /// The tenant that owns what the event is about (`root` for server-wide events). For a
    /// transfer it is the new tenant.
    pub fn tenant(&self) -> TenantRef {
        use Event as E;
        match self {
            E::TenantCreated(e) => e.tenant_id.into(),
            E::TenantUpdated(e) => e.tenant_id.into(),
            E::TenantRemoved(e) => e.tenant_id.into(),
            E::TenantEmailUpdated(e) => e.tenant,
            E::ServerStarted(_) | E::ServerSettingsUpdated(_) => TenantRef::Root,
            E::AdminCreated(e) => e.tenant,
            E::AdminUpdated(e) => e.tenant,
            E::AdminPasswordChanged(e) => e.tenant,
            E::AdminRemoved(e) => e.tenant,
            E::AdminLoggedIn(e) => e.tenant,
            E::AdminLoginFailed(e) => e.tenant,
            E::PolicyCreated(e) => e.tenant,
            E::PolicyUpdated(e) => e.tenant,
            E::PolicyRemoved(e) => e.tenant,
            E::UserCreated(e) => e.tenant,
            E::UserUpdated(e) => e.tenant,
            E::UserPasswordChanged(e) => e.tenant,
            E::UserRemoved(e) => e.tenant,
            E::UserTransferred(e) => e.to,
            E::UserLoggedIn(e) => e.tenant,
            E::UserLoginFailed(e) => e.tenant,
            E::ItemCreated(e) => e.tenant,
            E::ItemUpdated(e) => e.tenant,
            E::ItemRemoved(e) => e.tenant,
            E::ItemDuplicated(e) => e.tenant,
            E::VaultCreated(e) => e.tenant,
            E::VaultUpdated(e) => e.tenant,
            E::VaultRemoved(e) => e.tenant,
            E::VaultAddressReplaced(e) => e.tenant,
            E::ScheduleCreated(e) => e.tenant,
            E::ScheduleUpdated(e) => e.tenant,
            E::ScheduleRemoved(e) => e.tenant,
            E::DeviceRegistered(e) => e.tenant,
            E::DeviceConnected(e) => e.tenant,
            E::DeviceDisconnected(e) => e.tenant,
            E::DeviceRemoved(e) => e.tenant,
            E::JobStarted(e) => e.tenant,
            E::JobProgressed(e) => e.tenant,
            E::JobLogged(e) => e.tenant,
            E::JobCompleted(e) => e.tenant,
            E::JobAbandoned(e) => e.tenant,
            E::JobRevived(e) => e.tenant,
            E::JobMissed(e) => e.tenant,
            E::JobSkipped(e) => e.tenant,
            E::RunDispatched(e) => e.tenant,
            E::WebhookCreated(e) => e.tenant,
            E::WebhookUpdated(e) => e.tenant,
            E::WebhookRemoved(e) => e.tenant,
            E::WebhookSecretRotated(e) => e.tenant,
            E::WebhookDisabled(e) => e.tenant,
        }
    }

    /// The object the event is about (webhook `resource_id`). For a failed login with an
    /// unknown name it is the server.
    pub fn resource_id(&self) -> ResourceId {
        use Event as E;
        use ResourceId as R;
        match self {
            E::TenantCreated(e) => R::Tenant(e.tenant_id),
            E::TenantUpdated(e) => R::Tenant(e.tenant_id),
            E::TenantRemoved(e) => R::Tenant(e.tenant_id),
            E::TenantEmailUpdated(e) => e.tenant.tenant_id().map_or(R::Server, R::Tenant),
            E::ServerStarted(_) | E::ServerSettingsUpdated(_) => R::Server,
            E::AdminCreated(e) => R::Admin(e.admin_id),
            E::AdminUpdated(e) => R::Admin(e.admin_id),
            E::AdminPasswordChanged(e) => R::Admin(e.admin_id),
            E::AdminRemoved(e) => R::Admin(e.admin_id),
            E::AdminLoggedIn(e) => R::Admin(e.admin_id),
            E::AdminLoginFailed(e) => e.admin_id.map_or(R::Server, R::Admin),
            E::PolicyCreated(e) => R::Policy(e.policy_id),
            E::PolicyUpdated(e) => R::Policy(e.policy_id),
            E::PolicyRemoved(e) => R::Policy(e.policy_id),
            E::UserCreated(e) => R::User(e.user_id),
            E::UserUpdated(e) => R::User(e.user_id),
            E::UserPasswordChanged(e) => R::User(e.user_id),
            E::UserRemoved(e) => R::User(e.user_id),
            E::UserTransferred(e) => R::User(e.user_id),
            E::UserLoggedIn(e) => R::User(e.user_id),
            E::UserLoginFailed(e) => e.user_id.map_or(R::Server, R::User),
            E::ItemCreated(e) => R::Item(e.item_id),
            E::ItemUpdated(e) => R::Item(e.item_id),
            E::ItemRemoved(e) => R::Item(e.item_id),
            E::ItemDuplicated(e) => R::Item(e.item_id),
            E::VaultCreated(e) => R::Vault(e.vault_id),
            E::VaultUpdated(e) => R::Vault(e.vault_id),
            E::VaultRemoved(e) => R::Vault(e.vault_id),
            E::VaultAddressReplaced(e) => R::Vault(e.vault_id),
            E::ScheduleCreated(e) => R::Schedule(e.schedule_id),
            E::ScheduleUpdated(e) => R::Schedule(e.schedule_id),
            E::ScheduleRemoved(e) => R::Schedule(e.schedule_id),
            E::DeviceRegistered(e) => R::Device(e.device_id),
            E::DeviceConnected(e) => R::Device(e.device_id),
            E::DeviceDisconnected(e) => R::Device(e.device_id),
            E::DeviceRemoved(e) => R::Device(e.device_id),
            E::JobStarted(e) => R::Job(e.job_id),
            E::JobProgressed(e) => R::Job(e.job_id),
            E::JobLogged(e) => R::Job(e.job_id),
            E::JobCompleted(e) => R::Job(e.job_id),
            E::JobAbandoned(e) => R::Job(e.job_id),
            E::JobRevived(e) => R::Job(e.job_id),
            E::JobMissed(e) => R::Job(e.job_id),
            E::JobSkipped(e) => R::Job(e.job_id),
            E::RunDispatched(e) => R::Job(e.job_id),
            E::WebhookCreated(e) => R::Webhook(e.webhook_id),
            E::WebhookUpdated(e) => R::Webhook(e.webhook_id),
            E::WebhookRemoved(e) => R::Webhook(e.webhook_id),
            E::WebhookSecretRotated(e) => R::Webhook(e.webhook_id),
            E::WebhookDisabled(e) => R::Webhook(e.webhook_id),
        }
    }
}
