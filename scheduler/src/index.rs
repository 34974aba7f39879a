//! The due index: every schedule trigger's next run, so a tick costs in proportion to the
//! runs it takes, not to the number of schedules.
//!
//! Two heaps. The first holds one `(due, slot, generation)` key per trigger, ordered by due
//! time; trigger state lives in a slot vector. When a run falls due it moves to the second
//! heap, ordered by fire time (due plus the random delay), and the trigger's next run takes
//! its place in the first. Runs cannot be ordered by fire time from the start: a delay may be
//! longer than a trigger's period, so a later run can fire before an earlier one, and one key
//! per trigger would hold it back. Every run fires at or after its due time, so by the time a
//! fire time is reached its run has moved to the second heap.
//!
//! Updates and removals do not search the first heap: they bump the slot's generation, which
//! turns its queued key stale; stale keys are dropped when they surface, or in one pass when
//! they outnumber the live ones. A trigger advanced without its key being popped (merged into
//! a sibling's run due at the same instant) leaves a stale key too, told apart by its due
//! time. A run in the second heap is dropped if its schedule has been removed by the time it
//! fires, and kept if the schedule was only updated.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use domain::ids::{ScheduleId, UserId};
use domain::model::Schedule;
use domain::state::State;

use crate::delay::{delay_secs, DelaySources};
use crate::fire::{parse_cron, FireRule, TriggerError};

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

impl<'a> ScheduleInput<'a> {
    /// The input for `schedule` as `state` stands: its owner's time zone, the server-wide and
    /// policy delays. `None` if the owner is unknown or their time zone is not an IANA name,
    /// both of which `decide` rejects.
    pub fn from_state(
        state: &State,
        schedule: &'a Schedule,
        handled_until: Option<DateTime<Utc>>,
    ) -> Option<Self> {
        let user = state.user(schedule.user)?;
        Some(ScheduleInput {
            schedule,
            time_zone: user.spec.timezone.parse().ok()?,
            delays: DelaySources::of(state, schedule.user),
            handled_until,
        })
    }
}

/// One run taken from the index: due at `due`, to be started at `fire = due + delay_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueRun {
    pub schedule: ScheduleId,
    pub user: UserId,
    /// Index of the trigger in the schedule's spec; when several triggers are due at the same
    /// instant the run is taken once, from the trigger whose delay is shortest.
    pub trigger: usize,
    pub due: DateTime<Utc>,
    pub fire: DateTime<Utc>,
    pub delay_secs: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Queued {
    due: i64,
    slot: u32,
    generation: u32,
}

/// A run that is due and waits for its fire time. Self-contained, so that it outlives an
/// update of its schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Delayed {
    fire: i64,
    due: i64,
    schedule: ScheduleId,
    user: UserId,
    trigger: u16,
}

/// A schedule id as the map key: two `u64`s align to 8 bytes where the id's `u128` aligns to
/// 16, which shrinks a map entry from 32 to 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct IdKey(u64, u64);

impl IdKey {
    fn of(id: ScheduleId) -> Self {
        let bits = id.ulid().0;
        IdKey((bits >> 64) as u64, bits as u64)
    }

    fn id(self) -> ScheduleId {
        let bits = (u128::from(self.0) << 64) | u128::from(self.1);
        // A ULID is 48 bits of milliseconds, then 80 random bits.
        ScheduleId::new((bits >> 80) as u64, bits & ((1 << 80) - 1))
    }
}

/// No slot: the chain of a schedule without triggers, or the end of a walk round a chain.
const NO_SLOT: u32 = u32::MAX;

/// One trigger of one schedule.
#[derive(Clone, Debug)]
struct Slot {
    schedule: ScheduleId,
    user: UserId,
    rule: FireRule,
    /// The next due instant, meaningful while `queued`.
    due: i64,
    /// Bumped when the slot is freed; a queued key is live only while its generation matches
    /// (see [`Slot::holds`]).
    generation: u32,
    /// The schedule's next trigger slot; the chain is a ring, so the last trigger points back
    /// at the first and any slot reaches its siblings (a `head` field would add 16 bytes per
    /// slot once padded).
    next_slot: u32,
    time_zone: Tz,
    /// At most 18000, so it fits.
    max_delay: u16,
    trigger: u16,
    /// Whether the trigger has a next run (a once trigger that fired has none).
    queued: bool,
}

impl Slot {
    fn key(&self, slot: u32) -> Queued {
        Queued {
            due: self.due,
            slot,
            generation: self.generation,
        }
    }

    /// Whether `key` is this slot's live key. The due time must match as well as the
    /// generation: a trigger merged into a sibling's run is advanced while its key stays
    /// queued, and that key, taken as live, would take the trigger's next run ahead of its
    /// due time and leave the trigger a run ahead for good, so that the next instant it shares
    /// with a sibling would be taken twice.
    fn holds(&self, key: &Queued) -> bool {
        self.queued && self.generation == key.generation && self.due == key.due
    }

