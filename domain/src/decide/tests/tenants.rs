use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::TenantRef;
use crate::model::*;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

fn create(slug: &str) -> CreateTenant {
    CreateTenant {
        tenant_id: T2,
        spec: tenant_spec(slug),
    }
}

fn patch(patch: TenantPatch) -> UpdateTenant {
    UpdateTenant {
        tenant_id: T1,
        patch,
    }
}

#[test]
fn creates_a_tenant() {
    given([]).when(create("beta")).then([TenantCreated {
        tenant_id: T2,
        spec: tenant_spec("beta"),
    }
    .into()]);
}

#[test]
fn rejects_an_existing_or_removed_id() {
    given([tenant(T2, "beta")])
        .when(create("gamma"))
        .then_already_exists("tenant");
    given([tenant(T2, "beta"), TenantRemoved { tenant_id: T2 }.into()])
        .when(create("gamma"))
        .then_already_exists("tenant");
}

#[test]
fn rejects_bad_name_and_slug() {
    let mut c = create("beta");
    c.spec.name = " ".into();
    given([]).when(c).then_invalid("name");
    given([]).when(create("Beta")).then_invalid("slug");
    given([]).when(create("-beta")).then_invalid("slug");
}

#[test]
fn rejects_a_taken_slug() {
    given([tenant(T1, "acme")])
        .when(create("acme"))
        .then_conflict("slug");
}

#[test]
fn a_removed_tenants_slug_is_free_again() {
    given([tenant(T1, "acme"), TenantRemoved { tenant_id: T1 }.into()])
        .when(create("acme"))
        .then([TenantCreated {
            tenant_id: T2,
            spec: tenant_spec("acme"),
        }
        .into()]);
}

#[test]
fn rejects_bad_duplicate_or_taken_hosts() {
    let with_hosts = |hosts: &[&str]| {
        let mut c = create("beta");
        c.spec.hosts = hosts.iter().map(|h| h.to_string()).collect();
        c
    };
    given([])
        .when(with_hosts(&["Bad Host"]))
        .then_invalid("hosts[0]");
    given([])
        .when(with_hosts(&["a.test", "a.test"]))
        .then_invalid("hosts[1]");
    let mut acme = tenant_spec("acme");
    acme.hosts = vec!["backup.acme.test".into()];
    given([TenantCreated {
        tenant_id: T1,
        spec: acme,
    }
    .into()])
    .when(with_hosts(&["backup.acme.test"]))
    .then_conflict("hosts[0]");
}

#[test]
fn updates_only_the_patched_fields() {
    let mut spec = tenant_spec("acme");
    spec.suspended = true;
    given([tenant(T1, "acme")])
        .when(patch(TenantPatch {
            suspended: Some(true),
            ..TenantPatch::default()
        }))
        .then([TenantUpdated {
            tenant_id: T1,
            spec,
        }
        .into()]);
}

#[test]
fn an_update_that_changes_nothing_emits_nothing() {
    given([tenant(T1, "acme")])
        .when(patch(TenantPatch {
            slug: Some("acme".into()),
            ..TenantPatch::default()
        }))
        .then([]);
}

#[test]
fn update_rejects_anothers_slug_and_unknown_or_removed_tenants() {
    let to_beta = || {
        patch(TenantPatch {
            slug: Some("beta".into()),
            ..TenantPatch::default()
        })
    };
    given([tenant(T1, "acme"), tenant(T2, "beta")])
        .when(to_beta())
        .then_conflict("slug");
    given([]).when(to_beta()).then_not_found("tenant");
    given([tenant(T1, "acme"), TenantRemoved { tenant_id: T1 }.into()])
        .when(to_beta())
        .then_err(DomainError::TenantRemoved { id: T1 });
}

#[test]
fn removes_an_empty_tenant_with_its_admins_and_policies() {
    let t = TenantRef::Tenant(T1);
    let state = given([tenant(T1, "acme"), admin(A2, t, "ops"), policy(P1, t, true)])
        .when(RemoveTenant { tenant_id: T1 })
        .then([TenantRemoved { tenant_id: T1 }.into()]);
    assert!(state.tenant(T1).is_none());
    assert!(state.tenant_removed(T1));
    assert!(state.admin(A2).is_none());
    assert!(state.admin_by_name(t, "ops").is_none());
    assert!(state.policy(P1).is_none());
    assert_eq!(state.default_policy(t), None);
}

#[test]
fn refuses_to_remove_a_tenant_with_users() {
    given(world())
        .when(RemoveTenant { tenant_id: T1 })
        .then_conflict("tenant_id");
}

#[test]
fn a_removed_tenant_gets_no_new_objects() {
    let t = TenantRef::Tenant(T1);
    let removed = || {
        given([
            tenant(T1, "acme"),
            user(U2, TenantRef::Root, "bob"),
            TenantRemoved { tenant_id: T1 }.into(),
        ])
    };
    let gone = DomainError::TenantRemoved { id: T1 };
    removed()
        .when(CreateUser {
            user_id: U1,
            tenant: t,
            spec: user_spec("alice"),
            password_hash: "h".into(),
        })
        .then_err(gone.clone());
    removed()
        .when(CreateAdmin {
            admin_id: A2,
            tenant: t,
            spec: admin_spec("ops"),
            password_hash: "h".into(),
        })
        .then_err(gone.clone());
    removed()
        .when(CreatePolicy {
            policy_id: P1,
            tenant: t,
            spec: policy_spec("p", false),
        })
        .then_err(gone.clone());
    removed()
        .when(TransferUser { user_id: U2, to: t })
        .then_err(gone.clone());
    removed()
        .when(SetEmailSettings {
            tenant: t,
            settings: EmailSettings::disabled(),
        })
        .then_err(gone);
}

