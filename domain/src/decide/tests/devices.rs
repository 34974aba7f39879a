use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::TenantRef;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

const ACME: TenantRef = TenantRef::Tenant(T1);

fn register() -> RegisterDevice {
    RegisterDevice {
        device_id: D2,
        user_id: U1,
        spec: device_spec(),
        token_hash: "th".into(),
    }
}

fn with_user(f: fn(&mut crate::model::UserSpec)) -> Vec<Event> {
    let mut history = world();
    let mut spec = user_spec("alice");
    f(&mut spec);
    history.push(
        UserUpdated {
            user_id: U1,
            tenant: ACME,
            spec,
        }
        .into(),
    );
    history
}

#[test]
fn registers_a_device() {
    let state = given(world()).when(register()).then([DeviceRegistered {
        device_id: D2,
        tenant: ACME,
        user_id: U1,
        spec: device_spec(),
        token_hash: "th".into(),
        at: NOW,
    }
    .into()]);
    assert_eq!(state.user_devices(U1).count(), 2);
    assert!(!state.device(D2).unwrap().online());
}

#[test]
fn respects_the_users_device_limit() {
    given(with_user(|u| u.max_devices = Some(1)))
        .when(register())
        .then_err(DomainError::LimitReached {
            what: "devices",
            limit: 1,
        });
    given(with_user(|u| u.max_devices = Some(2)))
        .when(register())
        .events();
}

#[test]
fn suspended_users_and_tenants_register_no_devices() {
    given(with_user(|u| u.suspended = true))
        .when(register())
        .then_err(DomainError::Suspended {
            kind: "user",
            id: U1.to_string(),
        });
    let mut history = world();
    let mut spec = tenant_spec("acme");
    spec.suspended = true;
    history.push(
        TenantUpdated {
            tenant_id: T1,
            spec,
        }
        .into(),
    );
    given(history)
        .when(register())
        .then_err(DomainError::Suspended {
            kind: "tenant",
            id: T1.to_string(),
        });
}

#[test]
fn rejects_bad_registrations() {
    let bad = |f: fn(&mut RegisterDevice)| {
        let mut c = register();
        f(&mut c);
        c
    };
    given(world())
        .when(bad(|c| c.spec.timezone = "Nowhere/Town".into()))
        .then_invalid("timezone");
    given(world())
        .when(bad(|c| c.spec.friendly_name.clear()))
        .then_invalid("friendly_name");
    given(world())
        .when(bad(|c| c.spec.platform = "a\u{7}".into()))
        .then_invalid("platform");
    given(world())
        .when(bad(|c| c.token_hash.clear()))
        .then_invalid("device_token");
    given(world())
        .when(bad(|c| c.user_id = U2))
        .then_not_found("user");
    given(world())
        .when(bad(|c| c.device_id = D1))
        .then_already_exists("device");
}

#[test]
fn connects_and_disconnects_counting_connections() {
    let connect = || ConnectDevice {
        device_id: D1,
        ip: Some("192.0.2.1".into()),
        client_version: "24.10.0".into(),
    };
    let state = given(world()).when(connect()).then([DeviceConnected {
        device_id: D1,
        tenant: ACME,
        user_id: U1,
        at: NOW,
        ip: Some("192.0.2.1".into()),
        client_version: "24.10.0".into(),
    }
    .into()]);
    let d = state.device(D1).unwrap();
    assert!(d.online());
    assert_eq!(d.connected_since, Some(NOW));
    assert_eq!(d.spec.client_version, "24.10.0");

    let mut history = world();
    history.push(connected(D1, ACME, U1));
    let state = given(history)
        .when(DisconnectDevice { device_id: D1 })
        .then([DeviceDisconnected {
            device_id: D1,
            tenant: ACME,
            user_id: U1,
            at: NOW,
        }
        .into()]);
    assert!(!state.device(D1).unwrap().online());
    assert_eq!(state.device(D1).unwrap().connected_since, None);
}

#[test]
fn rejects_disconnecting_an_offline_device_and_unknown_devices() {
    given(world())
        .when(DisconnectDevice { device_id: D1 })
        .then_transition("disconnect");
    given(world())
        .when(ConnectDevice {
            device_id: D2,
            ip: None,
            client_version: "1".into(),
        })
        .then_not_found("device");
    given(with_user(|u| u.suspended = true))
        .when(ConnectDevice {
            device_id: D1,
            ip: None,
            client_version: "1".into(),
        })
        .then_err(DomainError::Suspended {
            kind: "user",
            id: U1.to_string(),
        });
}

#[test]
fn removes_a_device() {
    let state = given(world())
        .when(RemoveDevice { device_id: D1 })
        .then([DeviceRemoved {
            device_id: D1,
            tenant: ACME,
            user_id: U1,
        }
        .into()]);
    assert_eq!(state.user_devices(U1).count(), 0);
    given([])
        .when(RemoveDevice { device_id: D1 })
        .then_not_found("device");
}

#[test]
fn a_server_start_drops_every_live_connection() {
    let mut history = world();
    history.push(connected(D1, ACME, U1));
    history.push(connected(D1, ACME, U1));
    let state = given(history)
        .when(RecordServerStarted {
            version: "0.1.0".into(),
        })
        .then([ServerStarted {
            version: "0.1.0".into(),
            at: NOW,
        }
        .into()]);
    let d = state.device(D1).unwrap();
    assert!(!d.online());
    assert_eq!(d.connected_since, None);
}
