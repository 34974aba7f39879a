//! Webhooks: endpoint configurations, Standard Webhooks signing, durable delivery with
//! retries and a delivery log, and the live event-stream hub, fed by tailing the log from its
//! own checkpoint.
//!
//! Must not know: SMTP. Time is injected, never read directly.
