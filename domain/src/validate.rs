//! Field rules, public so the API can check raw input (a password before hashing it, a time
//! zone in a query) with the same rules `decide` applies. Each returns an
//! [`DomainError::Invalid`] naming the field it was given.

use std::str::FromStr;

use crate::error::DomainError;
use std::collections::BTreeSet;

use crate::model::{Frequency, TimeOfDay, TimeWindow, Trigger, Weekday};

/// Random delays are capped at five hours wherever they appear.
pub const MAX_RANDOM_DELAY_SECS: u32 = 18_000;
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_USERNAME_CHARS: usize = 255;
pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_SLUG_CHARS: usize = 63;

type Result = std::result::Result<(), DomainError>;

/// `[a-zA-Z0-9_.@-]`, 1–255 characters. Used for user and admin names.
pub fn validate_username(field: &str, username: &str) -> Result {
    if username.is_empty() || username.len() > MAX_USERNAME_CHARS {
        return Err(DomainError::invalid(field, "must be 1 to 255 characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-');
    if !username.chars().all(allowed) {
        return Err(DomainError::invalid(
            field,
            "may contain only letters, digits and _ . @ -",
        ));
    }
    Ok(())
}

/// At least 8 characters (Unicode scalar values). Call on the raw password before hashing.
pub fn validate_password(raw: &str) -> Result {
    if raw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A stored password hash must be present; the domain never sees the password itself.
pub fn validate_password_hash(hash: &str) -> Result {
    if hash.is_empty() {
        return Err(DomainError::invalid("password", "hash is empty"));
    }
    Ok(())
}

/// `[a-z0-9-]`, 1–63 characters, not starting or ending with `-`: it appears in URLs and
/// host names.
pub fn validate_slug(slug: &str) -> Result {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_SLUG_CHARS
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if !ok {
        return Err(DomainError::invalid(
            "slug",
            "must be 1 to 63 of a-z 0-9 -, not starting or ending with -",
        ));
    }
    Ok(())
}

/// A DNS host name, lower case.
pub fn validate_host(field: &str, host: &str) -> Result {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(DomainError::invalid(
            field,
            "must be a lower-case host name",
        ));
    }
    Ok(())
}

/// A display name: 1–255 characters after trimming, no control characters.
pub fn validate_name(field: &str, name: &str) -> Result {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::invalid(field, "must be 1 to 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A plausible address: `local@domain`, no spaces. Deliverability is the mailer's business.
pub fn validate_email(field: &str, address: &str) -> Result {
    let ok = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control())
                && address.len() <= 254
        }
        None => false,
    };
    if !ok {
        return Err(DomainError::invalid(field, "must be an email address"));
    }
    Ok(())
}

/// An IANA time zone name known to chrono-tz, e.g. `Europe/Berlin` or `UTC`.
pub fn validate_timezone(field: &str, tz: &str) -> Result {
    chrono_tz::Tz::from_str(tz)
        .map(|_| ())
        .map_err(|_| DomainError::invalid(field, "must be an IANA time zone name"))
}

pub fn validate_random_delay(field: &str, secs: Option<u32>) -> Result {
    match secs {
        Some(s) if s > MAX_RANDOM_DELAY_SECS => Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_RANDOM_DELAY_SECS} seconds"),
        )),
        _ => Ok(()),
    }
}

/// A cron expression in the `cron` crate's syntax: 6 or 7 fields, seconds first.
pub fn validate_cron(field: &str, expr: &str) -> Result {
    let fields = expr.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(DomainError::invalid(
            field,
            "must have 6 or 7 fields (sec min hour day month weekday [year])",
        ));
    }
    cron::Schedule::from_str(expr)
        .map(|_| ())
        .map_err(|e| DomainError::invalid(field, e.to_string()))
}

