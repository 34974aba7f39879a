//! [`DeviceHub`]: which devices hold live connections right now, and the one way to send them
//! commands. It is in-memory only: after a restart every device is offline until it connects
//! again (the log's `server.started` event says the same to the read models).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use domain::{DeviceId, JobId, ScheduleId};
use scheduler::{CommandId, Dispatcher, Offline};
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;
use writer::Clock;

/// A command for a device, sent as `{"type": "command", "command_id": …, "kind": …, …}`.
/// Ids travel as their canonical strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeviceCommand {
    RunBackup { schedule_id: String, job_id: String },
    CancelJob { job_id: String },
    Upgrade { version: String },
    UpdateLoginUrl { url: String },
    DropConnection,
}

impl DeviceCommand {
    pub fn run_backup(schedule: ScheduleId, job: JobId) -> DeviceCommand {
        DeviceCommand::RunBackup {
            schedule_id: schedule.to_string(),
            job_id: job.to_string(),
        }
    }

    pub fn cancel_job(job: JobId) -> DeviceCommand {
        DeviceCommand::CancelJob {
            job_id: job.to_string(),
        }
    }
}

/// What a connection's writer task sends next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Command {
        command_id: CommandId,
        command: DeviceCommand,
    },
    /// Close the socket with this reason (revoked device, `drop_connection`, shutdown).
    Close { reason: String },
}

/// One live connection, unique for the life of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(u64);

/// A newly registered connection: its id, whether it brought the device online, and the
/// queue its session drains into the socket.
pub struct Attached {
    pub connection: ConnectionId,
    pub first: bool,
    pub outgoing: mpsc::UnboundedReceiver<Outgoing>,
}

struct Connection {
    id: ConnectionId,
    tx: mpsc::UnboundedSender<Outgoing>,
}

#[derive(Default)]
struct Inner {
    next_connection: u64,
    /// Live connections per device, oldest first. Online = present here.
    live: HashMap<DeviceId, Vec<Connection>>,
    /// When each device lost its last connection (Unix seconds), until the abandonment
    /// sweep has dealt with its running jobs or the device is back.
    offline_since: HashMap<DeviceId, i64>,
    /// Whether the devices of jobs left running by an earlier process were noted offline.
    seeded: bool,
    /// Serializes the connected/disconnected events of one device, so a reconnect racing
    /// the last disconnection cannot land its events in the wrong order.
    presence: HashMap<DeviceId, Arc<tokio::sync::Mutex<()>>>,
}

/// The registry of live device connections. Shared by the HTTP workers (agent sessions,
/// device actions) and the scheduler (through [`Dispatcher`]).
pub struct DeviceHub {
    clock: Arc<dyn Clock>,
    /// When this process started (Unix seconds): the offline time of devices that had jobs
    /// running before a restart.
    started_at: i64,
    inner: Mutex<Inner>,
}

