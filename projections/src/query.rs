//! Job search: the request and page types, opaque cursors, and the planner that reads from a
//! filter what an index can answer.
//!
//! Execution (in `models::search`) goes tenant partition first, then a time range on the
//! start-time or end-time index, then a per-tenant posting list (status, user, device,
//! protected item, vault) when one is narrower, and finally the whole filter as the residual
//! predicate on each candidate. The planner only ever narrows the candidates to a superset of
//! the matches, so the residual decides every row and the result equals a naive evaluation
//! over every job.
//!
//! Bounds come from conjunctive positions only: the children of an `and`, the negated children
//! of a `not_or` (and through double negation the children of a `not_and` inside a negated
//! position). A negated rule yields a bound only on a value every job has (start time,
//! status, user): `not (end_time < x)` is also true of a running job, which has no end time,
//! so it bounds nothing. Statuses are different: every job has one, so the set of statuses a
//! match may have is computed through every combinator, `or` included.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use domain::filter::{Filter, IntOp, JobField, StrOp, Test, Value};
use domain::ids::{DeviceId, ItemId, JobId, UserId, VaultId};
use domain::model::{Job, JobStatus};
use thiserror::Error;

/// Which time orders the results. A running job has no end time and sorts after every
/// finished job by end time (before them, descending).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortKey {
    StartTime,
    EndTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Asc,
    Desc,
}

/// `start_time:desc` and the like; ties are broken by job id in the same direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobSort {
    pub key: SortKey,
    pub direction: Direction,
}

impl Default for JobSort {
    /// Newest first.
    fn default() -> Self {
        JobSort {
            key: SortKey::StartTime,
            direction: Direction::Desc,
        }
    }
}

impl JobSort {
    /// The value a job sorts by.
    pub fn key_of(self, job: &Job) -> i64 {
        match self.key {
            SortKey::StartTime => job.started_at,
            SortKey::EndTime => end_key(job),
        }
    }
}

/// A job's end time as an index key: `i64::MAX` while it runs.
pub(crate) fn end_key(job: &Job) -> i64 {
    job.ended_at
        .filter(|_| !job.status.is_running())
        .unwrap_or(i64::MAX)
}

impl FromStr for JobSort {
    type Err = QueryError;

    /// `start_time` or `end_time`, optionally followed by `:asc` or `:desc` (default).
    fn from_str(s: &str) -> Result<Self, QueryError> {
        let (key, direction) = s.split_once(':').unwrap_or((s, "desc"));
        let key = match key {
            "start_time" => SortKey::StartTime,
            "end_time" => SortKey::EndTime,
            _ => return Err(QueryError::BadSort(s.to_owned())),
        };
        let direction = match direction {
            "asc" => Direction::Asc,
            "desc" => Direction::Desc,
            _ => return Err(QueryError::BadSort(s.to_owned())),
        };
        Ok(JobSort { key, direction })
    }
}

impl fmt::Display for JobSort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match self.key {
            SortKey::StartTime => "start_time",
            SortKey::EndTime => "end_time",
        };
        let direction = match self.direction {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        };
        write!(f, "{key}:{direction}")
    }
}

/// Where a page ended: the sort and the last row's sort key and id. A page after a cursor
/// holds the rows strictly after that position, so rows arriving meanwhile never shift it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub(crate) sort: JobSort,
    pub(crate) key: i64,
    pub(crate) id: JobId,
}