/// Ranges of a trigger's numbers, its cron expression, its weekday set and random delay.
/// `field` is the trigger's path, e.g. `triggers[0]`.
pub fn validate_trigger(field: &str, trigger: &Trigger) -> Result {
    let sub = |name: &str| format!("{field}.{name}");
    let below = |name: &str, value: u32, limit: u32| {
        if value < limit {
            Ok(())
        } else {
            Err(DomainError::invalid(
                sub(name),
                format!("must be below {limit}"),
            ))
        }
    };
    match &trigger.frequency {
        Frequency::Once { at } => {
            if *at < 0 {
                return Err(DomainError::invalid(sub("at"), "must not be before 1970"));
            }
        }
        Frequency::Daily { seconds_past } => below("seconds_past", *seconds_past, 86_400)?,
        Frequency::Hourly { seconds_past } => below("seconds_past", *seconds_past, 3_600)?,
        Frequency::Weekly { seconds_past } => below("seconds_past", *seconds_past, 604_800)?,
        Frequency::Monthly { seconds_past } => below("seconds_past", *seconds_past, 31 * 86_400)?,
        Frequency::Periodic {
            period_secs,
            offset_secs,
        } => {
            if *period_secs == 0 {
                return Err(DomainError::invalid(sub("period_secs"), "must be positive"));
            }
            below("offset_secs", *offset_secs, *period_secs)?;
        }
        Frequency::Yearly {
            month,
            day,
            seconds_past,
        } => {
            // A leap day is allowed; the scheduler decides how to fire in other years.
            let days_in_month = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            if !(1..=12).contains(month) {
                return Err(DomainError::invalid(sub("month"), "must be 1 to 12"));
            }
            if *day == 0 || *day > days_in_month[usize::from(*month) - 1] {
                return Err(DomainError::invalid(
                    sub("day"),
                    "no such day in that month",
                ));
            }
            below("seconds_past", *seconds_past, 86_400)?;
        }
        Frequency::Cron { expr } => validate_cron(&sub("cron"), expr)?,
    }
    if let Some(days) = &trigger.days {
        if days.is_empty() {
            return Err(DomainError::invalid(
                sub("days"),
                "must name at least one day (omit it for every day)",
            ));
        }
    }
    validate_random_delay(&sub("random_delay_secs"), trigger.random_delay_secs)
}

/// Raw trigger timing as the API receives it, before it becomes a [`Frequency`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrequencyDraft {
    /// 8010–8016; `None` together with `cron` means a cron trigger.
    pub code: Option<u16>,
    pub seconds_past: Option<u32>,
    pub period_secs: Option<u32>,
    pub offset_secs: Option<u32>,
    pub month: Option<u8>,
    pub day: Option<u8>,
    pub at: Option<i64>,
    pub cron: Option<String>,
}

