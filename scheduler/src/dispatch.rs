//! The port through which the scheduler reaches devices. The live connections themselves live in
//! the api crate (its device hub implements [`Dispatcher`]); the scheduler only needs to ask
//! whether a device is online and to hand it a `run_backup` command, so it stays free of
//! sockets and HTTP and its tests can plug in a recording fake.

use std::fmt;

use domain::{DeviceId, JobId, ScheduleId};
use thiserror::Error;

/// The id of one command sent to a device (`cmd_…`), echoed back by the device in its
/// `command_result` frame.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(String);

impl CommandId {
    /// The prefix every command id starts with.
    pub const PREFIX: &'static str = "cmd";

    /// Wraps an already rendered id; the hub renders `cmd_<ULID>` from its clock and randomness.
    pub fn new(rendered: impl Into<String>) -> Self {
        Self(rendered.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The device holds no live connection, so nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("device {device} is offline")]
pub struct Offline {
    pub device: DeviceId,
}

/// Sends scheduler commands to live devices. Implementations must not block: a send only
/// queues the frame on the device's connection(s).
pub trait Dispatcher: Send + Sync {
    /// Queues `run_backup {schedule_id, job_id}` on the device's live connection.
    fn run_backup(
        &self,
        device: DeviceId,
        schedule: ScheduleId,
        job: JobId,
    ) -> Result<CommandId, Offline>;

    /// Whether the device holds at least one live connection right now.
    fn is_online(&self, device: DeviceId) -> bool;
}
