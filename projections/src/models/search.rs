//! Job search on the read models: the per-tenant job indexes beside the start-time index of
//! `models` (end time, status, user, device, protected item, vault), kept by the same apply
//! path and snapshotted with the rest, and the execution of a [`crate::query::Plan`].

use std::borrow::Cow;
use std::hash::Hash;
use std::ops::Bound;

use domain::filter::{Filter, JobField, JobView, Value};
use domain::ids::{DeviceId, ItemId, JobId, TenantRef, UserId, VaultId};
use domain::model::{Classification, Job, JobStatus};
use domain::Event;
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

use super::keys::{JobKey, JobKeys};
use super::{ReadModels, Scope};
use crate::query::{
    end_key, status_bit, Cursor, Direction, JobPage, JobQuery, JobSort, Pin, Plan, QueryError,
    SortKey, Span, ALL_STATUSES,
};

type Keys = JobKeys;

/// A range of index keys.
type Window = (Bound<JobKey>, Bound<JobKey>);

fn lowest() -> JobId {
    JobId::new(0, 0)
}

fn highest() -> JobId {
    JobId::new(u64::MAX, u128::MAX)
}

/// What the job indexes and reports know of a job; a change in any of it re-files the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobFacts {
    pub id: JobId,
    pub tenant: TenantRef,
    pub start: i64,
    /// `i64::MAX` while running.
    pub end: i64,
    pub status: JobStatus,
    pub classification: Classification,
    pub user: UserId,
    pub device: Option<DeviceId>,
    pub item: Option<ItemId>,
    pub vault: Option<VaultId>,
    pub upload: u64,
    pub download: u64,
}

impl JobFacts {
    pub fn of(job: &Job) -> JobFacts {
        JobFacts {
            id: job.id,
            tenant: job.tenant,
            start: job.started_at,
            end: end_key(job),
            status: job.status,
            classification: job.classification,
            user: job.user,
            device: job.device,
            item: job.item,
            vault: job.vault,
            upload: job.totals.upload_bytes,
            download: job.totals.download_bytes,
        }
    }
}

/// The job an event may re-file. Progress and log lines change nothing indexed.
pub(crate) fn job_touched(event: &Event) -> Option<JobId> {
    match event {
        Event::JobStarted(e) => Some(e.job_id),
        Event::JobMissed(e) => Some(e.job_id),
        Event::JobSkipped(e) => Some(e.job_id),
        Event::JobCompleted(e) => Some(e.job_id),
        Event::JobAbandoned(e) => Some(e.job_id),
        Event::JobRevived(e) => Some(e.job_id),
        _ => None,
    }
}

/// One tenant's job indexes. Posting lists hold (start time, id) so that a start-time range
/// narrows them too; the end index holds (end time or `i64::MAX`, id).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct TenantJobs {
    by_end: Keys,
    by_status: HashMap<JobStatus, Keys>,
    by_user: HashMap<UserId, Keys>,
    by_device: HashMap<DeviceId, Keys>,
    by_item: HashMap<ItemId, Keys>,
    by_vault: HashMap<VaultId, Keys>,
    /// Least and greatest (end − start) of any finished job filed here, so that bounds on the
    /// end time bound the start time too. Never narrowed when a job leaves: a wider span only
    /// costs candidates. So it depends on history (a job revived and finished again widens
    /// it), and two indexes of the same jobs may differ here yet answer every query alike.
    durations: Option<(i64, i64)>,
}

/// Equal when they index the same jobs alike; `durations` is left out (see there), so that
/// a model filed job by job and one whose jobs were filed at the end of a catch-up compare
/// equal.
impl PartialEq for TenantJobs {
    fn eq(&self, other: &Self) -> bool {
        self.by_end == other.by_end
            && self.by_status == other.by_status
            && self.by_user == other.by_user
            && self.by_device == other.by_device
            && self.by_item == other.by_item
            && self.by_vault == other.by_vault
    }
}

fn post<K: Eq + Hash>(map: &mut HashMap<K, Keys>, key: Option<K>, row: (i64, JobId)) {
    if let Some(key) = key {
        map.entry(key).or_default().insert(row);
    }
}

