//! The durable delivery subscriber and the dispatcher.
//!
//! The subscriber tails the log from its checkpoint. For each event it finds the endpoints
//! that want it (tenant match or top level, allow list, enabled), and writes the body and one
//! open-event row naming those endpoints, with the new checkpoint, in one sled batch: after a
//! crash it either redoes the whole batch or none of it is lost. Endpoint changes (webhook
//! events, tenant removal) are applied to its registry in the same batch, so routing at
//! position p always reflects the endpoints as of p.
//!
//! Deliveries themselves live in memory until an attempt ends: the dispatcher keeps their
//! records, a ready queue per endpoint and a timer set for retries, all rebuilt at start from
//! the open rows (a delivery without a record, or with a pending one, is due). It starts
//! attempts round-robin across endpoints under a per-endpoint and a global bound, so a
//! hanging endpoint holds at most its own slots while the others keep flowing. Each outcome
//! is one record write, and the outcome that settles an event's last delivery removes its
//! open row in the same batch; the recorder thread gathers outcomes for a few milliseconds,
//! applies them as one batch, and only then takes settled deliveries out of the queue (or
//! schedules their retries), so an attempt's task ends with its request. A crash before
//! that batch leaves the delivery due, so it is sent again (at least once); one sled write
//! per delivery, plus a few per event.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use domain::commands::DisableWebhook;
use domain::ids::{TenantRef, WebhookId};
use domain::model::Webhook;
use domain::Event;
use eventlog::{Checkpoints, DbSync, EventLog, Position, RecordedEvent, Subscription};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use tokio::sync::{watch, Notify};
use writer::{Clock, CommandMeta, Writer};

use crate::body;
use crate::config::DeliveryConfig;
use crate::error::WebhookError;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::secret::{Secret, SecretStore};
use crate::sign::{header_of, Signer};
use crate::store::*;

/// The consumer name: its checkpoint and records live in the tree `sub/webhooks`.
pub const CONSUMER: &str = "webhooks";
/// Log events read per subscriber batch.
const BATCH: usize = 256;
/// Response bodies are read (so the connection can be reused) up to this many bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The webhooks service: subscriber, dispatcher, and the operations the API needs. Cheap
/// to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

/// What [`Webhooks::replay`] queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Deliveries (re)queued.
    pub queued: u64,
    /// The last position looked at; later events reach the endpoint through the subscriber.
    pub up_to: Position,
}

struct Inner {
    db: sled::Db,
    checkpoints: Checkpoints,
    secrets: SecretStore,
    /// Secrets already read from the store: they never change.
    secret_cache: RwLock<HashMap<String, Secret>>,
    /// Attempt outcomes and requeues go to sled through one thread that applies what has
    /// queued up as one batch, in the order they were queued: sled's batches take a
    /// process-wide lock, and holding it from the async workers stalled every request in
    /// flight. It also takes each applied outcome out of the queue, so an attempt's task ends
    /// when its request does.
    recorder: std::sync::mpsc::Sender<Recording>,
    log: Arc<dyn EventLog>,
    writer: Writer,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    http: reqwest::Client,
    registry: RwLock<HashMap<WebhookId, Webhook>>,
    /// Per endpoint, what its attempts need prepared (see [`Target`]).
    targets: RwLock<HashMap<WebhookId, Arc<Target>>>,
    queues: Arc<Mutex<Queues>>,
    subscription: tokio::sync::Mutex<Subscription>,
    /// Woken whenever work may have become available or an attempt finished.
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    position: watch::Sender<Position>,
}

/// A delivery the dispatcher holds: its record as it stands (ahead of the disk while an
/// outcome is being written), its timer while it waits for a retry, and whether an outcome
/// of it is with the recorder.
struct Queued {
    record: DeliveryRecord,
    due: Option<i64>,
    recording: bool,
}

/// An event (or test delivery) with deliveries in the queue.
struct OpenEvent {
    /// Queued deliveries not yet settled; the open row goes with the last one's outcome.
    unsettled: usize,
    body: Arc<str>,
}

#[derive(Default)]
struct Queues {
    ready: HashMap<WebhookId, VecDeque<DeliveryId>>,
    in_flight_by: HashMap<WebhookId, usize>,
    in_flight: usize,
    timers: BTreeSet<(i64, DeliveryId)>,
    /// Every delivery in `ready`, `timers`, in flight or being recorded, by id (so one
    /// endpoint's are a range, for the delivery log).
    queued: BTreeMap<DeliveryId, Queued>,
    /// By (position, seq).
    open: HashMap<(Position, u64), OpenEvent>,
    /// Attempts whose request is over but whose outcome is still being written.
    recording: usize,
}

impl Queues {
    /// Takes a pending delivery into the queue, due at its `next_attempt_at_us`; false if it
    /// is queued already.
    fn admit(&mut self, record: DeliveryRecord, body: &Arc<str>, now_us: i64) -> bool {
        let id = record.id();
        if self.queued.contains_key(&id) {
            return false;
        }
        self.count_unsettled(id, body);
        let due = record.next_attempt_at_us;
        self.queued.insert(
            id,
            Queued {
                record,
                due: None,
                recording: false,
            },
        );
        self.schedule(id, due, now_us);
        true
    }

    /// Counts one more unsettled delivery of `id`'s event, opening the event if needed.
    fn count_unsettled(&mut self, id: DeliveryId, body: &Arc<str>) {
        self.open
            .entry((id.position, id.seq))
            .or_insert_with(|| OpenEvent {
                unsettled: 0,
                body: body.clone(),
            })
            .unsettled += 1;
    }

