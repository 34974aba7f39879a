use domain::events::{JobCompleted, JobStarted};
use domain::filter::{BoolOp, Case, Field, IntOp, Needle, Pattern, Rule, StrOp, Test};
use domain::model::JobTotals;
use fixtures::history::{HistoryConfig, JobHistory};
use proptest::prelude::*;

use super::*;
use crate::query::Direction;
use crate::Projection;

const END: i64 = 1_769_904_000;
const DAY: i64 = 86_400;

fn history(seed: u64, jobs: usize) -> ReadModels {
    let mut models = ReadModels::default();
    for event in JobHistory::new(HistoryConfig {
        seed,
        tenants: 3,
        users_per_tenant: 3,
        devices_per_user: 2,
        jobs,
        days: 6,
        end: END,
    }) {
        models.apply_event(&event);
    }
    models
}

fn scopes(models: &ReadModels) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = models
        .state
        .tenants()
        .map(|t| Scope::Tenant(t.id))
        .collect();
    scopes.sort_by_key(|s| format!("{s:?}"));
    scopes.push(Scope::Root);
    scopes
}

/// Every visible job that matches, sorted: what a search must return.
fn naive<'a>(
    models: &'a ReadModels,
    scope: Scope,
    filter: &Filter<JobField>,
    now: i64,
    sort: JobSort,
) -> Vec<&'a Job> {
    let mut jobs: Vec<&Job> = models
        .state
        .jobs()
        .filter(|j| scope.admits(j.tenant))
        .filter(|job| {
            let username = models
                .state
                .user(job.user)
                .map(|u| u.spec.username.as_str());
            filter.matches(&JobView { job, username }, now)
        })
        .collect();
    jobs.sort_by_key(|j| (sort.key_of(j), j.id));
    if sort.direction == Direction::Desc {
        jobs.reverse();
    }
    jobs
}

fn ids(jobs: &[&Job]) -> Vec<JobId> {
    jobs.iter().map(|j| j.id).collect()
}

/// Pages through with `limit`, checking every cursor survives its text form.
fn paged<'a>(
    models: &'a ReadModels,
    scope: Scope,
    filter: &Filter<JobField>,
    now: i64,
    sort: JobSort,
    limit: usize,
) -> Vec<&'a Job> {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = models
            .search_jobs(
                scope,
                &JobQuery {
                    filter,
                    sort,
                    limit,
                    cursor: cursor.as_ref(),
                    now,
                },
            )
            .expect("valid query");
        assert!(page.jobs.len() <= limit);
        out.extend(page.jobs);
        match page.next_cursor {
            Some(next) => {
                assert_eq!(Cursor::decode(&next.encode()), Ok(next));
                cursor = Some(next);
            }
            None => return out,
        }
        assert!(out.len() <= models.state.jobs().count(), "pages never end");
    }
}

// --- random filters over the history's own values ---------------------------------------

/// A leaf before it meets a history: field, operator and a seed that picks a value.
#[derive(Clone, Debug)]
struct LeafSpec {
    field: usize,
    op: usize,
    seed: u64,
    insensitive: bool,
    regex: bool,
}

#[derive(Clone, Debug)]
enum Spec {
    Leaf(LeafSpec),
    And(Vec<Spec>),
    Or(Vec<Spec>),
    NotAnd(Vec<Spec>),
    NotOr(Vec<Spec>),
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    // Weighted towards the fields the planner uses.
    let leaf = (
        prop_oneof![
            3 => Just(8usize),  // status
            3 => Just(15usize), // start_time
            3 => Just(16usize), // end_time
            3 => Just(18usize), // time_since_start
            3 => Just(19usize), // time_since_end
            2 => Just(20usize), // running
            2 => Just(1usize),  // username
            2 => Just(2usize),  // user_id
            8 => 0..JobField::ALL.len(),
        ],
        0usize..8,
        any::<u64>(),
        any::<bool>(),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(field, op, seed, insensitive, regex)| {
            Spec::Leaf(LeafSpec {
                field,
                op,
                seed,
                insensitive,
                regex,
            })
        });
    leaf.prop_recursive(4, 24, 4, |inner| {
        let children = prop::collection::vec(inner, 0..4);
        prop_oneof![
            3 => children.clone().prop_map(Spec::And),
            2 => children.clone().prop_map(Spec::Or),
            1 => children.clone().prop_map(Spec::NotAnd),
            2 => children.prop_map(Spec::NotOr),
        ]
    })
}

