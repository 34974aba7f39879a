//! The user search against a plain scan: after any sequence of creations, edits, transfers
//! and removals, its candidates decided by the real predicate are exactly the matching users,
//! in id order, for every scope, term and cursor.

use std::collections::BTreeMap;

use domain::ids::{TenantId, TenantRef, UserId};
use domain::model::{User, UserSpec};
use proptest::prelude::*;

use super::UserSearch;
use crate::models::Scope;

fn tenant(n: u8) -> TenantRef {
    match n {
        0 => TenantRef::Root,
        n => TenantRef::Tenant(TenantId::new(1, u128::from(n))),
    }
}

fn user_id(n: u16) -> UserId {
    // Ids out of numeric order, as fresh random ids are.
    UserId::new(1_700_000_000_000, u128::from(n.wrapping_mul(7919)))
}

fn user(id: UserId, owner: TenantRef, names: &[String]) -> User {
    User {
        id,
        tenant: owner,
        spec: UserSpec {
            username: names[0].clone(),
            account_name: names[1].clone(),
            emails: names[2..].to_vec(),
            timezone: "UTC".into(),
            language: "en".into(),
            policy: None,
            suspended: false,
            max_devices: None,
            quota_bytes: None,
        },
        password_hash: String::new(),
        items: BTreeMap::new(),
        vaults: BTreeMap::new(),
    }
}

fn contains(field: &str, term: &str) -> bool {
    field
        .to_ascii_lowercase()
        .contains(&term.to_ascii_lowercase())
}

fn matches(user: &User, term: &str) -> bool {
    let spec = &user.spec;
    contains(&spec.username, term)
        || contains(&spec.account_name, term)
        || spec.emails.iter().any(|e| contains(e, term))
}

#[derive(Debug, Clone)]
enum Op {
    /// Create the user, or edit it (possibly into another owner).
    Put {
        user: u16,
        owner: u8,
        names: Vec<String>,
    },
    Remove {
        user: u16,
    },
}

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[aAbB\\-é\u{0}]{0,5}").expect("regex")
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..200u16, 0..3u8, proptest::collection::vec(text(), 2..5))
            .prop_map(|(user, owner, names)| Op::Put { user, owner, names }),
        1 => (0..200u16).prop_map(|user| Op::Remove { user }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn candidates_decided_by_the_predicate_are_exactly_the_matches(
        ops in proptest::collection::vec(op(), 1..400),
        terms in proptest::collection::vec("[aAbB\\-é\u{0}]{1,3}", 1..6),
        cursors in proptest::collection::vec(proptest::option::of(0..200u16), 1..4),
    ) {
        let mut search = UserSearch::default();
        let mut users: BTreeMap<UserId, User> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put { user: n, owner, names } => {
                    let id = user_id(n);
                    let before = users.get(&id).map(|u| u.tenant);
                    let now = user(id, tenant(owner), &names);
                    search.refile(id, before, Some(&now));
                    users.insert(id, now);
                }
                Op::Remove { user: n } => {
                    let id = user_id(n);
                    let before = users.remove(&id).map(|u| u.tenant);
                    search.refile(id, before, None);
                }
            }
        }
        let scopes = [
            Scope::Root,
            Scope::Tenant(TenantId::new(1, 1)),
            Scope::Tenant(TenantId::new(1, 2)),
        ];
        for scope in scopes {
            for term in &terms {
                for cursor in &cursors {
                    let after = cursor.map(user_id);
                    let expected: Vec<UserId> = users
                        .values()
                        .filter(|u| scope.admits(u.tenant))
                        .filter(|u| after.is_none_or(|a| u.id > a))
                        .filter(|u| matches(u, term))
                        .map(|u| u.id)
                        .collect();
                    let candidates: Vec<UserId> = search.candidates(scope, term, after).collect();
                    prop_assert!(candidates.windows(2).all(|w| w[0] < w[1]), "id order");
                    for id in &candidates {
                        let user = &users[id];
                        prop_assert!(scope.admits(user.tenant));
                    }
                    let decided: Vec<UserId> = candidates
                        .into_iter()
                        .filter(|id| matches(&users[id], term))
                        .collect();
                    prop_assert_eq!(decided, expected, "scope {:?} term {:?}", scope, term);
                }
            }
        }
        // Nothing is left behind for removed users: an emptied partition goes away.
        if users.is_empty() {
            prop_assert_eq!(search, UserSearch::default());
        }
    }
}