    /// Puts a queued delivery in its endpoint's ready queue, or on a timer.
    fn schedule(&mut self, id: DeliveryId, due_us: i64, now_us: i64) {
        let Some(queued) = self.queued.get_mut(&id) else {
            return;
        };
        if due_us <= now_us {
            queued.due = None;
            self.ready.entry(id.webhook).or_default().push_back(id);
        } else {
            queued.due = Some(due_us);
            self.timers.insert((due_us, id));
        }
    }

    /// Counts a delivery of its event as settled; true if it was the event's last one (its
    /// open row must go with this outcome).
    fn settle(&mut self, id: DeliveryId) -> bool {
        let key = (id.position, id.seq);
        let Some(event) = self.open.get_mut(&key) else {
            return false;
        };
        event.unsettled -= 1;
        if event.unsettled > 0 {
            return false;
        }
        self.open.remove(&key);
        true
    }

    /// Undoes [`Queues::settle`] for a delivery whose settling outcome was not written: it
    /// is pending again, and its event open.
    fn unsettle(&mut self, id: DeliveryId, body: &Arc<str>) {
        if let Some(queued) = self.queued.get_mut(&id) {
            queued.record.status = DeliveryStatus::Pending;
        }
        self.count_unsettled(id, body);
    }

    fn promote(&mut self, now_us: i64) {
        while let Some(&(due, id)) = self.timers.first() {
            if due > now_us {
                break;
            }
            self.timers.pop_first();
            if let Some(queued) = self.queued.get_mut(&id) {
                queued.due = None;
            }
            self.ready.entry(id.webhook).or_default().push_back(id);
        }
    }

    /// Takes ready deliveries round-robin across endpoints within both bounds.
    fn take(&mut self, config: &DeliveryConfig) -> Vec<DeliveryId> {
        let mut taken = Vec::new();
        loop {
            let mut progress = false;
            for (webhook, queue) in self.ready.iter_mut() {
                if self.in_flight >= config.max_in_flight {
                    return taken;
                }
                let busy = self.in_flight_by.entry(*webhook).or_default();
                if *busy >= config.per_endpoint_concurrency {
                    continue;
                }
                if let Some(id) = queue.pop_front() {
                    *busy += 1;
                    self.in_flight += 1;
                    taken.push(id);
                    progress = true;
                }
            }
            self.ready.retain(|_, q| !q.is_empty());
            if !progress {
                return taken;
            }
        }
    }

    /// Frees the delivery's concurrency slot (its request is over).
    fn release(&mut self, id: DeliveryId) {
        self.in_flight -= 1;
        if let Some(busy) = self.in_flight_by.get_mut(&id.webhook) {
            *busy -= 1;
            if *busy == 0 {
                self.in_flight_by.remove(&id.webhook);
            }
        }
    }

    fn idle(&self) -> bool {
        self.in_flight == 0 && self.ready.is_empty() && self.recording == 0
    }
}

