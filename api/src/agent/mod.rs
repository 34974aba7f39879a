//! The agent side of the API: the [`DeviceHub`] of live connections, device tokens and the
//! [`DeviceAuth`] extractor, the WebSocket session, job reports, and the sweep that marks a
//! job abandoned when its device dropped mid-job and did not come back in time.

pub mod hub;
pub mod reports;
pub(crate) mod session;

pub use hub::{DeviceCommand, DeviceHub};

use std::future::{ready, Ready};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use domain::commands::{AbandonJob, ConnectDevice, DisconnectDevice};
use domain::{DeviceId, JobId};
use sha2::{Digest, Sha256};

use crate::problem::ApiError;
use crate::state::AppState;
use crate::write::Write;

/// A fresh device token, `dev_…​.<secret>`: the device id says which device to check the
/// secret against, so a token is verified without an index of token hashes.
pub fn new_device_token(device: DeviceId) -> String {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    format!("{device}.{}", URL_SAFE_NO_PAD.encode(secret))
}

/// What the log keeps of a device token: its SHA-256, hex. The token carries 256 random
/// bits, so a fast hash is enough (unlike passwords).
pub fn device_token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An agent authenticated by its device token (`Authorization: Bearer dev_….<secret>`). A
/// removed device's token no longer verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAuth {
    pub device: DeviceId,
}

impl FromRequest for DeviceAuth {
    type Error = ApiError;
    type Future = Ready<Result<DeviceAuth, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(device_of(req))
    }
}

fn device_of(req: &HttpRequest) -> Result<DeviceAuth, ApiError> {
    const INVALID: ApiError = ApiError::Unauthorized("missing, invalid or revoked device token");
    let (state, token) = crate::auth::bearer(req, INVALID)?;
    let (id, _) = token.split_once('.').ok_or(INVALID)?;
    let device = DeviceId::parse(id).map_err(|_| INVALID)?;
    let expected = state
        .read_models
        .read()
        .device(projections::Scope::Root, device)
        .map(|d| d.token_hash.clone())
        .ok_or(INVALID)?;
    if !constant_time_eq(device_token_hash(token).as_bytes(), expected.as_bytes()) {
        return Err(INVALID);
    }
    Ok(DeviceAuth { device })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new live connection of `device`: registers it with the hub and, if it brings the
/// device online, records `device.connected`. On failure nothing stays registered.
pub(crate) async fn connect(
    state: &AppState,
    device: DeviceId,
    ip: Option<String>,
) -> Result<hub::Attached, ApiError> {
    let presence = state.devices.presence(device);
    let _in_order = presence.lock().await;
    let attached = state.devices.attach(device);
    if attached.first {
        let client_version = state
            .read_models
            .read()
            .device(projections::Scope::Root, device)
            .map(|d| d.spec.client_version.clone())
            .unwrap_or_default();
        let written = Write::as_actor(state, device.to_string())
            .execute(ConnectDevice {
                device_id: device,
                ip,
                client_version,
            })
            .await;
        if let Err(e) = written {
            state.devices.detach(device, attached.connection);
            return Err(e);
        }
    }
    Ok(attached)
}

/// A live connection ended: forgets it and, if it was the device's last, records
/// `device.disconnected`.
pub(crate) async fn disconnect(state: &AppState, device: DeviceId, connection: hub::ConnectionId) {
    let presence = state.devices.presence(device);
    let _in_order = presence.lock().await;
    if !state.devices.detach(device, connection) {
        return;
    }
    match Write::as_actor(state, device.to_string())
        .execute(DisconnectDevice { device_id: device })
        .await
    {
        Ok(_) => {}
        // Revoked while connected: the device and its presence are gone already.
        Err(ApiError::NotFound(_)) => {}
        Err(e) => tracing::warn!(%device, error = %e, "recording a disconnection failed"),
    }
}

/// Marks abandoned (7007) every running job of a device that has been offline for longer
/// than the grace period; returns those jobs. Time comes from the state's clock, so tests
/// move a manual clock and call this directly.
pub async fn sweep_abandoned(state: &AppState) -> Result<Vec<JobId>, ApiError> {
    let grace = i64::try_from(state.config.job_abandon_grace_secs).unwrap_or(i64::MAX);
    let cutoff = state.now_secs().saturating_sub(grace);
    let due = state.devices.offline_before(cutoff, || {
        let models = state.read_models.read();
        let mut devices: Vec<DeviceId> = models
            .state()
            .jobs()
            .filter(|j| j.status.is_running())
            .filter_map(|j| j.device)
            .collect();
        devices.sort_unstable();
        devices.dedup();
        devices
    });
    let mut abandoned = Vec::new();
    for device in due {
        let running: Vec<JobId> = {
            let models = state.read_models.read();
            models
                .state()
                .jobs()
                .filter(|j| j.device == Some(device) && j.status.is_running())
                .map(|j| j.id)
                .collect()
        };
        for job in running {
            match Write::as_actor(state, "server".to_owned())
                .execute(AbandonJob { job_id: job })
                .await
            {
                Ok(_) => abandoned.push(job),
                // Finished or abandoned meanwhile (a report, an admin): nothing to do.
                Err(ApiError::Conflict { .. } | ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        state.devices.swept(device, cutoff);
    }
    Ok(abandoned)
}

/// A request for an immediate sweep, answered with the jobs it abandoned.
pub type SweepRequest = tokio::sync::oneshot::Sender<Result<Vec<JobId>, ApiError>>;

/// Runs [`sweep_abandoned`] every `every`, and at once for each request, until every sender
/// of `requests` is gone (the server's shutdown drops the last one, which also releases this
/// task's handle on the writer).
pub async fn run_abandon_sweeper(
    state: web::Data<AppState>,
    every: Duration,
    mut requests: tokio::sync::mpsc::Receiver<SweepRequest>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                None => return,
                Some(reply) => {
                    let _asker_gone = reply.send(sweep_abandoned(&state).await);
                }
            },
            _ = ticks.tick() => match sweep_abandoned(&state).await {
                Ok(jobs) if !jobs.is_empty() => {
                    tracing::info!(count = jobs.len(), "jobs of offline devices abandoned");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "abandonment sweep failed"),
            },
        }
    }
}