fn smtp() -> EmailSettings {
    EmailSettings {
        mode: EmailMode::Smtp,
        from_address: "backup@acme.test".into(),
        from_name: "Acme".into(),
        host: "smtp.acme.test".into(),
        port: 587,
        username: "u".into(),
        password: Some("pw".into()),
        allow_invalid_cert: false,
    }
}

fn set_email(tenant: TenantRef, settings: EmailSettings) -> SetEmailSettings {
    SetEmailSettings { tenant, settings }
}

#[test]
fn sets_tenant_and_root_email_settings() {
    let t = TenantRef::Tenant(T1);
    let state = given([tenant(T1, "acme")])
        .when(set_email(t, smtp()))
        .then([TenantEmailUpdated {
            tenant: t,
            settings: smtp(),
        }
        .into()]);
    assert_eq!(state.tenant(T1).unwrap().email, smtp());
    let state = given([])
        .when(set_email(TenantRef::Root, smtp()))
        .then([TenantEmailUpdated {
            tenant: TenantRef::Root,
            settings: smtp(),
        }
        .into()]);
    assert_eq!(state.root_email(), &smtp());
}

#[test]
fn the_email_password_is_kept_unless_given_and_cleared_by_empty() {
    let t = TenantRef::Tenant(T1);
    let before = [
        tenant(T1, "acme"),
        TenantEmailUpdated {
            tenant: t,
            settings: smtp(),
        }
        .into(),
    ];
    let mut no_password = smtp();
    no_password.password = None;
    no_password.port = 465;
    let mut kept = no_password.clone();
    kept.password = Some("pw".into());
    given(before.clone())
        .when(set_email(t, no_password.clone()))
        .then([TenantEmailUpdated {
            tenant: t,
            settings: kept,
        }
        .into()]);
    let mut clear = no_password.clone();
    clear.password = Some(String::new());
    given(before.clone())
        .when(set_email(t, clear))
        .then([TenantEmailUpdated {
            tenant: t,
            settings: no_password,
        }
        .into()]);
    let mut same = smtp();
    same.password = None;
    given(before).when(set_email(t, same)).then([]);
}

#[test]
fn rejects_bad_email_settings() {
    let t = TenantRef::Tenant(T1);
    given([])
        .when(set_email(TenantRef::Root, EmailSettings::inherit()))
        .then_invalid("mode");
    let bad = |f: fn(&mut EmailSettings)| {
        let mut s = smtp();
        f(&mut s);
        s
    };
    given([tenant(T1, "acme")])
        .when(set_email(t, bad(|s| s.host.clear())))
        .then_invalid("host");
    given([tenant(T1, "acme")])
        .when(set_email(t, bad(|s| s.port = 0)))
        .then_invalid("port");
    given([tenant(T1, "acme")])
        .when(set_email(t, bad(|s| s.from_address = "nobody".into())))
        .then_invalid("from_address");
    given([])
        .when(set_email(t, smtp()))
        .then_not_found("tenant");
}

fn server(patch: ServerSettingsPatch) -> UpdateServerSettings {
    UpdateServerSettings { patch }
}

#[test]
fn updates_server_settings() {
    let state = given([])
        .when(server(ServerSettingsPatch {
            random_delay_secs: Some(Some(18_000)),
            ..ServerSettingsPatch::default()
        }))
        .then([ServerSettingsUpdated {
            settings: ServerSettings {
                random_delay_secs: Some(18_000),
                ..ServerSettings::initial()
            },
        }
        .into()]);
    assert_eq!(state.server_settings().random_delay_secs, Some(18_000));
    given([])
        .when(server(ServerSettingsPatch {
            random_delay_secs: Some(None),
            ..ServerSettingsPatch::default()
        }))
        .then([]);
}

#[test]
fn rejects_bad_server_settings() {
    given([])
        .when(server(ServerSettingsPatch {
            random_delay_secs: Some(Some(18_001)),
            ..ServerSettingsPatch::default()
        }))
        .then_invalid("random_delay_secs");
    given([])
        .when(server(ServerSettingsPatch {
            session_ttl_secs: Some(59),
            ..ServerSettingsPatch::default()
        }))
        .then_invalid("session_ttl_secs");
    given([])
        .when(server(ServerSettingsPatch {
            login_protection: Some(LoginProtection {
                max_failures: 3,
                lockout_secs: 0,
            }),
            ..ServerSettingsPatch::default()
        }))
        .then_invalid("login_protection.lockout_secs");
}

#[test]
fn records_server_start() {
    given([])
        .when(RecordServerStarted {
            version: "0.1.0".into(),
        })
        .then([ServerStarted {
            version: "0.1.0".into(),
            at: NOW,
        }
        .into()]);
    given([])
        .when(RecordServerStarted {
            version: String::new(),
        })
        .then_invalid("version");
}