impl Cursor {
    pub(crate) fn after(sort: JobSort, job: &Job) -> Cursor {
        Cursor {
            sort,
            key: sort.key_of(job),
            id: job.id,
        }
    }

    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}|{}", self.sort, self.key, self.id))
    }

    pub fn decode(text: &str) -> Result<Cursor, QueryError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| QueryError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| QueryError::BadCursor)?;
        let mut parts = text.split('|');
        let (Some(sort), Some(key), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(QueryError::BadCursor);
        };
        Ok(Cursor {
            sort: sort.parse().map_err(|_| QueryError::BadCursor)?,
            key: key.parse().map_err(|_| QueryError::BadCursor)?,
            id: JobId::parse(id).map_err(|_| QueryError::BadCursor)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum QueryError {
    #[error("unknown sort `{0}`: expected start_time or end_time, then :asc or :desc")]
    BadSort(String),
    #[error("malformed cursor")]
    BadCursor,
    #[error("the cursor belongs to a search sorted by {cursor}, not {query}")]
    CursorSortMismatch { cursor: JobSort, query: JobSort },
}

/// One search request.
#[derive(Clone, Copy, Debug)]
pub struct JobQuery<'a> {
    pub filter: &'a Filter<JobField>,
    pub sort: JobSort,
    pub limit: usize,
    /// Continue after this position (from a previous page's `next_cursor`).
    pub cursor: Option<&'a Cursor>,
    /// Unix seconds that `time_since_start` and `time_since_end` are measured to.
    pub now: i64,
}

/// One page of results; `next_cursor` is `None` on the last page.
#[derive(Clone, Debug)]
pub struct JobPage<'a> {
    pub jobs: Vec<&'a Job>,
    pub next_cursor: Option<Cursor>,
}

/// Inclusive bounds on one time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub lo: i64,
    pub hi: i64,
}

impl Span {
    pub const ALL: Span = Span {
        lo: i64::MIN,
        hi: i64::MAX,
    };

    pub fn is_empty(self) -> bool {
        self.lo > self.hi
    }

    pub fn contains(self, t: i64) -> bool {
        self.lo <= t && t <= self.hi
    }

    /// Narrows by `value op v`, computed in i128 and clamped, so no bound overflows.
    fn narrow(&mut self, op: IntOp, v: i128) {
        let clamp = |x: i128| x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        let (lo, hi) = match op {
            IntOp::Eq => (v, v),
            IntOp::Gt => (v + 1, i128::MAX),
            IntOp::Gte => (v, i128::MAX),
            IntOp::Lt => (i128::MIN, v - 1),
            IntOp::Lte => (i128::MIN, v),
            IntOp::Neq => return,
        };
        if lo > i128::from(i64::MAX) || hi < i128::from(i64::MIN) {
            self.lo = 1;
            self.hi = 0;
            return;
        }
        self.lo = self.lo.max(clamp(lo));
        self.hi = self.hi.min(clamp(hi));
    }
}

/// An equality every match must satisfy; two different values make the plan empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Pin<T> {
    Any,
    Exactly(T),
}

impl<T: PartialEq> Pin<T> {
    fn set(&mut self, value: T, empty: &mut bool) {
        match self {
            Pin::Any => *self = Pin::Exactly(value),
            Pin::Exactly(v) if *v == value => {}
            Pin::Exactly(_) => *empty = true,
        }
    }

    pub fn admits(&self, value: Option<&T>) -> bool {
        match self {
            Pin::Any => true,
            Pin::Exactly(v) => value == Some(v),
        }
    }
}

/// What every match of a filter must satisfy, as far as the indexes can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Nothing can match.
    pub empty: bool,
    pub start: Span,
    /// Bounds on the end time; a finished job is required when `finished` is set.
    pub end: Span,
    pub finished: bool,
    /// Bit `i` set: `JobStatus::ALL[i]` may match.
    pub statuses: u16,
    pub user: Pin<UserId>,
    pub username: Pin<String>,
    pub device: Pin<DeviceId>,
    pub item: Pin<ItemId>,
    pub vault: Pin<VaultId>,
    /// Rules on the user's name that every match passes: checked once per user with jobs
    /// in the tenant, they select that user's posting lists.
    pub username_rules: Vec<Test>,
    /// The residual needs the user's name.
    pub needs_username: bool,
}

pub(crate) const ALL_STATUSES: u16 = (1 << JobStatus::ALL.len()) - 1;

pub(crate) fn status_bit(status: JobStatus) -> u16 {
    let i = JobStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(0);
    1 << i
}