impl DeviceHub {
    pub fn new(clock: Arc<dyn Clock>) -> DeviceHub {
        DeviceHub {
            started_at: clock.now_secs(),
            clock,
            inner: Mutex::default(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent maps.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock a session holds while it records the device's connected/disconnected event.
    pub fn presence(&self, device: DeviceId) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(self.inner().presence.entry(device).or_default())
    }

    /// Registers a new live connection of `device`.
    pub fn attach(&self, device: DeviceId) -> Attached {
        let (tx, outgoing) = mpsc::unbounded_channel();
        let mut inner = self.inner();
        inner.next_connection += 1;
        let connection = ConnectionId(inner.next_connection);
        inner.offline_since.remove(&device);
        let conns = inner.live.entry(device).or_default();
        conns.push(Connection { id: connection, tx });
        Attached {
            connection,
            first: conns.len() == 1,
            outgoing,
        }
    }

    /// Forgets a closed connection; true if it was the device's last one (the device is now
    /// offline). Detaching an unknown connection is a no-op and false.
    pub fn detach(&self, device: DeviceId, connection: ConnectionId) -> bool {
        let now = self.clock.now_secs();
        let mut inner = self.inner();
        let Some(conns) = inner.live.get_mut(&device) else {
            return false;
        };
        let before = conns.len();
        conns.retain(|c| c.id != connection);
        if conns.len() == before || !conns.is_empty() {
            return false;
        }
        inner.live.remove(&device);
        inner.offline_since.insert(device, now);
        true
    }

    pub fn is_online(&self, device: DeviceId) -> bool {
        self.inner().live.contains_key(&device)
    }

    /// Number of live connections of `device`.
    pub fn connections(&self, device: DeviceId) -> usize {
        self.inner().live.get(&device).map_or(0, Vec::len)
    }

    /// Number of devices online.
    pub fn online_count(&self) -> usize {
        self.inner().live.len()
    }

    /// Queues `command` on the device's newest connection (the one most likely still alive;
    /// sending to every connection would run a backup twice).
    pub fn send(&self, device: DeviceId, command: DeviceCommand) -> Result<CommandId, Offline> {
        let command_id = self.new_command_id();
        let inner = self.inner();
        let conns = inner.live.get(&device).ok_or(Offline { device })?;
        // A connection whose session already ended has a closed queue; try the next newest.
        for conn in conns.iter().rev() {
            let frame = Outgoing::Command {
                command_id: command_id.clone(),
                command: command.clone(),
            };
            if conn.tx.send(frame).is_ok() {
                return Ok(command_id);
            }
        }
        Err(Offline { device })
    }

    /// Asks every connection of `device` to close with `reason`; returns how many there were.
    /// Their sessions detach them as they end.
    pub fn close_device(&self, device: DeviceId, reason: &str) -> usize {
        let inner = self.inner();
        let conns = inner.live.get(&device).map_or(&[][..], Vec::as_slice);
        for conn in conns {
            let _closed_already = conn.tx.send(Outgoing::Close {
                reason: reason.to_owned(),
            });
        }
        conns.len()
    }

    /// Closes every connection (server shutdown), so draining HTTP does not wait on sockets
    /// that never end by themselves.
    pub fn close_all(&self, reason: &str) {
        let inner = self.inner();
        for conn in inner.live.values().flatten() {
            let _closed_already = conn.tx.send(Outgoing::Close {
                reason: reason.to_owned(),
            });
        }
    }

    /// Forgets everything about a removed device.
    pub fn forget(&self, device: DeviceId) {
        let mut inner = self.inner();
        inner.offline_since.remove(&device);
        inner.presence.remove(&device);
    }

    /// Devices offline since at or before `cutoff` (Unix seconds) that the abandonment sweep
    /// has not dealt with yet. The first call also notes `seed` (devices with jobs left
    /// running by an earlier process) as offline since this process started.
    pub fn offline_before(
        &self,
        cutoff: i64,
        seed: impl FnOnce() -> Vec<DeviceId>,
    ) -> Vec<DeviceId> {
        let mut inner = self.inner();
        if !inner.seeded {
            inner.seeded = true;
            for device in seed() {
                if !inner.live.contains_key(&device) {
                    inner.offline_since.entry(device).or_insert(self.started_at);
                }
            }
        }
        let mut due: Vec<DeviceId> = inner
            .offline_since
            .iter()
            .filter(|(_, since)| **since <= cutoff)
            .map(|(device, _)| *device)
            .collect();
        due.sort_unstable();
        due
    }

    /// The sweep dealt with `device`'s running jobs; forget its offline time unless it went
    /// offline again after `cutoff`.
    pub fn swept(&self, device: DeviceId, cutoff: i64) {
        let mut inner = self.inner();
        if inner
            .offline_since
            .get(&device)
            .is_some_and(|since| *since <= cutoff)
        {
            inner.offline_since.remove(&device);
        }
    }

    fn new_command_id(&self) -> CommandId {
        use rand::RngCore;
        let ms = u64::try_from(self.clock.now_us().div_euclid(1000)).unwrap_or(0);
        let mut random = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let ulid = ulid::Ulid::from_parts(ms, u128::from_le_bytes(random));
        CommandId::new(format!("{}_{ulid}", CommandId::PREFIX))
    }
}

impl Dispatcher for DeviceHub {
    fn run_backup(
        &self,
        device: DeviceId,
        schedule: ScheduleId,
        job: JobId,
    ) -> Result<CommandId, Offline> {
        self.send(device, DeviceCommand::run_backup(schedule, job))
    }

    fn is_online(&self, device: DeviceId) -> bool {
        DeviceHub::is_online(self, device)
    }
}

#[cfg(test)]
mod tests {
    use writer::ManualClock;

    use super::*;

    fn hub() -> DeviceHub {
        DeviceHub::new(Arc::new(ManualClock::new(1_700_000_000_000_000)))
    }

    fn device(n: u128) -> DeviceId {
        DeviceId::new(1_700_000_000_000, n)
    }

    #[test]
    fn online_while_any_connection_lives() {
        let hub = hub();
        let d = device(1);
        assert!(!hub.is_online(d));
        let a = hub.attach(d);
        let b = hub.attach(d);
        assert!(a.first && !b.first);
        assert_eq!(hub.connections(d), 2);
        assert!(!hub.detach(d, a.connection));
        assert!(hub.is_online(d));
        assert!(hub.detach(d, b.connection));
        assert!(!hub.is_online(d));
        assert!(!hub.detach(d, b.connection), "detaching twice is a no-op");
    }

    #[test]
    fn send_goes_to_the_newest_connection_with_a_cmd_id() {
        let hub = hub();
        let d = device(2);
        assert_eq!(
            hub.send(d, DeviceCommand::DropConnection),
            Err(Offline { device: d })
        );
        let mut old = hub.attach(d);
        let mut new = hub.attach(d);
        let id = hub
            .run_backup(d, ScheduleId::new(1, 1), JobId::new(1, 2))
            .unwrap();
        assert!(id.as_str().starts_with("cmd_"), "{id}");
        assert!(old.outgoing.try_recv().is_err());
        match new.outgoing.try_recv().unwrap() {
            Outgoing::Command {
                command_id,
                command,
            } => {
                assert_eq!(command_id, id);
                assert!(matches!(command, DeviceCommand::RunBackup { .. }));
            }
            other => panic!("{other:?}"),
        }
        // The newest session ended without detaching yet: the older one gets the command.
        drop(new.outgoing);
        assert!(hub.send(d, DeviceCommand::DropConnection).is_ok());
        assert!(old.outgoing.try_recv().is_ok());
    }

    #[test]
    fn offline_devices_come_due_once() {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000_000));
        let hub = DeviceHub::new(clock.clone());
        let (d, seeded) = (device(3), device(4));
        let a = hub.attach(d);
        clock.advance_secs(10);
        assert!(hub.detach(d, a.connection));
        let t = clock.now_secs();
        assert_eq!(hub.offline_before(t - 1, || vec![seeded]), vec![seeded]);
        let mut due = hub.offline_before(t, Vec::new);
        due.sort();
        let mut expected = vec![d, seeded];
        expected.sort();
        assert_eq!(due, expected);
        hub.swept(d, t);
        assert_eq!(hub.offline_before(t, Vec::new), vec![seeded]);
        // Back online: no longer due.
        let _b = hub.attach(seeded);
        assert!(hub.offline_before(t, Vec::new).is_empty());
    }
}
