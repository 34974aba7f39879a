//! Operations endpoints: liveness, readiness and Prometheus metrics.

use actix_web::http::StatusCode;
use actix_web::{get, web, HttpResponse};
use projections::Status;
use serde_json::json;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{AppState, Problem};

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(healthz).service(readyz).service(metrics);
}

/// The process is up and serving HTTP; says nothing about the data.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object))
)]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 once the read models have replayed the log as it was at start.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "`{status, log_head, projected}`", body = Object),
        (status = 503, description = "Still catching up, or the projector stopped.", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let head = state.log.head();
    let Status { applied, halted } = *state.read_models.status().borrow();
    if halted {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            format!("the projection runner stopped at position {applied}"),
        )
        .response()
    } else if applied >= state.startup_head {
        HttpResponse::Ok().json(json!({
            "status": "ready",
            "log_head": head,
            "projected": applied,
        }))
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            format!(
                "read models at position {applied}, catching up to {}",
                state.startup_head
            ),
        )
        .response()
    }
}

/// Prometheus text: log head, projection position and lag, group-commit counters, webhook
/// delivery and event-stream figures.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Prometheus exposition text.", body = String, content_type = "text/plain"))
)]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let head = state.log.head();
    let projected = state.read_models.position();
    let mut out = String::new();
    gauge(
        &mut out,
        "halley_log_head_position",
        "Last durable global position in the event log.",
        head,
    );
    gauge(
        &mut out,
        "halley_projection_position",
        "Log position the read models reflect.",
        projected,
    );
    gauge(
        &mut out,
        "halley_projection_lag_events",
        "Events appended but not yet applied to the read models.",
        head.saturating_sub(projected),
    );
    let commits = (state.commit_stats)();
    counter(
        &mut out,
        "halley_log_appends_total",
        "Append requests made durable since the log was opened.",
        commits.requests,
    );
    counter(
        &mut out,
        "halley_log_group_commits_total",
        "Group commits (one fdatasync each) since the log was opened.",
        commits.commits,
    );
    let hooks = state.webhooks.metrics();
    gauge(
        &mut out,
        "halley_webhook_queue_depth",
        "Webhook deliveries waiting, due or in flight.",
        hooks.queue_depth,
    );
    gauge(
        &mut out,
        "halley_webhook_in_flight",
        "Webhook requests in flight.",
        hooks.in_flight,
    );
    counter(
        &mut out,
        "halley_webhook_attempts_total",
        "Webhook delivery attempts since start.",
        hooks.attempts,
    );
    counter(
        &mut out,
        "halley_webhook_failures_total",
        "Webhook attempts without a 2xx answer (including timeouts).",
        hooks.failures,
    );
    counter(
        &mut out,
        "halley_webhook_delivered_total",
        "Webhook deliveries that got a 2xx answer.",
        hooks.delivered,
    );
    counter(
        &mut out,
        "halley_webhook_gave_up_total",
        "Webhook deliveries that used up their retry schedule.",
        hooks.gave_up,
    );
    counter(
        &mut out,
        "halley_webhook_latency_microseconds_total",
        "Sum of webhook attempt latencies; divide by the attempts for the mean.",
        hooks.latency_us_sum,
    );
    gauge(
        &mut out,
        "halley_stream_clients",
        "Connected event-stream clients.",
        hooks.stream_clients,
    );
    counter(
        &mut out,
        "halley_stream_cut_off_total",
        "Event-stream clients disconnected for falling behind.",
        hooks.stream_cut_off,
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    sample(out, "gauge", name, help, value);
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    sample(out, "counter", name, help, value);
}

fn sample(out: &mut String, kind: &str, name: &str, help: &str, value: u64) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    ));
}
