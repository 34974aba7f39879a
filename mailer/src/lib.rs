//! The mailer: per-tenant SMTP settings (inherited from the top level unless overridden),
//! report rendering (HTML and text), and an outbox with retries, fed by tailing the log from
//! its own checkpoint.
//!
//! Must not know: HTTP routes. Time is injected, never read directly.