fn build(spec: &Spec, models: &ReadModels) -> Filter<JobField> {
    let list = |c: &[Spec]| c.iter().map(|s| build(s, models)).collect();
    match spec {
        Spec::And(c) => Filter::And(list(c)),
        Spec::Or(c) => Filter::Or(list(c)),
        Spec::NotAnd(c) => Filter::NotAnd(list(c)),
        Spec::NotOr(c) => Filter::NotOr(list(c)),
        Spec::Leaf(leaf) => Filter::Rule(leaf_rule(leaf, models)),
    }
}

fn leaf_rule(leaf: &LeafSpec, models: &ReadModels) -> Rule<JobField> {
    let field = JobField::ALL[leaf.field];
    let mut jobs: Vec<&Job> = models.state.jobs().collect();
    jobs.sort_by_key(|j| j.id);
    let job = jobs[(leaf.seed % jobs.len() as u64) as usize];
    let s = leaf.seed;
    let test = match field.field_type() {
        domain::filter::FieldType::Bool => Test::Bool(
            if leaf.op.is_multiple_of(2) {
                BoolOp::Is
            } else {
                BoolOp::Nis
            },
            s.is_multiple_of(2),
        ),
        domain::filter::FieldType::Int => {
            let value = match field {
                JobField::Status => {
                    let codes = JobStatus::ALL;
                    match s % 5 {
                        0 => 7000,
                        1 => 6500,
                        _ => i64::from(codes[(s / 5) as usize % codes.len()].code()),
                    }
                }
                JobField::Classification => 4000 + (s % 12) as i64,
                JobField::StartTime | JobField::EndTime => match s % 4 {
                    0 => job.started_at,
                    1 => job.ended_at.unwrap_or(END),
                    _ => END - (s % (7 * DAY as u64)) as i64,
                },
                JobField::TimeSinceStart | JobField::TimeSinceEnd => match s % 10 {
                    0 => i64::MAX,
                    1 => i64::MIN,
                    2 => -((s % DAY as u64) as i64),
                    _ => (s % (8 * DAY as u64)) as i64,
                },
                JobField::Duration => (s % 20_000) as i64,
                _ => 1i64 << (s % 42),
            };
            Test::Int(IntOp::ALL[leaf.op % 6], value)
        }
        domain::filter::FieldType::Str if leaf.regex => Test::Regex {
            negated: leaf.op % 2 == 1,
            pattern: Pattern::new(
                ["^ALICE", "(?i)bob", r"t\du1", "9\\.3$", "^job_", "Z$"][(s % 6) as usize],
            )
            .expect("valid"),
        },
        domain::filter::FieldType::Str => {
            let username = models
                .state
                .user(job.user)
                .map_or("gone".to_owned(), |u| u.spec.username.clone());
            let text = match (field, s % 4) {
                (_, 3) => {
                    ["alice", "ALICE", ".t1", "usr_", "24.6", ""][(s / 4 % 6) as usize].to_owned()
                }
                (JobField::JobId, _) => job.id.to_string(),
                (JobField::Username, 0) => username,
                (JobField::Username, _) => username[..username.len().min(5)].to_owned(),
                (JobField::UserId, _) => job.user.to_string(),
                (JobField::DeviceId, _) => job.device.map_or("dev_x".to_owned(), |d| d.to_string()),
                (JobField::ProtectedItemId, _) => job.item.map_or(String::new(), |d| d.to_string()),
                (JobField::VaultId, _) => job.vault.map_or(String::new(), |d| d.to_string()),
                (JobField::ScheduleId, _) => job.schedule.map_or(String::new(), |d| d.to_string()),
                _ => job.client_version.clone(),
            };
            let case = if leaf.insensitive {
                Case::Insensitive
            } else {
                Case::Sensitive
            };
            Test::Str(StrOp::ALL[leaf.op % 8], case, Needle::new(text))
        }
    };
    Rule::new(field, test).expect("test fits field")
}

