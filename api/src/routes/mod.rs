//! One module per resource group; each registers its handlers in [`scope`]. Registering
//! through `utoipa_actix_web` puts every handler's `#[utoipa::path]` into the OpenAPI
//! document, so a route cannot exist undocumented. `tenants.rs` is the reference module.
//!
//! Adding a resource group:
//!
//! 1. `routes/<group>.rs` with `pub(super) fn routes(cfg: &mut ServiceConfig<'_>)` calling
//!    `cfg.service(handler)` for each handler, and `.configure(<group>::routes)` in [`scope`].
//! 2. Per handler, `#[utoipa::path(tag = .., params(..), request_body = .., responses((status
//!    = 200, body = Dto)), security(("bearer" = [])))]` right above the actix method macro
//!    (`#[get("/users/{id}")]`, relative to `/api/v1`). Declare the success answers and unusual
//!    errors only (429, 501): `openapi::add_shared` adds 400/401/403/404/409/413/415/422/503
//!    by method, path and `security`.
//! 3. Arguments, in this order: `state: web::Data<AppState>`, `scope: Scope` (authenticates;
//!    leave it out only on public routes), `id: web::Path<String>` parsed with
//!    `parse_id::<UserId>("id", &id)?`, `Query(q): Query<ListQuery>` (`IntoParams`,
//!    `deny_unknown_fields`, `limit`/`cursor` → [`crate::paging::PageRequest`]),
//!    `if_match: IfMatch` on PATCH, `key: IdempotencyKey` on creating POSTs, and
//!    `Json(body): Json<Dto>` last (it consumes the body).
//! 4. Reads: `let models = state.read_models.read();` and a `find(&models, &scope, id)?` going
//!    through `scope.read()`, so another tenant's object is 404 before any role or permission
//!    check (403). Never hold the guard across an `.await`.
//! 5. Writes: check what the domain never sees (raw passwords with
//!    `domain::validate::validate_password`, then `state.auth.passwords.hash`), build the
//!    command from the DTO explicitly, and `Write::new(&state, &scope).if_match(if_match,
//!    stream).execute(command).await?`; it returns once the read models include the change,
//!    so answer from them.
//! 6. Creates: a fresh id from `state.new_id(UserId::new)`; run the work inside
//!    `key.run(&state.idempotency, scope, move |key| async move { .. })` with
//!    `Write::..idempotent(&key)`, and take the created id from `written.events` (a replay
//!    hands back the first attempt's event).
//! 7. DTOs: responses carry `version: models.version(&id.to_string())` (the aggregate stream's
//!    version, for `If-Match`); requests are `deny_unknown_fields`; nullable PATCH fields are
//!    `Option<Option<T>>` with [`crate::extract::present`]. Domain types are never serialized.
//! 8. Objects a user owns, kept in the user's stream (protected items, vaults): implement
//!    [`user_owned::UserOwned`] for the response type and let its functions do the list,
//!    find, create, change and remove; the handlers keep their routes and documentation.
//! 9. Tests in `tests/it/<group>.rs` with the helpers: `TestServer::start()`, `app.root()`,
//!    `app.tenant_with_admin(&root, "acme")`, `client.get/post/patch/put/delete`,
//!    `res.problem(404)`, `res.error_fields()`, and `app.head()` to show nothing was appended.

mod admins;
mod agent;
mod auth;
mod devices;
mod email;
mod events;
mod items;
mod job_search;
mod jobs;
mod owners;
mod policies;
mod schedules;
mod search;
mod server;
mod stream;
mod tenants;
mod user_owned;
mod users;
mod vaults;
mod webhooks;

use actix_web::dev::{ServiceFactory, ServiceRequest};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::scope::Scope as DocScope;

/// The query of a list that takes nothing but paging.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Every `/api/v1` route.
pub(crate) fn scope() -> DocScope<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    utoipa_actix_web::scope("/api/v1")
        .configure(auth::routes)
        .configure(tenants::routes)
        .configure(email::routes)
        .configure(server::routes)
        .configure(admins::routes)
        .configure(agent::routes)
        .configure(devices::routes)
        .configure(jobs::routes)
        .configure(job_search::routes)
        .configure(policies::routes)
        .configure(users::routes)
        .configure(items::routes)
        .configure(vaults::routes)
        .configure(schedules::routes)
        .configure(search::routes)
        .configure(events::routes)
        .configure(stream::routes)
        .configure(webhooks::routes)
}
