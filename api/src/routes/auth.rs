//! `/auth`: password login, refresh-token rotation, logout, and who am I.

use actix_web::{get, post, web, HttpRequest};
use domain::commands::RecordAdminLogin;
use domain::{AdminId, Event, TenantId, TenantRef};
use projections::ReadModels;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::refresh::RefreshError;
use crate::auth::{credential_marker, Scope, Tokens};
use crate::extract::Json;
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::routes::admins::Permissions;
use crate::state::AppState;
use crate::write::Write;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(login)
        .service(refresh)
        .service(logout)
        .service(me);
}

const BAD_CREDENTIALS: ApiError = ApiError::Unauthorized("invalid username or password");

/// `tenant` selects the tenant by slug or id; without it the `Host` header is matched
/// against the tenants' hosts, and otherwise the login is a root admin's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub tenant: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: exchange it at `/auth/refresh` for a new pair.
    pub refresh_token: String,
}

impl From<Tokens> for TokenResponse {
    fn from(t: Tokens) -> Self {
        TokenResponse {
            access_token: t.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct Mfa {
    pub totp: bool,
    pub webauthn: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub username: String,
    /// A tenant id, or `root`.
    pub tenant_id: String,
    pub permissions: Permissions,
    pub mfa: Mfa,
}

/// Log in with a password. Unknown user and wrong password get the same 401. Too many
/// failures for the account, or from the source address, get 429 with `Retry-After`.
/// Every attempt is recorded as an event (`admin.login` 4153, `admin.login_failed` 4154),
/// never with the password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in.", body = TokenResponse),
        (status = 401, description = "Bad credentials.", body = crate::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The admin's tenant is suspended.", body = crate::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins; see Retry-After.", body = crate::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    )
)]
#[post("/auth/login")]
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(body): Json<LoginRequest>,
) -> Result<Reply, ApiError> {
    domain::validate::validate_username("username", &body.username)?;
    let now = state.now_secs();
    let address = req.peer_addr().map(|a| a.ip());
    if let Some(retry_after_secs) = address.and_then(|a| state.auth.limiter.blocked_for(a, now)) {
        return Err(ApiError::TooManyRequests {
            retry_after_secs,
            detail: "too many failed logins from this address".to_owned(),
        });
    }
    let (owner, hash, protection, session_ttl) = {
        let models = state.read_models.read();
        let owner = login_owner(&models, &req, body.tenant.as_deref());
        let admin = owner.and_then(|o| models.admin_for_login(o, &body.username));
        let settings = models.server_settings();
        (
            owner,
            admin.map(|a| a.password_hash.clone()),
            settings.login_protection.clone(),
            settings.session_ttl_secs,
        )
    };
    let verified = state
        .auth
        .passwords
        .verify(body.password, hash.clone())
        .await?;
    let failed = || {
        if let Some(a) = address {
            state
                .auth
                .limiter
                .failed(a, now, protection.max_failures, protection.lockout_secs);
        }
        BAD_CREDENTIALS
    };
    let Some(owner) = owner else {
        // No such tenant: nothing to record against, but it counts for the address.
        return Err(failed());
    };
    let written = Write::as_actor(&state, format!("login:{}", body.username))
        .execute(RecordAdminLogin {
            tenant: owner,
            username: body.username,
            succeeded: verified,
        })
        .await
        .map_err(|e| match e {
            // The admin was removed while its password was being checked.
            ApiError::NotFound(_) => BAD_CREDENTIALS,
            ApiError::LockedOut { until } => ApiError::TooManyRequests {
                retry_after_secs: u64::try_from(until - now).unwrap_or(1),
                detail: "too many failed logins for this account; try again later".to_owned(),
            },
            e => e,
        })?;
    if !verified {
        return Err(failed());
    }
    let admin = written
        .events
        .iter()
        .find_map(|e| match e {
            Event::AdminLoggedIn(e) => Some(e.admin_id),
            _ => None,
        })
        .ok_or_else(|| ApiError::Internal("a login recorded no admin.login event".into()))?;
    if let Some(a) = address {
        state.auth.limiter.succeeded(a);
    }
    let tokens = state
        .auth
        .login_tokens(
            admin,
            owner,
            hash.as_deref().unwrap_or(""),
            now,
            session_ttl,
        )
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    Ok(Reply::ok(&TokenResponse::from(tokens)))
}

/// The tenant a login is for: `tenant` (slug or id) if given, else the tenant whose hosts
/// include the request's host, else root. `None` for a named tenant that does not exist.
fn login_owner(models: &ReadModels, req: &HttpRequest, tenant: Option<&str>) -> Option<TenantRef> {
    let all = projections::Scope::Root;
    if let Some(t) = tenant {
        let found = match TenantId::parse(t) {
            Ok(id) => models.tenant(all, id),
            Err(_) => models.tenant_by_slug(all, t),
        };
        return found.map(|t| TenantRef::Tenant(t.id));
    }
    let info = req.connection_info();
    let host = info.host();
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let by_host = models
        .tenants(all, None, usize::MAX)
        .into_iter()
        .find(|t| t.spec.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)));
    Some(by_host.map_or(TenantRef::Root, |t| TenantRef::Tenant(t.id)))
}

