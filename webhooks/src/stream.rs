//! The live event stream's hub: what the WebSocket route (`GET /api/v1/events/stream`)
//! sends, without the WebSocket.
//!
//! One task tails the log and renders each event once into a broadcast ring of
//! `StreamConfig::buffer` entries. A client first catches up from the log (pulling at its own
//! pace), then reads the ring. A client that falls a whole ring behind the live tail is cut
//! off with [`CloseReason::TooSlow`] and the position to resume after: the log still holds
//! everything, so it reconnects with `after=` and misses nothing. A client that stops
//! reading altogether blocks its sender rather than the ring, so the sender races each live
//! send against [`StreamClient::fell_behind`]. Events reach every client
//! in position order, each at most once per connection.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use domain::ids::TenantRef;
use domain::Event;
use eventlog::{EventLog, Position, RecordedEvent, Subscription};
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::body;
use crate::error::WebhookError;
use crate::metrics::Metrics;

/// Type code of the first frame of every stream.
pub const HELLO_TYPE_CODE: u16 = 4000;
/// Events read from the log per catch-up step.
const CATCH_UP_CHUNK: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Live events a client may fall behind before it is cut off.
    pub buffer: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig { buffer: 1024 }
    }
}

/// What a client asked for, already authorised: `scope` is the caller's tenant, or root for
/// every tenant's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    pub scope: TenantRef,
    /// Type codes to send; empty means all.
    pub allow: BTreeSet<u16>,
    /// Resume after this position (catch up from the log first); `None` starts live at
    /// the current head.
    pub after: Option<Position>,
}

/// One text frame to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// `meta.hello` (4000), always first: `{type, type_code, position, head, allow_list}`.
    Hello(String),
    /// One event, rendered like a webhook body at level `full` with `id` `evt_<position>`.
    Event { position: Position, json: Arc<str> },
}

impl Frame {
    pub fn text(&self) -> &str {
        match self {
            Frame::Hello(text) => text,
            Frame::Event { json, .. } => json,
        }
    }
}

/// Why a stream ended; the WebSocket route turns it into a close frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client fell more than the buffer behind; reconnect with `after=resume_after`.
    TooSlow { resume_after: Position },
    /// The hub stopped (server shutdown).
    Shutdown { resume_after: Position },
    /// Reading or decoding the log failed (a bug or a broken log).
    Failed { reason: String },
}

impl CloseReason {
    /// A short text for the close frame (WebSocket reasons must stay under 123 bytes).
    pub fn reason(&self) -> String {
        match self {
            CloseReason::TooSlow { resume_after } => {
                format!("too slow; resume with after={resume_after}")
            }
            CloseReason::Shutdown { resume_after } => {
                format!("server shutting down; resume with after={resume_after}")
            }
            CloseReason::Failed { .. } => "internal error".to_owned(),
        }
    }
}

struct LiveEvent {
    position: Position,
    tenant: TenantRef,
    type_code: u16,
    json: Arc<str>,
}

struct HubInner {
    log: Arc<dyn EventLog>,
    ring: broadcast::Sender<Arc<LiveEvent>>,
    /// The ring's capacity: how far behind the live tail a client may fall.
    buffer: usize,
    /// The last position put into the ring. Stored before the send, so a client that
    /// subscribes and then reads it finds every later event in the ring.
    published: watch::Sender<Position>,
    subscription: tokio::sync::Mutex<Subscription>,
    metrics: Arc<Metrics>,
}

/// The stream hub; cheap to clone.
#[derive(Clone)]
pub struct StreamHub {
    inner: Arc<HubInner>,
}

impl StreamHub {
    /// A hub that goes live from the log's current head. Nothing moves until
    /// [`StreamHub::run`] (or, in tests, [`StreamHub::pump`]).
    pub fn new(log: Arc<dyn EventLog>, config: StreamConfig, metrics: Arc<Metrics>) -> StreamHub {
        let head = log.head();
        let buffer = config.buffer.max(1);
        let (ring, _) = broadcast::channel(buffer);
        StreamHub {
            inner: Arc::new(HubInner {
                subscription: tokio::sync::Mutex::new(Subscription::new(log.clone(), head)),
                log,
                ring,
                buffer,
                published: watch::Sender::new(head),
                metrics,
            }),
        }
    }

    /// Tails the log into the ring until `shutdown` turns true.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> Result<(), WebhookError> {
        let mut sub = self.inner.subscription.lock().await;
        loop {
            let batch = tokio::select! {
                batch = sub.next_batch(CATCH_UP_CHUNK) => batch?,
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            };
            self.publish(batch)?;
        }
    }

    /// Publishes whatever the log holds now, without waiting (tests).
    pub async fn pump(&self) -> Result<Position, WebhookError> {
        let mut sub = self.inner.subscription.lock().await;
        loop {
            let batch = sub.try_next_batch(CATCH_UP_CHUNK).await?;
            if batch.is_empty() {
                return Ok(sub.position());
            }
            self.publish(batch)?;
        }
    }

    fn publish(&self, batch: Vec<RecordedEvent>) -> Result<(), WebhookError> {
        for recorded in batch {
            let (position, event) = decode(&recorded)?;
            let live = Arc::new(LiveEvent {
                position,
                tenant: event.tenant(),
                type_code: event.type_code(),
                json: render(&recorded, &event),
            });
            self.inner.published.send_replace(position);
            // No receivers is fine: nobody is listening right now.
            let _ = self.inner.ring.send(live);
        }
        Ok(())
    }

    /// Opens a stream for an authorised request.
    pub fn open(&self, request: StreamRequest) -> StreamClient {
        let ring = self.inner.ring.subscribe();
        let published = *self.inner.published.borrow();
        let after = request.after.unwrap_or(published).min(published);
        Metrics::add(&self.inner.metrics.stream_clients, 1);
        StreamClient {
            hub: self.inner.clone(),
            ring,
            request,
            seen: after,
            catch_up_to: published,
            catching_up: after < published,
            hello: true,
            pending: VecDeque::new(),
        }
    }
}

