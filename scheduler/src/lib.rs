//! The scheduler: when each schedule fires next (frequencies, cron, windows, time zones, the
//! deterministic random delay), the tick loop that dispatches jobs, and missed-job detection.
//! It reads schedules from the read models and records its decisions as events in the log.
//!
//! Must not know: HTTP. Time is injected (a clock is passed in), never read directly.