fn unpost<K: Eq + Hash>(map: &mut HashMap<K, Keys>, key: Option<K>, row: (i64, JobId)) {
    if let Some(key) = key {
        if let Some(keys) = map.get_mut(&key) {
            keys.remove(&row);
            if keys.is_empty() {
                map.remove(&key);
            }
        }
    }
}

impl TenantJobs {
    fn insert(&mut self, f: &JobFacts) {
        let row = (f.start, f.id);
        if f.end != i64::MAX {
            let d = f.end.saturating_sub(f.start);
            self.durations = Some(
                self.durations
                    .map_or((d, d), |(lo, hi)| (lo.min(d), hi.max(d))),
            );
        }
        self.by_end.insert((f.end, f.id));
        post(&mut self.by_status, Some(f.status), row);
        post(&mut self.by_user, Some(f.user), row);
        post(&mut self.by_device, f.device, row);
        post(&mut self.by_item, f.item, row);
        post(&mut self.by_vault, f.vault, row);
    }

    fn remove(&mut self, f: &JobFacts) {
        let row = (f.start, f.id);
        self.by_end.remove(&(f.end, f.id));
        unpost(&mut self.by_status, Some(f.status), row);
        unpost(&mut self.by_user, Some(f.user), row);
        unpost(&mut self.by_device, f.device, row);
        unpost(&mut self.by_item, f.item, row);
        unpost(&mut self.by_vault, f.vault, row);
    }

    /// `remove(before)` then `insert(after)` for a job that keeps its row (start and id),
    /// touching only the entries whose key changed: a finishing job moves in the end and
    /// status indexes, not in its user's, device's, item's or vault's posting lists.
    fn update(&mut self, before: &JobFacts, after: &JobFacts) {
        let row = (after.start, after.id);
        if self.by_end.len() == 1 {
            // `remove` would have dropped the emptied tenant and its durations with it.
            self.durations = None;
        }
        if after.end != i64::MAX {
            let d = after.end.saturating_sub(after.start);
            self.durations = Some(
                self.durations
                    .map_or((d, d), |(lo, hi)| (lo.min(d), hi.max(d))),
            );
        }
        if before.end != after.end {
            self.by_end.remove(&(before.end, before.id));
            self.by_end.insert((after.end, after.id));
        }
        repost(
            &mut self.by_status,
            Some(before.status),
            Some(after.status),
            row,
        );
        repost(&mut self.by_user, Some(before.user), Some(after.user), row);
        repost(&mut self.by_device, before.device, after.device, row);
        repost(&mut self.by_item, before.item, after.item, row);
        repost(&mut self.by_vault, before.vault, after.vault, row);
    }
}

/// Moves `row` from `before`'s posting list to `after`'s, if they differ.
fn repost<K: Eq + Hash>(
    map: &mut HashMap<K, Keys>,
    before: Option<K>,
    after: Option<K>,
    row: (i64, JobId),
) {
    if before != after {
        unpost(map, before, row);
        post(map, after, row);
    }
}

/// Every tenant's job indexes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobIndexes {
    tenants: HashMap<TenantRef, TenantJobs>,
}

impl JobIndexes {
    /// A user's posting lists in the tenants `scope` sees (a transferred user's old jobs stay
    /// with the old tenant).
    pub(super) fn user_lists(&self, scope: Scope, user: UserId) -> Vec<(TenantRef, &Keys)> {
        self.tenants
            .iter()
            .filter(|(tenant, _)| scope.admits(**tenant))
            .filter_map(|(tenant, t)| Some((*tenant, t.by_user.get(&user)?)))
            .collect()
    }

    pub(super) fn device_lists(&self, scope: Scope, device: DeviceId) -> Vec<(TenantRef, &Keys)> {
        self.tenants
            .iter()
            .filter(|(tenant, _)| scope.admits(**tenant))
            .filter_map(|(tenant, t)| Some((*tenant, t.by_device.get(&device)?)))
            .collect()
    }

