//! Schedules (backup rules) of a user, and their upcoming runs. A schedule is its own
//! aggregate (`sch_…` stream), so its `version` is its own. Triggers arrive as raw fields and
//! become domain triggers through `domain::validate`'s parsers, so a bad one is a 400 naming
//! its path (`triggers[0].cron`, `triggers[1].window.from`, …).

use actix_web::{delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use domain::commands::{CreateSchedule, RemoveSchedule, SchedulePatch, UpdateSchedule};
use domain::model::{self, Frequency, ScheduleSpec, Trigger};
use domain::validate::{parse_days, parse_frequency, parse_window, FrequencyDraft};
use domain::{Event, ItemId, ScheduleId, UserId, VaultId};
use projections::ReadModels;
use scheduler::ScheduleInput;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::{users, PageQuery};
use crate::auth::Scope;
use crate::extract::{parse_id, IfMatch, Json, Query};
use crate::idempotency::IdempotencyKey;
use crate::paging::{Page, PageRequest};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(list)
        .service(create)
        .service(get_one)
        .service(update)
        .service(remove)
        .service(upcoming);
}

/// The most runs one `upcoming` request may ask for.
const MAX_UPCOMING: u32 = 1000;
const DEFAULT_UPCOMING: u32 = 10;

/// A half-open local time-of-day window, `[from, to)`; it wraps midnight when `to < from`
/// and covers the whole day when `from == to`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// `HH:MM`, local time.
    pub from: String,
    /// `HH:MM`, local time, excluded.
    pub to: String,
}

/// One trigger. `frequency` is a code (8010 once, 8011 daily, 8012 hourly, 8013 weekly,
/// 8014 monthly, 8015 periodic, 8016 yearly); leave it out and give `cron` for a cron
/// expression (6 or 7 fields, seconds first). Times are in the user's time zone.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<u16>,
    /// Seconds after the period's start (midnight, the full hour, Sunday 00:00, the 1st).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_past: Option<u32>,
    /// Periodic: the period in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_secs: Option<u32>,
    /// Periodic: the phase, in seconds from the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_secs: Option<u32>,
    /// Yearly: month 1–12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<u8>,
    /// Yearly: day of the month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u8>,
    /// Once: Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Local weekdays (`mon` … `sun`) on which runs may fall; left out: every day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<Vec<String>>,
    /// The longest random delay of a run, 0–18000 s; a server-wide or policy setting wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_delay_secs: Option<u32>,
}

impl TriggerBody {
    fn from_model(t: &Trigger) -> TriggerBody {
        let mut body = TriggerBody {
            frequency: t.frequency.code(),
            seconds_past: None,
            period_secs: None,
            offset_secs: None,
            month: None,
            day: None,
            at: None,
            cron: None,
            window: t.window.map(|w| Window {
                from: w.from.to_string(),
                to: w.to.to_string(),
            }),
            days: t
                .days
                .as_ref()
                .map(|days| days.iter().map(|d| d.name().to_owned()).collect()),
            random_delay_secs: t.random_delay_secs,
        };
        match &t.frequency {
            Frequency::Once { at } => body.at = Some(*at),
            Frequency::Daily { seconds_past }
            | Frequency::Hourly { seconds_past }
            | Frequency::Weekly { seconds_past }
            | Frequency::Monthly { seconds_past } => body.seconds_past = Some(*seconds_past),
            Frequency::Periodic {
                period_secs,
                offset_secs,
            } => {
                body.period_secs = Some(*period_secs);
                body.offset_secs = Some(*offset_secs);
            }
            Frequency::Yearly {
                month,
                day,
                seconds_past,
            } => {
                body.month = Some(*month);
                body.day = Some(*day);
                body.seconds_past = Some(*seconds_past);
            }
            Frequency::Cron { expr } => body.cron = Some(expr.clone()),
        }
        body
    }

    /// The domain trigger; `field` is its path in the body, e.g. `triggers[0]`. Ranges and
    /// cron syntax are checked by the domain when the command is decided.
    fn into_trigger(self, field: &str) -> Result<Trigger, ApiError> {
        let frequency = parse_frequency(
            field,
            FrequencyDraft {
                code: self.frequency,
                seconds_past: self.seconds_past,
                period_secs: self.period_secs,
                offset_secs: self.offset_secs,
                month: self.month,
                day: self.day,
                at: self.at,
                cron: self.cron,
            },
        )?;
        let window = self
            .window
            .map(|w| parse_window(&format!("{field}.window"), &w.from, &w.to))
            .transpose()?;
        let days = self
            .days
            .map(|d| parse_days(&format!("{field}.days"), &d))
            .transpose()?;
        Ok(Trigger {
            frequency,
            window,
            days,
            random_delay_secs: self.random_delay_secs,
        })
    }
}