fn arb_sort() -> impl Strategy<Value = JobSort> {
    (any::<bool>(), any::<bool>()).prop_map(|(end, asc)| JobSort {
        key: if end {
            SortKey::EndTime
        } else {
            SortKey::StartTime
        },
        direction: if asc { Direction::Asc } else { Direction::Desc },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn planned_search_equals_naive_evaluation(
        seed in any::<u64>(),
        specs in prop::collection::vec(arb_spec(), 1..6),
        now in prop_oneof![10 => (END - 3 * DAY)..(END + 3 * DAY), 1 => any::<i64>()],
        sort in arb_sort(),
        limit in 1usize..40,
    ) {
        let models = history(seed, 150);
        for spec in &specs {
            let filter = build(spec, &models);
            for scope in scopes(&models) {
                let expected = ids(&naive(&models, scope, &filter, now, sort));
                let all = models
                    .search_jobs(scope, &JobQuery { filter: &filter, sort, limit: usize::MAX, cursor: None, now })
                    .expect("valid query");
                prop_assert_eq!(ids(&all.jobs), expected.clone(), "filter: {}", filter);
                prop_assert!(all.next_cursor.is_none());
                let pages = paged(&models, scope, &filter, now, sort, limit);
                prop_assert_eq!(ids(&pages), expected.clone(), "paged by {}: {}", limit, filter);
                prop_assert_eq!(models.count_jobs(scope, &filter, now), expected.len());
            }
        }
    }
}

// --- planner and pagination cases ------------------------------------------------------

fn parse(text: &str) -> Filter<JobField> {
    Filter::parse_text(text).expect("valid filter")
}

fn tenant_of(models: &ReadModels) -> Scope {
    scopes(models)[0]
}

#[test]
fn the_planner_picks_the_narrowest_source() {
    let models = history(3, 600);
    let scope = tenant_of(&models);
    let sorted = |text: &str, sort: &str| {
        let sort = sort.parse().expect("sort");
        let (_, source) = models
            .plan(scope, &parse(text), END, Some(sort))
            .expect("may match");
        match source {
            Source::Start(_) => "start",
            Source::End(_) => "end",
            Source::Postings(_) => "postings",
        }
    };
    let source = |text: &str| sorted(text, "start_time:desc");
    assert_eq!(source("status = 7002"), "postings");
    // An end bound also bounds the start (by the tenant's longest job), so the start index,
    // already in order, serves it; sorted by end time the end index does.
    assert_eq!(source("time_since_end <= 3600"), "start");
    assert_eq!(sorted("time_since_end <= 3600", "end_time:asc"), "end");
    assert_eq!(source("time_since_start <= 3600"), "start");
    assert_eq!(source(r#"username ~* "alice""#), "postings");
    assert_eq!(
        source("not (status != 7002 or running is true)"),
        "postings"
    );
    // Status sets look through `or`: both branches need a 7xxx status.
    assert_eq!(
        source(
            "(status >= 7000 and classification = 4001) \
             or not (status = 5000 or upload_bytes < 1048576 or running is true)"
        ),
        "postings"
    );
    // A negated bound on a value a running job lacks bounds nothing.
    assert_eq!(source("not (time_since_end > 3600)"), "start");
    assert!(models
        .plan(scope, &parse("status = 1234"), END, None)
        .is_none());
    assert!(models
        .plan(scope, &parse(r#"user_id = "nope""#), END, None)
        .is_none());
    assert!(models.plan(scope, &parse("any()"), END, None).is_none());
}

#[test]
fn pages_stay_stable_while_new_jobs_arrive() {
    let mut models = history(5, 300);
    let scope = tenant_of(&models);
    let Scope::Tenant(tenant_id) = scope else {
        unreachable!("a tenant scope")
    };
    let tenant = TenantRef::Tenant(tenant_id);
    let filter = parse("start_time >= 0");
    let sort = JobSort::default();
    let before = naive(&models, scope, &filter, END, sort);
    let before: Vec<JobId> = ids(&before);
    let query = JobQuery {
        filter: &filter,
        sort,
        limit: 25,
        cursor: None,
        now: END,
    };
    let first = models.search_jobs(scope, &query).expect("valid");
    let mut seen = ids(&first.jobs);
    let mut cursor = first.next_cursor;
    let user = models
        .state
        .jobs()
        .find(|j| j.tenant == tenant)
        .expect("a job")
        .user;
    let device = models.state.user_devices(user).next().expect("a device").id;
    let mut n = 0u64;
    while let Some(c) = cursor {
        // Newer jobs start and finish between pages.
        n += 1;
        for event in [
            Event::JobStarted(JobStarted {
                job_id: JobId::new(u64::try_from(END).unwrap() * 1000, u128::from(n)),
                tenant,
                user_id: user,
                device_id: device,
                item_id: None,
                vault_id: None,
                schedule_id: None,
                classification: Classification::Backup,
                started_at: END + n as i64,
                client_version: "1".into(),
            }),
            Event::JobCompleted(JobCompleted {
                job_id: JobId::new(u64::try_from(END).unwrap() * 1000, u128::from(n)),
                tenant,
                user_id: user,
                status: JobStatus::Error,
                ended_at: END + 10 + n as i64,
                totals: JobTotals::default(),
            }),
        ] {
            models.apply_event(&event);
        }
        let page = models
            .search_jobs(
                scope,
                &JobQuery {
                    cursor: Some(&c),
                    ..query
                },
            )
            .expect("valid");
        seen.extend(ids(&page.jobs));
        cursor = page.next_cursor;
    }
    assert_eq!(
        seen, before,
        "every old job once, in order, none of the new"
    );
}

#[test]
fn cursors_are_opaque_and_checked() {
    let models = history(1, 50);
    let scope = tenant_of(&models);
    let filter = parse("all()");
    let sort = "end_time:asc".parse::<JobSort>().expect("sort");
    let page = models
        .search_jobs(
            scope,
            &JobQuery {
                filter: &filter,
                sort,
                limit: 2,
                cursor: None,
                now: END,
            },
        )
        .expect("valid");
    let cursor = page.next_cursor.expect("more pages");
    let text = cursor.encode();
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(Cursor::decode(&text), Ok(cursor));
    assert_eq!(Cursor::decode("!!"), Err(QueryError::BadCursor));
    assert_eq!(Cursor::decode("Zm9v"), Err(QueryError::BadCursor));
    let other = JobSort::default();
    let err = models
        .search_jobs(
            scope,
            &JobQuery {
                filter: &filter,
                sort: other,
                limit: 2,
                cursor: Some(&cursor),
                now: END,
            },
        )
        .expect_err("sort mismatch");
    assert_eq!(
        err,
        QueryError::CursorSortMismatch {
            cursor: sort,
            query: other
        }
    );
    assert!("start_time:sideways".parse::<JobSort>().is_err());
    assert_eq!(
        "end_time".parse::<JobSort>().map(|s| s.to_string()),
        Ok("end_time:desc".into())
    );
}

#[test]
fn indexes_survive_a_snapshot_and_match_a_rebuild() {
    let models = history(9, 400);
    let bytes = crate::snapshot::encode(ReadModels::SCHEMA, &models).expect("encode");
    let back: ReadModels = crate::snapshot::decode(&bytes, ReadModels::SCHEMA).expect("decode");
    assert_eq!(back, models);
    assert!(models
        .job_indexes
        .tenants
        .values()
        .all(|t| !t.by_status.is_empty()));
}

#[test]
fn a_tenant_never_sees_another_tenants_jobs() {
    let models = history(11, 300);
    let filter = parse("all()");
    for scope in scopes(&models) {
        let page = models
            .search_jobs(
                scope,
                &JobQuery {
                    filter: &filter,
                    sort: JobSort::default(),
                    limit: usize::MAX,
                    cursor: None,
                    now: END,
                },
            )
            .expect("valid");
        assert!(page.jobs.iter().all(|j| scope.admits(j.tenant)));
        let visible = models
            .state
            .jobs()
            .filter(|j| scope.admits(j.tenant))
            .count();
        assert_eq!(page.jobs.len(), visible);
    }
}

#[test]
fn a_job_that_ends_before_it_starts_is_still_found_by_its_end() {
    let mut models = history(13, 100);
    let job = models
        .state
        .jobs()
        .find(|j| j.status == JobStatus::Running && j.device.is_some())
        .expect("a running job")
        .clone();
    let scope = match job.tenant {
        TenantRef::Tenant(id) => Scope::Tenant(id),
        TenantRef::Root => Scope::Root,
    };
    // Device clocks can be wrong: this one reports an end a day before the start.
    let ended_at = job.started_at - DAY;
    models.apply_event(&Event::JobCompleted(JobCompleted {
        job_id: job.id,
        tenant: job.tenant,
        user_id: job.user,
        status: JobStatus::Warning,
        ended_at,
        totals: JobTotals::default(),
    }));
    let filter = parse(&format!("end_time = {ended_at}"));
    let found = paged(&models, scope, &filter, END, JobSort::default(), 10);
    assert_eq!(ids(&found), vec![job.id]);
    assert_eq!(models.count_jobs(scope, &parse("duration < 0"), END), 1);
}

/// Histories with user removals and transfers, abandoned and revived jobs, missed and
/// skipped runs: searches still equal the naive evaluation.
#[test]
fn mixed_histories_search_like_the_naive_evaluation() {
    let filters = [
        "all()",
        "status = 7007 or status = 6002",
        "running is true",
        "not (running is true) and time_since_end <= 7200",
        r#"username ~* "u" and time_since_start < 86400"#,
        r#"username = "nobody""#,
        "not (device_id ^= \"dev_\")",
        "status = 7004 or status = 7006",
        "nor (end_time > 0)",
    ];
    for seed in [1, 0x5eed, 0xdead_beef] {
        let mut models = ReadModels::default();
        let mut world = crate::testkit::World::new(seed);
        for event in world.events(3_000) {
            models.apply_event(&event);
        }
        let now = models
            .state
            .jobs()
            .map(|j| j.started_at)
            .max()
            .expect("jobs");
        for text in filters {
            let filter = parse(text);
            for scope in scopes(&models) {
                for sort in ["start_time:desc", "end_time:asc"] {
                    let sort = sort.parse().expect("sort");
                    let expected = ids(&naive(&models, scope, &filter, now, sort));
                    let got = ids(&paged(&models, scope, &filter, now, sort, 7));
                    assert_eq!(got, expected, "seed {seed}, {text}, {sort}");
                    assert_eq!(models.count_jobs(scope, &filter, now), expected.len());
                }
            }
        }
    }
}

/// The job indexes and reports as filing every job of `models` once, from scratch, gives.
fn filed_from_scratch(models: &ReadModels) -> (JobIndexes, crate::models::reports::Reports) {
    let mut indexes = JobIndexes::default();
    let mut reports = crate::models::reports::Reports::default();
    for job in models.state.jobs() {
        let facts = JobFacts::of(job);
        indexes.refile(None, Some(&facts));
        reports.refile(None, Some(&facts));
    }
    (indexes, reports)
}

/// Jobs are re-filed in place as they finish, are abandoned or revived (only the entries
/// whose key changed move), yet the indexes and reports always equal filing every job from
/// scratch. Durations only ever widen, so a tenant's may be wider than its jobs' today.
fn assert_filed_like_from_scratch(models: &ReadModels, context: &str) {
    let (indexes, reports) = filed_from_scratch(models);
    assert!(models.reports == reports, "reports differ: {context}");
    let mut got: Vec<_> = models.job_indexes.tenants.keys().collect();
    let mut want: Vec<_> = indexes.tenants.keys().collect();
    got.sort_by_key(|t| t.to_string());
    want.sort_by_key(|t| t.to_string());
    assert_eq!(got, want, "tenants: {context}");
    for (tenant, expected) in &indexes.tenants {
        let actual = &models.job_indexes.tenants[tenant];
        let without_durations = |t: &TenantJobs| TenantJobs {
            durations: None,
            ..t.clone()
        };
        assert!(
            without_durations(actual) == without_durations(expected),
            "indexes of {tenant}: {context}"
        );
        if let Some((lo, hi)) = expected.durations {
            let (a_lo, a_hi) = actual.durations.expect("durations");
            assert!(a_lo <= lo && a_hi >= hi, "durations of {tenant}: {context}");
        }
    }
}

#[test]
fn indexes_and_reports_equal_filing_every_job_from_scratch() {
    for seed in [1, 0x5eed, 0xdead_beef] {
        let mut models = ReadModels::default();
        let mut world = crate::testkit::World::new(seed);
        for (i, event) in world.events(3_000).into_iter().enumerate() {
            models.apply_event(&event);
            if i % 250 == 0 {
                assert_filed_like_from_scratch(&models, &format!("seed {seed}, event {i}"));
            }
        }
        assert_filed_like_from_scratch(&models, &format!("seed {seed}, end"));
        let models = history(seed, 600);
        assert_filed_like_from_scratch(&models, &format!("history {seed}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn indexes_and_reports_equal_filing_from_scratch_for_any_history(
        seed in any::<u64>(),
        n in 0usize..1_500,
    ) {
        let mut models = ReadModels::default();
        for event in crate::testkit::World::new(seed).events(n) {
            models.apply_event(&event);
        }
        assert_filed_like_from_scratch(&models, &format!("seed {seed}, {n} events"));
    }
}
