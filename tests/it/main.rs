//! halley's end-to-end tests: one binary that starts the real server on 127.0.0.1:0 with a
//! temporary data directory and talks HTTP to it.

mod auth;
mod conventions;
mod helpers;
mod ops;
mod readme;
mod smoke;
mod tenants;
