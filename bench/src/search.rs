//! `bench search`: job search on the read models next to SQLite holding the same rows.
//!
//! A deterministic history (`fixtures::history`, by default 1,000,000 jobs over 100 tenants
//! and 30 days) is applied to `ReadModels`; the resident memory it added is reported per job.
//! The same jobs go into an in-memory SQLite database (`rusqlite`, bundled) with indexes on
//! (tenant, start_time), (tenant, status) and (tenant, username), the user's name copied
//! into each row so SQLite needs no join. Each query runs as a search of one tenant, newest
//! first, one page of up to 1,000 rows, alternately on both engines, and both must return
//! the same job ids.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use domain::filter::{Filter, JobField, JobView, Record, Value};
use domain::TenantId;
use fixtures::history::{HistoryConfig, JobHistory};
use projections::query::{JobQuery, JobSort};
use projections::{ReadModels, Scope};
use rusqlite::{params, Connection};
use serde_json::json;

/// Rows per page, the API's maximum.
const PAGE: usize = 1000;

struct Query {
    name: &'static str,
    text: &'static str,
    /// The same condition in SQL; `?1` is the tenant, `?2` is `now`.
    sql: &'static str,
}

const QUERIES: [Query; 3] = [
    Query {
        name: "a",
        text: "status = 7002 and time_since_end <= 86400",
        sql: "status = 7002 AND end_time >= ?2 - 86400",
    },
    Query {
        name: "b",
        text: r#"username ~* "ALLOR""#,
        // SQLite's LIKE ignores ASCII case, as `~*` does.
        sql: "username LIKE '%allor%'",
    },
    Query {
        name: "c",
        text: "(status >= 7000 and classification = 4001) \
               or not (status = 5000 or upload_bytes < 1048576 or running is true)",
        sql: "(status >= 7000 AND classification = 4001) \
              OR NOT (status = 5000 OR upload_bytes < 1048576 OR (status BETWEEN 6000 AND 6999))",
    },
];

pub struct SearchResult {
    query: &'static str,
    jobs: usize,
    rows: usize,
    ours: Percentiles,
    sqlite: Percentiles,
    sqlite_rows: usize,
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
    }
}

impl SearchResult {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "name": "search",
            "query": self.query,
            "jobs": self.jobs,
            "rows": self.rows,
            "p50_us": self.ours.p50.as_micros(),
            "p99_us": self.ours.p99.as_micros(),
            "sqlite_p50_us": self.sqlite.p50.as_micros(),
            "sqlite_p99_us": self.sqlite.p99.as_micros(),
            "sqlite_rows": self.sqlite_rows,
        })
    }
}

pub struct Report {
    pub memory: serde_json::Value,
    pub searches: Vec<SearchResult>,
}