fn triggers(bodies: Vec<TriggerBody>) -> Result<Vec<Trigger>, ApiError> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.into_trigger(&format!("triggers[{i}]")))
        .collect()
}

#[derive(Serialize, ToSchema)]
pub struct Schedule {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub protected_item_id: String,
    pub vault_id: String,
    /// A run due while the schedule's previous job still runs is recorded as skipped (7006).
    pub skip_if_running: bool,
    pub triggers: Vec<TriggerBody>,
    /// No run is due (or missed) before this.
    pub created_at: DateTime<Utc>,
    /// Pass as `If-Match` to PATCH only this version.
    pub version: u64,
}

impl Schedule {
    fn from_model(s: &model::Schedule, models: &ReadModels) -> Schedule {
        let id = s.id.to_string();
        Schedule {
            version: models.version(&id),
            id,
            user_id: s.user.to_string(),
            name: s.spec.name.clone(),
            protected_item_id: s.spec.item.to_string(),
            vault_id: s.spec.vault.to_string(),
            skip_if_running: s.spec.skip_if_running,
            triggers: s
                .spec
                .triggers
                .iter()
                .map(TriggerBody::from_model)
                .collect(),
            created_at: DateTime::from_timestamp(s.created_at, 0).unwrap_or_default(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    pub name: String,
    /// `itm_…` of the same user.
    pub protected_item_id: String,
    /// `vlt_…` of the same user.
    pub vault_id: String,
    #[serde(default)]
    pub skip_if_running: bool,
    pub triggers: Vec<TriggerBody>,
}

/// Fields left out are unchanged; `triggers` replaces the whole list.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleChanges {
    pub name: Option<String>,
    pub protected_item_id: Option<String>,
    pub vault_id: Option<String>,
    pub skip_if_running: Option<bool>,
    pub triggers: Option<Vec<TriggerBody>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UpcomingQuery {
    /// How many runs, 1 to 1000 (default 10).
    #[param(minimum = 1, maximum = 1000)]
    pub count: Option<u32>,
    /// Runs due strictly after this instant (RFC 3339); default now.
    pub from: Option<String>,
}

/// One upcoming run.
#[derive(Serialize, ToSchema)]
pub struct UpcomingRun {
    /// When the run is due by its trigger.
    pub due_at: DateTime<Utc>,
    /// When it will be started: the due time plus the delay.
    pub fire_at: DateTime<Utc>,
    /// The run's random delay, within the effective maximum (server-wide, else the
    /// user's policy, else the trigger's own).
    pub delay_secs: u32,
}

fn find<'m>(
    models: &'m ReadModels,
    scope: &Scope,
    id: ScheduleId,
) -> Result<&'m model::Schedule, ApiError> {
    models
        .schedule(scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("schedule {id} not found")))
}

fn reply_with(
    state: &AppState,
    scope: &Scope,
    id: ScheduleId,
    ok: fn(&Schedule) -> Reply,
) -> Result<Reply, ApiError> {
    let models = state.read_models.read();
    Ok(ok(&Schedule::from_model(
        find(&models, scope, id)?,
        &models,
    )))
}

/// List a user's schedules, by id.
#[utoipa::path(
    tag = "schedules",
    params(("id" = String, Path, description = "`usr_…`"), PageQuery),
    responses((status = 200, description = "A page of the user's schedules.", body = Page<Schedule>)),
    security(("bearer" = []))
)]
#[get("/users/{id}/schedules")]
async fn list(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<UserId>("id", &id)?;
    let page = PageRequest::<ScheduleId>::new(q.limit, q.cursor.as_deref())?;
    let models = state.read_models.read();
    users::find(&models, &scope, id)?;
    let rows: Vec<&model::Schedule> = models
        .user_schedules(scope.read(), id)
        .into_iter()
        .filter(|s| page.after.is_none_or(|after| s.id > after))
        .take(page.fetch())
        .collect();
    Ok(Reply::ok(&page.page(
        rows,
        |s| s.id,
        |s| Schedule::from_model(s, &models),
    )))
}

/// Create a schedule for a user.
#[utoipa::path(
    tag = "schedules",
    request_body = NewSchedule,
    params(
        ("id" = String, Path, description = "`usr_…`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry safely: the same key and body return the first answer."),
    ),
    responses((status = 201, description = "Created.", body = Schedule)),
    security(("bearer" = []))
)]
#[post("/users/{id}/schedules")]
async fn create(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    key: IdempotencyKey,
    Json(body): Json<NewSchedule>,
) -> Result<Reply, ApiError> {
    let user_id = parse_id::<UserId>("id", &id)?;
    users::find(&state.read_models.read(), &scope, user_id)?;
    let spec = ScheduleSpec {
        name: body.name,
        item: parse_id::<ItemId>("protected_item_id", &body.protected_item_id)?,
        vault: parse_id::<VaultId>("vault_id", &body.vault_id)?,
        skip_if_running: body.skip_if_running,
        triggers: triggers(body.triggers)?,
    };
    let (state, scope) = (&state, &scope);
    key.run(&state.idempotency, scope, move |key| async move {
        let schedule_id = state.new_id(ScheduleId::new);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(CreateSchedule {
                schedule_id,
                user_id,
                spec,
            })
            .await?;
        // A replayed key created its schedule the first time, under that attempt's id.
        let id = written
            .events
            .iter()
            .find_map(|e| match e {
                Event::ScheduleCreated(e) => Some(e.schedule_id),
                _ => None,
            })
            .unwrap_or(schedule_id);
        reply_with(state, scope, id, Reply::created::<Schedule>)
    })
    .await
}