impl Webhooks {
    /// Opens the service on the log's database (`sync` is its handle; secrets are synced
    /// before they are used): loads the endpoints and the pending deliveries as of the last
    /// checkpoint. Nothing runs until [`Webhooks::run`] (or, in tests,
    /// [`Webhooks::run_until_idle`]).
    pub fn open(
        sync: &DbSync,
        log: Arc<dyn EventLog>,
        writer: Writer,
        clock: Arc<dyn Clock>,
        config: DeliveryConfig,
    ) -> Result<Webhooks, WebhookError> {
        let db = sync.db();
        let checkpoints = Checkpoints::open(db, CONSUMER)?;
        let position = checkpoints.load()?;
        let tree = checkpoints.tree().clone();
        let mut registry = HashMap::new();
        for entry in tree.scan_prefix([ENDPOINT]) {
            let (_, value) = entry?;
            let webhook: Webhook = serde_json::from_slice(&value)?;
            registry.insert(webhook.id, webhook);
        }
        let now = clock.now_us();
        let mut queues = Queues::default();
        for entry in tree.scan_prefix([OPEN]) {
            let (key, row) = entry?;
            let (Some((position, seq)), Some((type_code, webhooks))) =
                (parse_open_key(&key), parse_open_row(&row))
            else {
                continue;
            };
            let body: Arc<str> = load_body(&tree, position, seq)?
                .ok_or_else(|| WebhookError::UnknownDelivery {
                    id: format!("body of {position}/{seq}"),
                })?
                .into();
            for webhook in webhooks {
                let id = DeliveryId {
                    webhook,
                    position,
                    seq,
                };
                // No record: routed, never attempted (records are written on outcomes).
                let record = match load_record(&tree, id)? {
                    None => DeliveryRecord::new(id, type_code, now),
                    Some(record) if record.status == DeliveryStatus::Pending => record,
                    Some(_) => continue,
                };
                queues.admit(record, &body, now);
            }
        }
        let metrics = Arc::new(Metrics::default());
        Metrics::add(&metrics.queue_depth, queues.queued.len() as u64);
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.per_endpoint_concurrency)
            .user_agent("halley-webhooks")
            .build()
            .expect("the HTTP client builds with rustls");
        let (position_tx, _) = watch::channel(position);
        let queues = Arc::new(Mutex::new(queues));
        let wake = Arc::new(Notify::new());
        let recorder = start_recorder(Recorder {
            tree: tree.clone(),
            queues: queues.clone(),
            wake: wake.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            config: config.clone(),
        })?;
        Ok(Webhooks {
            inner: Arc::new(Inner {
                db: db.clone(),
                secrets: SecretStore::open(sync)?,
                secret_cache: RwLock::new(HashMap::new()),
                recorder,
                subscription: tokio::sync::Mutex::new(Subscription::new(log.clone(), position)),
                checkpoints,
                log,
                writer,
                clock,
                config,
                http,
                registry: RwLock::new(registry),
                targets: RwLock::new(HashMap::new()),
                queues,
                wake,
                metrics,
                position: position_tx,
            }),
        })
    }

    // --- running -------------------------------------------------------------------------

    /// Runs the subscriber and the dispatcher until `shutdown` turns true. Attempts in
    /// flight at shutdown finish on their own; any cut short stay pending for the next start.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), WebhookError> {
        let subscriber = self.clone();
        let mut sub_shutdown = shutdown.clone();
        let mut subscriber = tokio::spawn(async move {
            loop {
                let mut sub = subscriber.inner.subscription.lock().await;
                let batch = tokio::select! {
                    batch = sub.next_batch(BATCH) => batch?,
                    _ = sub_shutdown.wait_for(|stop| *stop) => return Ok(()),
                };
                drop(sub);
                let inner = subscriber.inner.clone();
                // Rendering and the sled batch are blocking work; keep them off the
                // workers that carry the HTTP attempts.
                tokio::task::spawn_blocking(move || inner.apply_batch(batch))
                    .await
                    .map_err(|e| WebhookError::Task(e.to_string()))??;
            }
        });
        let inner = &self.inner;
        loop {
            let notified = inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            inner.start_due();
            let next_timer = inner.lock_queues().timers.first().map(|(due, _)| *due);
            let sleep = async {
                match next_timer {
                    Some(due) => {
                        let wait = u64::try_from(due - inner.clock.now_us()).unwrap_or(0);
                        tokio::time::sleep(Duration::from_micros(wait)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = sleep => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
                ended = &mut subscriber => {
                    return ended.unwrap_or(Ok(()));
                }
            }
        }
        subscriber.await.unwrap_or(Ok(()))
    }

    /// Applies every event the log holds now (without waiting for more); returns the
    /// subscriber's position.
    pub async fn catch_up(&self) -> Result<Position, WebhookError> {
        let mut sub = self.inner.subscription.lock().await;
        loop {
            let batch = sub.try_next_batch(BATCH).await?;
            if batch.is_empty() {
                return Ok(sub.position());
            }
            self.inner.apply_batch(batch)?;
        }
    }

    /// Test and shutdown driver: catches up with the log and makes every attempt that is due
    /// by the clock, repeatedly, until nothing is due or in flight. Retries scheduled for
    /// later stay queued: move the clock and call again.
    pub async fn run_until_idle(&self) -> Result<(), WebhookError> {
        loop {
            self.catch_up().await?;
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.inner.start_due();
            let idle = self.inner.lock_queues().idle();
            if idle && self.inner.log.head() <= self.inner.checkpoints.load()? {
                return Ok(());
            }
            if !idle {
                notified.await;
            }
        }
    }

    /// Waits until the subscriber has applied `position` (read-your-writes for endpoints).
    pub async fn wait_for(&self, position: Position) {
        let mut rx = self.inner.position.subscribe();
        // An error means the service is gone; nothing to wait for then.
        let _ = rx.wait_for(|p| *p >= position).await;
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// The counters, to share with a [`crate::StreamHub`] so `/metrics` reads one place.
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    // --- endpoints and secrets -----------------------------------------------------------

    /// A fresh secret, stored durably; put its fingerprint in `CreateWebhook` or
    /// `RotateWebhookSecret`, and show [`Secret::expose`] to the caller once.
    pub async fn new_secret(&self) -> Result<(Secret, String), WebhookError> {
        let secret = Secret::generate();
        let fingerprint = self.inner.secrets.put(&secret).await?;
        Ok((secret, fingerprint))
    }

    pub fn secrets(&self) -> &SecretStore {
        &self.inner.secrets
    }

    /// An endpoint as of the subscriber's position (see [`Webhooks::wait_for`]).
    pub fn webhook(&self, id: WebhookId) -> Option<Webhook> {
        self.inner.read_registry().get(&id).cloned()
    }

    /// The endpoints `tenant` owns (root: the top-level ones), by id.
    pub fn webhooks_of(&self, tenant: TenantRef) -> Vec<Webhook> {
        let mut all: Vec<Webhook> = self
            .inner
            .read_registry()
            .values()
            .filter(|w| w.tenant == tenant)
            .cloned()
            .collect();
        all.sort_by_key(|w| w.id);
        all
    }

    // --- delivery log and operations -----------------------------------------------------

    /// A delivery as it stands: the dispatcher's copy while it is queued (the disk has it
    /// only once an attempt ended), else the stored record.
    pub fn delivery(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, WebhookError> {
        if let Some(queued) = self.inner.lock_queues().queued.get(&id) {
            return Ok(Some(queued.record.clone()));
        }
        load_record(self.inner.checkpoints.tree(), id)
    }

    /// One endpoint's deliveries in id order (position, then seq), after the cursor.
    pub fn deliveries(
        &self,
        webhook: WebhookId,
        after: Option<DeliveryId>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, WebhookError> {
        let tree = self.inner.checkpoints.tree();
        let prefix = endpoint_prefix(DELIVERY, webhook);
        let start = match after {
            Some(id) => {
                let mut key = delivery_key(DELIVERY, id);
                key.push(0);
                key
            }
            None => prefix.clone(),
        };
        // The queued ones first: they are newer than what the disk has of them.
        let first = DeliveryId {
            webhook,
            position: 0,
            seq: 0,
        };
        let mut merged: BTreeMap<DeliveryId, DeliveryRecord> = self
            .inner
            .lock_queues()
            .queued
            .range(first..)
            .take_while(|(id, _)| id.webhook == webhook)
            .filter(|(id, _)| after.is_none_or(|after| **id > after))
            .take(limit)
            .map(|(id, queued)| (*id, queued.record.clone()))
            .collect();
        for entry in tree.range(start..).take(limit) {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let record = decode_record(&value)?;
            merged.entry(record.id()).or_insert(record);
        }
        Ok(merged.into_values().take(limit).collect())
    }

    /// Sends one delivery again now, whatever its state; a delivery already in flight is
    /// left to finish. Returns the record as queued.
    pub fn retry(&self, id: DeliveryId) -> Result<DeliveryRecord, WebhookError> {
        let record = self
            .delivery(id)?
            .ok_or_else(|| WebhookError::UnknownDelivery { id: id.to_string() })?;
        let body = self.inner.body(id.position, id.seq)?;
        self.inner.requeue_now(vec![(record, body)])?;
        self.delivery(id)?
            .ok_or_else(|| WebhookError::UnknownDelivery { id: id.to_string() })
    }

    /// Queues every event after `after` (up to the subscriber's position) that the endpoint
    /// wants under its current settings, with the same delivery ids as the first time.
    pub async fn replay(
        &self,
        webhook: WebhookId,
        after: Position,
    ) -> Result<ReplaySummary, WebhookError> {
        let inner = &self.inner;
        let endpoint = self
            .webhook(webhook)
            .ok_or_else(|| WebhookError::UnknownWebhook {
                id: webhook.to_string(),
            })?;
        let up_to = inner.checkpoints.load()?;
        let tree = inner.checkpoints.tree();
        let mut cursor = after;
        let mut queued = 0;
        while cursor < up_to {
            let events = inner.log.read_all(cursor, BATCH).await?;
            let Some(last) = events.last() else { break };
            cursor = last.envelope.position;
            let mut batch = Vec::new();
            for recorded in events {
                let envelope = &recorded.envelope;
                if envelope.position > up_to {
                    break;
                }
                let event = domain::decode(
                    envelope.type_code,
                    envelope.schema_version,
                    &recorded.payload,
                )?;
                if !routes(&endpoint, &event) {
                    continue;
                }
                let body: Arc<str> = match load_body(tree, envelope.position, 0)? {
                    Some(body) => body.into(),
                    None => {
                        let body = body::render(envelope, &event);
                        tree.insert(body_key(envelope.position, 0), body.as_bytes())?;
                        body.into()
                    }
                };
                let id = DeliveryId {
                    webhook,
                    position: envelope.position,
                    seq: 0,
                };
                let existing = load_record(tree, id)?;
                let record = existing.unwrap_or_else(|| {
                    DeliveryRecord::new(id, envelope.type_code, inner.clock.now_us())
                });
                batch.push((record, body));
            }
            queued += batch.len() as u64;
            inner.requeue_now(batch)?;
        }
        Ok(ReplaySummary { queued, up_to })
    }

    /// Queues a `webhook.test` delivery to the endpoint (even if disabled it is not sent:
    /// a disabled endpoint receives nothing).
    pub fn send_test(&self, webhook: WebhookId, actor: &str) -> Result<DeliveryId, WebhookError> {
        let inner = &self.inner;
        let endpoint = self
            .webhook(webhook)
            .ok_or_else(|| WebhookError::UnknownWebhook {
                id: webhook.to_string(),
            })?;
        let now = inner.clock.now_us();
        let id = DeliveryId {
            webhook,
            position: inner.checkpoints.load()?,
            seq: inner.db.generate_id()? + 1,
        };
        let template = body::render_test(&endpoint, id.position, now, actor);
        inner
            .checkpoints
            .tree()
            .insert(body_key(id.position, id.seq), template.as_bytes())?;
        let record = DeliveryRecord::new(id, body::TEST_TYPE_CODE, now);
        inner.requeue_now(vec![(record, template.into())])?;
        Ok(id)
    }
}

/// Whether `webhook` wants `event`: its own tenant's events (all of them at the top level),
/// of a listed type (any if the list is empty), while enabled.
fn routes(webhook: &Webhook, event: &Event) -> bool {
    webhook.spec.enabled
        && (webhook.tenant == TenantRef::Root || webhook.tenant == event.tenant())
        && webhook.spec.wants(event.type_code())
}

impl Inner {
    fn lock_queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().expect("queue lock poisoned")
    }

    fn read_registry(&self) -> std::sync::RwLockReadGuard<'_, HashMap<WebhookId, Webhook>> {
        self.registry.read().expect("registry lock poisoned")
    }

    /// The body template of an event or test delivery: the queue's copy if it has one.
    fn body(&self, position: Position, seq: u64) -> Result<Arc<str>, WebhookError> {
        if let Some(event) = self.lock_queues().open.get(&(position, seq)) {
            return Ok(event.body.clone());
        }
        load_body(self.checkpoints.tree(), position, seq)?
            .map(Arc::from)
            .ok_or_else(|| WebhookError::UnknownDelivery {
                id: format!("msg_{position}_{seq}"),
            })
    }

    fn secret(&self, fingerprint: &str) -> Result<Option<Secret>, WebhookError> {
        if let Some(secret) = self
            .secret_cache
            .read()
            .expect("secret cache lock poisoned")
            .get(fingerprint)
        {
            return Ok(Some(secret.clone()));
        }
        let found = self.secrets.get(fingerprint)?;
        if let Some(secret) = &found {
            self.secret_cache
                .write()
                .expect("secret cache lock poisoned")
                .insert(fingerprint.to_owned(), secret.clone());
        }
        Ok(found)
    }

    /// Fans one batch of log events out into deliveries: bodies and open rows, atomically
    /// with the checkpoint.
    fn apply_batch(&self, events: Vec<RecordedEvent>) -> Result<(), WebhookError> {
        let Some(last) = events.last().map(|e| e.envelope.position) else {
            return Ok(());
        };
        let now = self.clock.now_us();
        let mut batch = sled::Batch::default();
        let mut created = Vec::new();
        {
            let mut registry = self.registry.write().expect("registry lock poisoned");
            for recorded in &events {
                let envelope = &recorded.envelope;
                let event = domain::decode(
                    envelope.type_code,
                    envelope.schema_version,
                    &recorded.payload,
                )?;
                let targets: Vec<WebhookId> = registry
                    .values()
                    .filter(|w| routes(w, &event))
                    .map(|w| w.id)
                    .collect();
                if !targets.is_empty() {
                    let template: Arc<str> = body::render(envelope, &event).into();
                    batch.insert(&body_key(envelope.position, 0), template.as_bytes());
                    batch.insert(
                        &open_key(envelope.position, 0),
                        open_row(envelope.type_code, &targets),
                    );
                    for webhook in targets {
                        let id = DeliveryId {
                            webhook,
                            position: envelope.position,
                            seq: 0,
                        };
                        let record = DeliveryRecord::new(id, envelope.type_code, now);
                        created.push((record, template.clone()));
                    }
                }
                apply_to_registry(&mut registry, &mut batch, &event);
            }
        }
        self.checkpoints.commit(batch, last)?;
        {
            let mut queues = self.lock_queues();
            for (record, body) in created {
                if queues.admit(record, &body, now) {
                    Metrics::add(&self.metrics.queue_depth, 1);
                }
            }
        }
        self.position.send_replace(last);
        self.wake.notify_waiters();
        Ok(())
    }

    /// Puts deliveries (with their bodies) back in the queue due now: in flight → left
    /// alone; waiting for a retry → moved to now; otherwise reset to pending, written, and
    /// named in its event's open row. Returns once that is on disk.
    fn requeue_now(&self, records: Vec<(DeliveryRecord, Arc<str>)>) -> Result<(), WebhookError> {
        let now = self.clock.now_us();
        let mut ops = Vec::new();
        let written = {
            let mut queues = self.lock_queues();
            for (mut record, body) in records {
                let id = record.id();
                match queues.queued.get_mut(&id) {
                    Some(queued) if queued.recording => {
                        // Its outcome is being written: requeued after it, and the recorder
                        // schedules it (now) instead of taking it out of the queue.
                        let settled = queued.record.status != DeliveryStatus::Pending;
                        queued.record.requeue(now);
                        ops.push(Op::Put(
                            delivery_key(DELIVERY, id),
                            encode_record(&queued.record),
                        ));
                        if settled {
                            queues.unsettle(id, &body);
                            ops.push(Op::Open {
                                key: open_key(id.position, id.seq),
                                type_code: record.type_code,
                                webhook: id.webhook,
                            });
                        }
                    }
                    Some(queued) => {
                        // Ready or in flight: it is about to be sent anyway.
                        let Some(due) = queued.due else {
                            continue;
                        };
                        queued.record.requeue(now);
                        ops.push(Op::Put(
                            delivery_key(DELIVERY, id),
                            encode_record(&queued.record),
                        ));
                        queues.timers.remove(&(due, id));
                        queues.schedule(id, now, now);
                    }
                    None => {
                        record.requeue(now);
                        ops.push(Op::Put(delivery_key(DELIVERY, id), encode_record(&record)));
                        ops.push(Op::Open {
                            key: open_key(id.position, id.seq),
                            type_code: record.type_code,
                            webhook: id.webhook,
                        });
                        queues.admit(record, &body, now);
                        Metrics::add(&self.metrics.queue_depth, 1);
                    }
                }
            }
            // Queued under the lock, so it is written before any outcome of these attempts.
            let (done, written) = std::sync::mpsc::channel();
            self.submit(
                ops,
                Then::Tell(Box::new(move |result| {
                    let _ = done.send(result);
                })),
            )?;
            written
        };
        self.wake.notify_waiters();
        written
            .recv()
            .map_err(|_| WebhookError::RecorderGone)?
            .map_err(WebhookError::Storage)
    }

    /// Starts every attempt that is due and fits the bounds.
    fn start_due(self: &Arc<Self>) {
        let taken = {
            let mut queues = self.lock_queues();
            queues.promote(self.clock.now_us());
            queues.take(&self.config)
        };
        Metrics::add(&self.metrics.in_flight, taken.len() as u64);
        for id in taken {
            let inner = self.clone();
            tokio::spawn(async move {
                let mut slot = Slot {
                    inner: &inner,
                    id,
                    held: true,
                };
                if let Err(error) = inner.attempt(id, &mut slot).await {
                    // No outcome reached the recorder: the delivery stays due on disk; try
                    // again after the first retry delay.
                    tracing::error!(delivery = %id, %error, "webhook attempt failed to run");
                    slot.release();
                    let now = inner.clock.now_us();
                    let mut queues = inner.lock_queues();
                    queues.recording -= 1;
                    queues.schedule(id, now + first_delay_us(&inner.config), now);
                    drop(queues);
                    inner.wake.notify_waiters();
                }
            });
        }
    }

    /// What attempts to the endpoint need, prepared once per version of the endpoint;
    /// `None` if it is disabled or gone.
    fn target(&self, id: WebhookId) -> Result<Option<Arc<Target>>, WebhookError> {
        let webhook = {
            let registry = self.read_registry();
            let Some(webhook) = registry.get(&id).filter(|w| w.spec.enabled) else {
                drop(registry);
                self.targets
                    .write()
                    .expect("target lock poisoned")
                    .remove(&id);
                return Ok(None);
            };
            let targets = self.targets.read().expect("target lock poisoned");
            if let Some(target) = targets.get(&id).filter(|t| t.webhook == *webhook) {
                return Ok(Some(target.clone()));
            }
            webhook.clone()
        };
        let signer = |fingerprint: &str| -> Result<Option<Signer>, WebhookError> {
            let secret = self.secret(fingerprint)?;
            if secret.is_none() {
                tracing::error!(
                    webhook = %webhook.id, fingerprint, "signing secret missing from the store"
                );
            }
            Ok(secret.as_ref().map(Signer::new))
        };
        let current = signer(&webhook.secret)?;
        let retiring = match &webhook.retiring {
            Some(r) => signer(&r.fingerprint)?.map(|s| (s, r.valid_until)),
            None => None,
        };
        let target = Arc::new(Target {
            url: reqwest::Url::parse(&webhook.spec.url).ok(),
            webhook,
            current,
            retiring,
        });
        self.targets
            .write()
            .expect("target lock poisoned")
            .insert(id, target.clone());
        Ok(Some(target))
    }

    /// One HTTP attempt of a queued delivery; its outcome goes to the recorder, which takes
    /// the delivery out of the queue or schedules its retry once the outcome is written.
    /// An error means no outcome was handed over.
    async fn attempt(&self, id: DeliveryId, slot: &mut Slot<'_>) -> Result<(), WebhookError> {
        let (mut record, template) = {
            let queues = self.lock_queues();
            let record = queues.queued.get(&id).map(|q| q.record.clone());
            let body = queues
                .open
                .get(&(id.position, id.seq))
                .map(|e| e.body.clone());
            match (record, body) {
                (Some(record), Some(body)) => (record, body),
                _ => return Err(WebhookError::UnknownDelivery { id: id.to_string() }),
            }
        };
        let Some(target) = self.target(id.webhook)? else {
            record.status = DeliveryStatus::Cancelled;
            record.last_error = Some("the endpoint was disabled or removed".into());
            return self.write_outcome(slot, record, &template, Next::Settled);
        };
        let spec = &target.webhook.spec;
        let msg_id = id.to_string();
        let body = body::with_id(&body::at_level(&template, spec.level), &msg_id);
        let now_us = self.clock.now_us();
        let timestamp = now_us.div_euclid(1_000_000);
        let signature = target.signature(&msg_id, timestamp, body.as_bytes());
        let request = match &target.url {
            Some(url) => self.http.post(url.clone()),
            // Fails as the unparsed text would, and is recorded as such.
            None => self.http.post(&spec.url),
        };
        let mut request = request
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(WEBHOOK_ID, &msg_id)
            .header(WEBHOOK_TIMESTAMP, timestamp)
            .header(WEBHOOK_SIGNATURE, signature);
        for (name, value) in &spec.custom_headers {
            request = request.header(name, value);
        }
        Metrics::add(&self.metrics.attempts, 1);
        let started = Instant::now();
        let result = request.body(body).send().await;
        let (status_code, error, retry_after) = match result {
            Ok(mut response) => {
                let status = response.status();
                let retry_after = retry_after(response.headers(), now_us);
                let mut read = 0;
                while let Ok(Some(chunk)) = response.chunk().await {
                    read += chunk.len();
                    if read > MAX_RESPONSE_BYTES {
                        break;
                    }
                }
                let error = (!status.is_success()).then(|| format!("answered {status}"));
                (Some(status.as_u16()), error, retry_after)
            }
            Err(e) if e.is_timeout() => (None, Some("timed out".to_owned()), None),
            Err(e) => (None, Some(format!("request failed: {e}")), None),
        };
        let latency = started.elapsed();
        // The request is over: the next one to this endpoint need not wait for the disk.
        slot.release();
        Metrics::add(&self.metrics.latency_us_sum, latency.as_micros() as u64);
        let failed = error.is_some();
        record.record(Attempt {
            at_us: now_us,
            status_code,
            latency_ms: latency.as_millis() as u64,
            error,
        });
        if !failed {
            record.status = DeliveryStatus::Delivered;
            Metrics::add(&self.metrics.delivered, 1);
            return self.write_outcome(slot, record, &template, Next::Settled);
        }
        Metrics::add(&self.metrics.failures, 1);
        if status_code == Some(410) {
            record.status = DeliveryStatus::Failed;
            self.write_outcome(slot, record, &template, Next::Settled)?;
            self.disable(id.webhook, &msg_id).await;
            return Ok(());
        }
        record.failures_in_series += 1;
        match self.retry_delay(record.failures_in_series, retry_after) {
            Some(delay) => {
                record.next_attempt_at_us = self.clock.now_us() + delay.as_micros() as i64;
                self.write_outcome(slot, record, &template, Next::Retry)
            }
            None => {
                record.status = DeliveryStatus::Failed;
                Metrics::add(&self.metrics.gave_up, 1);
                self.write_outcome(slot, record, &template, Next::Settled)
            }
        }
    }

    /// Makes `record` the queued delivery's state and hands it to the recorder (releasing
    /// the attempt's slot first, if it still holds it). `Next::Settled` also counts it out
    /// of its event, whose open row goes with the last one.
    fn write_outcome(
        &self,
        slot: &mut Slot<'_>,
        record: DeliveryRecord,
        body: &Arc<str>,
        next: Next,
    ) -> Result<(), WebhookError> {
        slot.release();
        let id = record.id();
        let mut ops = vec![Op::Put(delivery_key(DELIVERY, id), encode_record(&record))];
        let mut queues = self.lock_queues();
        let settled = matches!(next, Next::Settled);
        if settled && queues.settle(id) {
            ops.push(Op::Close(open_key(id.position, id.seq)));
        }
        if let Some(queued) = queues.queued.get_mut(&id) {
            queued.record = record;
            queued.recording = true;
        }
        // Queued under the lock, so a requeue of the same event reopens it after this.
        let then = Then::Outcome {
            id,
            body: body.clone(),
        };
        let submitted = self.submit(ops, then);
        if submitted.is_err() {
            if let Some(queued) = queues.queued.get_mut(&id) {
                queued.recording = false;
            }
            if settled {
                queues.unsettle(id, body);
            }
        }
        submitted
    }

    /// Queues `ops` for the recorder thread, with what to do once they are applied.
    fn submit(&self, ops: Vec<Op>, then: Then) -> Result<(), WebhookError> {
        self.recorder
            .send(Recording { ops, then })
            .map_err(|_| WebhookError::RecorderGone)
    }

    /// The delay before retry number `failures` (1-based), or `None` when the schedule is
    /// used up. A longer `Retry-After` wins, up to `max_retry_after`.
    fn retry_delay(&self, failures: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.config.retry_schedule.get(failures as usize - 1)?;
        let scheduled = base.mul_f64(1.0 + rand::random::<f64>() * self.config.jitter);
        Some(match retry_after {
            Some(asked) => scheduled.max(asked.min(self.config.max_retry_after)),
            None => scheduled,
        })
    }

    /// 410 Gone: stop sending at once, and record the disable in the log.
    async fn disable(&self, webhook: WebhookId, msg_id: &str) {
        if let Some(w) = self
            .registry
            .write()
            .expect("registry lock poisoned")
            .get_mut(&webhook)
        {
            w.spec.enabled = false;
        }
        let meta = CommandMeta {
            actor: "system".into(),
            correlation_id: msg_id.to_owned(),
            idempotency_key: None,
            expected_version: None,
        };
        let command = DisableWebhook {
            webhook_id: webhook,
            reason: format!("the endpoint answered 410 Gone to delivery {msg_id}"),
        };
        if let Err(error) = self.writer.execute(meta, command.into()).await {
            // The endpoint is already off in memory; after a restart the next 410 tries
            // again.
            tracing::warn!(%webhook, %error, "could not record the webhook as disabled");
        }
    }
}

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// The parsed URL and keyed signers of one version of an endpoint.
struct Target {
    /// The endpoint as prepared; once it changes, the next attempt prepares it again.
    webhook: Webhook,
    /// `None` if the URL does not parse (each attempt then fails on the text).
    url: Option<reqwest::Url>,
    /// `None` if the secret is missing from the store (logged when prepared).
    current: Option<Signer>,
    /// The retiring secret and the Unix second it stops signing at.
    retiring: Option<(Signer, i64)>,
}

impl Target {
    /// The `webhook-signature` value: the current secret's signature, then the retiring
    /// one's during its grace period (as `Webhook::signing_secrets` orders them).
    fn signature(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let retiring = self
            .retiring
            .as_ref()
            .filter(|(_, until)| timestamp < *until)
            .map(|(signer, _)| signer);
        header_of(self.current.iter().chain(retiring), msg_id, timestamp, body)
    }
}

/// What an attempt's outcome is: the record says when a retry is due.
enum Next {
    /// Delivered, given up or cancelled: out of the queue once written.
    Settled,
    /// A retry follows.
    Retry,
}

/// The first retry delay in microseconds: when an outcome could not be written, the
/// delivery is tried again after it.
fn first_delay_us(config: &DeliveryConfig) -> i64 {
    let delay = config.retry_schedule.first().copied();
    delay.unwrap_or(Duration::from_secs(5)).as_micros() as i64
}

/// An attempt's hold on its endpoint's concurrency slot, released once the request is over.
struct Slot<'a> {
    inner: &'a Inner,
    id: DeliveryId,
    held: bool,
}

impl Slot<'_> {
    fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            let mut queues = self.inner.lock_queues();
            queues.release(self.id);
            queues.recording += 1;
            drop(queues);
            Metrics::sub(&self.inner.metrics.in_flight, 1);
            self.inner.wake.notify_waiters();
        }
    }
}