pub fn run(jobs: usize, tenants: usize, runs: usize) -> anyhow::Result<Report> {
    let config = HistoryConfig {
        jobs,
        tenants,
        ..HistoryConfig::default()
    };
    let before = crate::process::resident_bytes()?;
    let mut models = ReadModels::default();
    let started = Instant::now();
    for event in JobHistory::new(config) {
        models.apply_event(&event);
    }
    let after = crate::process::resident_bytes()?;
    eprintln!(
        "search: {jobs} jobs applied in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let bytes_per_job = after.saturating_sub(before) as f64 / jobs.max(1) as f64;
    let memory = json!({
        "name": "search_memory",
        "jobs": jobs,
        "bytes_per_job": bytes_per_job.round(),
        "bytes_per_million_jobs": (bytes_per_job * 1e6).round(),
    });

    let started = Instant::now();
    let db = sqlite_copy(&models, config.end)?;
    eprintln!(
        "search: SQLite filled in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The tenant created first, as the generator names it.
    let tenant: TenantId = models
        .tenant_by_slug(Scope::Root, "tenant-0")
        .context("tenant-0 exists")?
        .id;
    let scope = Scope::Tenant(tenant);
    let now = config.end;
    let mut searches = Vec::new();
    for query in &QUERIES {
        let filter = Filter::<JobField>::parse_text(query.text)
            .with_context(|| format!("query {}", query.name))?;
        let sql = format!(
            "SELECT job_id FROM jobs WHERE tenant = ?1 AND ({}) \
             ORDER BY start_time DESC, job_id DESC LIMIT {PAGE}",
            query.sql
        );
        let mut statement = db.prepare(&sql).context("preparing the SQL")?;
        let tenant_text = tenant.to_string();
        let uses_now = query.sql.contains("?2");
        let search = JobQuery {
            filter: &filter,
            sort: JobSort::default(),
            limit: PAGE,
            cursor: None,
            now,
        };
        let mut ours = Vec::with_capacity(runs);
        let mut theirs = Vec::with_capacity(runs);
        let mut rows = 0;
        let mut sqlite_rows = 0;
        for run in 0..runs {
            let started = Instant::now();
            let page = models.search_jobs(scope, &search)?;
            ours.push(started.elapsed());

            let started = Instant::now();
            let ids: Vec<String> = if uses_now {
                statement.query_map(params![tenant_text, now], first_column)?
            } else {
                statement.query_map(params![tenant_text], first_column)?
            }
            .collect::<Result<_, _>>()?;
            theirs.push(started.elapsed());

            if run == 0 {
                let our_ids: Vec<String> = page.jobs.iter().map(|j| j.id.to_string()).collect();
                ensure!(
                    our_ids == ids,
                    "query {}: the projection and SQLite disagree ({} vs {} rows)",
                    query.name,
                    our_ids.len(),
                    ids.len()
                );
                rows = page.jobs.len();
                sqlite_rows = ids.len();
            }
            std::hint::black_box(page);
        }
        searches.push(SearchResult {
            query: query.name,
            jobs,
            rows,
            ours: percentiles(ours),
            sqlite: percentiles(theirs),
            sqlite_rows,
        });
    }
    Ok(Report { memory, searches })
}

fn first_column(row: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
    row.get(0)
}

/// Every job as a SQLite row, with the values filters see (a running job's counters are
/// its progress, and it has no end time).
fn sqlite_copy(models: &ReadModels, now: i64) -> anyhow::Result<Connection> {
    let mut db = Connection::open_in_memory().context("opening SQLite")?;
    db.execute_batch(
        "CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, username TEXT, user_id TEXT NOT NULL,
            device_id TEXT, status INTEGER NOT NULL, classification INTEGER NOT NULL,
            start_time INTEGER NOT NULL, end_time INTEGER, upload_bytes INTEGER NOT NULL,
            download_bytes INTEGER NOT NULL, total_bytes INTEGER NOT NULL
        );",
    )?;
    let tx = db.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO jobs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        let mut after = None;
        loop {
            let page = models.jobs(Scope::Root, after.as_ref(), 10_000);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for job in page {
                let username = models
                    .user(Scope::Root, job.user)
                    .map(|u| u.spec.username.as_str());
                let view = JobView { job, username };
                let int = |field| match view.value(field, now) {
                    Value::Int(n) => Some(n),
                    _ => None,
                };
                insert.execute(params![
                    job.id.to_string(),
                    job.tenant.to_string(),
                    username,
                    job.user.to_string(),
                    job.device.map(|d| d.to_string()),
                    int(JobField::Status),
                    int(JobField::Classification),
                    int(JobField::StartTime),
                    int(JobField::EndTime),
                    int(JobField::UploadBytes),
                    int(JobField::DownloadBytes),
                    int(JobField::TotalBytes),
                ])?;
            }
        }
    }
    tx.commit()?;
    db.execute_batch(
        "CREATE INDEX jobs_tenant_start ON jobs (tenant, start_time);
         CREATE INDEX jobs_tenant_status ON jobs (tenant, status);
         CREATE INDEX jobs_tenant_username ON jobs (tenant, username);
         ANALYZE;",
    )?;
    Ok(db)
}