    fn delay(&self) -> u32 {
        delay_secs(
            self.user,
            self.schedule,
            self.due,
            u32::from(self.max_delay),
        )
    }
}

/// Every schedule trigger's next run, and the runs that are due but not yet fired.
#[derive(Debug, Default)]
pub struct DueIndex {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Each schedule's first trigger slot.
    schedules: HashMap<IdKey, u32>,
    queue: BinaryHeap<Reverse<Queued>>,
    /// Live keys in `queue`.
    queued: usize,
    delayed: BinaryHeap<Reverse<Delayed>>,
    /// Removed schedules that may still have runs in `delayed`. Checked instead of
    /// `schedules` when a run fires because it is small and stays in cache; a million-entry
    /// map costs a cache miss per run.
    removed: HashSet<ScheduleId>,
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
        let triggers = inputs.iter().map(|i| i.schedule.spec.triggers.len()).sum();
        let mut index = DueIndex {
            slots: Vec::with_capacity(triggers),
            schedules: HashMap::with_capacity(inputs.len()),
            ..DueIndex::default()
        };
        let mut keys = Vec::with_capacity(triggers);
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
    /// `handled_until`, or else after `after`. Runs already due and waiting for their fire
    /// time stay. On error the index is unchanged.
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

    /// Forgets a schedule, including its runs that are due but not yet fired; `false` if it
    /// was not there.
    pub fn remove(&mut self, schedule: ScheduleId) -> bool {
        let Some(first) = self.schedules.remove(&IdKey::of(schedule)) else {
            return false;
        };
        let mut slot = first;
        while slot != NO_SLOT {
            let s = &mut self.slots[slot as usize];
            if s.queued {
                self.queued -= 1;
            }
            s.queued = false;
            s.generation = s.generation.wrapping_add(1);
            self.free.push(slot);
            slot = match s.next_slot {
                next if next == first => NO_SLOT,
                next => next,
            };
        }
        if !self.delayed.is_empty() {
            self.removed.insert(schedule);
            if self.removed.len() > 1024 && self.removed.len() > self.delayed.len() {
                let removed = &self.removed;
                self.delayed
                    .retain(|Reverse(run)| !removed.contains(&run.schedule));
                self.removed.clear();
            }
        }
        self.compact_if_stale();
        true
    }

    /// Takes every run whose fire time is at or before `now`, in fire-time order, and queues
    /// each trigger's following run (due strictly after the taken one, so a trigger that fell
    /// behind yields every run it missed, and never one twice).
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<DueRun> {
        let now = now.timestamp();
        while let Some(&Reverse(head)) = self.queue.peek() {
            if head.due > now {
                break;
            }
            self.queue.pop();
            let s = &self.slots[head.slot as usize];
            if !s.holds(&head) {
                continue;
            }
            let mut run = Delayed {
                fire: s.due + i64::from(s.delay()),
                due: s.due,
                schedule: s.schedule,
                user: s.user,
                trigger: s.trigger,
            };
            let sibling = s.next_slot;
            self.advance(head.slot);
            // Other triggers of the schedule due at the same instant are the same run.
            let mut slot = sibling;
            while slot != head.slot {
                let other = &self.slots[slot as usize];
                let next = other.next_slot;
                if other.queued && other.due == run.due {
                    let fire = other.due + i64::from(other.delay());
                    if fire < run.fire {
                        run.fire = fire;
                        run.trigger = other.trigger;
                    }
                    self.advance(slot);
                }
                slot = next;
            }
            self.delayed.push(Reverse(run));
        }
        let mut runs = Vec::new();
        while let Some(&Reverse(run)) = self.delayed.peek() {
            if run.fire > now {
                break;
            }
            self.delayed.pop();
            if self.removed.is_empty() || !self.removed.contains(&run.schedule) {
                runs.extend(due_run(run));
            }
        }
        if self.delayed.is_empty() {
            self.removed.clear();
        }
        runs
    }

    /// The earliest instant at which [`DueIndex::take_due`] may have work: the next due
    /// time or the next fire time of a run already due.
    pub fn next_wake(&mut self) -> Option<DateTime<Utc>> {
        while let Some(&Reverse(head)) = self.queue.peek() {
            if self.slots[head.slot as usize].holds(&head) {
                break;
            }
            self.queue.pop();
        }
        let due = self.queue.peek().map(|Reverse(q)| q.due);
        let fire = self.delayed.peek().map(|Reverse(d)| d.fire);
        let wake = match (due, fire) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        DateTime::from_timestamp(wake, 0)
    }

