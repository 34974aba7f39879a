use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::{DeviceId, TenantRef, UserId};

/// What a device says about itself when it registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub friendly_name: String,
    pub platform: String,
    pub arch: String,
    pub os_version: String,
    pub client_version: String,
    pub timezone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: DeviceId,
    pub tenant: TenantRef,
    pub user: UserId,
    pub spec: DeviceSpec,
    /// Unix seconds.
    pub registered_at: i64,
    /// Hash of the device token; the token itself is shown to the device once.
    pub token_hash: String,
    /// Live connections; the device is online while this is above zero.
    pub connections: u32,
    /// Start of the current online period (Unix seconds), `None` while offline.
    pub connected_since: Option<i64>,
    pub ip: Option<String>,
}

impl Device {
    pub fn online(&self) -> bool {
        self.connections > 0
    }

    pub fn evolve(state: Option<Device>, event: &Event) -> Option<Device> {
        match (state, event) {
            (None, Event::DeviceRegistered(e)) => Some(Device {
                id: e.device_id,
                tenant: e.tenant,
                user: e.user_id,
                spec: e.spec.clone(),
                registered_at: e.at,
                token_hash: e.token_hash.clone(),
                connections: 0,
                connected_since: None,
                ip: None,
            }),
            (Some(mut d), Event::DeviceConnected(e)) => {
                if d.connections == 0 {
                    d.connected_since = Some(e.at);
                }
                d.connections += 1;
                d.ip = e.ip.clone().or(d.ip);
                d.spec.client_version = e.client_version.clone();
                Some(d)
            }
            (Some(mut d), Event::DeviceDisconnected(_)) => {
                d.connections = d.connections.saturating_sub(1);
                if d.connections == 0 {
                    d.connected_since = None;
                }
                Some(d)
            }
            (Some(mut d), Event::UserTransferred(e)) if e.user_id == d.user => {
                d.tenant = e.to;
                Some(d)
            }
            // A start means the previous process is gone, and every connection it held too.
            (Some(mut d), Event::ServerStarted(_)) => {
                d.connections = 0;
                d.connected_since = None;
                Some(d)
            }
            (Some(_), Event::DeviceRemoved(_)) => None,
            (state, _) => state,
        }
    }
}