/// One write for the recorder thread.
enum Op {
    Put(Vec<u8>, Vec<u8>),
    /// Names `webhook` in the open row at `key` (creating it if needed).
    Open {
        key: [u8; 17],
        type_code: u16,
        webhook: WebhookId,
    },
    /// Removes the open row at `key`.
    Close([u8; 17]),
}

/// Told how the batch holding a recording went.
type Done = Box<dyn FnOnce(Result<(), sled::Error>) + Send>;

/// What the recorder does once a recording's batch is applied (or failed).
enum Then {
    /// An attempt's outcome (its slot already released, counted in `Queues::recording`).
    Outcome {
        id: DeliveryId,
        /// To reopen its event if the write failed.
        body: Arc<str>,
    },
    /// Someone waits for the write.
    Tell(Done),
}

struct Recording {
    ops: Vec<Op>,
    then: Then,
}

/// Most recordings applied in one batch.
const RECORD_BATCH: usize = 4096;
/// How long the recorder gathers recordings after the first before applying them: each
/// sled batch costs a log buffer write of its own, so outcomes are written in fewer, larger
/// batches. An outcome waiting here is only a delivery that a crash would send again.
const RECORD_LINGER: Duration = Duration::from_millis(5);

/// The recorder thread's share of the service.
struct Recorder {
    tree: sled::Tree,
    queues: Arc<Mutex<Queues>>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
}

