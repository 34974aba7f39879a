use std::collections::BTreeMap;

use crate::commands::*;
use crate::events::*;
use crate::ids::TenantRef;
use crate::model::*;
use crate::resolution::*;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

const ACME: TenantRef = TenantRef::Tenant(T1);

fn create(id: crate::ids::PolicyId, is_default: bool) -> CreatePolicy {
    CreatePolicy {
        policy_id: id,
        tenant: ACME,
        spec: policy_spec("Standard", is_default),
    }
}

#[test]
fn creates_a_policy() {
    let state = given([tenant(T1, "acme")])
        .when(create(P1, true))
        .then([PolicyCreated {
            policy_id: P1,
            tenant: ACME,
            spec: policy_spec("Standard", true),
        }
        .into()]);
    assert_eq!(state.default_policy(ACME), Some(P1));
}

#[test]
fn at_most_one_default_policy_per_tenant() {
    given([tenant(T1, "acme"), policy(P1, ACME, true)])
        .when(create(P2, true))
        .then_conflict("is_default");
    given([
        tenant(T1, "acme"),
        policy(P1, ACME, true),
        policy(P2, ACME, false),
    ])
    .when(UpdatePolicy {
        policy_id: P2,
        patch: PolicyPatch {
            is_default: Some(true),
            ..PolicyPatch::default()
        },
    })
    .then_conflict("is_default");
    // Another tenant's default does not count.
    given([tenant(T1, "acme"), policy(P1, TenantRef::Root, true)])
        .when(create(P2, true))
        .events();
}

#[test]
fn clearing_the_default_frees_the_slot() {
    let state = given([tenant(T1, "acme"), policy(P1, ACME, true)])
        .when(UpdatePolicy {
            policy_id: P1,
            patch: PolicyPatch {
                is_default: Some(false),
                ..PolicyPatch::default()
            },
        })
        .then([PolicyUpdated {
            policy_id: P1,
            tenant: ACME,
            spec: policy_spec("Standard", false),
        }
        .into()]);
    assert_eq!(state.default_policy(ACME), None);
}

#[test]
fn rejects_bad_policy_fields() {
    let mut c = create(P1, false);
    c.spec.random_delay_secs = Some(18_001);
    given([tenant(T1, "acme")])
        .when(c)
        .then_invalid("random_delay_secs");
    let mut c = create(P1, false);
    c.spec.name = String::new();
    given([tenant(T1, "acme")]).when(c).then_invalid("name");
    let mut c = create(P1, false);
    c.spec.description = "a\u{0}b".into();
    given([tenant(T1, "acme")])
        .when(c)
        .then_invalid("description");
    given([]).when(create(P1, false)).then_not_found("tenant");
    given([tenant(T1, "acme"), policy(P1, ACME, false)])
        .when(create(P1, false))
        .then_already_exists("policy");
    given([])
        .when(UpdatePolicy {
            policy_id: P1,
            patch: PolicyPatch::default(),
        })
        .then_not_found("policy");
}

#[test]
fn removes_a_policy_no_user_has() {
    given([tenant(T1, "acme"), policy(P1, ACME, false)])
        .when(RemovePolicy { policy_id: P1 })
        .then([PolicyRemoved {
            policy_id: P1,
            tenant: ACME,
        }
        .into()]);
    let mut history = vec![tenant(T1, "acme"), policy(P1, ACME, true)];
    let mut spec = user_spec("alice");
    spec.policy = Some(P1);
    history.push(
        UserCreated {
            user_id: U1,
            tenant: ACME,
            spec,
            password_hash: "h".into(),
        }
        .into(),
    );
    given(history)
        .when(RemovePolicy { policy_id: P1 })
        .then_conflict("policy_id");
    given([])
        .when(RemovePolicy { policy_id: P1 })
        .then_not_found("policy");
}

#[test]
fn effective_policy_and_random_delay_precedence() {
    let mut spec = policy_spec("Strict", false);
    spec.random_delay_secs = Some(600);
    spec.settings = BTreeMap::from([
        ("compression".to_owned(), SettingMode::EnforcedOn),
        ("email".to_owned(), SettingMode::OptionalOff),
    ]);
    let mut history = world();
    history.push(
        PolicyCreated {
            policy_id: P1,
            tenant: ACME,
            spec,
        }
        .into(),
    );
    let mut user = user_spec("alice");
    user.policy = Some(P1);
    history.push(
        UserUpdated {
            user_id: U1,
            tenant: ACME,
            spec: user,
        }
        .into(),
    );
    let mut trigger = hourly();
    trigger.random_delay_secs = Some(60);
    let mut schedule = schedule_spec(I1, V1);
    schedule.triggers = vec![trigger, hourly()];
    history.push(
        ScheduleUpdated {
            schedule_id: S1,
            tenant: ACME,
            user_id: U1,
            spec: schedule,
        }
        .into(),
    );
    let g = given(history.clone());
    let effective = effective_policy(g.state(), U1).unwrap();
    assert_eq!(effective.policy_id, P1);
    assert_eq!(
        effective.settings["compression"],
        EffectiveSetting::Enforced { on: true }
    );
    assert_eq!(
        effective.settings["email"],
        EffectiveSetting::Optional { default_on: false }
    );
    assert_eq!(schedule_random_delay(g.state(), S1, 0), Some(600));
    assert_eq!(schedule_random_delay(g.state(), S1, 2), None);

    history.push(
        ServerSettingsUpdated {
            settings: ServerSettings {
                random_delay_secs: Some(30),
                ..ServerSettings::initial()
            },
        }
        .into(),
    );
    assert_eq!(
        schedule_random_delay(given(history).state(), S1, 0),
        Some(30)
    );

    let plain = given(world());
    assert_eq!(effective_policy(plain.state(), U1), None);
    assert_eq!(schedule_random_delay(plain.state(), S1, 0), Some(0));
}
