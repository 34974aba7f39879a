use std::collections::BTreeMap;

use crate::commands::*;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::{TenantRef, WebhookId};
use crate::model::*;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

const ACME: TenantRef = TenantRef::Tenant(T1);
const W1: WebhookId = WebhookId::from_ulid(ulid::Ulid(1_700_000_000_000u128 << 80 | 91));
const FP1: &str = "0123456789abcdef0123456789abcdef";
const FP2: &str = "fedcba9876543210fedcba9876543210";

fn spec() -> WebhookSpec {
    WebhookSpec {
        name: "SIEM".into(),
        url: "https://siem.acme.test/hooks".into(),
        event_types: [4100, 4201].into_iter().collect(),
        level: WebhookLevel::Full,
        custom_headers: [("X-Team".to_owned(), "backup".to_owned())]
            .into_iter()
            .collect(),
        enabled: true,
    }
}

fn create_with(spec: WebhookSpec) -> CreateWebhook {
    CreateWebhook {
        webhook_id: W1,
        tenant: ACME,
        spec,
        secret_fingerprint: FP1.into(),
    }
}

fn created() -> Event {
    WebhookCreated {
        webhook_id: W1,
        tenant: ACME,
        spec: spec(),
        secret_fingerprint: FP1.into(),
    }
    .into()
}

