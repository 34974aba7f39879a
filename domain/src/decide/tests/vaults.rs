//! Protected items and storage vaults.

use crate::commands::*;
use crate::events::*;
use crate::ids::TenantRef;
use crate::state::VaultMatch;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

const ROOT: TenantRef = TenantRef::Root;
const ACME: TenantRef = TenantRef::Tenant(T1);

#[test]
fn creates_an_item_owned_by_one_of_the_users_devices() {
    let mut spec = item_spec("Mail");
    spec.owner_device = Some(D1);
    let state = given(world())
        .when(CreateItem {
            item_id: I2,
            user_id: U1,
            spec: spec.clone(),
        })
        .then([ItemCreated {
            item_id: I2,
            tenant: ACME,
            user_id: U1,
            spec,
        }
        .into()]);
    assert_eq!(state.item_owner(I2), Some(U1));
}

#[test]
fn rejects_bad_items() {
    let create = |f: fn(&mut CreateItem)| {
        let mut c = CreateItem {
            item_id: I2,
            user_id: U1,
            spec: item_spec("Mail"),
        };
        f(&mut c);
        c
    };
    given(world())
        .when(create(|c| c.spec.engine = "My SQL".into()))
        .then_invalid("engine");
    given(world())
        .when(create(|c| c.spec.name.clear()))
        .then_invalid("name");
    let mut history = world();
    history.extend([user(U2, ROOT, "bob"), device(D2, ROOT, U2)]);
    given(history)
        .when(create(|c| c.spec.owner_device = Some(D2)))
        .then_invalid("owner_device_id");
    given(world())
        .when(create(|c| c.item_id = I1))
        .then_already_exists("protected_item");
    given(world())
        .when(create(|c| c.user_id = U2))
        .then_not_found("user");
}

#[test]
fn updates_and_removes_items() {
    given(world())
        .when(UpdateItem {
            item_id: I1,
            patch: ItemPatch {
                name: Some("Docs".into()),
                ..ItemPatch::default()
            },
        })
        .then([ItemUpdated {
            item_id: I1,
            tenant: ACME,
            user_id: U1,
            spec: item_spec("Docs"),
        }
        .into()]);
    let mut history = world();
    history.push(item(I2, ACME, U1));
    given(history)
        .when(RemoveItem { item_id: I2 })
        .then([ItemRemoved {
            item_id: I2,
            tenant: ACME,
            user_id: U1,
        }
        .into()]);
    given(world())
        .when(UpdateItem {
            item_id: I2,
            patch: ItemPatch::default(),
        })
        .then_not_found("protected_item");
}

#[test]
fn an_item_in_use_by_a_schedule_cannot_be_removed() {
    given(world())
        .when(RemoveItem { item_id: I1 })
        .then_conflict("protected_item_id");
}

#[test]
fn duplicates_an_item_under_a_new_id_with_a_copy_name() {
    let state = given(world())
        .when(DuplicateItem {
            item_id: I1,
            new_item_id: I2,
        })
        .then([ItemDuplicated {
            item_id: I2,
            source_id: I1,
            tenant: ACME,
            user_id: U1,
            spec: item_spec("Documents (copy)"),
        }
        .into()]);
    assert_eq!(state.user(U1).unwrap().items.len(), 2);
    given(world())
        .when(DuplicateItem {
            item_id: I1,
            new_item_id: I1,
        })
        .then_already_exists("protected_item");
    given(world())
        .when(DuplicateItem {
            item_id: I2,
            new_item_id: I2,
        })
        .then_not_found("protected_item");
}

