//! A schedule's upcoming runs across all its triggers, as `GET /schedules/{id}/upcoming`
//! shows them: due time, fire time and delay.

use chrono::{DateTime, Utc};

use crate::delay::delay_secs;
use crate::fire::{FireRule, TriggerError};
use crate::index::ScheduleInput;

/// One run of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub due: DateTime<Utc>,
    pub fire: DateTime<Utc>,
    pub delay_secs: u32,
}

/// The first `count` runs of `input.schedule` due strictly after `from` (and not before the
/// schedule existed), ordered by due time; triggers due at the same instant make one run.
/// The delay is the effective one (server > policy > trigger), as the scheduler will apply it.
pub fn upcoming_runs(
    input: &ScheduleInput<'_>,
    from: DateTime<Utc>,
    count: usize,
) -> Result<Vec<Run>, TriggerError> {
    let schedule = input.schedule;
    let start = from.timestamp().max(schedule.created_at - 1);
    let mut dues: Vec<(i64, u32)> = Vec::new();
    for trigger in &schedule.spec.triggers {
        let rule = FireRule::new(trigger)?;
        let max = input.delays.max_for(trigger);
        let mut after = start;
        for _ in 0..count {
            let Some(due) = rule.next_secs(input.time_zone, after) else {
                break;
            };
            dues.push((due, max));
            after = due;
        }
    }
    // Triggers due at the same instant make one run, the one that fires first, as in the
    // due index.
    let mut runs: Vec<(i64, u32)> = dues
        .into_iter()
        .map(|(due, max)| (due, delay_secs(schedule.user, schedule.id, due, max)))
        .collect();
    runs.sort_unstable();
    runs.dedup_by_key(|&mut (due, _)| due);
    Ok(runs
        .into_iter()
        .take(count)
        .filter_map(|(due, delay)| {
            Some(Run {
                due: DateTime::from_timestamp(due, 0)?,
                fire: DateTime::from_timestamp(due + i64::from(delay), 0)?,
                delay_secs: delay,
            })
        })
        .collect())
}