/// Exchange a refresh token for a new token pair. The presented token is spent; presenting
/// a spent token again revokes its whole family (every token of that login).
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair.", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token.", body = crate::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The admin's tenant is suspended.", body = crate::Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/refresh")]
async fn refresh(
    state: web::Data<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Reply, ApiError> {
    let now = state.now_secs();
    let ttl = i64::from(state.read_models.read().server_settings().session_ttl_secs);
    let (refresh_token, session) = state
        .auth
        .refresh
        .rotate(&body.refresh_token, now, ttl)
        .map_err(|e| match e {
            RefreshError::Store(e) => ApiError::Unavailable(Box::new(e)),
            RefreshError::Reused => {
                ApiError::Unauthorized("refresh token already used; the session is revoked")
            }
            _ => ApiError::Unauthorized("invalid, expired or revoked refresh token"),
        })?;
    let invalid = || ApiError::Unauthorized("the session's admin no longer exists");
    let admin = AdminId::parse(&session.admin).map_err(|_| invalid())?;
    let tenant = TenantRef::parse(&session.tenant).map_err(|_| invalid())?;
    {
        let models = state.read_models.read();
        models
            .admin(projections::Scope::Root, admin)
            .filter(|a| a.tenant == tenant)
            .filter(|a| credential_marker(&a.password_hash) == session.credential)
            .ok_or(ApiError::Unauthorized(
                "the session ended: its admin was removed or changed password",
            ))?;
        if let TenantRef::Tenant(id) = tenant {
            if models
                .tenant(projections::Scope::Root, id)
                .is_some_and(|t| t.spec.suspended)
            {
                return Err(ApiError::Forbidden(format!("tenant {id} is suspended")));
            }
        }
    }
    Ok(Reply::ok(&TokenResponse {
        access_token: state.auth.access_token(admin, tenant, now),
        token_type: "Bearer".to_owned(),
        expires_in: state.auth.access_ttl_secs(),
        refresh_token,
    }))
}

/// Revoke the session (refresh-token family) of `refresh_token`. Access tokens already
/// issued stay valid until they expire (minutes).
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Logged out (also when the token was already revoked or is not the caller's).")),
    security(("bearer" = []))
)]
#[post("/auth/logout")]
async fn logout(
    state: web::Data<AppState>,
    scope: Scope,
    Json(body): Json<RefreshRequest>,
) -> Result<Reply, ApiError> {
    match state
        .auth
        .refresh
        .revoke(&body.refresh_token, &scope.actor())
    {
        Ok(_) => Ok(Reply::no_content()),
        Err(RefreshError::Store(e)) => Err(ApiError::Unavailable(Box::new(e))),
        Err(_) => Err(ApiError::invalid("refresh_token", "is not a refresh token")),
    }
}

/// The calling admin.
#[utoipa::path(
    tag = "auth",
    responses((status = 200, description = "The caller.", body = Me)),
    security(("bearer" = []))
)]
#[get("/auth/me")]
async fn me(state: web::Data<AppState>, scope: Scope) -> Result<Reply, ApiError> {
    let models = state.read_models.read();
    let admin = models
        .admin(scope.read(), scope.admin())
        .ok_or_else(|| ApiError::NotFound("the caller no longer exists".into()))?;
    Ok(Reply::ok(&Me {
        id: admin.id.to_string(),
        username: admin.spec.username.clone(),
        tenant_id: admin.tenant.to_string(),
        permissions: Permissions::from(&admin.spec.permissions),
        mfa: Mfa {
            totp: false,
            webauthn: false,
        },
    }))
}