impl Plan {
    pub fn new(filter: &Filter<JobField>, now: i64) -> Plan {
        let mut plan = Plan {
            empty: false,
            start: Span::ALL,
            end: Span::ALL,
            finished: false,
            statuses: ALL_STATUSES,
            user: Pin::Any,
            username: Pin::Any,
            device: Pin::Any,
            item: Pin::Any,
            vault: Pin::Any,
            username_rules: Vec::new(),
            needs_username: mentions_username(filter),
        };
        plan.walk(filter, true, now);
        plan.statuses = statuses(filter, true);
        if plan.start.is_empty() || plan.end.is_empty() || plan.statuses == 0 {
            plan.empty = true;
        }
        plan
    }

    /// Whether `job` passes every index-answerable condition (a cheap pre-check before the
    /// residual filter).
    pub fn admits(&self, job: &Job) -> bool {
        if !self.start.contains(job.started_at) || self.statuses & status_bit(job.status) == 0 {
            return false;
        }
        if self.finished {
            let end = end_key(job);
            if end == i64::MAX || !self.end.contains(end) {
                return false;
            }
        }
        self.user.admits(Some(&job.user))
            && self.device.admits(job.device.as_ref())
            && self.item.admits(job.item.as_ref())
            && self.vault.admits(job.vault.as_ref())
    }

    /// `positive`: whether `filter` must hold (true) or must fail (false) for every match.
    fn walk(&mut self, filter: &Filter<JobField>, positive: bool, now: i64) {
        match (filter, positive) {
            (Filter::And(c), true) => c.iter().for_each(|f| self.walk(f, true, now)),
            (Filter::NotOr(c), true) | (Filter::Or(c), false) => {
                c.iter().for_each(|f| self.walk(f, false, now))
            }
            (Filter::NotAnd(c), false) => c.iter().for_each(|f| self.walk(f, true, now)),
            // One child: the combinator is the child, or its negation.
            (Filter::And(c) | Filter::Or(c), _) if c.len() == 1 => self.walk(&c[0], positive, now),
            (Filter::NotAnd(c) | Filter::NotOr(c), _) if c.len() == 1 => {
                self.walk(&c[0], !positive, now)
            }
            // Constant false where it must hold: `or()`, `not ()`; constant true where it
            // must fail: `all()`, `nor ()`.
            (Filter::Or(c) | Filter::NotAnd(c), true)
            | (Filter::And(c) | Filter::NotOr(c), false)
                if c.is_empty() =>
            {
                self.empty = true
            }
            (Filter::Rule(rule), _) => self.rule(rule.field(), rule.test(), positive, now),
            _ => {}
        }
    }

    fn rule(&mut self, field: JobField, test: &Test, positive: bool, now: i64) {
        // A user without a name (removed) fails every rule on it, so only a rule that must
        // hold narrows by name.
        if field == JobField::Username && positive {
            self.username_rules.push(test.clone());
        }
        match test {
            Test::Int(op, v) => {
                // `value op v` fails exactly when `value (negated op) v` holds, for a present
                // value; saturated differences agree with exact ones away from the extremes.
                let op = if positive { *op } else { negate(*op) };
                let v = *v;
                let extreme = v == i64::MIN || v == i64::MAX;
                let (now, v) = (i128::from(now), i128::from(v));
                match field {
                    JobField::StartTime => self.start.narrow(op, v),
                    JobField::TimeSinceStart if !extreme => self.start.narrow(flip(op), now - v),
                    // Only a rule that must hold implies the job has an end.
                    JobField::EndTime if positive => {
                        self.finished = true;
                        self.end.narrow(op, v);
                    }
                    JobField::TimeSinceEnd if positive && !extreme => {
                        self.finished = true;
                        self.end.narrow(flip(op), now - v);
                    }
                    JobField::Duration if positive => self.finished = true,
                    _ => {}
                }
            }
            Test::Str(op, domain::filter::Case::Sensitive, needle) => {
                let eq = matches!((op, positive), (StrOp::Eq, true));
                let text = needle.as_str();
                let mut empty = self.empty;
                match field {
                    // Ids have one spelling, so text that is not one matches nothing.
                    JobField::UserId if eq || *op == StrOp::Neq && !positive => {
                        match UserId::parse(text) {
                            Ok(id) => self.user.set(id, &mut empty),
                            Err(_) => empty = true,
                        }
                    }
                    JobField::DeviceId if eq => match DeviceId::parse(text) {
                        Ok(id) => self.device.set(id, &mut empty),
                        Err(_) => empty = true,
                    },
                    JobField::ProtectedItemId if eq => match ItemId::parse(text) {
                        Ok(id) => self.item.set(id, &mut empty),
                        Err(_) => empty = true,
                    },
                    JobField::VaultId if eq => match VaultId::parse(text) {
                        Ok(id) => self.vault.set(id, &mut empty),
                        Err(_) => empty = true,
                    },
                    JobField::Username if eq => self.username.set(text.to_owned(), &mut empty),
                    _ => {}
                }
                self.empty = empty;
            }
            _ => {}
        }
    }
}