    /// The next run of each trigger of `schedule` that is not yet due (none for a trigger
    /// that will not fire again), in trigger order.
    pub fn pending(&self, schedule: ScheduleId) -> Vec<DueRun> {
        let mut runs = Vec::new();
        let first = self
            .schedules
            .get(&IdKey::of(schedule))
            .copied()
            .unwrap_or(NO_SLOT);
        self.chain(first, |_, s| {
            if s.queued {
                runs.extend(due_run(Delayed {
                    fire: s.due + i64::from(s.delay()),
                    due: s.due,
                    schedule: s.schedule,
                    user: s.user,
                    trigger: s.trigger,
                }));
            }
        });
        runs
    }

    /// The schedules held, in no particular order.
    pub fn ids(&self) -> Vec<ScheduleId> {
        self.schedules.keys().map(|k| k.id()).collect()
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
            + self.delayed.capacity() * size_of::<Reverse<Delayed>>()
            // hashbrown: one control byte per bucket, buckets = capacity * 8 / 7.
            + self.schedules.capacity() * 8 / 7 * (size_of::<(IdKey, u32)>() + 1)
    }

    fn compile(&mut self, schedule: &Schedule) -> Result<Vec<FireRule>, TriggerError> {
        let count = schedule.spec.triggers.len();
        if count > usize::from(u16::MAX) {
            return Err(TriggerError::TooManyTriggers { count });
        }
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
                    let parsed = parse_cron(expr)?;
                    crons.insert(expr.to_owned(), Arc::clone(&parsed));
                    Ok(parsed)
                })
            })
            .collect()
    }

    /// Stores a schedule's triggers with their first runs, without queueing them; returns the
    /// first slot of its chain.
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
        let (mut first, mut last) = (NO_SLOT, NO_SLOT);
        // Built back to front so each slot can point at the next trigger's.
        let triggers = schedule.spec.triggers.iter().zip(rules).enumerate().rev();
        for (index, (trigger, rule)) in triggers {
            let next = rule.next_secs(input.time_zone, after);
            let slot = Slot {
                schedule: schedule.id,
                user: schedule.user,
                due: next.unwrap_or(0),
                queued: next.is_some(),
                rule,
                generation: 0,
                next_slot: first,
                time_zone: input.time_zone,
                max_delay: input.delays.max_for(trigger) as u16,
                trigger: index as u16,
            };
            first = match self.free.pop() {
                Some(free) => {
                    let old = &mut self.slots[free as usize];
                    *old = Slot {
                        generation: old.generation,
                        ..slot
                    };
                    free
                }
                None => {
                    self.slots.push(slot);
                    (self.slots.len() - 1) as u32
                }
            };
            if last == NO_SLOT {
                last = first;
            }
        }
        if last != NO_SLOT {
            self.slots[last as usize].next_slot = first;
        }
        self.schedules.insert(IdKey::of(schedule.id), first);
        // An update keeps the runs that are due and waiting to fire.
        if !self.removed.is_empty() {
            self.removed.remove(&schedule.id);
        }
        first
    }

    /// Moves a queued slot to its run after the current one.
    fn advance(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        match s.rule.next_secs(s.time_zone, s.due) {
            Some(due) => {
                s.due = due;
                self.queue.push(Reverse(s.key(slot)));
            }
            None => {
                s.queued = false;
                self.queued -= 1;
            }
        }
    }

    fn chain(&self, first: u32, mut each: impl FnMut(u32, &Slot)) {
        let mut slot = first;
        while slot != NO_SLOT {
            let s = &self.slots[slot as usize];
            each(slot, s);
            slot = match s.next_slot {
                next if next == first => NO_SLOT,
                next => next,
            };
        }
    }

    fn compact_if_stale(&mut self) {
        if self.queue.len() > 2 * self.queued + 1024 {
            let slots = &self.slots;
            self.queue
                .retain(|Reverse(q)| slots[q.slot as usize].holds(q));
        }
    }
}

fn due_run(run: Delayed) -> Option<DueRun> {
    Some(DueRun {
        schedule: run.schedule,
        user: run.user,
        trigger: usize::from(run.trigger),
        due: DateTime::from_timestamp(run.due, 0)?,
        fire: DateTime::from_timestamp(run.fire, 0)?,
        delay_secs: u32::try_from(run.fire - run.due).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_slot_stays_small() {
        // Two 16-byte ids, a 24-byte rule and the bookkeeping: a million schedules' slots fit
        // in 80 MB.
        assert_eq!(std::mem::size_of::<FireRule>(), 24);
        assert_eq!(std::mem::size_of::<Slot>(), 80);
        assert_eq!(std::mem::size_of::<Reverse<Queued>>(), 16);
        assert_eq!(std::mem::size_of::<(IdKey, u32)>(), 24);
    }
}
