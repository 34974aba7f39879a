//! The due index: every schedule trigger's next run, ordered by fire time, so a tick costs
//! in proportion to the runs it takes, not to the number of schedules.
//!
//! A binary heap of `(fire, slot, generation)` keys orders the runs; trigger state lives in a
//! slot vector. Updates and removals do not search the heap: they bump the slot's generation,
//! which turns its queued key stale, and stale keys are dropped when they surface (or in one
//! pass when they outnumber the live ones).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use domain::ids::{ScheduleId, UserId};
use domain::model::Schedule;

use crate::delay::{delay_secs, DelaySources};
use crate::fire::{FireRule, TriggerError};

/// What the index needs to know about one schedule besides the schedule itself.
#[derive(Clone, Copy, Debug)]
pub struct ScheduleInput<'a> {
    pub schedule: &'a Schedule,
    /// The owner's time zone.
    pub time_zone: Tz,
    pub delays: DelaySources,
    /// The last due instant already dealt with (fired or recorded as missed); the next run is
    /// due strictly after it. `None`: strictly after the instant given to the index.
    pub handled_until: Option<DateTime<Utc>>,
}

/// One run taken from the index: due at `due`, to be started at `fire = due + delay_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueRun {
    pub schedule: ScheduleId,
    pub user: UserId,
    /// Index of the trigger in the schedule's spec; when several triggers are due at the same
    /// instant the run is taken once, with the lowest index.
    pub trigger: usize,
    pub due: DateTime<Utc>,
    pub fire: DateTime<Utc>,
    pub delay_secs: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Queued {
    fire: i64,
    slot: u32,
    generation: u32,
}

const NO_SLOT: u32 = u32::MAX;

/// One trigger of one schedule.
#[derive(Clone, Debug)]
struct Slot {
    schedule: ScheduleId,
    user: UserId,
    rule: FireRule,
    due: i64,
    fire: i64,
    /// Bumped whenever `due`/`fire` change or the slot is freed; a queued key is live only
    /// while its generation matches.
    generation: u32,
    /// The schedule's next trigger slot, [`NO_SLOT`] at the end of the chain.
    next_slot: u32,
    time_zone: Tz,
    /// At most 18000, so it fits.
    max_delay: u16,
    trigger: u16,
    queued: bool,
}

/// Every schedule trigger's next (due, fire) instants.
#[derive(Debug, Default)]
pub struct DueIndex {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Each schedule's first trigger slot.
    schedules: HashMap<ScheduleId, u32>,
    queue: BinaryHeap<Reverse<Queued>>,
    queued: usize,
    /// Parsed cron expressions, shared by every trigger that uses the same one.
    crons: HashMap<String, Arc<cron::Schedule>>,
}