/// One connected client. Dropping it counts the client out.
pub struct StreamClient {
    hub: Arc<HubInner>,
    ring: broadcast::Receiver<Arc<LiveEvent>>,
    request: StreamRequest,
    /// The highest position examined (sent or filtered out): where to resume.
    seen: Position,
    catch_up_to: Position,
    /// Whether the client has been catching up since it last subscribed to the ring without
    /// reading from it yet: a lag then only means the catch-up took long, and is answered
    /// with more catch-up rather than a cut-off.
    catching_up: bool,
    hello: bool,
    pending: VecDeque<Frame>,
}

impl Drop for StreamClient {
    fn drop(&mut self) {
        Metrics::sub(&self.hub.metrics.stream_clients, 1);
    }
}

impl StreamClient {
    /// Where a reconnect should resume (`after=`).
    pub fn position(&self) -> Position {
        self.seen
    }

    fn wants(&self, tenant: TenantRef, type_code: u16) -> bool {
        (self.request.scope == TenantRef::Root || self.request.scope == tenant)
            && (self.request.allow.is_empty() || self.request.allow.contains(&type_code))
    }

    /// The next frame, waiting for live events; an `Err` ends the stream.
    pub async fn next(&mut self) -> Result<Frame, CloseReason> {
        if std::mem::take(&mut self.hello) {
            let hello = json!({
                "type": "meta.hello",
                "type_code": HELLO_TYPE_CODE,
                "position": self.seen,
                "head": self.catch_up_to,
                "allow_list": self.request.allow,
            });
            return Ok(Frame::Hello(hello.to_string()));
        }
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Ok(frame);
            }
            if self.seen < self.catch_up_to {
                self.catch_up().await?;
                continue;
            }
            match self.ring.recv().await {
                Ok(live) => {
                    self.catching_up = false;
                    if live.position <= self.seen {
                        continue;
                    }
                    self.seen = live.position;
                    if self.wants(live.tenant, live.type_code) {
                        return Ok(Frame::Event {
                            position: live.position,
                            json: live.json.clone(),
                        });
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) if self.catching_up => {
                    self.ring = self.hub.ring.subscribe();
                    self.catch_up_to = *self.hub.published.borrow();
                    self.catching_up = self.seen < self.catch_up_to;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Metrics::add(&self.hub.metrics.stream_cut_off, 1);
                    return Err(CloseReason::TooSlow {
                        resume_after: self.seen,
                    });
                }
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(CloseReason::Shutdown {
                        resume_after: self.seen,
                    })
                }
            }
        }
    }

    /// Resolves once the live tail is more than the buffer past `sending`, the live frame
    /// the caller is stuck sending: the client stopped reading, so it is cut off with the
    /// position before that frame to resume after. Never resolves for a frame of the
    /// catch-up, which the client pulls from the log at its own pace.
    pub async fn fell_behind(&self, sending: &Frame) -> CloseReason {
        let live = self.pending.is_empty() && !self.catching_up;
        let Frame::Event { position, .. } = sending else {
            return std::future::pending().await;
        };
        if !live {
            return std::future::pending().await;
        }
        let limit = position + self.hub.buffer as Position;
        let mut published = self.hub.published.subscribe();
        if published.wait_for(|p| *p > limit).await.is_err() {
            // The hub is gone: the stream ends through `next` instead.
            return std::future::pending().await;
        }
        Metrics::add(&self.hub.metrics.stream_cut_off, 1);
        CloseReason::TooSlow {
            resume_after: position - 1,
        }
    }

    async fn catch_up(&mut self) -> Result<(), CloseReason> {
        let failed = |e: WebhookError| CloseReason::Failed {
            reason: e.to_string(),
        };
        let batch = self
            .hub
            .log
            .read_all(self.seen, CATCH_UP_CHUNK)
            .await
            .map_err(|e| failed(e.into()))?;
        if batch.is_empty() {
            self.catch_up_to = self.seen;
        }
        for recorded in batch {
            let (position, event) = decode(&recorded).map_err(failed)?;
            if position > self.catch_up_to {
                break;
            }
            self.seen = position;
            if self.wants(event.tenant(), event.type_code()) {
                self.pending.push_back(Frame::Event {
                    position,
                    json: render(&recorded, &event),
                });
            }
        }
        Ok(())
    }
}

fn decode(recorded: &RecordedEvent) -> Result<(Position, Event), WebhookError> {
    let envelope = &recorded.envelope;
    let event = domain::decode(
        envelope.type_code,
        envelope.schema_version,
        &recorded.payload,
    )?;
    Ok((envelope.position, event))
}

fn render(recorded: &RecordedEvent, event: &Event) -> Arc<str> {
    let template = body::render(&recorded.envelope, event);
    let id = format!("evt_{}", recorded.envelope.position);
    body::with_id(&template, &id).into()
}