fn patch(patch: WebhookPatch) -> UpdateWebhook {
    UpdateWebhook {
        webhook_id: W1,
        patch,
    }
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn creates_a_tenant_and_a_top_level_webhook() {
    let state = given([tenant(T1, "acme")])
        .when(create_with(spec()))
        .then([created()]);
    let w = state.webhook(W1).unwrap();
    assert_eq!(w.secret, FP1);
    assert_eq!(w.signing_secrets(NOW), vec![FP1]);
    given([])
        .when(CreateWebhook {
            tenant: TenantRef::Root,
            ..create_with(spec())
        })
        .events();
}

#[test]
fn rejects_a_duplicate_id_and_a_missing_or_removed_tenant() {
    given([tenant(T1, "acme"), created()])
        .when(create_with(spec()))
        .then_already_exists("webhook");
    given([]).when(create_with(spec())).then_not_found("tenant");
    given([tenant(T1, "acme"), TenantRemoved { tenant_id: T1 }.into()])
        .when(create_with(spec()))
        .then_err(DomainError::TenantRemoved { id: T1 });
}

#[test]
fn only_http_and_https_urls_with_a_host() {
    for url in [
        "ftp://files.acme.test/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "siem.acme.test/hooks",
        "https://",
        "https:///path",
        "https://:443/",
        "https://siem.acme.test/a b",
        "https://siem.acme.test/\n",
        "",
    ] {
        given([tenant(T1, "acme")])
            .when(create_with(WebhookSpec {
                url: url.into(),
                ..spec()
            }))
            .then_invalid("url");
    }
    let long = format!("https://a.test/{}", "x".repeat(2048));
    given([tenant(T1, "acme")])
        .when(create_with(WebhookSpec {
            url: long,
            ..spec()
        }))
        .then_invalid("url");
    for url in ["http://127.0.0.1:8080/x", "HTTPS://Siem.Acme.test"] {
        given([tenant(T1, "acme")])
            .when(create_with(WebhookSpec {
                url: url.into(),
                ..spec()
            }))
            .events();
    }
}

#[test]
fn rejects_unknown_event_type_codes_and_a_bad_name() {
    for code in [4000, 4950 - 1, 4999, 0] {
        given([tenant(T1, "acme")])
            .when(create_with(WebhookSpec {
                event_types: [4100, code].into_iter().collect(),
                ..spec()
            }))
            .then_invalid("event_types");
    }
    given([tenant(T1, "acme")])
        .when(create_with(WebhookSpec {
            name: "  ".into(),
            ..spec()
        }))
        .then_invalid("name");
}

#[test]
fn rejects_headers_that_clash_with_http_or_the_signature() {
    for name in [
        "webhook-id",
        "Webhook-Signature",
        "WEBHOOK-TIMESTAMP",
        "Content-Type",
        "content-length",
        "Host",
        "Transfer-Encoding",
        "Connection",
        "Upgrade",
        "TE",
    ] {
        given([tenant(T1, "acme")])
            .when(create_with(WebhookSpec {
                custom_headers: headers(&[(name, "x")]),
                ..spec()
            }))
            .then_invalid(&format!("custom_headers.{name}"));
    }
}

#[test]
fn rejects_invalid_header_names_values_and_case_duplicates() {
    for name in ["", "x team", "x:team", "x-tëam", "x\r\nset-cookie"] {
        given([tenant(T1, "acme")])
            .when(create_with(WebhookSpec {
                custom_headers: headers(&[(name, "x")]),
                ..spec()
            }))
            .then_invalid(&format!("custom_headers.{name}"));
    }
    for value in ["a\r\nb", "nul\0", "ümlaut", &"x".repeat(4097)] {
        given([tenant(T1, "acme")])
            .when(create_with(WebhookSpec {
                custom_headers: headers(&[("x-token", value)]),
                ..spec()
            }))
            .then_invalid("custom_headers.x-token");
    }
    given([tenant(T1, "acme")])
        .when(create_with(WebhookSpec {
            custom_headers: headers(&[("X-Token", "a"), ("x-token", "b")]),
            ..spec()
        }))
        .then_invalid("custom_headers.x-token");
    let many: Vec<(String, String)> = (0..33).map(|i| (format!("x-{i}"), "v".into())).collect();
    given([tenant(T1, "acme")])
        .when(create_with(WebhookSpec {
            custom_headers: many.into_iter().collect(),
            ..spec()
        }))
        .then_invalid("custom_headers");
}

#[test]
fn rejects_a_malformed_secret_fingerprint() {
    for fp in ["", "0123", "0123456789ABCDEF0123", "whsec_c2VjcmV0c2VjcmV0"] {
        given([tenant(T1, "acme")])
            .when(CreateWebhook {
                secret_fingerprint: fp.into(),
                ..create_with(spec())
            })
            .then_invalid("secret");
    }
}

#[test]
fn updates_merge_a_patch_and_validate_the_result() {
    let state = given([tenant(T1, "acme"), created()])
        .when(patch(WebhookPatch {
            level: Some(WebhookLevel::None),
            event_types: Some(Default::default()),
            ..Default::default()
        }))
        .then([WebhookUpdated {
            webhook_id: W1,
            tenant: ACME,
            spec: WebhookSpec {
                level: WebhookLevel::None,
                event_types: Default::default(),
                ..spec()
            },
        }
        .into()]);
    assert!(state.webhook(W1).unwrap().spec.wants(4701));
    given([tenant(T1, "acme"), created()])
        .when(patch(WebhookPatch {
            name: Some("SIEM".into()),
            ..Default::default()
        }))
        .then([]);
    given([tenant(T1, "acme"), created()])
        .when(patch(WebhookPatch {
            url: Some("gopher://x".into()),
            ..Default::default()
        }))
        .then_invalid("url");
    given([tenant(T1, "acme"), created()])
        .when(patch(WebhookPatch {
            custom_headers: Some(headers(&[("webhook-id", "forged")])),
            ..Default::default()
        }))
        .then_invalid("custom_headers.webhook-id");
    given([tenant(T1, "acme")])
        .when(patch(WebhookPatch::default()))
        .then_not_found("webhook");
}

#[test]
fn removes_a_webhook_once() {
    let removed: Event = WebhookRemoved {
        webhook_id: W1,
        tenant: ACME,
    }
    .into();
    let state = given([tenant(T1, "acme"), created()])
        .when(RemoveWebhook { webhook_id: W1 })
        .then([removed.clone()]);
    assert!(state.webhook(W1).is_none());
    given([tenant(T1, "acme"), created(), removed])
        .when(RemoveWebhook { webhook_id: W1 })
        .then_not_found("webhook");
}

#[test]
fn a_removed_tenant_takes_its_webhooks_along() {
    let state = given([
        tenant(T1, "acme"),
        created(),
        TenantRemoved { tenant_id: T1 }.into(),
    ])
    .state()
    .clone();
    assert!(state.webhook(W1).is_none());
}

#[test]
fn rotation_keeps_the_old_secret_signing_for_the_grace_period() {
    let rotate = RotateWebhookSecret {
        webhook_id: W1,
        secret_fingerprint: FP2.into(),
        grace_secs: 3600,
    };
    let state = given([tenant(T1, "acme"), created()])
        .when(rotate.clone())
        .then([WebhookSecretRotated {
            webhook_id: W1,
            tenant: ACME,
            secret_fingerprint: FP2.into(),
            previous_valid_until: NOW + 3600,
        }
        .into()]);
    let w = state.webhook(W1).unwrap();
    assert_eq!(w.signing_secrets(NOW), vec![FP2, FP1]);
    assert_eq!(w.signing_secrets(NOW + 3599), vec![FP2, FP1]);
    assert_eq!(w.signing_secrets(NOW + 3600), vec![FP2]);
}

#[test]
fn rotation_rejects_a_reused_or_malformed_secret_and_a_long_grace() {
    given([tenant(T1, "acme"), created()])
        .when(RotateWebhookSecret {
            webhook_id: W1,
            secret_fingerprint: FP1.into(),
            grace_secs: 0,
        })
        .then_conflict("secret");
    let rotated: Event = WebhookSecretRotated {
        webhook_id: W1,
        tenant: ACME,
        secret_fingerprint: FP2.into(),
        previous_valid_until: NOW,
    }
    .into();
    given([tenant(T1, "acme"), created(), rotated])
        .when(RotateWebhookSecret {
            webhook_id: W1,
            secret_fingerprint: FP1.into(),
            grace_secs: 0,
        })
        .then_conflict("secret");
    given([tenant(T1, "acme"), created()])
        .when(RotateWebhookSecret {
            webhook_id: W1,
            secret_fingerprint: "nothex".into(),
            grace_secs: 0,
        })
        .then_invalid("secret");
    given([tenant(T1, "acme"), created()])
        .when(RotateWebhookSecret {
            webhook_id: W1,
            secret_fingerprint: FP2.into(),
            grace_secs: 7 * 24 * 3600 + 1,
        })
        .then_invalid("grace_secs");
    given([tenant(T1, "acme")])
        .when(RotateWebhookSecret {
            webhook_id: W1,
            secret_fingerprint: FP2.into(),
            grace_secs: 0,
        })
        .then_not_found("webhook");
}

#[test]
fn disabling_records_why_once_and_re_enabling_clears_it() {
    let disable = DisableWebhook {
        webhook_id: W1,
        reason: "answered 410 Gone".into(),
    };
    let disabled: Event = WebhookDisabled {
        webhook_id: W1,
        tenant: ACME,
        reason: "answered 410 Gone".into(),
        at: NOW,
    }
    .into();
    let state = given([tenant(T1, "acme"), created()])
        .when(disable.clone())
        .then([disabled.clone()]);
    let w = state.webhook(W1).unwrap();
    assert!(!w.spec.enabled);
    assert_eq!(w.disabled_reason.as_deref(), Some("answered 410 Gone"));
    given([tenant(T1, "acme"), created(), disabled.clone()])
        .when(disable)
        .then([]);
    let state = given([tenant(T1, "acme"), created(), disabled.clone()])
        .when(patch(WebhookPatch {
            enabled: Some(true),
            ..Default::default()
        }))
        .then([WebhookUpdated {
            webhook_id: W1,
            tenant: ACME,
            spec: spec(),
        }
        .into()]);
    assert_eq!(state.webhook(W1).unwrap().disabled_reason, None);
    given([tenant(T1, "acme"), created()])
        .when(DisableWebhook {
            webhook_id: W1,
            reason: "bad\u{7}".into(),
        })
        .then_invalid("reason");
    given([tenant(T1, "acme")])
        .when(DisableWebhook {
            webhook_id: W1,
            reason: "gone".into(),
        })
        .then_not_found("webhook");
}
