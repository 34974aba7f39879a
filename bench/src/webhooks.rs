//! `bench webhooks`: events fanned out to local HTTP endpoints through the durable delivery
//! path (subscriber → delivery records → dispatcher → signed POST), next to a plain POST loop
//! against the same receivers with the same concurrency, in the same run.
//!
//! The appender keeps at most `WINDOW` events ahead of the fully delivered ones (a closed
//! loop), so `p99_ms` (append start → receipt) measures the pipeline at full throughput
//! rather than the time to drain an arbitrarily large burst.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use domain::commands::CreateWebhook;
use domain::events::PolicyCreated;
use domain::ids::{PolicyId, TenantRef, WebhookId};
use domain::model::{PolicySpec, WebhookLevel, WebhookSpec};
use domain::{Event, State};
use eventlog::{AppendRequest, EventLog, ExpectedVersion, NewEvent, SledLog};
use serde_json::json;
use tokio::sync::watch;
use webhooks::{DeliveryConfig, Webhooks};
use writer::{Clock, CommandMeta, SystemClock, Writer};

/// Events appended in one durable transaction.
const EVENTS_PER_APPEND: usize = 100;
/// Events the appender may run ahead of the receivers.
const WINDOW: u64 = 500;

pub struct WebhooksResult {
    deliveries: u64,
    endpoints: usize,
    concurrency: usize,
    deliveries_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    baseline_per_sec: f64,
}

impl WebhooksResult {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": "webhooks",
            "deliveries": self.deliveries,
            "endpoints": self.endpoints,
            "concurrency_per_endpoint": self.concurrency,
            "deliveries_per_sec": self.deliveries_per_sec.round(),
            "p50_ms": (self.p50_ms * 10.0).round() / 10.0,
            "p99_ms": (self.p99_ms * 10.0).round() / 10.0,
            "baseline_per_sec": self.baseline_per_sec.round(),
            "ratio": ((self.deliveries_per_sec / self.baseline_per_sec) * 100.0).round() / 100.0,
        })
    }
}

/// What the receivers share: a count, and each request's log position and arrival.
struct Receipts {
    count: AtomicU64,
    arrivals: Mutex<Vec<(u64, Instant)>>,
}

async fn receive(body: web::Bytes, receipts: web::Data<Arc<Receipts>>) -> HttpResponse {
    let now = Instant::now();
    if let Some(position) = position_of(&body) {
        receipts
            .arrivals
            .lock()
            .expect("receipts lock")
            .push((position, now));
    }
    receipts.count.fetch_add(1, Ordering::Relaxed);
    HttpResponse::NoContent().finish()
}