#[test]
fn creates_updates_and_removes_vaults() {
    given(world())
        .when(CreateVault {
            vault_id: V2,
            user_id: U1,
            spec: vault_spec("/mnt/backup"),
        })
        .then([VaultCreated {
            vault_id: V2,
            tenant: ACME,
            user_id: U1,
            spec: vault_spec("/mnt/backup"),
        }
        .into()]);
    given(world())
        .when(UpdateVault {
            vault_id: V1,
            patch: VaultPatch {
                address: Some("s3.new.test".into()),
                ..VaultPatch::default()
            },
        })
        .then([VaultUpdated {
            vault_id: V1,
            tenant: ACME,
            user_id: U1,
            spec: vault_spec("s3.new.test"),
        }
        .into()]);
    let mut history = world();
    history.push(vault(V2, ACME, U1, "x"));
    given(history)
        .when(RemoveVault { vault_id: V2 })
        .then([VaultRemoved {
            vault_id: V2,
            tenant: ACME,
            user_id: U1,
        }
        .into()]);
}

#[test]
fn rejects_bad_vaults() {
    let create = |f: fn(&mut CreateVault)| {
        let mut c = CreateVault {
            vault_id: V2,
            user_id: U1,
            spec: vault_spec("s3.test"),
        };
        f(&mut c);
        c
    };
    given(world())
        .when(create(|c| c.spec.kind = "S3".into()))
        .then_invalid("kind");
    given(world())
        .when(create(|c| c.spec.address = " ".into()))
        .then_invalid("address");
    given(world())
        .when(create(|c| c.spec.name.clear()))
        .then_invalid("name");
    given(world())
        .when(create(|c| c.vault_id = V1))
        .then_already_exists("vault");
    given(world())
        .when(create(|c| c.user_id = U2))
        .then_not_found("user");
    given(world())
        .when(RemoveVault { vault_id: V1 })
        .then_conflict("vault_id");
    given(world())
        .when(RemoveVault { vault_id: V2 })
        .then_not_found("vault");
}

fn replace(within: Option<TenantRef>, find: &str, with: &str) -> ReplaceVaultAddress {
    ReplaceVaultAddress {
        within,
        find: find.into(),
        replace: with.into(),
    }
}

fn two_tenants() -> Vec<Event> {
    let mut history = world();
    history.extend([
        user(U2, ROOT, "bob"),
        vault(V2, ROOT, U2, "s3.old.test/bob"),
    ]);
    history
}

#[test]
fn replaces_vault_addresses_within_the_callers_scope() {
    let acme_change = VaultAddressReplaced {
        vault_id: V1,
        tenant: ACME,
        user_id: U1,
        old_address: "s3.old.test".into(),
        new_address: "s3.new.test".into(),
    };
    let root_change = VaultAddressReplaced {
        vault_id: V2,
        tenant: ROOT,
        user_id: U2,
        old_address: "s3.old.test/bob".into(),
        new_address: "s3.new.test/bob".into(),
    };
    given(two_tenants())
        .when(replace(Some(ACME), "old", "new"))
        .then([acme_change.clone().into()]);
    let state = given(two_tenants())
        .when(replace(None, "old", "new"))
        .then([acme_change.into(), root_change.into()]);
    assert_eq!(
        state.user(U2).unwrap().vaults[&V2].spec.address,
        "s3.new.test/bob"
    );
    given(two_tenants())
        .when(replace(None, "nowhere", "x"))
        .then([]);
}

#[test]
fn the_dry_run_lists_matches_without_changing_anything() {
    let g = given(two_tenants());
    assert_eq!(
        g.state().vault_address_matches(Some(ROOT), "old"),
        [VaultMatch {
            vault_id: V2,
            user_id: U2,
            tenant: ROOT,
            address: "s3.old.test/bob".into(),
        }]
    );
    assert_eq!(g.state().vault_address_matches(None, "old").len(), 2);
    assert!(g.state().vault_address_matches(None, "").is_empty());
}

#[test]
fn rejects_empty_find_and_replacements_that_empty_an_address() {
    given(two_tenants())
        .when(replace(None, "", "x"))
        .then_invalid("find");
    given(two_tenants())
        .when(replace(Some(ACME), "s3.old.test", ""))
        .then_invalid("replace");
    given(two_tenants())
        .when(replace(None, "old", "a\nb"))
        .then_invalid("replace");
}
