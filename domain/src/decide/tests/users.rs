use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::TenantRef;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

const ROOT: TenantRef = TenantRef::Root;
const ACME: TenantRef = TenantRef::Tenant(T1);
const BETA: TenantRef = TenantRef::Tenant(T2);

fn create(tenant: TenantRef, username: &str) -> CreateUser {
    CreateUser {
        user_id: U2,
        tenant,
        spec: user_spec(username),
        password_hash: "hash".into(),
    }
}

fn patch(patch: UserPatch) -> UpdateUser {
    UpdateUser { user_id: U1, patch }
}

#[test]
fn creates_a_user_with_the_tenants_default_policy() {
    let mut spec = user_spec("bob");
    spec.policy = Some(P1);
    let state = given([tenant(T1, "acme"), policy(P1, ACME, true)])
        .when(create(ACME, "bob"))
        .then([UserCreated {
            user_id: U2,
            tenant: ACME,
            spec,
            password_hash: "hash".into(),
        }
        .into()]);
    assert_eq!(state.user_by_name("bob"), Some(U2));
}

#[test]
fn usernames_are_unique_server_wide_and_case_sensitive() {
    given(world())
        .when(create(ROOT, "alice"))
        .then_conflict("username");
    given([
        tenant(T1, "acme"),
        tenant(T2, "beta"),
        user(U1, BETA, "alice"),
    ])
    .when(create(ACME, "alice"))
    .then_conflict("username");
    given(world()).when(create(ROOT, "Alice")).events();
}

#[test]
fn rejects_bad_user_fields() {
    let bad = |f: fn(&mut CreateUser)| {
        let mut c = create(ROOT, "bob");
        f(&mut c);
        c
    };
    given([])
        .when(bad(|c| c.spec.username = "bob smith".into()))
        .then_invalid("username");
    given([])
        .when(bad(|c| c.spec.username = "x".repeat(256)))
        .then_invalid("username");
    given([])
        .when(bad(|c| c.spec.username.clear()))
        .then_invalid("username");
    given([])
        .when(bad(|c| c.spec.emails.push("nope".into())))
        .then_invalid("emails[1]");
    given([])
        .when(bad(|c| c.spec.timezone = "Europe/Atlantis".into()))
        .then_invalid("timezone");
    given([])
        .when(bad(|c| c.spec.language = "en US".into()))
        .then_invalid("language");
    given([])
        .when(bad(|c| c.spec.account_name = "a\tb".into()))
        .then_invalid("account_name");
    given([])
        .when(bad(|c| c.password_hash.clear()))
        .then_invalid("password");
    given([]).when(create(ACME, "bob")).then_not_found("tenant");
    given([user(U2, ROOT, "carol")])
        .when(create(ROOT, "bob"))
        .then_already_exists("user");
}

#[test]
fn a_users_policy_must_belong_to_the_users_tenant() {
    let mut c = create(ACME, "bob");
    c.spec.policy = Some(P1);
    given([tenant(T1, "acme"), policy(P1, ROOT, false)])
        .when(c)
        .then_invalid("policy_id");
    given(world())
        .when(patch(UserPatch {
            policy: Some(Some(P2)),
            ..UserPatch::default()
        }))
        .then_invalid("policy_id");
}

#[test]
fn updates_profile_and_password() {
    let mut spec = user_spec("alice2");
    spec.max_devices = Some(2);
    let state = given(world())
        .when(patch(UserPatch {
            username: Some("alice2".into()),
            max_devices: Some(Some(2)),
            password_hash: Some("new".into()),
            ..UserPatch::default()
        }))
        .then([
            UserUpdated {
                user_id: U1,
                tenant: ACME,
                spec,
            }
            .into(),
            UserPasswordChanged {
                user_id: U1,
                tenant: ACME,
                password_hash: "new".into(),
            }
            .into(),
        ]);
    assert_eq!(state.user_by_name("alice"), None);
    assert_eq!(state.user_by_name("alice2"), Some(U1));
    given(world())
        .when(patch(UserPatch {
            timezone: Some("Europe/Berlin".into()),
            ..UserPatch::default()
        }))
        .then([]);
}

