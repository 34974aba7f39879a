use std::borrow::Cow;

use super::{Case, DeviceField, Field, Filter, JobField, Needle, StrOp, Test};
use crate::model::{Device, Job};

/// A field's value on one subject. `Missing` makes every rule on it false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Missing,
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
}

/// Something a filter over fields `F` can be evaluated against.
pub trait Record<F: Field> {
    /// The value of `field` at `now` (Unix seconds).
    fn value(&self, field: F, now: i64) -> Value<'_>;
}

pub(super) fn matches<F: Field, R: Record<F> + ?Sized>(
    filter: &Filter<F>,
    subject: &R,
    now: i64,
) -> bool {
    match filter {
        Filter::And(c) => c.iter().all(|f| matches(f, subject, now)),
        Filter::Or(c) => c.iter().any(|f| matches(f, subject, now)),
        Filter::NotAnd(c) => !c.iter().all(|f| matches(f, subject, now)),
        Filter::NotOr(c) => !c.iter().any(|f| matches(f, subject, now)),
        Filter::Rule(rule) => test(rule.test(), &subject.value(rule.field(), now)),
    }
}

/// Whether `value` passes `test`; false for a missing value or one of another type.
pub(super) fn test(test: &Test, value: &Value<'_>) -> bool {
    match (test, value) {
        (Test::Bool(op, expected), Value::Bool(actual)) => match op {
            super::BoolOp::Is => actual == expected,
            super::BoolOp::Nis => actual != expected,
        },
        (Test::Int(op, right), Value::Int(left)) => op.holds(*left, *right),
        (Test::Str(op, case, needle), Value::Str(hay)) => str_test(*op, *case, needle, hay),
        (Test::Regex { negated, pattern }, Value::Str(hay)) => pattern.is_match(hay) != *negated,
        _ => false,
    }
}

fn str_test(op: StrOp, case: Case, needle: &Needle, hay: &str) -> bool {
    let (positive, negated) = op.positive();
    let hit = match case {
        Case::Sensitive => str_positive(positive, hay, needle.as_str()),
        // Lower-casing ASCII in place of `to_lowercase` avoids an allocation per subject;
        // for ASCII text the two agree.
        Case::Insensitive if hay.is_ascii() => ascii_ci(positive, hay, needle.folded()),
        Case::Insensitive => str_positive(positive, &hay.to_lowercase(), needle.folded()),
    };
    hit != negated
}

fn str_positive(op: StrOp, hay: &str, needle: &str) -> bool {
    match op {
        StrOp::Eq => hay == needle,
        StrOp::Contains => hay.contains(needle),
        StrOp::StartsWith => hay.starts_with(needle),
        StrOp::EndsWith => hay.ends_with(needle),
        // `positive` never yields a negated operator.
        StrOp::Neq | StrOp::NContains | StrOp::NStartsWith | StrOp::NEndsWith => false,
    }
}

/// `str_positive` on `hay.to_lowercase()` for an ASCII `hay` and an already folded needle.
fn ascii_ci(op: StrOp, hay: &str, folded: &str) -> bool {
    let (hay, needle) = (hay.as_bytes(), folded.as_bytes());
    match op {
        StrOp::Eq => hay.eq_ignore_ascii_case(needle),
        StrOp::Contains => {
            needle.is_empty()
                || hay
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle))
        }
        StrOp::StartsWith => {
            hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
        }
        StrOp::EndsWith => {
            hay.len() >= needle.len()
                && hay[hay.len() - needle.len()..].eq_ignore_ascii_case(needle)
        }
        StrOp::Neq | StrOp::NContains | StrOp::NStartsWith | StrOp::NEndsWith => false,
    }
}

/// A job as filters see it: the job plus the name of its user, which the job itself does not
/// carry (`None` once the user is gone).
#[derive(Clone, Copy, Debug)]
pub struct JobView<'a> {
    pub job: &'a Job,
    pub username: Option<&'a str>,
}

