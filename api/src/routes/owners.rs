//! Helpers the tenant-owned resources (policies, users and what users own) share: which
//! owner a create lands in, which partition a list reads, and the name matching of `?q=`.

use domain::{TenantId, TenantRef};

use crate::auth::Scope;
use crate::extract::parse_id;
use crate::problem::ApiError;
use crate::state::AppState;

/// The owner of an object a caller creates: the caller's own tenant, or for a root admin
/// the `tenant_id` it names (`root` for the top level). A tenant the caller cannot see is a
/// 404, like any other tenant's object.
pub(super) fn owner_for_create(
    state: &AppState,
    scope: &Scope,
    tenant_id: Option<&str>,
) -> Result<TenantRef, ApiError> {
    let Some(raw) = tenant_id else {
        return Ok(scope.owner());
    };
    let tenant =
        TenantRef::parse(raw).map_err(|e| ApiError::invalid("tenant_id", e.to_string()))?;
    let visible = match tenant {
        TenantRef::Root => scope.is_root(),
        TenantRef::Tenant(id) => state.read_models.read().tenant(scope.read(), id).is_some(),
    };
    if visible {
        Ok(tenant)
    } else {
        Err(ApiError::NotFound(format!("tenant {raw} not found")))
    }
}

/// The partition a list reads: the caller's scope, or one tenant's for `?tenant_id=`. A
/// tenant admin naming another tenant gets `None`: an empty list, as if it had no rows.
pub(super) fn list_scope(
    scope: &Scope,
    tenant_id: Option<&str>,
) -> Result<Option<projections::Scope>, ApiError> {
    let Some(raw) = tenant_id else {
        return Ok(Some(scope.read()));
    };
    let tenant = parse_id::<TenantId>("tenant_id", raw)?;
    Ok(
        (scope.is_root() || scope.owner() == TenantRef::Tenant(tenant))
            .then_some(projections::Scope::Tenant(tenant)),
    )
}

/// A `?q=` term: trimmed, 1 to 255 characters, else a 400 naming `field`.
pub(super) fn search_term(field: &str, raw: &str) -> Result<String, ApiError> {
    let term = raw.trim();
    if term.is_empty() || term.chars().count() > 255 {
        return Err(ApiError::invalid(field, "must be 1 to 255 characters"));
    }
    Ok(term.to_owned())
}

/// Whether `haystack` contains `needle`, ignoring ASCII case. Names are mostly ASCII, and
/// comparing in place keeps a scan over many rows free of allocations.
pub(super) fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}
