//! [`Scope`]: the one way a handler learns who is calling.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use domain::model::Permissions;
use domain::{AdminId, TenantId, TenantRef};

use crate::problem::ApiError;
use crate::state::AppState;

/// The authenticated caller: a root admin (sees every tenant) or a tenant admin (sees only
/// its tenant). Extracted from `Authorization: Bearer <access token>`; the token must verify
/// and its admin must still exist in the same tenant, so removing an admin ends its access
/// at once, not when its token expires.
///
/// Decision: the admins of a suspended tenant get 403 on every call (their token is valid,
/// their tenant may not act), and their logins are refused with 403 too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Root {
        admin: AdminId,
        permissions: Permissions,
    },
    Tenant {
        tenant: TenantId,
        admin: AdminId,
        permissions: Permissions,
    },
}

impl Scope {
    /// The read-model scope: what this caller may see.
    pub fn read(&self) -> projections::Scope {
        match self {
            Scope::Root { .. } => projections::Scope::Root,
            Scope::Tenant { tenant, .. } => projections::Scope::Tenant(*tenant),
        }
    }

    /// Where objects this caller creates belong by default.
    pub fn owner(&self) -> TenantRef {
        match self {
            Scope::Root { .. } => TenantRef::Root,
            Scope::Tenant { tenant, .. } => TenantRef::Tenant(*tenant),
        }
    }

    pub fn admin(&self) -> AdminId {
        match self {
            Scope::Root { admin, .. } | Scope::Tenant { admin, .. } => *admin,
        }
    }

    pub fn permissions(&self) -> &Permissions {
        match self {
            Scope::Root { permissions, .. } | Scope::Tenant { permissions, .. } => permissions,
        }
    }

    pub fn is_root(&self) -> bool {
        matches!(self, Scope::Root { .. })
    }

    /// 403 unless the caller is a root admin. Call it after the object was found through
    /// [`Scope::read`], so another tenant's object is a 404 first.
    pub fn require_root(&self, action: &str) -> Result<(), ApiError> {
        if self.is_root() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "only a root admin may {action}"
            )))
        }
    }

    /// The `actor` recorded on the events this caller causes.
    pub fn actor(&self) -> String {
        self.admin().to_string()
    }
}

impl FromRequest for Scope {
    type Error = ApiError;
    type Future = Ready<Result<Scope, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(scope_of(req))
    }
}

fn scope_of(req: &HttpRequest) -> Result<Scope, ApiError> {
    const INVALID: ApiError = ApiError::Unauthorized("missing, invalid or expired access token");
    let (state, token) = bearer(req, INVALID)?;
    scope_for_token(state, token)
}

/// The app state and the `Authorization: Bearer` token of a request, or `missing` when there
/// is no such header: what every token-authenticated extractor starts from.
pub(crate) fn bearer(
    req: &HttpRequest,
    missing: ApiError,
) -> Result<(&web::Data<AppState>, &str), ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("AppState is not registered".into()))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(missing)?;
    Ok((state, token))
}

/// The caller an access token stands for (as the `Authorization` header does), for the
/// event stream, whose browser clients send the token in their first frame.
pub(crate) fn scope_for_token(state: &AppState, token: &str) -> Result<Scope, ApiError> {
    const INVALID: ApiError = ApiError::Unauthorized("missing, invalid or expired access token");
    let claims = state
        .auth
        .keyring
        .verify(token, state.clock.now_secs())
        .map_err(|_| INVALID)?;
    let admin_id = AdminId::parse(&claims.sub).map_err(|_| INVALID)?;
    let tenant = TenantRef::parse(&claims.tenant).map_err(|_| INVALID)?;
    let models = state.read_models.read();
    let admin = models
        .admin(projections::Scope::Root, admin_id)
        .filter(|a| a.tenant == tenant)
        .ok_or(INVALID)?;
    let permissions = admin.spec.permissions.clone();
    match tenant {
        TenantRef::Root => Ok(Scope::Root {
            admin: admin_id,
            permissions,
        }),
        TenantRef::Tenant(id) => {
            if models
                .tenant(projections::Scope::Root, id)
                .is_some_and(|t| t.spec.suspended)
            {
                return Err(ApiError::Forbidden(format!("tenant {id} is suspended")));
            }
            Ok(Scope::Tenant {
                tenant: id,
                admin: admin_id,
                permissions,
            })
        }
    }
}
