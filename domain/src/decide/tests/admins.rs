use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::TenantRef;
use crate::model::*;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

const ROOT: TenantRef = TenantRef::Root;
const ACME: TenantRef = TenantRef::Tenant(T1);

fn create(tenant: TenantRef, username: &str) -> CreateAdmin {
    CreateAdmin {
        admin_id: A2,
        tenant,
        spec: admin_spec(username),
        password_hash: "hash".into(),
    }
}

#[test]
fn creates_root_and_tenant_admins() {
    given([]).when(create(ROOT, "root")).then([AdminCreated {
        admin_id: A2,
        tenant: ROOT,
        spec: admin_spec("root"),
        password_hash: "hash".into(),
    }
    .into()]);
    // Admin names may repeat across tenants.
    let state = given([tenant(T1, "acme"), admin(A1, ROOT, "ops")])
        .when(create(ACME, "ops"))
        .then([AdminCreated {
            admin_id: A2,
            tenant: ACME,
            spec: admin_spec("ops"),
            password_hash: "hash".into(),
        }
        .into()]);
    assert_eq!(state.admin_by_name(ACME, "ops"), Some(A2));
    assert_eq!(state.admin_by_name(ROOT, "ops"), Some(A1));
}

#[test]
fn rejects_a_name_taken_in_the_same_tenant() {
    given([tenant(T1, "acme"), admin(A1, ACME, "ops")])
        .when(create(ACME, "ops"))
        .then_conflict("username");
}

#[test]
fn rejects_bad_admin_fields() {
    given([]).when(create(ROOT, "a b")).then_invalid("username");
    given([]).when(create(ROOT, "")).then_invalid("username");
    let mut c = create(ROOT, "ops");
    c.password_hash.clear();
    given([]).when(c).then_invalid("password");
    given([]).when(create(ACME, "ops")).then_not_found("tenant");
    given([admin(A2, ROOT, "x")])
        .when(create(ROOT, "ops"))
        .then_already_exists("admin");
}

#[test]
fn allowed_user_policies_must_be_the_tenants_own() {
    let mut c = create(ACME, "ops");
    c.spec.permissions.allowed_user_policies = vec![P1, P2];
    given([
        tenant(T1, "acme"),
        policy(P1, ACME, false),
        policy(P2, ROOT, false),
    ])
    .when(c.clone())
    .then_invalid("permissions.allowed_user_policies[1]");
    given([
        tenant(T1, "acme"),
        policy(P1, ACME, false),
        policy(P2, ACME, false),
    ])
    .when(c)
    .events();
}

#[test]
fn updates_spec_and_password_separately() {
    let mut spec = admin_spec("ops2");
    spec.permissions.allow_edit_webhooks = true;
    given([admin(A1, ROOT, "ops")])
        .when(UpdateAdmin {
            admin_id: A1,
            patch: AdminPatch {
                username: Some("ops2".into()),
                permissions: Some(spec.permissions.clone()),
                password_hash: Some("new".into()),
            },
        })
        .then([
            AdminUpdated {
                admin_id: A1,
                tenant: ROOT,
                spec,
            }
            .into(),
            AdminPasswordChanged {
                admin_id: A1,
                tenant: ROOT,
                password_hash: "new".into(),
            }
            .into(),
        ]);
}

#[test]
fn update_rejects_taken_name_empty_hash_and_unknown_admin() {
    let rename = |name: &str| UpdateAdmin {
        admin_id: A1,
        patch: AdminPatch {
            username: Some(name.into()),
            ..AdminPatch::default()
        },
    };
    given([admin(A1, ROOT, "ops"), admin(A2, ROOT, "dev")])
        .when(rename("dev"))
        .then_conflict("username");
    given([]).when(rename("dev")).then_not_found("admin");
    given([admin(A1, ROOT, "ops")])
        .when(UpdateAdmin {
            admin_id: A1,
            patch: AdminPatch {
                password_hash: Some(String::new()),
                ..AdminPatch::default()
            },
        })
        .then_invalid("password");
}

