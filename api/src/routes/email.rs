//! `/tenants/{id}/email`: a tenant's SMTP settings. Visible to root and to the tenant's own
//! admins; changed only by root or a tenant admin with `allow_edit_email_options`. The SMTP
//! password is write-only and sealed with the server key before it enters a command.

use actix_web::{get, post, put, web};
use domain::commands::SetEmailSettings;
use domain::model;
use domain::{TenantId, TenantRef};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::Scope;
use crate::extract::{parse_id, Json};
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(get_email)
        .service(put_email)
        .service(test_email);
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailMode {
    /// Use the top level's settings.
    Inherit,
    Disabled,
    Smtp,
    SmtpTls,
}

impl From<model::EmailMode> for EmailMode {
    fn from(m: model::EmailMode) -> EmailMode {
        match m {
            model::EmailMode::Inherit => EmailMode::Inherit,
            model::EmailMode::Disabled => EmailMode::Disabled,
            model::EmailMode::Smtp => EmailMode::Smtp,
            model::EmailMode::SmtpTls => EmailMode::SmtpTls,
        }
    }
}

impl From<EmailMode> for model::EmailMode {
    fn from(m: EmailMode) -> model::EmailMode {
        match m {
            EmailMode::Inherit => model::EmailMode::Inherit,
            EmailMode::Disabled => model::EmailMode::Disabled,
            EmailMode::Smtp => model::EmailMode::Smtp,
            EmailMode::SmtpTls => model::EmailMode::SmtpTls,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EmailSettings {
    pub mode: EmailMode,
    pub from_address: String,
    pub from_name: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    /// Whether a password is stored; the password itself is never returned.
    pub password_set: bool,
    pub allow_invalid_cert: bool,
}

impl From<&model::EmailSettings> for EmailSettings {
    fn from(s: &model::EmailSettings) -> EmailSettings {
        EmailSettings {
            mode: s.mode.into(),
            from_address: s.from_address.clone(),
            from_name: s.from_name.clone(),
            host: s.host.clone(),
            port: s.port,
            username: s.username.clone(),
            password_set: s.password.is_some(),
            allow_invalid_cert: s.allow_invalid_cert,
        }
    }
}

/// Replaces the settings. `password` left out keeps the stored one; `""` clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailSettingsInput {
    pub mode: EmailMode,
    #[serde(default)]
    pub from_address: String,
    #[serde(default)]
    pub from_name: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub username: String,
    /// Write-only.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub allow_invalid_cert: bool,
}

/// The tenant's settings, if the caller can see the tenant (404 otherwise).
fn visible(
    state: &AppState,
    scope: &Scope,
    id: TenantId,
) -> Result<model::EmailSettings, ApiError> {
    state
        .read_models
        .read()
        .email_settings(scope.read(), TenantRef::Tenant(id))
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("tenant {id} not found")))
}

fn require_edit(scope: &Scope) -> Result<(), ApiError> {
    if scope.is_root() || scope.permissions().allow_edit_email_options {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "changing SMTP settings needs allow_edit_email_options".into(),
        ))
    }
}

/// A tenant's email settings.
#[utoipa::path(
    tag = "tenants",
    params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 200, description = "The settings.", body = EmailSettings)),
    security(("bearer" = []))
)]
#[get("/tenants/{id}/email")]
async fn get_email(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<TenantId>("id", &id)?;
    Ok(Reply::ok(&EmailSettings::from(&visible(
        &state, &scope, id,
    )?)))
}

/// Replace a tenant's email settings. Root, or a tenant admin with
/// `allow_edit_email_options`.
#[utoipa::path(
    tag = "tenants",
    request_body = EmailSettingsInput,
    params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 200, description = "The stored settings.", body = EmailSettings)),
    security(("bearer" = []))
)]
#[put("/tenants/{id}/email")]
async fn put_email(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
    Json(body): Json<EmailSettingsInput>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<TenantId>("id", &id)?;
    visible(&state, &scope, id)?;
    require_edit(&scope)?;
    let password = match body.password {
        None => None,
        Some(p) if p.is_empty() => Some(p),
        Some(p) => Some(state.secrets.seal(&p)),
    };
    Write::new(&state, &scope)
        .execute(SetEmailSettings {
            tenant: TenantRef::Tenant(id),
            settings: model::EmailSettings {
                mode: body.mode.into(),
                from_address: body.from_address,
                from_name: body.from_name,
                host: body.host,
                port: body.port,
                username: body.username,
                password,
                allow_invalid_cert: body.allow_invalid_cert,
            },
        })
        .await?;
    Ok(Reply::ok(&EmailSettings::from(&visible(
        &state, &scope, id,
    )?)))
}

/// Send a test email. Not served yet: sending arrives with the mailer, so after the
/// visibility (404) and permission (403) checks this answers 501.
#[utoipa::path(
    tag = "tenants",
    params(("id" = String, Path, description = "`ten_…`")),
    responses((status = 501, description = "Sending email is not implemented yet.", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = []))
)]
#[post("/tenants/{id}/email/test")]
async fn test_email(
    state: web::Data<AppState>,
    scope: Scope,
    id: web::Path<String>,
) -> Result<Reply, ApiError> {
    let id = parse_id::<TenantId>("id", &id)?;
    visible(&state, &scope, id)?;
    require_edit(&scope)?;
    Err(ApiError::NotImplemented(
        "sending a test email arrives with the mailer".into(),
    ))
}