/// Get a schedule.
#[utoipa::path(
    tag = "schedules",
    params(("id" = String, Path, description = "`sch_…`")),
    responses((status = 200, description = "The schedule.", body = Schedule)),
    security(("bearer" = []))
)]
#[get("/schedules/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<ScheduleId>("id", &id)?;
    reply_with(&state, &scope, id, Reply::ok::<Schedule>)
}

/// Change a schedule.
#[utoipa::path(
    tag = "schedules",
    request_body = ScheduleChanges,
    params(
        ("id" = String, Path, description = "`sch_…`"),
        ("If-Match" = Option<String>, Header, description = "The `version` the change is based on; 409 if the schedule changed since."),
    ),
    responses((status = 200, description = "The changed schedule.", body = Schedule)),
    security(("bearer" = []))
)]
#[patch("/schedules/{id}")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    if_match: IfMatch,
    Json(body): Json<ScheduleChanges>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<ScheduleId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    let patch = SchedulePatch {
        name: body.name,
        item: body
            .protected_item_id
            .map(|i| parse_id::<ItemId>("protected_item_id", &i))
            .transpose()?,
        vault: body
            .vault_id
            .map(|v| parse_id::<VaultId>("vault_id", &v))
            .transpose()?,
        skip_if_running: body.skip_if_running,
        triggers: body.triggers.map(triggers).transpose()?,
    };
    Write::new(&state, &scope)
        .if_match(if_match, id)
        .execute(UpdateSchedule {
            schedule_id: id,
            patch,
        })
        .await?;
    reply_with(&state, &scope, id, Reply::ok::<Schedule>)
}

/// Remove a schedule. Runs already sent to a device are not recalled.
#[utoipa::path(
    tag = "schedules",
    params(("id" = String, Path, description = "`sch_…`")),
    responses((status = 204, description = "Removed.")),
    security(("bearer" = []))
)]
#[delete("/schedules/{id}")]
async fn remove(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<ScheduleId>("id", &id)?;
    find(&state.read_models.read(), &scope, id)?;
    Write::new(&state, &scope)
        .execute(RemoveSchedule { schedule_id: id })
        .await?;
    Ok(Reply::no_content())
}

/// The next runs of a schedule, as the scheduler will start them.
#[utoipa::path(
    tag = "schedules",
    params(("id" = String, Path, description = "`sch_…`"), UpcomingQuery),
    responses((status = 200, description = "Runs by due time: due time, fire time (due + delay) and the delay.", body = [UpcomingRun])),
    security(("bearer" = []))
)]
#[get("/schedules/{id}/upcoming")]
async fn upcoming(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Query(q): Query<UpcomingQuery>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<ScheduleId>("id", &id)?;
    let count = q.count.unwrap_or(DEFAULT_UPCOMING);
    if !(1..=MAX_UPCOMING).contains(&count) {
        return Err(ApiError::invalid(
            "count",
            format!("must be 1 to {MAX_UPCOMING}"),
        ));
    }
    let from = match q.from.as_deref() {
        Some(raw) => DateTime::parse_from_rfc3339(raw)
            .map_err(|e| ApiError::invalid("from", format!("must be an RFC 3339 instant: {e}")))?
            .with_timezone(&Utc),
        None => DateTime::from_timestamp(state.clock.now_secs(), 0).unwrap_or_default(),
    };
    let models = state.read_models.read();
    let schedule = find(&models, &scope, id)?;
    let input = ScheduleInput::from_state(models.state(), schedule, None).ok_or_else(|| {
        ApiError::Conflict {
            detail: "the schedule's user has no known IANA time zone".into(),
            field: Some("timezone".into()),
        }
    })?;
    let runs = scheduler::upcoming_runs(&input, from, count as usize)
        .map_err(|e| ApiError::invalid("triggers", e.to_string()))?;
    let body: Vec<UpcomingRun> = runs
        .into_iter()
        .map(|r| UpcomingRun {
            due_at: r.due,
            fire_at: r.fire,
            delay_secs: r.delay_secs,
        })
        .collect();
    Ok(Reply::ok(&body))
}
