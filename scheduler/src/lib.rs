//! The scheduler: when each schedule fires next (frequencies, cron, windows, time zones, the
//! deterministic random delay), the due index a tick takes runs from, and later the tick loop
//! that dispatches jobs and detects missed ones ([`Scheduler`]). It reads schedules from the
//! read models and records its decisions as events in the log, through the command writer.
//!
//! Must not know: HTTP. Time is injected (instants are passed in), never read directly, and
//! nothing here is random: a run's delay is a hash of stable inputs.

mod delay;
mod dispatch;
mod fire;
mod index;
mod local;
mod runner;
mod runs;

#[cfg(test)]
mod tests;

pub use delay::{random_delay, DelaySources};
pub use dispatch::{CommandId, Dispatcher, Offline};
pub use fire::{next_fire, upcoming, FireRule, TriggerError, Upcoming};
pub use index::{DueIndex, DueRun, ScheduleInput};
pub use runner::{
    run_job_id, Scheduler, SchedulerError, TickReport, TickRequest, LATE_SECS, MISS_AFTER_SECS,
    MISS_BEFORE_SECS,
};
pub use runs::{upcoming_runs, Run};
