//! Ids, specs and creation events the decide tests build on.

use std::collections::BTreeMap;

use crate::events::*;
use crate::ids::*;
use crate::model::*;

macro_rules! fixture_ids {
    ($($name:ident: $ty:ident = $n:literal;)*) => {
        $(pub const $name: $ty = $ty::from_ulid(ulid::Ulid(1_700_000_000_000u128 << 80 | $n));)*
    };
}

fixture_ids! {
    T1: TenantId = 1;
    T2: TenantId = 2;
    A1: AdminId = 11;
    A2: AdminId = 12;
    U1: UserId = 21;
    U2: UserId = 22;
    P1: PolicyId = 31;
    P2: PolicyId = 32;
    I1: ItemId = 41;
    I2: ItemId = 42;
    V1: VaultId = 51;
    V2: VaultId = 52;
    S1: ScheduleId = 61;
    S2: ScheduleId = 62;
    D1: DeviceId = 71;
    D2: DeviceId = 72;
    J1: JobId = 81;
    J2: JobId = 82;
}

pub fn tenant_spec(slug: &str) -> TenantSpec {
    TenantSpec {
        name: format!("Tenant {slug}"),
        slug: slug.into(),
        hosts: vec![],
        suspended: false,
    }
}

pub fn tenant(id: TenantId, slug: &str) -> Event {
    TenantCreated {
        tenant_id: id,
        spec: tenant_spec(slug),
    }
    .into()
}

pub fn admin_spec(username: &str) -> AdminSpec {
    AdminSpec {
        username: username.into(),
        permissions: Permissions::default(),
    }
}

pub fn admin(id: AdminId, tenant: TenantRef, username: &str) -> Event {
    AdminCreated {
        admin_id: id,
        tenant,
        spec: admin_spec(username),
        password_hash: "hash".into(),
    }
    .into()
}

pub fn policy_spec(name: &str, is_default: bool) -> PolicySpec {
    PolicySpec {
        name: name.into(),
        description: String::new(),
        is_default,
        random_delay_secs: None,
        settings: BTreeMap::new(),
    }
}

pub fn policy(id: PolicyId, tenant: TenantRef, is_default: bool) -> Event {
    PolicyCreated {
        policy_id: id,
        tenant,
        spec: policy_spec("Standard", is_default),
    }
    .into()
}

pub fn user_spec(username: &str) -> UserSpec {
    UserSpec {
        username: username.into(),
        account_name: "Account".into(),
        emails: vec!["someone@example.test".into()],
        timezone: "Europe/Berlin".into(),
        language: "en".into(),
        policy: None,
        suspended: false,
        max_devices: None,
        quota_bytes: None,
    }
}

pub fn user(id: UserId, tenant: TenantRef, username: &str) -> Event {
    UserCreated {
        user_id: id,
        tenant,
        spec: user_spec(username),
        password_hash: "hash".into(),
    }
    .into()
}

pub fn item_spec(name: &str) -> ItemSpec {
    ItemSpec {
        name: name.into(),
        engine: "files".into(),
        owner_device: None,
        settings: BTreeMap::new(),
    }
}

pub fn item(id: ItemId, tenant: TenantRef, user: UserId) -> Event {
    ItemCreated {
        item_id: id,
        tenant,
        user_id: user,
        spec: item_spec("Documents"),
    }
    .into()
}

pub fn vault_spec(address: &str) -> VaultSpec {
    VaultSpec {
        name: "Offsite".into(),
        kind: "s3".into(),
        address: address.into(),
        bucket: "b".into(),
        quota_bytes: None,
    }
}

pub fn vault(id: VaultId, tenant: TenantRef, user: UserId, address: &str) -> Event {
    VaultCreated {
        vault_id: id,
        tenant,
        user_id: user,
        spec: vault_spec(address),
    }
    .into()
}

pub fn hourly() -> Trigger {
    Trigger {
        frequency: Frequency::Hourly { seconds_past: 0 },
        window: None,
        days: None,
        random_delay_secs: None,
    }
}

pub fn schedule_spec(item: ItemId, vault: VaultId) -> ScheduleSpec {
    ScheduleSpec {
        name: "Hourly".into(),
        item,
        vault,
        skip_if_running: true,
        triggers: vec![hourly()],
    }
}

pub fn schedule(
    id: ScheduleId,
    tenant: TenantRef,
    user: UserId,
    item: ItemId,
    vault: VaultId,
) -> Event {
    ScheduleCreated {
        schedule_id: id,
        tenant,
        user_id: user,
        spec: schedule_spec(item, vault),
        at: super::gwt::NOW - 3600,
    }
    .into()
}

pub fn device_spec() -> DeviceSpec {
    DeviceSpec {
        friendly_name: "laptop".into(),
        platform: "linux".into(),
        arch: "x86_64".into(),
        os_version: "6.1".into(),
        client_version: "24.9.1".into(),
        timezone: "Europe/Berlin".into(),
    }
}

pub fn device(id: DeviceId, tenant: TenantRef, user: UserId) -> Event {
    DeviceRegistered {
        device_id: id,
        tenant,
        user_id: user,
        spec: device_spec(),
        token_hash: "tokenhash".into(),
        at: super::gwt::NOW - 7200,
    }
    .into()
}

pub fn connected(id: DeviceId, tenant: TenantRef, user: UserId) -> Event {
    DeviceConnected {
        device_id: id,
        tenant,
        user_id: user,
        at: super::gwt::NOW - 600,
        ip: None,
        client_version: "24.9.1".into(),
    }
    .into()
}

pub fn job_started(
    id: JobId,
    tenant: TenantRef,
    user: UserId,
    device: DeviceId,
    schedule: Option<ScheduleId>,
) -> Event {
    JobStarted {
        job_id: id,
        tenant,
        user_id: user,
        device_id: device,
        item_id: Some(I1),
        vault_id: Some(V1),
        schedule_id: schedule,
        classification: Classification::Backup,
        started_at: super::gwt::NOW - 300,
        client_version: "24.9.1".into(),
    }
    .into()
}

/// Tenant T1 with user U1 (`alice`), its item I1, vault V1, device D1 and schedule S1.
pub fn world() -> Vec<Event> {
    let t = TenantRef::Tenant(T1);
    vec![
        tenant(T1, "acme"),
        user(U1, t, "alice"),
        item(I1, t, U1),
        vault(V1, t, U1, "s3.old.test"),
        device(D1, t, U1),
        schedule(S1, t, U1, I1, V1),
    ]
}