/// Starts the recorder thread; it ends when the service (the last sender) is dropped.
fn start_recorder(recorder: Recorder) -> Result<std::sync::mpsc::Sender<Recording>, WebhookError> {
    let (tx, rx) = std::sync::mpsc::channel::<Recording>();
    std::thread::Builder::new()
        .name("webhooks-recorder".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                // Asleep rather than waiting on the channel: a waiting receiver is woken by
                // every send, which cost the senders a system call per outcome.
                std::thread::sleep(RECORD_LINGER);
                let mut group = vec![first];
                while group.len() < RECORD_BATCH {
                    match rx.try_recv() {
                        Ok(more) => group.push(more),
                        Err(_) => break,
                    }
                }
                let result = apply_recordings(&recorder.tree, &group);
                recorder.finish(group, result);
            }
        })
        .map_err(|e| WebhookError::RecorderStart(e.to_string()))?;
    Ok(tx)
}

impl Recorder {
    /// Takes applied outcomes out of the queue or schedules their retries (as the queued
    /// record now says: a delivery requeued while its outcome was written is pending again);
    /// a failed batch leaves them due after the first retry delay, their events open.
    fn finish(&self, group: Vec<Recording>, result: Result<(), sled::Error>) {
        if let Err(error) = &result {
            tracing::error!(%error, "webhook outcomes could not be written");
        }
        let now = self.clock.now_us();
        let mut queues = self.queues.lock().expect("queue lock poisoned");
        let mut tell = Vec::new();
        for recording in group {
            match recording.then {
                Then::Tell(done) => tell.push(done),
                Then::Outcome { id, body } => {
                    queues.recording -= 1;
                    let Some(queued) = queues.queued.get_mut(&id) else {
                        continue;
                    };
                    queued.recording = false;
                    let settled = queued.record.status != DeliveryStatus::Pending;
                    let due = queued.record.next_attempt_at_us;
                    match (&result, settled) {
                        (Ok(()), true) => {
                            queues.queued.remove(&id);
                            Metrics::sub(&self.metrics.queue_depth, 1);
                        }
                        (Ok(()), false) => queues.schedule(id, due, now),
                        (Err(_), settled) => {
                            if settled {
                                queues.unsettle(id, &body);
                            }
                            queues.schedule(id, now + first_delay_us(&self.config), now);
                        }
                    }
                }
            }
        }
        drop(queues);
        self.wake.notify_waiters();
        for done in tell {
            done(result.clone());
        }
    }
}