    pub(super) fn refile(&mut self, before: Option<&JobFacts>, after: Option<&JobFacts>) {
        if let (Some(b), Some(a)) = (before, after) {
            if (b.tenant, b.start, b.id) == (a.tenant, a.start, a.id) {
                if let Some(t) = self.tenants.get_mut(&a.tenant) {
                    t.update(b, a);
                    return;
                }
            }
        }
        if let Some(f) = before {
            if let Some(t) = self.tenants.get_mut(&f.tenant) {
                t.remove(f);
                if t.by_end.is_empty() {
                    self.tenants.remove(&f.tenant);
                }
            }
        }
        if let Some(f) = after {
            self.tenants.entry(f.tenant).or_default().insert(f);
        }
    }
}

/// Where candidates come from, each in ascending key order.
enum Source<'a> {
    /// The partition's (start, id) index, within the plan's start span.
    Start(&'a Keys),
    /// The tenant's (end, id) index, within the plan's end span when it requires an end.
    End(&'a Keys),
    /// Posting lists by (start, id), within the start span; more than one is a union.
    Postings(Vec<&'a Keys>),
}

fn bounds(span: Span) -> Window {
    (
        Bound::Included((span.lo, lowest())),
        Bound::Included((span.hi, highest())),
    )
}

/// Narrows `(lo, hi)` to the rows strictly after `cursor` in `direction`.
fn after_cursor((lo, hi): Window, cursor: Option<&Cursor>, direction: Direction) -> Window {
    let Some(c) = cursor else {
        return (lo, hi);
    };
    let at = (c.key, c.id);
    match direction {
        Direction::Asc => match lo {
            Bound::Included(k) | Bound::Excluded(k) if k > at => (lo, hi),
            _ => (Bound::Excluded(at), hi),
        },
        Direction::Desc => match hi {
            Bound::Included(k) | Bound::Excluded(k) if k < at => (lo, hi),
            _ => (lo, Bound::Excluded(at)),
        },
    }
}

/// Estimated share of `keys` (ordered by time) within `span`, assuming an even spread.
fn share(keys: &Keys, span: Span) -> f64 {
    let finite = keys.range((Bound::Unbounded, Bound::Excluded((i64::MAX, lowest()))));
    let (Some(first), Some(last)) = (keys.first(), finite.clone().next_back().or(keys.last()))
    else {
        return 0.0;
    };
    let (first, last) = (i128::from(first.0), i128::from(last.0));
    let lo = first.max(i128::from(span.lo));
    let hi = last.min(i128::from(span.hi));
    if hi < lo {
        return 0.0;
    }
    ((hi - lo + 1) as f64 / (last - first + 1) as f64).min(1.0)
}

impl ReadModels {
    /// One page of the jobs visible in `scope` that match the query's filter at its `now`,
    /// in its sort order, after its cursor.
    pub fn search_jobs<'a>(
        &'a self,
        scope: Scope,
        query: &JobQuery<'_>,
    ) -> Result<JobPage<'a>, QueryError> {
        if let Some(cursor) = query.cursor {
            if cursor.sort != query.sort {
                return Err(QueryError::CursorSortMismatch {
                    cursor: cursor.sort,
                    query: query.sort,
                });
            }
        }
        let mut page = JobPage {
            jobs: Vec::new(),
            next_cursor: None,
        };
        let Some((plan, source)) = self.plan(scope, query.filter, query.now, Some(query.sort))
        else {
            return Ok(page);
        };
        let matches = |job: &&Job| self.residual(&plan, query.filter, job, query.now);
        let sort = query.sort;
        let want = query.limit.saturating_add(1);
        let streams = match (&source, sort.key) {
            (Source::Start(_), SortKey::StartTime) | (Source::End(_), SortKey::EndTime) => true,
            (Source::Postings(p), SortKey::StartTime) => p.len() == 1,
            _ => false,
        };
        let mut rows: Vec<&Job> = if streams {
            let (keys, span) = match &source {
                Source::Start(k) => (*k, plan.start),
                Source::End(k) => (*k, if plan.finished { plan.end } else { Span::ALL }),
                Source::Postings(p) => (p[0], plan.start),
            };
            let window = after_cursor(bounds(span), query.cursor, sort.direction);
            let ids = keys.range(window);
            let jobs = |ids: &mut dyn Iterator<Item = &(i64, JobId)>| -> Vec<&Job> {
                ids.filter_map(|(_, id)| self.state.job(*id))
                    .filter(matches)
                    .take(want)
                    .collect()
            };
            let mut ids = ids;
            match sort.direction {
                Direction::Asc => jobs(&mut ids),
                Direction::Desc => jobs(&mut ids.rev()),
            }
        } else {
            let mut found: Vec<(i64, JobId, &Job)> = self
                .candidates(&plan, &source)
                .filter(matches)
                .map(|job| (sort.key_of(job), job.id, job))
                .filter(|(key, id, _)| match (query.cursor, sort.direction) {
                    (None, _) => true,
                    (Some(c), Direction::Asc) => (*key, *id) > (c.key, c.id),
                    (Some(c), Direction::Desc) => (*key, *id) < (c.key, c.id),
                })
                .collect();
            found.sort_unstable_by_key(|(key, id, _)| (*key, *id));
            if sort.direction == Direction::Desc {
                found.reverse();
            }
            found
                .into_iter()
                .take(want)
                .map(|(_, _, job)| job)
                .collect()
        };
        if rows.len() > query.limit {
            rows.truncate(query.limit);
            page.next_cursor = rows.last().map(|job| Cursor::after(sort, job));
        }
        page.jobs = rows;
        Ok(page)
    }

    /// How many jobs visible in `scope` match `filter` at `now`.
    pub fn count_jobs(&self, scope: Scope, filter: &Filter<JobField>, now: i64) -> usize {
        let Some((plan, source)) = self.plan(scope, filter, now, None) else {
            return 0;
        };
        self.candidates(&plan, &source)
            .filter(|job| self.residual(&plan, filter, job, now))
            .count()
    }

    fn residual(&self, plan: &Plan, filter: &Filter<JobField>, job: &Job, now: i64) -> bool {
        if !plan.admits(job) {
            return false;
        }
        let username = if plan.needs_username {
            self.state.user(job.user).map(|u| u.spec.username.as_str())
        } else {
            None
        };
        filter.matches(&JobView { job, username }, now)
    }

    /// Every candidate of `source`, in no particular order.
    fn candidates<'a>(
        &'a self,
        plan: &Plan,
        source: &Source<'a>,
    ) -> Box<dyn Iterator<Item = &'a Job> + 'a> {
        let job = |(_, id): &(i64, JobId)| self.state.job(*id);
        match source {
            Source::Start(keys) => Box::new(keys.range(bounds(plan.start)).filter_map(job)),
            Source::End(keys) => {
                let span = if plan.finished { plan.end } else { Span::ALL };
                Box::new(keys.range(bounds(span)).filter_map(job))
            }
            Source::Postings(lists) => {
                let start = plan.start;
                let lists = lists.clone();
                Box::new(
                    lists
                        .into_iter()
                        .flat_map(move |keys| keys.range(bounds(start)))
                        .filter_map(job),
                )
            }
        }
    }

    /// The plan for `filter` in `scope` and the cheapest source of its candidates, preferring
    /// one already in `sort` order; `None` when nothing can match.
    fn plan(
        &self,
        scope: Scope,
        filter: &Filter<JobField>,
        now: i64,
        sort: Option<JobSort>,
    ) -> Option<(Plan, Source<'_>)> {
        let mut plan = Plan::new(filter, now);
        if let Pin::Exactly(name) = &plan.username {
            match self.state.user_by_name(name) {
                Some(user) => {
                    let mut empty = false;
                    if let Pin::Exactly(pinned) = plan.user {
                        empty = pinned != user;
                    }
                    plan.user = Pin::Exactly(user);
                    plan.empty |= empty;
                }
                None => plan.empty = true,
            }
        }
        if plan.empty {
            return None;
        }
        let index = self.index(scope)?;
        let tenant = match scope {
            Scope::Root => None,
            Scope::Tenant(id) => Some(self.job_indexes.tenants.get(&TenantRef::Tenant(id))?),
        };
        if let (Some(t), true) = (tenant, plan.finished) {
            // end ∈ [lo, hi] and end − start ∈ [shortest, longest] put start in
            // [lo − longest, hi − shortest].
            let (shortest, longest) = t.durations?;
            let clamp = |x: i128| x.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
            let lo = clamp(i128::from(plan.end.lo) - i128::from(longest));
            let hi = clamp(i128::from(plan.end.hi) - i128::from(shortest));
            plan.start.lo = plan.start.lo.max(lo);
            plan.start.hi = plan.start.hi.min(hi);
            if plan.start.is_empty() {
                return None;
            }
        }
        let by_start = share(&index.jobs, plan.start) * index.jobs.len() as f64;
        // (estimated candidates, in the requested order, source)
        let mut options: Vec<(f64, bool, Source<'_>)> = vec![(
            by_start,
            sort.is_none_or(|s| s.key == SortKey::StartTime),
            Source::Start(&index.jobs),
        )];
        if let Some(t) = tenant {
            let end_span = if plan.finished { plan.end } else { Span::ALL };
            let by_end = share(&t.by_end, end_span) * t.by_end.len() as f64;
            options.push((
                by_end,
                sort.is_some_and(|s| s.key == SortKey::EndTime),
                Source::End(&t.by_end),
            ));
            let start_share = share(&index.jobs, plan.start);
            let mut lists: Vec<Vec<&Keys>> = Vec::new();
            if plan.statuses != ALL_STATUSES {
                lists.push(
                    JobStatus::ALL
                        .iter()
                        .filter(|s| plan.statuses & status_bit(**s) != 0)
                        .filter_map(|s| t.by_status.get(s))
                        .collect(),
                );
            }
            let pinned = [
                pin_list(&plan.user, &t.by_user),
                pin_list(&plan.device, &t.by_device),
                pin_list(&plan.item, &t.by_item),
                pin_list(&plan.vault, &t.by_vault),
            ];
            lists.extend(
                pinned
                    .into_iter()
                    .flatten()
                    .map(|list| list.into_iter().collect()),
            );
            if !plan.username_rules.is_empty() {
                lists.push(
                    t.by_user
                        .iter()
                        .filter(|(user, _)| {
                            let name = self.state.user(**user).map(|u| u.spec.username.as_str());
                            name.is_some_and(|name| {
                                let value = Value::Str(Cow::Borrowed(name));
                                plan.username_rules.iter().all(|test| test.passes(&value))
                            })
                        })
                        .map(|(_, keys)| keys)
                        .collect(),
                );
            }
            for list in lists {
                let size: usize = list.iter().map(|k| k.len()).sum();
                let ordered = list.len() == 1 && sort.is_none_or(|s| s.key == SortKey::StartTime);
                options.push((size as f64 * start_share, ordered, Source::Postings(list)));
            }
        }
        // Rows in sort order stream and stop at the page's end; others are all collected
        // and sorted, so they must be clearly fewer to win.
        let cost = |(estimate, ordered, _): &(f64, bool, Source<'_>)| {
            if *ordered {
                *estimate
            } else {
                estimate * 2.0 + 16.0
            }
        };
        let best = options
            .into_iter()
            .min_by(|a, b| cost(a).total_cmp(&cost(b)))
            .map(|(_, _, source)| source)?;
        Some((plan, best))
    }
}

/// The posting list a pin selects: `None` when unpinned, `Some(None)` when pinned to a value
/// without jobs.
fn pin_list<'a, K: Eq + Hash>(pin: &Pin<K>, map: &'a HashMap<K, Keys>) -> Option<Option<&'a Keys>> {
    match pin {
        Pin::Any => None,
        Pin::Exactly(key) => Some(map.get(key)),
    }
}

#[cfg(test)]
mod tests;