/// The statuses a job may have when `filter` holds (`positive`) or fails: exact for any
/// and/or/not combination of rules on `status` and `running`, all statuses where other
/// rules decide. Unlike time bounds this looks through `or`: status is never missing.
fn statuses(filter: &Filter<JobField>, positive: bool) -> u16 {
    let all =
        |c: &[Filter<JobField>], p: bool| c.iter().fold(ALL_STATUSES, |a, f| a & statuses(f, p));
    let any = |c: &[Filter<JobField>], p: bool| c.iter().fold(0, |a, f| a | statuses(f, p));
    match (filter, positive) {
        (Filter::And(c), true) | (Filter::NotAnd(c), false) => all(c, true),
        (Filter::Or(c), true) | (Filter::NotOr(c), false) => any(c, true),
        (Filter::And(c), false) | (Filter::NotAnd(c), true) => any(c, false),
        (Filter::Or(c), false) | (Filter::NotOr(c), true) => all(c, false),
        (Filter::Rule(rule), _) => {
            let test = rule.test();
            let set = match (rule.field(), test) {
                (JobField::Status | JobField::Running, _) => JobStatus::ALL
                    .iter()
                    .filter(|s| {
                        let value = match rule.field() {
                            JobField::Status => Value::Int(i64::from(s.code())),
                            _ => Value::Bool(s.is_running()),
                        };
                        test.passes(&value)
                    })
                    .fold(0, |a, s| a | status_bit(*s)),
                _ => return ALL_STATUSES,
            };
            if positive {
                set
            } else {
                ALL_STATUSES & !set
            }
        }
    }
}

fn negate(op: IntOp) -> IntOp {
    match op {
        IntOp::Eq => IntOp::Neq,
        IntOp::Neq => IntOp::Eq,
        IntOp::Gt => IntOp::Lte,
        IntOp::Gte => IntOp::Lt,
        IntOp::Lt => IntOp::Gte,
        IntOp::Lte => IntOp::Gt,
    }
}

/// `now - t op v` ⇔ `t (flip op) now - v`.
fn flip(op: IntOp) -> IntOp {
    match op {
        IntOp::Eq => IntOp::Eq,
        IntOp::Neq => IntOp::Neq,
        IntOp::Gt => IntOp::Lt,
        IntOp::Gte => IntOp::Lte,
        IntOp::Lt => IntOp::Gt,
        IntOp::Lte => IntOp::Gte,
    }
}

fn mentions_username(filter: &Filter<JobField>) -> bool {
    match filter {
        Filter::Rule(rule) => rule.field() == JobField::Username,
        Filter::And(c) | Filter::Or(c) | Filter::NotAnd(c) | Filter::NotOr(c) => {
            c.iter().any(mentions_username)
        }
    }
}