/// Applies a group of recordings, in order, as one batch.
fn apply_recordings(tree: &sled::Tree, group: &[Recording]) -> Result<(), sled::Error> {
    let mut batch = sled::Batch::default();
    // Open rows as this group leaves them (`None`: removed).
    let mut rows: HashMap<[u8; 17], Option<Vec<u8>>> = HashMap::new();
    for op in group.iter().flat_map(|r| &r.ops) {
        match op {
            Op::Put(key, value) => batch.insert(key.as_slice(), value.as_slice()),
            Op::Open {
                key,
                type_code,
                webhook,
            } => {
                let row = match rows.remove(key) {
                    Some(row) => row,
                    None => tree.get(key)?.map(|row| row.to_vec()),
                };
                let mut webhooks = row
                    .as_deref()
                    .and_then(parse_open_row)
                    .map(|(_, webhooks)| webhooks)
                    .unwrap_or_default();
                if !webhooks.contains(webhook) {
                    webhooks.push(*webhook);
                }
                rows.insert(*key, Some(open_row(*type_code, &webhooks)));
            }
            Op::Close(key) => {
                rows.insert(*key, None);
            }
        }
    }
    for (key, row) in rows {
        match row {
            Some(row) => batch.insert(&key, row),
            None => batch.remove(&key),
        }
    }
    tree.apply_batch(batch)
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap, now_us: i64) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let wait = at.timestamp_micros() - now_us;
    Some(Duration::from_micros(u64::try_from(wait).unwrap_or(0)))
}

