//! What callers ask for. Commands carry freshly generated ids for anything they create and
//! already-hashed passwords; `decide` checks them against the `State` and answers with events.
//! Update commands carry a patch: `None` leaves a field as it is, so concurrent edits of
//! different fields do not overwrite each other.

use std::collections::BTreeMap;

mod webhooks;
pub use webhooks::*;

use crate::events::LogLine;
use crate::ids::{
    AdminId, DeviceId, ItemId, JobId, PolicyId, ScheduleId, TenantId, TenantRef, UserId, VaultId,
};
use crate::model::{
    AdminSpec, DeviceSpec, EmailSettings, ItemSpec, JobProgress, JobTotals, LoginProtection,
    Permissions, PolicySpec, ScheduleSpec, SettingMode, TenantSpec, Trigger, UserSpec, VaultSpec,
};

// --- tenants and server ----------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct CreateTenant {
    pub tenant_id: TenantId,
    pub spec: TenantSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub suspended: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateTenant {
    pub tenant_id: TenantId,
    pub patch: TenantPatch,
}

/// Refused while the tenant still has users.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoveTenant {
    pub tenant_id: TenantId,
}

/// Replaces a tenant's (or the top level's) email settings. `settings.password == None`
/// keeps the stored password (it is write-only in the API); `Some("")` clears it.
#[derive(Clone, Debug, PartialEq)]
pub struct SetEmailSettings {
    pub tenant: TenantRef,
    pub settings: EmailSettings,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerSettingsPatch {
    /// `Some(None)` removes the server-wide override.
    pub random_delay_secs: Option<Option<u32>>,
    pub session_ttl_secs: Option<u32>,
    pub login_protection: Option<LoginProtection>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateServerSettings {
    pub patch: ServerSettingsPatch,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordServerStarted {
    pub version: String,
}

// --- admins ----------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct CreateAdmin {
    pub admin_id: AdminId,
    pub tenant: TenantRef,
    pub spec: AdminSpec,
    pub password_hash: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdminPatch {
    pub username: Option<String>,
    pub permissions: Option<Permissions>,
    pub password_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateAdmin {
    pub admin_id: AdminId,
    pub patch: AdminPatch,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoveAdmin {
    pub admin_id: AdminId,
}

/// The outcome of a password check the caller already made. The password never reaches the
/// domain; a success is refused while the name is locked out.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordAdminLogin {
    pub tenant: TenantRef,
    pub username: String,
    pub succeeded: bool,
}

/// Like [`RecordAdminLogin`], for a user (agent registration, user portal). User names are
/// unique server-wide, so no tenant is needed.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordUserLogin {
    pub username: String,
    pub succeeded: bool,
}

// --- policies --------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct CreatePolicy {
    pub policy_id: PolicyId,
    pub tenant: TenantRef,
    pub spec: PolicySpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_default: Option<bool>,
    pub random_delay_secs: Option<Option<u32>>,
    pub settings: Option<BTreeMap<String, SettingMode>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdatePolicy {
    pub policy_id: PolicyId,
    pub patch: PolicyPatch,
}

/// Refused while users still have the policy.
#[derive(Clone, Debug, PartialEq)]
pub struct RemovePolicy {
    pub policy_id: PolicyId,
}

// --- users -----------------------------------------------------------------------------------

/// `spec.policy == None` gives the user the tenant's default policy, if there is one.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateUser {
    pub user_id: UserId,
    pub tenant: TenantRef,
    pub spec: UserSpec,
    pub password_hash: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserPatch {
    pub username: Option<String>,
    pub account_name: Option<String>,
    pub emails: Option<Vec<String>>,
    pub timezone: Option<String>,
    pub language: Option<String>,
    pub policy: Option<Option<PolicyId>>,
    pub suspended: Option<bool>,
    pub max_devices: Option<Option<u32>>,
    pub quota_bytes: Option<Option<u64>>,
    pub password_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateUser {
    pub user_id: UserId,
    pub patch: UserPatch,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoveUser {
    pub user_id: UserId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TransferUser {
    pub user_id: UserId,
    pub to: TenantRef,
}

// --- protected items and vaults --------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct CreateItem {
    pub item_id: ItemId,
    pub user_id: UserId,
    pub spec: ItemSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ItemPatch {
    pub name: Option<String>,
    pub engine: Option<String>,
    pub owner_device: Option<Option<DeviceId>>,
    pub settings: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateItem {
    pub item_id: ItemId,
    pub patch: ItemPatch,
}

/// Refused while a schedule uses the item.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoveItem {
    pub item_id: ItemId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DuplicateItem {
    pub item_id: ItemId,
    pub new_item_id: ItemId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CreateVault {
    pub vault_id: VaultId,
    pub user_id: UserId,
    pub spec: VaultSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct VaultPatch {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub address: Option<String>,
    pub bucket: Option<String>,
    pub quota_bytes: Option<Option<u64>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateVault {
    pub vault_id: VaultId,
    pub patch: VaultPatch,
}

/// Refused while a schedule uses the vault.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoveVault {
    pub vault_id: VaultId,
}

/// Replaces `find` by `replace` in the address of every vault whose address contains `find`,
/// among the vaults of `within` (`None`: every tenant, for a root admin). The dry run is the
/// query [`crate::State::vault_address_matches`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReplaceVaultAddress {
    pub within: Option<TenantRef>,
    pub find: String,
    pub replace: String,
}

// --- schedules -------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct CreateSchedule {
    pub schedule_id: ScheduleId,
    pub user_id: UserId,
    pub spec: ScheduleSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchedulePatch {
    pub name: Option<String>,
    pub item: Option<ItemId>,
    pub vault: Option<VaultId>,
    pub skip_if_running: Option<bool>,
    pub triggers: Option<Vec<Trigger>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateSchedule {
    pub schedule_id: ScheduleId,
    pub patch: SchedulePatch,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoveSchedule {
    pub schedule_id: ScheduleId,
}

// --- devices ---------------------------------------------------------------------------------

/// Registration after the caller checked the user's credentials. Refused once the user has
/// `max_devices` devices.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterDevice {
    pub device_id: DeviceId,
    pub user_id: UserId,
    pub spec: DeviceSpec,
    pub token_hash: String,
}

/// One new live connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectDevice {
    pub device_id: DeviceId,
    pub ip: Option<String>,
    pub client_version: String,
}

/// One live connection closed.
#[derive(Clone, Debug, PartialEq)]
pub struct DisconnectDevice {
    pub device_id: DeviceId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RemoveDevice {
    pub device_id: DeviceId,
}

// --- jobs ------------------------------------------------------------------------------------

/// A device reports that it started a job. Codes arrive raw from the agent and are checked.
#[derive(Clone, Debug, PartialEq)]
pub struct StartJob {
    pub job_id: JobId,
    pub device_id: DeviceId,
    pub item_id: Option<ItemId>,
    pub vault_id: Option<VaultId>,
    pub schedule_id: Option<ScheduleId>,
    pub classification: u16,
    pub started_at: i64,
}

/// Progress of a running job. Progress on an abandoned job revives it first.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportJobProgress {
    pub job_id: JobId,
    pub progress: JobProgress,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppendJobLog {
    pub job_id: JobId,
    pub lines: Vec<LogLine>,
}

/// A device reports the end of a job. An abandoned job is revived first.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishJob {
    pub job_id: JobId,
    pub status: u16,
    pub ended_at: i64,
    pub totals: JobTotals,
}

/// The device of a running job did not return within the grace period.
#[derive(Clone, Debug, PartialEq)]
pub struct AbandonJob {
    pub job_id: JobId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReviveJob {
    pub job_id: JobId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordMissedJob {
    pub job_id: JobId,
    pub schedule_id: ScheduleId,
    pub due_at: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordSkippedJob {
    pub job_id: JobId,
    pub schedule_id: ScheduleId,
    pub due_at: i64,
}

/// The scheduler is about to send `run_backup` for a run to a device.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordRunDispatched {
    pub job_id: JobId,
    pub schedule_id: ScheduleId,
    pub device_id: DeviceId,
    pub due_at: i64,
}

macro_rules! commands {
    ($($variant:ident,)*) => {
        /// Every command `decide` accepts.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Command {
            $($variant($variant),)*
        }

        $(
            impl From<$variant> for Command {
                fn from(c: $variant) -> Command {
                    Command::$variant(c)
                }
            }
        )*
    };
}

commands! {
    CreateTenant,
    UpdateTenant,
    RemoveTenant,
    SetEmailSettings,
    UpdateServerSettings,
    RecordServerStarted,
    CreateAdmin,
    UpdateAdmin,
    RemoveAdmin,
    RecordAdminLogin,
    RecordUserLogin,
    CreatePolicy,
    UpdatePolicy,
    RemovePolicy,
    CreateUser,
    UpdateUser,
    RemoveUser,
    TransferUser,
    CreateItem,
    UpdateItem,
    RemoveItem,
    DuplicateItem,
    CreateVault,
    UpdateVault,
    RemoveVault,
    ReplaceVaultAddress,
    CreateSchedule,
    UpdateSchedule,
    RemoveSchedule,
    RegisterDevice,
    ConnectDevice,
    DisconnectDevice,
    RemoveDevice,
    StartJob,
    ReportJobProgress,
    AppendJobLog,
    FinishJob,
    AbandonJob,
    ReviveJob,
    RecordMissedJob,
    RecordSkippedJob,
    RecordRunDispatched,
    CreateWebhook,
    UpdateWebhook,
    RemoveWebhook,
    RotateWebhookSecret,
    DisableWebhook,
}
