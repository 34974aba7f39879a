//! One agent's live WebSocket connection: JSON text frames in both directions, each an object
//! with a `type`. A frame the server cannot take gets an `error` frame back (the connection
//! stays up); only a broken WebSocket or a binary frame closes it, with a reason.

use actix_web::web;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, MessageStream, Session};
use domain::{DeviceId, JobId};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::hub::{Attached, Outgoing};
use super::reports;
use crate::extract::{parse_id, parse_json};
use crate::problem::ApiError;
use crate::state::AppState;

/// Largest frame (and reassembled message) an agent may send.
const MAX_FRAME_BYTES: usize = 256 * 1024;

/// Drives the connection until either side ends it, then detaches it from the hub.
pub(crate) async fn run(
    state: web::Data<AppState>,
    device: DeviceId,
    attached: Attached,
    mut session: Session,
    stream: MessageStream,
) {
    let Attached {
        connection,
        mut outgoing,
        ..
    } = attached;
    let mut stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    let reason = loop {
        tokio::select! {
            message = stream.recv() => match message {
                None | Some(Ok(AggregatedMessage::Close(_))) => break None,
                Some(Err(e)) => break Some(close(CloseCode::Protocol, &e.to_string())),
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    break Some(close(CloseCode::Unsupported, "frames are JSON text"));
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Text(text))) => {
                    if let Some(reply) = handle(&state, device, &text).await {
                        if session.text(reply.to_string()).await.is_err() {
                            break None;
                        }
                    }
                }
            },
            next = outgoing.recv() => match next {
                Some(Outgoing::Command { command_id, command }) => {
                    let drop_after = matches!(command, super::DeviceCommand::DropConnection);
                    let mut frame = to_object(&command);
                    frame.insert("type".into(), json!("command"));
                    frame.insert("command_id".into(), json!(command_id.as_str()));
                    if session.text(Value::Object(frame).to_string()).await.is_err() {
                        break None;
                    }
                    if drop_after {
                        break Some(close(CloseCode::Normal, "drop_connection"));
                    }
                }
                Some(Outgoing::Close { reason }) => break Some(close(CloseCode::Policy, &reason)),
                None => break None,
            },
        }
    };
    let _already_closed = session.close(reason).await;
    super::disconnect(&state, device, connection).await;
}

fn close(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}

fn to_object(value: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Handles one text frame; the answer to send back, if any.
async fn handle(state: &AppState, device: DeviceId, text: &str) -> Option<Value> {
    let mut frame: Map<String, Value> = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(e) => return Some(error_frame(None, &ApiError::Malformed(e.to_string()))),
    };
    let kind = match frame.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => {
            return Some(error_frame(
                None,
                &ApiError::invalid("type", "every frame needs a string `type`"),
            ))
        }
    };
    match dispatch(state, device, &kind, frame).await {
        Ok(reply) => reply,
        Err(e) => {
            if matches!(e, ApiError::Internal(_) | ApiError::Unavailable(_)) {
                tracing::warn!(%device, frame = %kind, error = %e, "agent frame failed");
            }
            Some(error_frame(Some(&kind), &e))
        }
    }
}

async fn dispatch(
    state: &AppState,
    device: DeviceId,
    kind: &str,
    mut frame: Map<String, Value>,
) -> Result<Option<Value>, ApiError> {
    match kind {
        "hello" => {
            let version = frame.get("client_version").and_then(Value::as_str);
            tracing::debug!(%device, client_version = ?version, "agent hello");
            Ok(Some(
                json!({"type": "welcome", "device_id": device.to_string()}),
            ))
        }
        "job_started" => {
            let report = body(frame)?;
            let job = reports::start(state, device, report).await?;
            Ok(Some(
                json!({"type": "job_accepted", "job_id": job.to_string()}),
            ))
        }
        "job_progress" => {
            let job = job_id(&mut frame)?;
            reports::progress(state, device, job, body(frame)?).await?;
            Ok(None)
        }
        "job_finished" => {
            let job = job_id(&mut frame)?;
            reports::finish(state, device, job, body(frame)?).await?;
            Ok(None)
        }
        "job_log" => {
            let job = job_id(&mut frame)?;
            reports::log(state, device, job, body(frame)?).await?;
            Ok(None)
        }
        "command_result" => {
            let command = frame.get("command_id").and_then(Value::as_str);
            let ok = frame.get("ok").and_then(Value::as_bool);
            let detail = frame.get("detail").and_then(Value::as_str);
            tracing::info!(%device, ?command, ?ok, ?detail, "command result");
            Ok(None)
        }
        other => Err(ApiError::invalid(
            "type",
            format!("unknown frame type `{other}`"),
        )),
    }
}

fn job_id(frame: &mut Map<String, Value>) -> Result<JobId, ApiError> {
    match frame.remove("job_id") {
        Some(Value::String(id)) => parse_id("job_id", &id),
        _ => Err(ApiError::invalid("job_id", "missing or not a string")),
    }
}

/// The rest of a frame as a report, with errors naming the field.
fn body<T: serde::de::DeserializeOwned>(frame: Map<String, Value>) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&frame).map_err(ApiError::internal)?;
    parse_json(&bytes)
}

/// `{"type": "error", "in_reply_to": <frame type>, "problem": <problem+json object>}`.
fn error_frame(in_reply_to: Option<&str>, error: &ApiError) -> Value {
    json!({"type": "error", "in_reply_to": in_reply_to, "problem": error.problem()})
}
