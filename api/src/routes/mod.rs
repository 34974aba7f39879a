//! One module per resource group; each registers its handlers in [`scope`]. Registering
//! through `utoipa_actix_web` puts every handler's `#[utoipa::path]` into the OpenAPI
//! document, so a route cannot exist undocumented.

mod admins;
mod auth;
mod email;
mod server;
mod tenants;

use actix_web::dev::{ServiceFactory, ServiceRequest};
use utoipa_actix_web::scope::Scope as DocScope;

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
}
