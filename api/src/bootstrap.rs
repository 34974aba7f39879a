//! The root admin of a fresh server.

use domain::commands::CreateAdmin;
use domain::model::{AdminSpec, Permissions};
use domain::{AdminId, TenantRef};

use crate::auth::password::random_password;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::write::Write;

pub const ROOT_ADMIN: &str = "admin";

/// Creates root admin `admin` if the server has no root admin yet (a first start on an
/// empty log), with `password` or a generated one. Returns the generated password, which the
/// caller shows once; `None` if nothing was created or the password was given.
pub async fn ensure_root_admin(
    state: &AppState,
    password: Option<String>,
) -> Result<Option<String>, ApiError> {
    let has_root = state
        .read_models
        .read()
        .admins(projections::Scope::Root, None, usize::MAX)
        .iter()
        .any(|a| a.tenant == TenantRef::Root);
    if has_root {
        return Ok(None);
    }
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(p) => {
            domain::validate::validate_password(&p)
                .map_err(|e| ApiError::invalid("HALLEY_ADMIN_PASSWORD", e.to_string()))?;
            (p, false)
        }
        None => (random_password(), true),
    };
    let password_hash = state.auth.passwords.hash(password.clone()).await?;
    Write::as_actor(state, "system".to_owned())
        .execute(CreateAdmin {
            admin_id: state.new_id(AdminId::new),
            tenant: TenantRef::Root,
            spec: AdminSpec {
                username: ROOT_ADMIN.to_owned(),
                permissions: Permissions::default(),
            },
            password_hash,
        })
        .await?;
    tracing::info!("created root admin `{ROOT_ADMIN}`");
    Ok(generated.then_some(password))
}
