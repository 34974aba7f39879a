//! The aggregates and the value types they are made of. Each aggregate's `evolve` takes
//! `Option<Self>` so creation is explicit: `None` before its creation event, `None` again
//! after its removal. Jobs, which are most of the state and never removed, are the exception:
//! `Job::create` makes one from its first event and `Job::apply` changes it in place.

mod admin;
mod device;
mod job;
mod policy;
mod schedule;
mod server;
mod tenant;
mod user;
mod webhook;

pub use admin::{Admin, AdminSpec, Permissions};
pub use device::{Device, DeviceSpec};
pub use job::{Classification, Job, JobProgress, JobStatus, JobTotals};
pub use policy::{Policy, PolicySpec, SettingMode};
pub use schedule::{Frequency, Schedule, ScheduleSpec, TimeOfDay, TimeWindow, Trigger, Weekday};
pub use server::{LoginProtection, ServerSettings};
pub use tenant::{EmailMode, EmailSettings, Tenant, TenantSpec};
pub use user::{ItemSpec, ProtectedItem, User, UserSpec, Vault, VaultSpec};
pub use webhook::{RetiringSecret, Webhook, WebhookLevel, WebhookSpec};
