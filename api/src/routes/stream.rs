//! `GET /events/stream`: the live event stream over WebSocket.
//!
//! Authenticated like every route by `Authorization: Bearer`, or, for browsers that cannot
//! set headers on a WebSocket, by a first text frame `{"token": "<access token>"}`. Scoped
//! like webhooks: a tenant admin gets its tenant's events, root every tenant's. The frames
//! are `meta.hello` (4000) first, then one JSON event per text frame in log order; a client
//! that falls too far behind, including one that stopped reading, is closed (1013, "try
//! again later") with a reason naming the position to resume after, and reconnects with
//! `after=`.

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::{get, web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, Session};
use domain::Event;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use webhooks::{CloseReason, StreamRequest};

use crate::auth::{scope_for_token, Scope};
use crate::extract::{parse_json, Query};
use crate::problem::ApiError;
use crate::state::AppState;

/// How long a browser client has to send its token frame.
const TOKEN_FRAME_WAIT: Duration = Duration::from_secs(10);
/// Clients only send control frames and the token; anything large is a mistake.
const MAX_FRAME_BYTES: usize = 16 * 1024;
/// How long the close frame may wait behind unread frames; a client that reads nothing for
/// that long is dropped without it.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(stream);
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated type codes to receive, e.g. `4100,4200`; absent or empty: all.
    #[serde(rename = "allowList")]
    #[param(rename = "allowList")]
    pub allow_list: Option<String>,
    /// Resume after this log position: catch up from the log, then live. Absent: live from
    /// now.
    pub after: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFrame {
    token: String,
}

fn parse_allow_list(raw: Option<&str>) -> Result<BTreeSet<u16>, ApiError> {
    let mut allow = BTreeSet::new();
    for part in raw.unwrap_or_default().split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let code = part
            .parse::<u16>()
            .ok()
            .filter(|c| Event::name_of(*c).is_some())
            .ok_or_else(|| {
                ApiError::invalid("allowList", format!("{part:?} is not an event type code"))
            })?;
        allow.insert(code);
    }
    Ok(allow)
}

/// The live event stream (WebSocket upgrade). Without an `Authorization` header the first
/// text frame must be `{"token": "<access token>"}`.
#[utoipa::path(
    tag = "events",
    params(StreamQuery),
    responses((status = 101, description = "Switched to the WebSocket protocol: `meta.hello`, then one JSON event per text frame.")),
    security(("bearer" = []))
)]
#[get("/events/stream")]
async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    Query(q): Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let allow = parse_allow_list(q.allow_list.as_deref())?;
    // A header that is present must be valid: answer 401 before upgrading.
    let scope = if req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        Some(<Scope as actix_web::FromRequest>::extract(&req).await?)
    } else {
        None
    };
    let (response, session, messages) =
        actix_ws::handle(&req, payload).map_err(|e| ApiError::invalid("upgrade", e.to_string()))?;
    let messages = messages
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    actix_web::rt::spawn(run(state, scope, allow, q.after, session, messages));
    Ok(response)
}

async fn run(
    state: web::Data<AppState>,
    scope: Option<Scope>,
    allow: BTreeSet<u16>,
    after: Option<u64>,
    mut session: Session,
    mut messages: AggregatedMessageStream,
) {
    let scope = match scope {
        Some(scope) => scope,
        None => match token_frame(&state, &mut messages).await {
            Ok(scope) => scope,
            Err(reason) => {
                let _already_closed = session.close(Some(close(CloseCode::Policy, reason))).await;
                return;
            }
        },
    };
    let mut client = state.stream.open(StreamRequest {
        scope: scope.owner(),
        allow,
        after,
    });
    let reason = loop {
        tokio::select! {
            frame = client.next() => match frame {
                Ok(frame) => {
                    // A client that stops reading blocks this send once the socket and the
                    // session's queue are full; it is cut off when the ring passes it.
                    tokio::select! {
                        sent = session.text(frame.text().to_owned()) => {
                            if sent.is_err() {
                                break None;
                            }
                        }
                        ended = client.fell_behind(&frame) => {
                            break Some(close(CloseCode::Again, &ended.reason()));
                        }
                    }
                }
                Err(ended) => {
                    let code = match ended {
                        CloseReason::TooSlow { .. } => CloseCode::Again,
                        CloseReason::Shutdown { .. } => CloseCode::Away,
                        CloseReason::Failed { ref reason } => {
                            tracing::error!(%reason, "event stream failed");
                            CloseCode::Error
                        }
                    };
                    break Some(close(code, &ended.reason()));
                }
            },
            message = messages.recv() => match message {
                None | Some(Ok(AggregatedMessage::Close(_))) => break None,
                Some(Err(e)) => break Some(close(CloseCode::Protocol, &e.to_string())),
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        break None;
                    }
                }
                // The stream is one-way; anything else the client sends is ignored.
                Some(Ok(_)) => {}
            },
        }
    };
    drop(client);
    let _closed_or_gone = tokio::time::timeout(CLOSE_WAIT, session.close(reason)).await;
}

/// Waits for `{"token": "..."}` and authenticates it; the close reason on failure.
async fn token_frame(
    state: &AppState,
    messages: &mut AggregatedMessageStream,
) -> Result<Scope, &'static str> {
    const EXPECTED: &str = "send {\"token\": \"<access token>\"} first, or an Authorization header";
    let first = tokio::time::timeout(TOKEN_FRAME_WAIT, async {
        loop {
            match messages.recv().await {
                Some(Ok(AggregatedMessage::Text(text))) => return Some(text),
                Some(Ok(AggregatedMessage::Ping(_) | AggregatedMessage::Pong(_))) => {}
                _ => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
    .ok_or(EXPECTED)?;
    let frame: TokenFrame = parse_json(first.as_bytes()).map_err(|_| EXPECTED)?;
    scope_for_token(state, &frame.token).map_err(|_| "invalid or expired access token")
}

fn close(code: CloseCode, description: &str) -> actix_ws::CloseReason {
    actix_ws::CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}
