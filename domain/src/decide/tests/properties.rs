//! Random command sequences: whatever `decide` accepts keeps the cross-aggregate invariants,
//! and replaying the accepted events rebuilds the same state.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use crate::codec::{decode, encode};
use crate::commands::*;
use crate::decide::decide;
use crate::ids::{PolicyId, TenantId, TenantRef, UserId};
use crate::state::State;
use crate::testing::fixtures::{policy_spec, tenant_spec, user_spec};
use crate::testing::gwt::NOW;

const NAMES: [&str; 4] = ["alice", "bob", "Alice", "carol"];
const SLUGS: [&str; 3] = ["acme", "beta", "gamma"];

fn tenant_id(i: u8) -> TenantId {
    TenantId::new(1, u128::from(i))
}

fn owner(i: u8) -> TenantRef {
    match i % 3 {
        0 => TenantRef::Root,
        n => TenantRef::Tenant(tenant_id(n)),
    }
}

fn command() -> impl Strategy<Value = Command> {
    let user = (0u128..5).prop_map(|i| UserId::new(2, i));
    let name = (0usize..NAMES.len()).prop_map(|i| NAMES[i]);
    prop_oneof![
        (1u8..3, 0usize..SLUGS.len()).prop_map(|(t, s)| CreateTenant {
            tenant_id: tenant_id(t),
            spec: tenant_spec(SLUGS[s]),
        }
        .into()),
        (1u8..3, 0usize..SLUGS.len()).prop_map(|(t, s)| UpdateTenant {
            tenant_id: tenant_id(t),
            patch: TenantPatch {
                slug: Some(SLUGS[s].into()),
                ..TenantPatch::default()
            },
        }
        .into()),
        (1u8..3).prop_map(|t| RemoveTenant {
            tenant_id: tenant_id(t)
        }
        .into()),
        (0u128..4, 0u8..3, any::<bool>()).prop_map(|(p, t, is_default)| CreatePolicy {
            policy_id: PolicyId::new(3, p),
            tenant: owner(t),
            spec: policy_spec("p", is_default),
        }
        .into()),
        (0u128..4, any::<bool>()).prop_map(|(p, is_default)| UpdatePolicy {
            policy_id: PolicyId::new(3, p),
            patch: PolicyPatch {
                is_default: Some(is_default),
                ..PolicyPatch::default()
            },
        }
        .into()),
        (0u128..4).prop_map(|p| RemovePolicy {
            policy_id: PolicyId::new(3, p)
        }
        .into()),
        (user.clone(), 0u8..3, name.clone()).prop_map(|(u, t, n)| CreateUser {
            user_id: u,
            tenant: owner(t),
            spec: user_spec(n),
            password_hash: "h".into(),
        }
        .into()),
        (user.clone(), name).prop_map(|(u, n)| UpdateUser {
            user_id: u,
            patch: UserPatch {
                username: Some(n.into()),
                ..UserPatch::default()
            },
        }
        .into()),
        (user.clone(), 0u8..3).prop_map(|(u, t)| TransferUser {
            user_id: u,
            to: owner(t),
        }
        .into()),
        user.prop_map(|u| RemoveUser { user_id: u }.into()),
    ]
}

fn check_invariants(state: &State) {
    let mut names = HashSet::new();
    for u in state.users() {
        assert!(names.insert(u.spec.username.clone()), "duplicate user name");
        assert_eq!(state.user_by_name(&u.spec.username), Some(u.id));
        if let TenantRef::Tenant(t) = u.tenant {
            assert!(state.tenant(t).is_some(), "user in a missing tenant");
        }
        if let Some(p) = u.spec.policy {
            assert_eq!(state.policy(p).map(|p| p.tenant), Some(u.tenant));
        }
    }
    let mut defaults: HashMap<TenantRef, usize> = HashMap::new();
    for p in state.policies().filter(|p| p.spec.is_default) {
        *defaults.entry(p.tenant).or_default() += 1;
        assert_eq!(state.default_policy(p.tenant), Some(p.id));
    }
    assert!(defaults.values().all(|n| *n == 1), "two default policies");
    let mut slugs = HashSet::new();
    for t in state.tenants() {
        assert!(slugs.insert(t.spec.slug.clone()), "duplicate slug");
        assert_eq!(state.tenant_by_slug(&t.spec.slug), Some(t.id));
        assert!(!state.tenant_removed(t.id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn accepted_commands_keep_invariants_and_replay_to_the_same_state(
        commands in proptest::collection::vec(command(), 1..40)
    ) {
        let mut state = State::new();
        let mut log = Vec::new();
        for command in commands {
            if let Ok(events) = decide(&state, command, NOW) {
                for event in events {
                    let encoded = encode(&event);
                    let decoded = decode(encoded.type_code, encoded.schema_version, &encoded.payload).unwrap();
                    prop_assert_eq!(&decoded, &event);
                    state.apply(&event);
                    log.push(event);
                }
                check_invariants(&state);
            }
        }
        prop_assert_eq!(State::from_events(&log), state);
    }
}