impl DueIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the index from every schedule, each starting strictly after its
    /// `handled_until`, or else after `start`. A schedule whose trigger cannot be evaluated is
    /// left out and logged: one bad record must not keep the rest from firing.
    pub fn load(inputs: &[ScheduleInput<'_>], start: DateTime<Utc>) -> Self {
        let mut index = DueIndex {
            slots: Vec::with_capacity(inputs.len()),
            schedules: HashMap::with_capacity(inputs.len()),
            ..DueIndex::default()
        };
        let mut keys = Vec::with_capacity(inputs.len());
        for input in inputs {
            match index.compile(input.schedule) {
                Ok(rules) => {
                    index.remove(input.schedule.id);
                    let first = index.insert(input, rules, start);
                    index.chain(first, |slot, s| {
                        keys.extend(s.queued.then(|| Reverse(s.key(slot))))
                    });
                }
                Err(error) => tracing::warn!(
                    schedule = %input.schedule.id,
                    %error,
                    "schedule left out of the scheduler"
                ),
            }
        }
        // Heapifying once is linear; a million pushes would not be.
        index.queued = keys.len();
        index.queue = BinaryHeap::from(keys);
        index
    }

    /// Adds a schedule or replaces its triggers, with runs due strictly after its
    /// `handled_until`, or else after `after`. On error the index is unchanged.
    pub fn upsert(
        &mut self,
        input: &ScheduleInput<'_>,
        after: DateTime<Utc>,
    ) -> Result<(), TriggerError> {
        let rules = self.compile(input.schedule)?;
        self.remove(input.schedule.id);
        let first = self.insert(input, rules, after);
        let mut keys = Vec::new();
        self.chain(first, |slot, s| {
            keys.extend(s.queued.then(|| Reverse(s.key(slot))))
        });
        self.queued += keys.len();
        self.queue.extend(keys);
        Ok(())
    }

    /// Forgets a schedule; `false` if it was not there.
    pub fn remove(&mut self, schedule: ScheduleId) -> bool {
        let Some(mut slot) = self.schedules.remove(&schedule) else {
            return false;
        };
        while slot != NO_SLOT {
            let s = &mut self.slots[slot as usize];
            if s.queued {
                self.queued -= 1;
            }
            s.queued = false;
            s.generation = s.generation.wrapping_add(1);
            self.free.push(slot);
            slot = s.next_slot;
        }
        self.compact_if_stale();
        true
    }

    /// Takes every run whose fire time is at or before `now`, in fire-time order, and queues
    /// each trigger's following run (due strictly after the taken one, so a trigger that fell
    /// behind yields every run it missed, in order, and never one twice).
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<DueRun> {
        let now = now.timestamp();
        let mut runs = Vec::new();
        while let Some(&Reverse(head)) = self.queue.peek() {
            if head.fire > now {
                break;
            }
            self.queue.pop();
            let s = &mut self.slots[head.slot as usize];
            if !s.queued || s.generation != head.generation {
                continue;
            }
            let (due, fire) = (s.due, s.fire);
            runs.push((s.schedule, s.user, s.trigger, due, fire));
            match next_run(&s.rule, s.time_zone, s.user, s.schedule, s.max_delay, due) {
                Some((due, fire)) => {
                    s.due = due;
                    s.fire = fire;
                    s.generation = s.generation.wrapping_add(1);
                    self.queue.push(Reverse(s.key(head.slot)));
                }
                None => {
                    s.queued = false;
                    self.queued -= 1;
                }
            }
        }
        // Two triggers of one schedule due at the same instant are one run (its delay is the
        // same too, being a function of schedule and due instant).
        runs.sort_unstable_by_key(|&(schedule, _, trigger, due, _)| (schedule, due, trigger));
        runs.dedup_by_key(|&mut (schedule, _, _, due, _)| (schedule, due));
        runs.sort_unstable_by_key(|&(schedule, _, _, due, fire)| (fire, due, schedule));
        runs.into_iter()
            .filter_map(|(schedule, user, trigger, due, fire)| {
                Some(DueRun {
                    schedule,
                    user,
                    trigger: usize::from(trigger),
                    due: DateTime::from_timestamp(due, 0)?,
                    fire: DateTime::from_timestamp(fire, 0)?,
                    delay_secs: u32::try_from(fire - due).ok()?,
                })
            })
            .collect()
    }

    /// The earliest queued fire time: when the next tick has work.
    pub fn next_fire_at(&mut self) -> Option<DateTime<Utc>> {
        while let Some(&Reverse(head)) = self.queue.peek() {
            let s = &self.slots[head.slot as usize];
            if s.queued && s.generation == head.generation {
                return DateTime::from_timestamp(head.fire, 0);
            }
            self.queue.pop();
        }
        None
    }

    /// The queued run of each trigger of `schedule` (none for a trigger that will not fire
    /// again), in trigger order.
    pub fn pending(&self, schedule: ScheduleId) -> Vec<DueRun> {
        let mut runs = Vec::new();
        let mut slot = self.schedules.get(&schedule).copied().unwrap_or(NO_SLOT);
        while slot != NO_SLOT {
            let s = &self.slots[slot as usize];
            if s.queued {
                runs.extend(
                    DateTime::from_timestamp(s.due, 0)
                        .zip(DateTime::from_timestamp(s.fire, 0))
                        .map(|(due, fire)| DueRun {
                            schedule: s.schedule,
                            user: s.user,
                            trigger: usize::from(s.trigger),
                            due,
                            fire,
                            delay_secs: (s.fire - s.due) as u32,
                        }),
                );
            }
            slot = s.next_slot;
        }
        runs
    }

    /// Schedules held.
    pub fn len(&self) -> usize {
        self.schedules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.schedules.is_empty()
    }

    /// Bytes held by the index's own tables (capacity, not length), excluding parsed cron
    /// expressions and the allocator's overhead.
    pub fn table_bytes(&self) -> usize {
        use std::mem::size_of;
        self.slots.capacity() * size_of::<Slot>()
            + self.free.capacity() * size_of::<u32>()
            + self.queue.capacity() * size_of::<Reverse<Queued>>()
            // hashbrown: one control byte per bucket, buckets = capacity * 8 / 7.
            + self.schedules.capacity() * 8 / 7 * (size_of::<(ScheduleId, u32)>() + 1)
    }

    fn compile(&mut self, schedule: &Schedule) -> Result<Vec<FireRule>, TriggerError> {
        let crons = &mut self.crons;
        schedule
            .spec
            .triggers
            .iter()
            .map(|trigger| {
                FireRule::with_cron(trigger, |expr| {
                    if let Some(parsed) = crons.get(expr) {
                        return Ok(Arc::clone(parsed));
                    }
                    let parsed = crate::fire::parse_cron(expr)?;
                    crons.insert(expr.to_owned(), Arc::clone(&parsed));
                    Ok(parsed)
                })
            })
            .collect()
    }

    fn insert(
        &mut self,
        input: &ScheduleInput<'_>,
        rules: Vec<FireRule>,
        after: DateTime<Utc>,
    ) -> u32 {
        let schedule = input.schedule;
        // No run is due before the schedule existed.
        let after = input
            .handled_until
            .unwrap_or(after)
            .timestamp()
            .max(schedule.created_at - 1);
        let mut first = NO_SLOT;
        // Built back to front so each slot can point at the next trigger's.
        for (index, (trigger, rule)) in schedule.spec.triggers.iter().zip(rules).enumerate().rev() {
            let max_delay = input.delays.max_for(trigger) as u16;
            let next = next_run(
                &rule,
                input.time_zone,
                schedule.user,
                schedule.id,
                max_delay,
                after,
            );
            let slot = Slot {
                schedule: schedule.id,
                user: schedule.user,
                rule,
                due: next.map_or(0, |(due, _)| due),
                fire: next.map_or(0, |(_, fire)| fire),
                generation: 0,
                next_slot: first,
                time_zone: input.time_zone,
                max_delay,
                trigger: index as u16,
                queued: next.is_some(),
            };
            first = match self.free.pop() {
                Some(free) => {
                    let old = &mut self.slots[free as usize];
                    *old = Slot {
                        generation: old.generation.wrapping_add(1),
                        ..slot
                    };
                    free
                }
                None => {
                    self.slots.push(slot);
                    (self.slots.len() - 1) as u32
                }
            };
        }
        self.schedules.insert(schedule.id, first);
        first
    }

    fn chain(&self, first: u32, mut each: impl FnMut(u32, &Slot)) {
        let mut slot = first;
        while slot != NO_SLOT {
            let s = &self.slots[slot as usize];
            each(slot, s);
            slot = s.next_slot;
        }
    }

    fn compact_if_stale(&mut self) {
        if self.queue.len() > 2 * self.queued + 1024 {
            let slots = &self.slots;
            self.queue.retain(|Reverse(q)| {
                let s = &slots[q.slot as usize];
                s.queued && s.generation == q.generation
            });
        }
    }
}

impl Slot {
    fn key(&self, slot: u32) -> Queued {
        Queued {
            fire: self.fire,
            slot,
            generation: self.generation,
        }
    }
}

/// The run after `after`: its due instant and its fire instant (due plus the random delay).
fn next_run(
    rule: &FireRule,
    tz: Tz,
    user: UserId,
    schedule: ScheduleId,
    max_delay: u16,
    after: i64,
) -> Option<(i64, i64)> {
    let due = rule.next_secs(tz, after)?;
    Some((
        due,
        due + i64::from(delay_secs(user, schedule, due, u32::from(max_delay))),
    ))
}
