use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::ids::{DeviceId, ItemId, PolicyId, TenantRef, UserId, VaultId};

/// What an admin sets on a user; created and replaced whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    /// `[a-zA-Z0-9_.@-]`, 1–255 chars, case-sensitive, unique server-wide.
    pub username: String,
    pub account_name: String,
    pub emails: Vec<String>,
    /// IANA name; the user's schedules are evaluated in it.
    pub timezone: String,
    pub language: String,
    pub policy: Option<PolicyId>,
    pub suspended: bool,
    /// `None` means no limit.
    pub max_devices: Option<u32>,
    /// Protected-items quota in bytes; `None` means no limit.
    pub quota_bytes: Option<u64>,
}

/// What to back up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemSpec {
    pub name: String,
    /// Backup engine, e.g. `files`, `mysql`, `mssql`.
    pub engine: String,
    pub owner_device: Option<DeviceId>,
    /// Engine-specific options.
    pub settings: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedItem {
    pub id: ItemId,
    pub spec: ItemSpec,
}

/// Where to back up to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultSpec {
    pub name: String,
    /// Storage kind, e.g. `s3`, `local`, `halley`.
    pub kind: String,
    /// Address or host of the storage.
    pub address: String,
    pub bucket: String,
    pub quota_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vault {
    pub id: VaultId,
    pub spec: VaultSpec,
}

/// A user together with its protected items and storage vaults, which live in the user's
/// stream so that a user and everything it owns change under one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub tenant: TenantRef,
    pub spec: UserSpec,
    pub password_hash: String,
    pub items: BTreeMap<ItemId, ProtectedItem>,
    pub vaults: BTreeMap<VaultId, Vault>,
}

impl User {
    pub fn evolve(state: Option<User>, event: &Event) -> Option<User> {
        let mut user = match (state, event) {
            (None, Event::UserCreated(e)) => {
                return Some(User {
                    id: e.user_id,
                    tenant: e.tenant,
                    spec: e.spec.clone(),
                    password_hash: e.password_hash.clone(),
                    items: BTreeMap::new(),
                    vaults: BTreeMap::new(),
                })
            }
            (Some(_), Event::UserRemoved(_)) => return None,
            (Some(user), _) => user,
            (None, _) => return None,
        };
        match event {
            Event::UserUpdated(e) => user.spec = e.spec.clone(),
            Event::UserPasswordChanged(e) => user.password_hash = e.password_hash.clone(),
            Event::UserTransferred(e) => {
                user.tenant = e.to;
                user.spec.policy = e.policy;
            }
            Event::ItemCreated(e) => user.put_item(e.item_id, &e.spec),
            Event::ItemUpdated(e) => user.put_item(e.item_id, &e.spec),
            Event::ItemDuplicated(e) => user.put_item(e.item_id, &e.spec),
            Event::ItemRemoved(e) => {
                user.items.remove(&e.item_id);
            }
            Event::VaultCreated(e) => user.put_vault(e.vault_id, &e.spec),
            Event::VaultUpdated(e) => user.put_vault(e.vault_id, &e.spec),
            Event::VaultRemoved(e) => {
                user.vaults.remove(&e.vault_id);
            }
            Event::VaultAddressReplaced(e) => {
                if let Some(vault) = user.vaults.get_mut(&e.vault_id) {
                    vault.spec.address = e.new_address.clone();
                }
            }
            _ => {}
        }
        Some(user)
    }

    fn put_item(&mut self, id: ItemId, spec: &ItemSpec) {
        let item = ProtectedItem {
            id,
            spec: spec.clone(),
        };
        self.items.insert(id, item);
    }

    fn put_vault(&mut self, id: VaultId, spec: &VaultSpec) {
        let vault = Vault {
            id,
            spec: spec.clone(),
        };
        self.vaults.insert(id, vault);
    }
}
