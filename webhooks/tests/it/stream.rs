use std::collections::BTreeSet;

use domain::ids::TenantRef;
use webhooks::{CloseReason, Frame, StreamClient, StreamConfig, StreamHub, StreamRequest};

use crate::harness::*;

async fn event(client: &mut StreamClient) -> (u64, serde_json::Value) {
    match client.next().await.unwrap() {
        Frame::Event { position, json } => (position, serde_json::from_str(&json).unwrap()),
        Frame::Hello(h) => panic!("unexpected hello {h}"),
    }
}

async fn hello(client: &mut StreamClient) -> serde_json::Value {
    match client.next().await.unwrap() {
        Frame::Hello(h) => serde_json::from_str(&h).unwrap(),
        other => panic!("expected hello, got {other:?}"),
    }
}

fn codes(list: &[u16]) -> BTreeSet<u16> {
    list.iter().copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_their_scope_and_types_in_order_and_resume_after_a_position() {
    let w = World::new(fast_config()).await;
    let hub = StreamHub::new(
        w.log.clone(),
        StreamConfig { buffer: 64 },
        w.hooks.metrics_handle(),
    );
    let t1 = TenantRef::Tenant(w.tenant(1).await); // 1
    let t2 = TenantRef::Tenant(w.tenant(2).await); // 2
    hub.pump().await.unwrap();
    let mut policies = hub.open(StreamRequest {
        scope: TenantRef::Root,
        allow: codes(&[4600]),
        after: Some(0),
    });
    let mut tenant_one = hub.open(StreamRequest {
        scope: t1,
        allow: codes(&[]),
        after: Some(0),
    });
    assert_eq!(w.hooks.metrics().stream_clients, 2);
    let p3 = w.policy(t1, 1).await;
    let p4 = w.policy(t2, 2).await;
    w.tenant(3).await; // 5
    let p6 = w.policy(t1, 3).await;
    hub.pump().await.unwrap();

    let h = hello(&mut policies).await;
    assert_eq!(h["type"], "meta.hello");
    assert_eq!(h["type_code"], 4000);
    assert_eq!(h["position"], 0);
    for expected in [p3, p4, p6] {
        let (position, body) = event(&mut policies).await;
        assert_eq!(position, expected);
        assert_eq!(body["type_code"], 4600);
        assert_eq!(body["position"], expected);
    }
    hello(&mut tenant_one).await;
    let (first, body) = event(&mut tenant_one).await;
    assert_eq!(
        (first, body["type"].as_str().unwrap()),
        (1, "tenant.created")
    );
    assert_eq!(event(&mut tenant_one).await.0, p3);
    let (last, body) = event(&mut tenant_one).await;
    assert_eq!(last, p6);
    assert_eq!(body["tenant_id"], t1.to_string());

    // A reconnect after p3 resumes exactly there.
    let mut again = hub.open(StreamRequest {
        scope: TenantRef::Root,
        allow: codes(&[4600]),
        after: Some(p3),
    });
    hello(&mut again).await;
    assert_eq!(event(&mut again).await.0, p4);
    assert_eq!(event(&mut again).await.0, p6);
    drop((policies, tenant_one, again));
    assert_eq!(w.hooks.metrics().stream_clients, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_cut_off_while_a_fast_one_continues_and_can_resume() {
    let w = World::new(fast_config()).await;
    let hub = StreamHub::new(
        w.log.clone(),
        StreamConfig { buffer: 8 },
        w.hooks.metrics_handle(),
    );
    let live = StreamRequest {
        scope: TenantRef::Root,
        allow: codes(&[]),
        after: None,
    };
    let mut slow = hub.open(live.clone());
    let mut fast = hub.open(live);
    hello(&mut fast).await;
    let mut positions = Vec::new();
    for i in 0..20 {
        let p = w.policy(TenantRef::Root, i).await;
        positions.push(p);
        hub.pump().await.unwrap();
        assert_eq!(event(&mut fast).await.0, p, "the fast client keeps up");
    }
    hello(&mut slow).await;
    let cut = slow.next().await.unwrap_err();
    assert_eq!(cut, CloseReason::TooSlow { resume_after: 0 });
    assert!(cut.reason().contains("after=0"));
    assert_eq!(w.hooks.metrics().stream_cut_off, 1);

    // It reconnects from where it was and gets everything, in order.
    let mut resumed = hub.open(StreamRequest {
        scope: TenantRef::Root,
        allow: codes(&[]),
        after: Some(0),
    });
    hello(&mut resumed).await;
    for p in &positions {
        assert_eq!(event(&mut resumed).await.0, *p);
    }
    // And then continues live.
    let next = w.policy(TenantRef::Root, 99).await;
    hub.pump().await.unwrap();
    assert_eq!(event(&mut resumed).await.0, next);
    assert_eq!(event(&mut fast).await.0, next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_catch_up_is_not_mistaken_for_a_slow_client() {
    let w = World::new(fast_config()).await;
    let hub = StreamHub::new(
        w.log.clone(),
        StreamConfig { buffer: 4 },
        w.hooks.metrics_handle(),
    );
    let mut expected = Vec::new();
    for i in 0..30 {
        expected.push(w.policy(TenantRef::Root, i).await);
    }
    hub.pump().await.unwrap();
    let mut client = hub.open(StreamRequest {
        scope: TenantRef::Root,
        allow: codes(&[]),
        after: Some(0),
    });
    // More than the ring holds arrives while the client has a backlog to catch up on.
    for i in 30..60 {
        expected.push(w.policy(TenantRef::Root, i).await);
    }
    hub.pump().await.unwrap();
    hello(&mut client).await;
    for p in expected {
        assert_eq!(event(&mut client).await.0, p);
    }
    assert_eq!(w.hooks.metrics().stream_cut_off, 0);
}