/// Turns raw trigger timing into a [`Frequency`], naming the missing or unknown field.
/// Ranges are checked by [`validate_trigger`].
pub fn parse_frequency(
    field: &str,
    draft: FrequencyDraft,
) -> std::result::Result<Frequency, DomainError> {
    let need = |name: &str, value: Option<u32>| {
        value.ok_or_else(|| {
            DomainError::invalid(format!("{field}.{name}"), "is required for this frequency")
        })
    };
    let frequency = match (draft.code, draft.cron) {
        (None, Some(expr)) => Frequency::Cron { expr },
        (None, None) => {
            return Err(DomainError::invalid(
                format!("{field}.frequency"),
                "is required (or give cron)",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(DomainError::invalid(
                format!("{field}.cron"),
                "cannot be combined with a frequency code",
            ))
        }
        (Some(Frequency::ONCE), None) => Frequency::Once {
            at: draft.at.ok_or_else(|| {
                DomainError::invalid(format!("{field}.at"), "is required for this frequency")
            })?,
        },
        (Some(Frequency::DAILY), None) => Frequency::Daily {
            seconds_past: need("seconds_past", draft.seconds_past)?,
        },
        (Some(Frequency::HOURLY), None) => Frequency::Hourly {
            seconds_past: need("seconds_past", draft.seconds_past)?,
        },
        (Some(Frequency::WEEKLY), None) => Frequency::Weekly {
            seconds_past: need("seconds_past", draft.seconds_past)?,
        },
        (Some(Frequency::MONTHLY), None) => Frequency::Monthly {
            seconds_past: need("seconds_past", draft.seconds_past)?,
        },
        (Some(Frequency::PERIODIC), None) => Frequency::Periodic {
            period_secs: need("period_secs", draft.period_secs)?,
            offset_secs: draft.offset_secs.unwrap_or(0),
        },
        (Some(Frequency::YEARLY), None) => Frequency::Yearly {
            month: draft.month.ok_or_else(|| {
                DomainError::invalid(format!("{field}.month"), "is required for this frequency")
            })?,
            day: draft.day.ok_or_else(|| {
                DomainError::invalid(format!("{field}.day"), "is required for this frequency")
            })?,
            seconds_past: draft.seconds_past.unwrap_or(0),
        },
        (Some(code), None) => {
            return Err(DomainError::invalid(
                format!("{field}.frequency"),
                format!("unknown frequency code {code} (8010 to 8016)"),
            ))
        }
    };
    Ok(frequency)
}

/// Parses a `{from, to}` window of `HH:MM` times.
pub fn parse_window(
    field: &str,
    from: &str,
    to: &str,
) -> std::result::Result<TimeWindow, DomainError> {
    let time = |name: &str, s: &str| {
        TimeOfDay::parse(s).ok_or_else(|| {
            DomainError::invalid(format!("{field}.{name}"), "must be HH:MM (00:00 to 23:59)")
        })
    };
    Ok(TimeWindow {
        from: time("from", from)?,
        to: time("to", to)?,
    })
}

/// Parses weekday names (`mon` … `sun`); duplicates collapse.
pub fn parse_days<S: AsRef<str>>(
    field: &str,
    days: &[S],
) -> std::result::Result<BTreeSet<Weekday>, DomainError> {
    days.iter()
        .enumerate()
        .map(|(i, d)| {
            Weekday::parse(d.as_ref()).ok_or_else(|| {
                DomainError::invalid(
                    format!("{field}[{i}]"),
                    "must be one of mon tue wed thu fri sat sun",
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field_of(r: Result) -> String {
        match r {
            Err(DomainError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn usernames() {
        for ok in ["a", "Alice.B@x-y_z", &"x".repeat(255)] {
            assert_eq!(validate_username("username", ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "ä", "a/b", "a+b", &"x".repeat(256)] {
            assert_eq!(field_of(validate_username("username", bad)), "username");
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(validate_password("12345678"), Ok(()));
        assert_eq!(validate_password("ääääääää"), Ok(()));
        assert_eq!(field_of(validate_password("1234567")), "password");
        assert_eq!(field_of(validate_password_hash("")), "password");
    }

    #[test]
    fn slugs_and_hosts() {
        assert_eq!(validate_slug("acme-2"), Ok(()));
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "ac me",
            "ac_me",
            &"a".repeat(64),
        ] {
            assert_eq!(field_of(validate_slug(bad)), "slug", "{bad}");
        }
        assert_eq!(validate_host("hosts[0]", "backup.acme.test"), Ok(()));
        for bad in ["", "Backup.acme", "a..b", "-a.b", "a b"] {
            assert_eq!(field_of(validate_host("hosts[0]", bad)), "hosts[0]");
        }
    }

    #[test]
    fn names_emails_timezones_delays() {
        assert_eq!(field_of(validate_name("name", "  ")), "name");
        assert_eq!(field_of(validate_name("name", "a\nb")), "name");
        assert_eq!(validate_email("emails[0]", "a@b.test"), Ok(()));
        for bad in ["", "a", "@b.c", "a@", "a@b", "a b@c.d", "a@b@c.d"] {
            assert_eq!(field_of(validate_email("emails[0]", bad)), "emails[0]");
        }
        assert_eq!(validate_timezone("timezone", "Europe/Berlin"), Ok(()));
        assert_eq!(validate_timezone("timezone", "UTC"), Ok(()));
        assert_eq!(
            field_of(validate_timezone("timezone", "Mars/Olympus")),
            "timezone"
        );
        assert_eq!(validate_random_delay("d", Some(18_000)), Ok(()));
        assert_eq!(validate_random_delay("d", None), Ok(()));
        assert_eq!(field_of(validate_random_delay("d", Some(18_001))), "d");
    }

    #[test]
    fn cron_expressions() {
        assert_eq!(validate_cron("c", "0 30 2 * * *"), Ok(()));
        assert_eq!(validate_cron("c", "0 0 9-17 * * Mon-Fri 2030"), Ok(()));
        for bad in [
            "",
            "30 2 * * *",
            "0 61 2 * * *",
            "nonsense a b c d e",
            "0 0 0 0 0 0 0 0",
        ] {
            assert_eq!(field_of(validate_cron("c", bad)), "c", "{bad}");
        }
    }

    #[test]
    fn frequencies_windows_days() {
        let draft = |code: Option<u16>| FrequencyDraft {
            code,
            ..FrequencyDraft::default()
        };
        assert_eq!(
            parse_frequency(
                "t",
                FrequencyDraft {
                    seconds_past: Some(60),
                    ..draft(Some(8012))
                }
            ),
            Ok(Frequency::Hourly { seconds_past: 60 })
        );
        assert_eq!(
            parse_frequency(
                "t",
                FrequencyDraft {
                    cron: Some("0 * * * * *".into()),
                    ..draft(None)
                }
            ),
            Ok(Frequency::Cron {
                expr: "0 * * * * *".into()
            })
        );
        assert_eq!(
            field_of(parse_frequency("t", draft(Some(8011))).map(|_| ())),
            "t.seconds_past"
        );
        assert_eq!(
            field_of(parse_frequency("t", draft(Some(8015))).map(|_| ())),
            "t.period_secs"
        );
        assert_eq!(
            field_of(parse_frequency("t", draft(Some(8016))).map(|_| ())),
            "t.month"
        );
        assert_eq!(
            field_of(parse_frequency("t", draft(Some(8010))).map(|_| ())),
            "t.at"
        );
        assert_eq!(
            field_of(parse_frequency("t", draft(Some(8017))).map(|_| ())),
            "t.frequency"
        );
        assert_eq!(
            field_of(parse_frequency("t", draft(None)).map(|_| ())),
            "t.frequency"
        );
        let both = FrequencyDraft {
            cron: Some("x".into()),
            ..draft(Some(8011))
        };
        assert_eq!(field_of(parse_frequency("t", both).map(|_| ())), "t.cron");

        let w = parse_window("w", "17:00", "09:00").unwrap();
        assert!(w.contains(TimeOfDay::new(23, 0).unwrap()));
        assert!(!w.contains(TimeOfDay::new(9, 0).unwrap()));
        for (from, to, bad) in [
            ("24:00", "09:00", "w.from"),
            ("9:00", "10:00", "w.from"),
            ("09:00", "10:60", "w.to"),
            ("09:00", "1000", "w.to"),
        ] {
            assert_eq!(field_of(parse_window("w", from, to).map(|_| ())), bad);
        }
        assert_eq!(parse_days("d", &["mon", "fri", "mon"]).unwrap().len(), 2);
        assert_eq!(
            field_of(parse_days("d", &["mon", "Monday"]).map(|_| ())),
            "d[1]"
        );
    }

    proptest! {
        #[test]
        fn window_parse_print_roundtrip(h in 0u8..24, m in 0u8..60) {
            let t = TimeOfDay::new(h, m).unwrap();
            prop_assert_eq!(TimeOfDay::parse(&t.to_string()), Some(t));
        }

        #[test]
        fn username_accepts_exactly_its_charset(s in "[a-zA-Z0-9_.@-]{1,255}") {
            prop_assert_eq!(validate_username("u", &s), Ok(()));
        }

        #[test]
        fn validators_never_panic(s in "\\PC*") {
            let _ = validate_username("u", &s);
            let _ = validate_slug(&s);
            let _ = validate_email("e", &s);
            let _ = validate_timezone("t", &s);
            let _ = validate_cron("c", &s);
        }
    }
}