#[test]
fn update_rejects_a_taken_name_and_unknown_users() {
    let mut history = world();
    history.push(user(U2, ROOT, "bob"));
    given(history)
        .when(patch(UserPatch {
            username: Some("bob".into()),
            ..UserPatch::default()
        }))
        .then_conflict("username");
    given([])
        .when(patch(UserPatch::default()))
        .then_not_found("user");
    given(world())
        .when(patch(UserPatch {
            password_hash: Some(String::new()),
            ..UserPatch::default()
        }))
        .then_invalid("password");
}

#[test]
fn removing_a_user_drops_its_schedules_and_devices_and_frees_its_name() {
    let state = given(world())
        .when(RemoveUser { user_id: U1 })
        .then([UserRemoved {
            user_id: U1,
            tenant: ACME,
        }
        .into()]);
    assert!(state.user(U1).is_none());
    assert!(state.schedule(S1).is_none());
    assert!(state.device(D1).is_none());
    assert_eq!(state.item_owner(I1), None);
    assert_eq!(state.user_by_name("alice"), None);
    given([])
        .when(RemoveUser { user_id: U1 })
        .then_not_found("user");
}

#[test]
fn transfers_a_user_listing_online_and_offline_devices() {
    let mut history = world();
    history.extend([
        tenant(T2, "beta"),
        policy(P2, BETA, true),
        device(D2, ACME, U1),
        connected(D2, ACME, U1),
    ]);
    let state = given(history)
        .when(TransferUser {
            user_id: U1,
            to: BETA,
        })
        .then([UserTransferred {
            user_id: U1,
            from: ACME,
            to: BETA,
            policy: Some(P2),
            online_devices: vec![D2],
            offline_devices: vec![D1],
        }
        .into()]);
    assert_eq!(state.user(U1).unwrap().tenant, BETA);
    assert_eq!(state.user(U1).unwrap().spec.policy, Some(P2));
    assert_eq!(state.schedule(S1).unwrap().tenant, BETA);
    assert_eq!(state.device(D1).unwrap().tenant, BETA);
}

#[test]
fn transfer_rejects_same_unknown_or_removed_targets() {
    given(world())
        .when(TransferUser {
            user_id: U1,
            to: ACME,
        })
        .then_invalid("tenant_id");
    given(world())
        .when(TransferUser {
            user_id: U1,
            to: BETA,
        })
        .then_not_found("tenant");
    given([])
        .when(TransferUser {
            user_id: U1,
            to: ROOT,
        })
        .then_not_found("user");
    let mut history = world();
    history.extend([tenant(T2, "beta"), TenantRemoved { tenant_id: T2 }.into()]);
    given(history)
        .when(TransferUser {
            user_id: U1,
            to: BETA,
        })
        .then_err(DomainError::TenantRemoved { id: T2 });
}

fn login(username: &str, succeeded: bool) -> RecordUserLogin {
    RecordUserLogin {
        username: username.into(),
        succeeded,
    }
}

#[test]
fn records_user_logins_and_locks_out() {
    given(world())
        .when(login("alice", true))
        .then([UserLoggedIn {
            user_id: U1,
            tenant: ACME,
            at: NOW,
        }
        .into()]);
    given(world())
        .when(login("ghost", false))
        .then([UserLoginFailed {
            tenant: ROOT,
            username: "ghost".into(),
            user_id: None,
            at: NOW,
        }
        .into()]);
    given([]).when(login("ghost", true)).then_not_found("user");
    let mut history = world();
    history.extend((0..5).map(|i| {
        Event::from(UserLoginFailed {
            tenant: ACME,
            username: "alice".into(),
            user_id: Some(U1),
            at: NOW - 10 + i,
        })
    }));
    given(history)
        .when(login("alice", true))
        .then_err(DomainError::LockedOut {
            until: NOW - 6 + 900,
        });
}

#[test]
fn suspended_users_cannot_log_in() {
    let mut history = world();
    let mut spec = user_spec("alice");
    spec.suspended = true;
    history.push(
        UserUpdated {
            user_id: U1,
            tenant: ACME,
            spec,
        }
        .into(),
    );
    given(history)
        .when(login("alice", true))
        .then_err(DomainError::Suspended {
            kind: "user",
            id: U1.to_string(),
        });
}
