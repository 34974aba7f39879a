//! halley's end-to-end tests: one binary that starts the real server on 127.0.0.1:0 with a
//! temporary data directory and talks HTTP to it.

mod agent;
mod auth;
mod bad_input;
mod conventions;
mod cross_tenant;
mod devices;
mod events;
mod helpers;
mod items;
mod job_search;
mod jobs;
mod jwt;
mod ops;
mod policies;
mod readme;
mod schedules;
mod search;
mod smoke;
mod surface;
mod tenants;
mod users;
mod vaults;
mod webhook_delivery;
mod webhooks;
