//! The `halley` binary's library half: configuration, the wiring that starts the log, the
//! projection runner and the HTTP server from one place, and the operations commands
//! (`verify`, `rebuild`). `main.rs` is only the command line over this, and the end-to-end
//! tests start the real server through [`start`].
//!
//! Must not know: business rules (those live in `domain`), HTTP routes (`api`), or how the
//! log lays out records (`eventlog`).

pub mod config;
pub mod ops;
mod server;
pub mod telemetry;

pub use config::{Config, LogFormat};
pub use server::{start, RunningServer, ServeOptions};