/// Keeps the registry (and its rows in `batch`) in step with endpoint events.
fn apply_to_registry(
    registry: &mut HashMap<WebhookId, Webhook>,
    batch: &mut sled::Batch,
    event: &Event,
) {
    let touched: Vec<WebhookId> = match event {
        Event::WebhookCreated(e) => vec![e.webhook_id],
        Event::WebhookUpdated(e) => vec![e.webhook_id],
        Event::WebhookRemoved(e) => vec![e.webhook_id],
        Event::WebhookSecretRotated(e) => vec![e.webhook_id],
        Event::WebhookDisabled(e) => vec![e.webhook_id],
        Event::TenantRemoved(e) => {
            let owner = TenantRef::Tenant(e.tenant_id);
            let gone: HashSet<WebhookId> = registry
                .values()
                .filter(|w| w.tenant == owner)
                .map(|w| w.id)
                .collect();
            for id in &gone {
                registry.remove(id);
                batch.remove(endpoint_key(*id));
            }
            return;
        }
        _ => return,
    };
    for id in touched {
        let old = registry.remove(&id);
        match Webhook::evolve(old, event) {
            Some(w) => {
                batch.insert(endpoint_key(id), to_json(&w));
                registry.insert(id, w);
            }
            None => batch.remove(endpoint_key(id)),
        }
    }
}