/// The `"position":N` of a body, found without parsing the whole document.
fn position_of(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"position\":")? + "\"position\":".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub async fn run(
    dir: &Path,
    events: usize,
    endpoints: usize,
    concurrency: usize,
) -> anyhow::Result<WebhooksResult> {
    let receipts = Arc::new(Receipts {
        count: AtomicU64::new(0),
        arrivals: Mutex::new(Vec::new()),
    });
    let mut urls = Vec::new();
    let mut listeners = Vec::new();
    for _ in 0..endpoints {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a receiver")?;
        urls.push(format!("http://{}/hook", listener.local_addr()?));
        listeners.push(listener);
    }
    let data = web::Data::new(receipts.clone());
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .default_service(web::to(receive))
    })
    .workers(2)
    .backlog(4096)
    .max_connections(100_000)
    .disable_signals();
    for listener in listeners {
        server = server.listen(listener)?;
    }
    let server = server.run();
    let server_handle = server.handle();
    tokio::spawn(server);

    let baseline_per_sec = baseline(&urls, events, concurrency, &receipts).await?;

    let log_dir = dir.join("webhooks");
    if log_dir.exists() {
        std::fs::remove_dir_all(&log_dir)
            .with_context(|| format!("clearing {}", log_dir.display()))?;
    }
    let sled_log = SledLog::open(&log_dir).context("opening the log")?;
    let sync = sled_log.db_sync()?;
    let log: Arc<dyn EventLog> = Arc::new(sled_log);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (writer, _writer_task) = Writer::start(log.clone(), State::new(), clock.clone());
    let config = DeliveryConfig {
        per_endpoint_concurrency: concurrency,
        max_in_flight: concurrency * endpoints,
        ..DeliveryConfig::default()
    };
    let hooks = Webhooks::open(&sync, log.clone(), writer.clone(), clock.clone(), config)?;
    for (n, url) in urls.iter().enumerate() {
        let (_, fingerprint) = hooks.new_secret().await?;
        let meta = CommandMeta {
            actor: "bench".into(),
            correlation_id: "bench".into(),
            idempotency_key: None,
            expected_version: None,
        };
        let command = CreateWebhook {
            webhook_id: WebhookId::new(1_700_000_000_000, n as u128 + 1),
            tenant: TenantRef::Root,
            spec: WebhookSpec {
                name: format!("endpoint {n}"),
                url: url.clone(),
                event_types: [4600].into_iter().collect(),
                level: WebhookLevel::Full,
                custom_headers: Default::default(),
                enabled: true,
            },
            secret_fingerprint: fingerprint,
        };
        writer.execute(meta, command.into()).await?;
    }
    let (stop, shutdown) = watch::channel(false);
    let runner = {
        let hooks = hooks.clone();
        tokio::spawn(async move { hooks.run(shutdown).await })
    };
    receipts.count.store(0, Ordering::SeqCst);
    receipts.arrivals.lock().expect("receipts lock").clear();

    let target = (events * endpoints) as u64;
    let mut appended_at: BTreeMap<u64, Instant> = BTreeMap::new();
    let started = Instant::now();
    let mut appended = 0usize;
    let mut n = 0u128;
    while appended < events {
        let delivered_events = receipts.count.load(Ordering::Relaxed) / endpoints as u64;
        if appended as u64 - delivered_events.min(appended as u64) > WINDOW {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let chunk = EVENTS_PER_APPEND.min(events - appended);
        let mut requests = Vec::with_capacity(chunk);
        for _ in 0..chunk {
            n += 1;
            requests.push(policy_created(n, clock.now_us()));
        }
        let at = Instant::now();
        let result = log.append_many(requests).await?;
        for a in result {
            for p in a.first..=a.last {
                appended_at.insert(p, at);
            }
        }
        appended += chunk;
    }
    while receipts.count.load(Ordering::Relaxed) < target {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.send_replace(true);
    runner.await??;
    let deliveries = receipts.count.load(Ordering::SeqCst);

    // One latency per delivery: the append's start to that endpoint's receipt.
    let arrivals = std::mem::take(&mut *receipts.arrivals.lock().expect("receipts lock"));
    let mut latencies: Vec<f64> = arrivals
        .iter()
        .filter_map(|(position, received)| {
            let at = appended_at.get(position)?;
            Some(received.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    anyhow::ensure!(!latencies.is_empty(), "no delivery was received");
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    server_handle.stop(true).await;
    Ok(WebhooksResult {
        deliveries,
        endpoints,
        concurrency,
        deliveries_per_sec: deliveries as f64 / secs,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        baseline_per_sec,
    })
}

fn policy_created(n: u128, now_us: i64) -> AppendRequest {
    let policy_id = PolicyId::new(1_700_000_000_000, n);
    let event = Event::PolicyCreated(PolicyCreated {
        policy_id,
        tenant: TenantRef::Root,
        spec: PolicySpec {
            name: format!("policy {n}"),
            description: "bench".into(),
            is_default: false,
            random_delay_secs: None,
            settings: Default::default(),
        },
    });
    let encoded = domain::encode(&event);
    AppendRequest {
        stream: event.stream(),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            tenant: "root".into(),
            type_code: encoded.type_code,
            schema_version: encoded.schema_version,
            recorded_at_us: now_us,
            actor: "bench".into(),
            correlation_id: "bench".into(),
            payload: encoded.payload,
        }],
        idempotency_key: None,
    }
}

/// The same number of POSTs with a webhook-sized body, `concurrency` loops per endpoint,
/// no log, no records, no signatures.
async fn baseline(
    urls: &[String],
    events: usize,
    concurrency: usize,
    receipts: &Arc<Receipts>,
) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let body = r#"{"id":"msg_1_0_whk_01HF7YAT00000000000000000Z","actor":"bench","data":{"policy_id":"pol_01HF7YAT000000000000000001","spec":{"description":"bench","is_default":false,"name":"policy 1","random_delay_secs":null,"settings":{}},"tenant":"root"},"position":0,"resource_id":"pol_01HF7YAT000000000000000001","tenant_id":"root","timestamp":"2026-11-27T07:00:00.000000Z","type":"policy.created","type_code":4600}"#;
    let per_loop = events / concurrency;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for url in urls {
        for _ in 0..concurrency {
            let client = client.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..per_loop {
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?;
                    response.bytes().await?;
                }
                Ok::<_, reqwest::Error>(())
            }));
        }
    }
    for task in tasks {
        task.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let sent = receipts.count.load(Ordering::SeqCst);
    Ok(sent as f64 / secs)
}
