//! `/server/settings` (root only): server-wide random delay, session lifetime, login
//! protection.

use actix_web::{get, patch, web};
use domain::commands::{ServerSettingsPatch, UpdateServerSettings};
use domain::events::SERVER_STREAM;
use domain::model;
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Scope;
use crate::extract::{IfMatch, Json};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(get_settings).service(update);
}

/// After `max_failures` failed logins in a row an account is locked for `lockout_secs`
/// (0 failures: never). A source address is refused after four times as many.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginProtection {
    pub max_failures: u32,
    pub lockout_secs: u32,
}

#[derive(Serialize, ToSchema)]
pub struct ServerSettings {
    /// Server-wide random delay in seconds (at most 18000); overrides every policy and
    /// schedule. `null`: none.
    pub random_delay_secs: Option<u32>,
    /// Lifetime of a login session (its refresh tokens), 60 to 2592000.
    pub session_ttl_secs: u32,
    pub login_protection: LoginProtection,
    /// Pass as `If-Match` to PATCH only this version.
    pub version: u64,
}

impl ServerSettings {
    fn from_model(s: &model::ServerSettings, models: &ReadModels) -> ServerSettings {
        ServerSettings {
            random_delay_secs: s.random_delay_secs,
            session_ttl_secs: s.session_ttl_secs,
            login_protection: LoginProtection {
                max_failures: s.login_protection.max_failures,
                lockout_secs: s.login_protection.lockout_secs,
            },
            version: models.version(SERVER_STREAM),
        }
    }
}

/// Fields left out are unchanged; `random_delay_secs: null` removes the override.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSettingsChanges {
    #[serde(default, deserialize_with = "crate::extract::present")]
    #[schema(value_type = Option<u32>)]
    pub random_delay_secs: Option<Option<u32>>,
    pub session_ttl_secs: Option<u32>,
    pub login_protection: Option<LoginProtection>,
}

impl From<ServerSettingsChanges> for ServerSettingsPatch {
    fn from(c: ServerSettingsChanges) -> ServerSettingsPatch {
        ServerSettingsPatch {
            random_delay_secs: c.random_delay_secs,
            session_ttl_secs: c.session_ttl_secs,
            login_protection: c.login_protection.map(|p| model::LoginProtection {
                max_failures: p.max_failures,
                lockout_secs: p.lockout_secs,
            }),
        }
    }
}

/// The server settings. Root admins only (not those with `deny_view_server_info`).
#[utoipa::path(
    tag = "server",
    responses((status = 200, description = "The settings.", body = ServerSettings)),
    security(("bearer" = []))
)]
#[get("/server/settings")]
async fn get_settings(state: web::Data<AppState>, scope: Scope) -> Result<Reply, ApiError> {
    scope.require_root("read server settings")?;
    if scope.permissions().deny_view_server_info {
        return Err(ApiError::Forbidden(
            "this admin may not view server information".into(),
        ));
    }
    let models = state.read_models.read();
    Ok(Reply::ok(&ServerSettings::from_model(
        models.server_settings(),
        &models,
    )))
}

/// Change server settings. Root admins only (not those with `prevent_edit_server_settings`).
#[utoipa::path(
    tag = "server",
    request_body = ServerSettingsChanges,
    params(("If-Match" = Option<String>, Header, description = "The `version` the change is based on; 409 if the settings changed since.")),
    responses((status = 200, description = "The changed settings.", body = ServerSettings)),
    security(("bearer" = []))
)]
#[patch("/server/settings")]
async fn update(
    state: web::Data<AppState>,
    scope: Scope,
    if_match: IfMatch,
    Json(body): Json<ServerSettingsChanges>,
) -> Result<Reply, ApiError> {
    scope.require_root("change server settings")?;
    if scope.permissions().prevent_edit_server_settings {
        return Err(ApiError::Forbidden(
            "this admin may not change server settings".into(),
        ));
    }
    Write::new(&state, &scope)
        .if_match(if_match, SERVER_STREAM)
        .execute(UpdateServerSettings { patch: body.into() })
        .await?;
    let models = state.read_models.read();
    Ok(Reply::ok(&ServerSettings::from_model(
        models.server_settings(),
        &models,
    )))
}