#[test]
fn removes_admins_but_never_the_last_root_admin() {
    given([admin(A1, ROOT, "ops"), admin(A2, ROOT, "dev")])
        .when(RemoveAdmin { admin_id: A2 })
        .then([AdminRemoved {
            admin_id: A2,
            tenant: ROOT,
        }
        .into()]);
    given([admin(A1, ROOT, "ops")])
        .when(RemoveAdmin { admin_id: A1 })
        .then_conflict("admin_id");
    given([])
        .when(RemoveAdmin { admin_id: A1 })
        .then_not_found("admin");
}

fn login(username: &str, succeeded: bool) -> RecordAdminLogin {
    RecordAdminLogin {
        tenant: ROOT,
        username: username.into(),
        succeeded,
    }
}

fn failed(username: &str, admin_id: Option<crate::ids::AdminId>, at: i64) -> Event {
    AdminLoginFailed {
        tenant: ROOT,
        username: username.into(),
        admin_id,
        at,
    }
    .into()
}

#[test]
fn records_logins_and_failures_without_passwords() {
    given([admin(A1, ROOT, "ops")])
        .when(login("ops", true))
        .then([AdminLoggedIn {
            admin_id: A1,
            tenant: ROOT,
            at: NOW,
        }
        .into()]);
    given([admin(A1, ROOT, "ops")])
        .when(login("ops", false))
        .then([failed("ops", Some(A1), NOW)]);
    let unknown = given([]).when(login("ghost", false)).events();
    assert_eq!(unknown, [failed("ghost", None, NOW)]);
    assert_eq!(unknown[0].stream(), LOGIN_STREAM);
    given([]).when(login("ghost", true)).then_not_found("admin");
}

#[test]
fn locks_out_after_max_failures_until_the_lockout_ends() {
    // Initial protection: 5 failures, 900 s lockout.
    let mut history = vec![admin(A1, ROOT, "ops")];
    history.extend((0..5).map(|i| failed("ops", Some(A1), NOW - 50 + i)));
    let until = NOW - 46 + 900;
    given(history.clone())
        .when(login("ops", true))
        .then_err(DomainError::LockedOut { until });
    given(history.clone())
        .when(login("ops", false))
        .then_err(DomainError::LockedOut { until });
    given(history).at(until).when(login("ops", true)).events();
}

#[test]
fn a_success_or_a_quiet_period_resets_the_failure_count() {
    let mut history = vec![admin(A1, ROOT, "ops")];
    history.extend((0..4).map(|i| failed("ops", Some(A1), NOW - 50 + i)));
    history.push(
        AdminLoggedIn {
            admin_id: A1,
            tenant: ROOT,
            at: NOW - 40,
        }
        .into(),
    );
    history.push(failed("ops", Some(A1), NOW - 30));
    let state = given(history)
        .when(login("ops", true))
        .then([AdminLoggedIn {
            admin_id: A1,
            tenant: ROOT,
            at: NOW,
        }
        .into()]);
    assert!(state.admin_login_failures(ROOT, "ops").is_none());

    let mut spread = vec![admin(A1, ROOT, "ops")];
    spread.extend((0..5).map(|i| failed("ops", Some(A1), NOW - 10_000 + i * 1_000)));
    given(spread).when(login("ops", true)).events();
}

#[test]
fn admins_of_a_suspended_tenant_cannot_log_in() {
    let mut spec = tenant_spec("acme");
    spec.suspended = true;
    given([
        tenant(T1, "acme"),
        TenantUpdated {
            tenant_id: T1,
            spec,
        }
        .into(),
        admin(A2, ACME, "ops"),
    ])
    .when(RecordAdminLogin {
        tenant: ACME,
        username: "ops".into(),
        succeeded: true,
    })
    .then_err(DomainError::Suspended {
        kind: "tenant",
        id: T1.to_string(),
    });
}

#[test]
fn permissions_default_to_nothing_allowed() {
    let p = Permissions::default();
    assert!(!p.allow_edit_email_options && !p.allow_upgrade_campaigns);
    assert!(p.allowed_user_policies.is_empty());
}