fn count(n: u64) -> Value<'static> {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn id<T: ToString>(id: Option<T>) -> Value<'static> {
    id.map_or(Value::Missing, |id| Value::Str(Cow::Owned(id.to_string())))
}

impl Record<JobField> for JobView<'_> {
    fn value(&self, field: JobField, now: i64) -> Value<'_> {
        let job = self.job;
        let running = job.status.is_running();
        // A running job's counters are its progress so far: bytes done count as its total
        // bytes, items done as its files; the rest are 0 until it ends.
        let counter =
            |finished: u64, in_progress: u64| count(if running { in_progress } else { finished });
        match field {
            JobField::JobId => id(Some(job.id)),
            JobField::Username => self
                .username
                .map_or(Value::Missing, |u| Value::Str(Cow::Borrowed(u))),
            JobField::UserId => id(Some(job.user)),
            JobField::DeviceId => id(job.device),
            JobField::ProtectedItemId => id(job.item),
            JobField::VaultId => id(job.vault),
            JobField::ScheduleId => id(job.schedule),
            JobField::ClientVersion => Value::Str(Cow::Borrowed(&job.client_version)),
            JobField::Status => Value::Int(job.status.code().into()),
            JobField::Classification => Value::Int(job.classification.code().into()),
            JobField::UploadBytes => counter(job.totals.upload_bytes, 0),
            JobField::DownloadBytes => counter(job.totals.download_bytes, 0),
            JobField::TotalBytes => counter(job.totals.total_bytes, job.progress.bytes_done),
            JobField::TotalFiles => counter(job.totals.total_files, job.progress.items_done),
            JobField::TotalDirs => counter(job.totals.total_dirs, 0),
            JobField::StartTime => Value::Int(job.started_at),
            JobField::EndTime => end(job).map_or(Value::Missing, Value::Int),
            JobField::Duration => end(job).map_or(Value::Missing, |e| {
                Value::Int(e.saturating_sub(job.started_at))
            }),
            JobField::TimeSinceStart => Value::Int(now.saturating_sub(job.started_at)),
            JobField::TimeSinceEnd => {
                end(job).map_or(Value::Missing, |e| Value::Int(now.saturating_sub(e)))
            }
            JobField::Running => Value::Bool(running),
        }
    }
}

/// A job's end time as filters see it: none while it runs.
pub(super) fn end(job: &Job) -> Option<i64> {
    job.ended_at.filter(|_| !job.status.is_running())
}

/// A device as filters see it, with its user's name.
#[derive(Clone, Copy, Debug)]
pub struct DeviceView<'a> {
    pub device: &'a Device,
    pub username: Option<&'a str>,
}

impl Record<DeviceField> for DeviceView<'_> {
    fn value(&self, field: DeviceField, _now: i64) -> Value<'_> {
        let d = self.device;
        match field {
            DeviceField::DeviceId => id(Some(d.id)),
            DeviceField::Username => self
                .username
                .map_or(Value::Missing, |u| Value::Str(Cow::Borrowed(u))),
            DeviceField::UserId => id(Some(d.user)),
            DeviceField::FriendlyName => Value::Str(Cow::Borrowed(&d.spec.friendly_name)),
            DeviceField::Platform => Value::Str(Cow::Borrowed(&d.spec.platform)),
            DeviceField::Arch => Value::Str(Cow::Borrowed(&d.spec.arch)),
            DeviceField::OsVersion => Value::Str(Cow::Borrowed(&d.spec.os_version)),
            DeviceField::ClientVersion => Value::Str(Cow::Borrowed(&d.spec.client_version)),
            DeviceField::Timezone => Value::Str(Cow::Borrowed(&d.spec.timezone)),
            DeviceField::Online => Value::Bool(d.online()),
            DeviceField::RegisteredAt => Value::Int(d.registered_at),
        }
    }
}
