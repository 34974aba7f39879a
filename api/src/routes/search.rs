//! `/search`: the console's search bar. One term matched against the names of users,
//! storage vaults and protected items in the caller's scope, a few hits of each kind.

use actix_web::{get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::owners::{contains_ignore_case, search_term};
use crate::auth::Scope;
use crate::extract::Query;
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;

pub(super) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(search);
}

const DEFAULT_HITS: usize = 10;
const MAX_HITS: u32 = 100;
/// Users looked at per request at most, so one search costs the same in a huge tenant.
const MAX_USERS_SCANNED: usize = 100_000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The term, 1 to 255 characters; matched anywhere in a name, ASCII case ignored.
    pub q: String,
    /// Hits per kind, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct UserHit {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    pub account_name: String,
}

#[derive(Serialize, ToSchema)]
pub struct VaultHit {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub address: String,
}

#[derive(Serialize, ToSchema)]
pub struct ItemHit {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub engine: String,
}

/// Hits by kind, each in id order of their users and at most `limit` long.
#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    pub users: Vec<UserHit>,
    pub vaults: Vec<VaultHit>,
    pub protected_items: Vec<ItemHit>,
}

/// Search users (by username or account name), vaults and protected items (by name).
#[utoipa::path(
    tag = "search",
    params(SearchQuery),
    responses((status = 200, description = "Hits of each kind.", body = SearchResults)),
    security(("bearer" = []))
)]
#[get("/search")]
async fn search(
    state: web::Data<AppState>,
    scope: Scope,
    Query(q): Query<SearchQuery>,
) -> Result<Reply, ApiError> {
    let term = search_term("q", &q.q)?;
    let limit = match q.limit {
        None => DEFAULT_HITS,
        Some(n) if (1..=MAX_HITS).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::invalid(
                "limit",
                format!("must be 1 to {MAX_HITS}"),
            ))
        }
    };
    let models = state.read_models.read();
    let mut results = SearchResults {
        users: Vec::new(),
        vaults: Vec::new(),
        protected_items: Vec::new(),
    };
    const CHUNK: usize = 1024;
    let mut after = None;
    let mut scanned = 0;
    loop {
        let chunk = models.users(scope.read(), after.as_ref(), CHUNK);
        let done = chunk.len() < CHUNK;
        after = chunk.last().map(|u| u.id);
        scanned += chunk.len();
        for u in chunk {
            let user_id = u.id.to_string();
            if results.users.len() < limit
                && (contains_ignore_case(&u.spec.username, &term)
                    || contains_ignore_case(&u.spec.account_name, &term))
            {
                results.users.push(UserHit {
                    id: user_id.clone(),
                    tenant_id: u.tenant.to_string(),
                    username: u.spec.username.clone(),
                    account_name: u.spec.account_name.clone(),
                });
            }
            for v in u.vaults.values() {
                if results.vaults.len() < limit && contains_ignore_case(&v.spec.name, &term) {
                    results.vaults.push(VaultHit {
                        id: v.id.to_string(),
                        user_id: user_id.clone(),
                        name: v.spec.name.clone(),
                        address: v.spec.address.clone(),
                    });
                }
            }
            for i in u.items.values() {
                if results.protected_items.len() < limit
                    && contains_ignore_case(&i.spec.name, &term)
                {
                    results.protected_items.push(ItemHit {
                        id: i.id.to_string(),
                        user_id: user_id.clone(),
                        name: i.spec.name.clone(),
                        engine: i.spec.engine.clone(),
                    });
                }
            }
        }
        let full = results.users.len() >= limit
            && results.vaults.len() >= limit
            && results.protected_items.len() >= limit;
        if done || full || scanned >= MAX_USERS_SCANNED {
            break;
        }
    }
    Ok(Reply::ok(&results))
}
