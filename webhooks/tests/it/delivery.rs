use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use domain::commands::RotateWebhookSecret;
use domain::ids::TenantRef;
use eventlog::Position;
use webhooks::{DeliveryConfig, DeliveryStatus};
use writer::Clock;

use crate::harness::*;

fn positions(received: &[Received]) -> BTreeSet<u64> {
    received
        .iter()
        .map(|r| r.json()["position"].as_u64().unwrap())
        .collect()
}

async fn log_positions(
    w: &World,
    after: Position,
    wanted: impl Fn(u16, &str) -> bool,
) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for r in w.log.read_all(after, 100_000).await.unwrap() {
        if wanted(r.envelope.type_code, &r.envelope.tenant) {
            out.insert(r.envelope.position);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matching_event_arrives_at_least_once_and_nothing_else_does() {
    // A receiver failing every other request can fail one delivery several times in a row,
    // so this test allows many (fast) retries.
    let w = World::new(DeliveryConfig {
        retry_schedule: vec![Duration::from_secs(1); 30],
        ..fast_config()
    })
    .await;
    let t1 = TenantRef::Tenant(w.tenant(1).await);
    let t2 = TenantRef::Tenant(w.tenant(2).await);
    let all = Receiver::start(Mode::Ok);
    let flaky = Receiver::start(Mode::FailHalf);
    let mine = Receiver::start(Mode::Ok);
    let off = Receiver::start(Mode::Ok);
    let other = Receiver::start(Mode::Ok);
    let s_all = w
        .webhook(webhook_id(1), TenantRef::Root, &all.url, &[], true)
        .await;
    let since_all = w.log.head();
    let s_flaky = w
        .webhook(webhook_id(2), TenantRef::Root, &flaky.url, &[4600], true)
        .await;
    let s_mine = w.webhook(webhook_id(3), t1, &mine.url, &[4600], true).await;
    w.webhook(webhook_id(4), t1, &off.url, &[], false).await;
    w.webhook(webhook_id(5), t2, &other.url, &[4100], true)
        .await;
    let since = w.log.head();
    for i in 0..10 {
        w.policy(t1, 100 + i).await;
        w.policy(t2, 200 + i).await;
        w.policy(TenantRef::Root, 300 + i).await;
    }
    w.deliver_everything().await;

    let expected_all = log_positions(&w, since_all, |_, _| true).await;
    assert_eq!(positions(&all.delivered()), expected_all);
    assert_eq!(
        all.all().len(),
        expected_all.len(),
        "no duplicates when nothing fails"
    );
    let policies = log_positions(&w, since, |code, _| code == 4600).await;
    assert_eq!(policies.len(), 30);
    assert_eq!(positions(&flaky.delivered()), policies);
    assert!(
        flaky.all().len() > policies.len(),
        "the flaky receiver failed some"
    );
    let t1_text = t1.to_string();
    let t1_policies =
        log_positions(&w, since, |code, tenant| code == 4600 && tenant == t1_text).await;
    assert_eq!(positions(&mine.delivered()), t1_policies);
    assert!(off.all().is_empty(), "a disabled endpoint gets nothing");
    assert!(
        other.all().is_empty(),
        "a non-matching endpoint gets nothing"
    );

    for (receiver, secret) in [(&all, &s_all), (&flaky, &s_flaky), (&mine, &s_mine)] {
        for r in receiver.all() {
            assert!(verifies(secret.expose(), &r), "signature of {}", r.body);
            let body = r.json();
            assert_eq!(body["id"], r.header("webhook-id"));
            let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
            assert!((START_US / 1_000_000..=w.now_secs()).contains(&ts));
            assert_eq!(r.header("content-type"), "application/json");
            assert_eq!(r.header("x-halley-test"), "yes");
            for field in [
                "type",
                "type_code",
                "timestamp",
                "tenant_id",
                "actor",
                "resource_id",
                "position",
                "data",
            ] {
                assert!(body.get(field).is_some(), "{field} missing in {body}");
            }
        }
    }
    // Retries keep the message id: every flaky id that failed came back with the same id.
    let ids: BTreeSet<String> = flaky
        .all()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(ids.len(), policies.len());
    let m = w.hooks.metrics();
    assert_eq!(m.queue_depth, 0);
    assert_eq!(m.in_flight, 0);
    assert!(m.failures >= 1 && m.attempts > m.delivered - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_delay_the_others() {
    let w = World::new(DeliveryConfig {
        request_timeout: Duration::from_secs(1),
        per_endpoint_concurrency: 4,
        ..fast_config()
    })
    .await;
    let hang = Receiver::start(Mode::Hang);
    let fast = Receiver::start(Mode::Ok);
    let also_fast = Receiver::start(Mode::Ok);
    w.webhook(webhook_id(1), TenantRef::Root, &hang.url, &[4600], true)
        .await;
    w.webhook(webhook_id(2), TenantRef::Root, &fast.url, &[4600], true)
        .await;
    w.webhook(
        webhook_id(3),
        TenantRef::Root,
        &also_fast.url,
        &[4600],
        true,
    )
    .await;
    for i in 0..20 {
        w.policy(TenantRef::Root, i).await;
    }
    let hooks = w.hooks.clone();
    let driver = tokio::spawn(async move { hooks.run_until_idle().await });
    fast.wait_for_requests(20).await;
    also_fast.wait_for_requests(20).await;
    // Both fast endpoints got everything while the hanging one has not answered once.
    assert_eq!(fast.delivered().len(), 20);
    assert_eq!(also_fast.delivered().len(), 20);
    assert!(hang.all().iter().all(|r| r.answered == 0));
    assert!(!hang.all().is_empty());
    assert!(hang.all().len() <= 4, "per-endpoint bound");
    driver.await.unwrap().unwrap();
    // The hanging endpoint's deliveries timed out and wait for their retry.
    assert_eq!(w.hooks.metrics().queue_depth, 20);
    let first = w.hooks.deliveries(webhook_id(1), None, 1).unwrap();
    assert_eq!(first[0].status, DeliveryStatus::Pending);
    assert_eq!(first[0].last_error.as_deref(), Some("timed out"));
    hang.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_signs_with_both_secrets_during_the_grace_period() {
    let w = World::new(fast_config()).await;
    let r = Receiver::start(Mode::Ok);
    let id = webhook_id(1);
    let old = w.webhook(id, TenantRef::Root, &r.url, &[4600], true).await;
    w.policy(TenantRef::Root, 1).await;
    w.deliver_everything().await;
    let first = r.delivered().pop().unwrap();
    assert_eq!(first.header("webhook-signature").split(' ').count(), 1);
    assert!(verifies(old.expose(), &first));

    let (new, fingerprint) = w.hooks.new_secret().await.unwrap();
    w.exec(RotateWebhookSecret {
        webhook_id: id,
        secret_fingerprint: fingerprint.clone(),
        grace_secs: 3600,
    })
    .await;
    w.policy(TenantRef::Root, 2).await;
    w.deliver_everything().await;
    let during = r.delivered().pop().unwrap();
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    assert!(verifies(old.expose(), &during));
    assert!(verifies(new.expose(), &during));

    w.clock.advance_secs(3601);
    w.policy(TenantRef::Root, 3).await;
    w.deliver_everything().await;
    let after = r.delivered().pop().unwrap();
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);
    assert!(verifies(new.expose(), &after));
    assert!(!verifies(old.expose(), &after));

    // Neither secret is anywhere in the log, in any form a receiver could use.
    for record in w.log.read_all(0, 10_000).await.unwrap() {
        for secret in [&old, &new] {
            let text = secret.expose().as_bytes();
            assert!(!record.payload.windows(text.len()).any(|win| win == text));
            let key = secret.key();
            assert!(!record.payload.windows(key.len()).any(|win| win == key));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_at_any_point_loses_no_delivery() {
    let mut w = World::new(fast_config()).await;
    let r = Receiver::start(Mode::Status(500, None));
    let id = webhook_id(1);
    let secret = w.webhook(id, TenantRef::Root, &r.url, &[4600], true).await;
    let since = w.log.head();
    // 1. Attempted and failed, waiting for a retry, when the service goes away.
    for i in 0..10 {
        w.policy(TenantRef::Root, i).await;
    }
    w.hooks.run_until_idle().await.unwrap();
    assert_eq!(r.all().len(), 10);
    w.restart_hooks();
    assert_eq!(w.hooks.metrics().queue_depth, 10);
    r.set_mode(Mode::Ok);
    // 2. Recorded by the subscriber, never attempted.
    for i in 10..15 {
        w.policy(TenantRef::Root, i).await;
    }
    w.hooks.catch_up().await.unwrap();
    w.restart_hooks();
    assert_eq!(w.hooks.metrics().queue_depth, 15);
    // 3. In the log, not yet seen by the subscriber.
    for i in 15..20 {
        w.policy(TenantRef::Root, i).await;
    }
    w.restart_hooks();
    w.advance_past_next_retry();
    w.deliver_everything().await;

    let expected = log_positions(&w, since, |code, _| code == 4600).await;
    assert_eq!(expected.len(), 20);
    assert_eq!(positions(&r.delivered()), expected);
    assert_eq!(
        r.delivered().len(),
        20,
        "each delivered once after the restarts"
    );
    assert!(r.delivered().iter().all(|d| verifies(secret.expose(), d)));
    assert_eq!(w.hooks.metrics().queue_depth, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_endpoint_through_the_log() {
    let w = World::new(fast_config()).await;
    let r = Receiver::start(Mode::Status(410, None));
    let id = webhook_id(1);
    w.webhook(id, TenantRef::Root, &r.url, &[4600], true).await;
    w.policy(TenantRef::Root, 1).await;
    w.policy(TenantRef::Root, 2).await;
    w.deliver_everything().await;
    let endpoint = w.hooks.webhook(id).unwrap();
    assert!(!endpoint.spec.enabled);
    assert!(endpoint.disabled_reason.unwrap().contains("410"));
    let disabled = w
        .log
        .read_all(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.envelope.type_code == 4954)
        .count();
    assert_eq!(
        disabled, 1,
        "one webhook.disabled event, even if two deliveries saw 410"
    );
    let asked = r.all().len();
    assert!((1..=2).contains(&asked));
    w.policy(TenantRef::Root, 3).await;
    w.deliver_everything().await;
    assert_eq!(
        r.all().len(),
        asked,
        "nothing is sent to a disabled endpoint"
    );
    let statuses: BTreeMap<u64, DeliveryStatus> = w
        .hooks
        .deliveries(id, None, 10)
        .unwrap()
        .into_iter()
        .map(|d| (d.position, d.status))
        .collect();
    assert!(statuses.values().any(|s| *s == DeliveryStatus::Failed));
    assert!(statuses
        .values()
        .all(|s| matches!(s, DeliveryStatus::Failed | DeliveryStatus::Cancelled)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_log_manual_retry_replay_and_test_event() {
    let w = World::new(fast_config()).await;
    let r = Receiver::start(Mode::Ok);
    let id = webhook_id(1);
    let secret = w.webhook(id, TenantRef::Root, &r.url, &[4600], true).await;
    for i in 0..3 {
        w.policy(TenantRef::Root, i).await;
    }
    w.deliver_everything().await;
    let log = w.hooks.deliveries(id, None, 100).unwrap();
    assert_eq!(log.len(), 3);
    for d in &log {
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.attempt_count, 1);
        assert_eq!(d.attempts[0].status_code, Some(200));
        assert_eq!(d.attempts[0].error, None);
        assert_eq!(d.type_code, 4600);
    }
    assert_eq!(
        w.hooks
            .deliveries(id, Some(log[0].id()), 100)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(w.hooks.delivery(log[1].id()).unwrap().unwrap(), log[1]);

    // Manual retry: the same message id again.
    let queued = w.hooks.retry(log[1].id()).unwrap();
    assert_eq!(queued.status, DeliveryStatus::Pending);
    w.deliver_everything().await;
    let got = r.delivered();
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].header("webhook-id"), log[1].id().to_string());
    assert_eq!(
        w.hooks
            .delivery(log[1].id())
            .unwrap()
            .unwrap()
            .attempt_count,
        2
    );

    // Replay from the start and from a position.
    let replay = w.hooks.replay(id, 0).await.unwrap();
    assert_eq!(replay.queued, 3);
    w.deliver_everything().await;
    let got = r.delivered();
    assert_eq!(got.len(), 7);
    let replayed: BTreeSet<&str> = got[4..].iter().map(|g| g.header("webhook-id")).collect();
    let original: BTreeSet<&str> = got[..3].iter().map(|g| g.header("webhook-id")).collect();
    assert_eq!(replayed, original);
    assert_eq!(w.hooks.replay(id, log[1].position).await.unwrap().queued, 1);
    w.deliver_everything().await;
    assert_eq!(r.delivered().len(), 8);

    // Test event.
    let test = w.hooks.send_test(id, "adm_test").unwrap();
    w.deliver_everything().await;
    let last = r.delivered().pop().unwrap();
    assert_eq!(last.header("webhook-id"), test.to_string());
    assert_eq!(last.json()["type"], "webhook.test");
    assert_eq!(last.json()["type_code"], 4955);
    assert!(verifies(secret.expose(), &last));
    assert_eq!(
        w.hooks.delivery(test).unwrap().unwrap().status,
        DeliveryStatus::Delivered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_within_bounds_and_the_schedule_ends() {
    let w = World::new(DeliveryConfig {
        max_retry_after: Duration::from_secs(600),
        ..fast_config()
    })
    .await;
    let r = Receiver::start(Mode::Status(503, Some("120")));
    let id = webhook_id(1);
    w.webhook(id, TenantRef::Root, &r.url, &[4600], true).await;
    w.policy(TenantRef::Root, 1).await;
    w.hooks.run_until_idle().await.unwrap();
    let d = w.hooks.deliveries(id, None, 1).unwrap().remove(0);
    assert_eq!(d.next_attempt_at_us - w.clock.now_us(), 120_000_000);
    assert_eq!(d.attempts[0].status_code, Some(503));

    r.set_mode(Mode::Status(429, Some("99999")));
    w.clock.advance_secs(121);
    w.hooks.run_until_idle().await.unwrap();
    let d = w.hooks.deliveries(id, None, 1).unwrap().remove(0);
    assert_eq!(d.next_attempt_at_us - w.clock.now_us(), 600_000_000);

    r.set_mode(Mode::Status(500, None));
    w.clock.advance_secs(601);
    w.deliver_everything().await;
    let d = w.hooks.deliveries(id, None, 1).unwrap().remove(0);
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(d.attempt_count, 4, "the first attempt and three retries");
    assert_eq!(r.all().len(), 4);
    assert_eq!(w.hooks.metrics().gave_up, 1);
}
