//! Event payload encoding: bincode 2.0.1 (serde, standard config) of the event's own struct.
//!
//! The type code and schema version travel next to the payload (in the log's envelope), not
//! inside it. Every type is at [`SCHEMA_VERSION`] today. When an event's shape changes, its
//! old struct is frozen under a versioned name, the current version number is raised for that
//! code, and [`decode`] routes the old version to the frozen struct and upcasts it, so records
//! written years ago still decode. The golden-byte tests below pin today's bytes.
//!
//! Versions:
//! 1. Ids as their text (`usr_01H…`, 31 bytes with the length).
//! 2. Ids as their ULID's 16 bytes (17 with the length), the root tenant as no bytes: a
//!    replay parsed some ten ids' text per event. Same structs: the id decoders read both
//!    spellings (see `ids`), so a version-1 payload decodes exactly as before.

use bincode::config::{self, Configuration};
use thiserror::Error;

use crate::events::Event;

/// The schema version every event type is written with today.
pub const SCHEMA_VERSION: u16 = 2;

/// The oldest schema version [`decode`] reads.
const OLDEST_VERSION: u16 = 1;

/// An encoded event, ready for the log's envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub type_code: u16,
    pub schema_version: u16,
    pub payload: Vec<u8>,
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("unknown event type code {type_code}")]
    UnknownType { type_code: u16 },
    #[error("event type {type_code} has no schema version {schema_version}")]
    UnknownSchemaVersion { type_code: u16, schema_version: u16 },
    #[error("malformed payload for event type {type_code}: {source}")]
    Malformed {
        type_code: u16,
        #[source]
        source: bincode::error::DecodeError,
    },
    #[error("{extra} trailing bytes after the payload of event type {type_code}")]
    TrailingBytes { type_code: u16, extra: usize },
}

fn bincode_config() -> Configuration {
    config::standard()
}

/// Encodes an event. Cannot fail for the types in this crate (no maps with non-string keys, no
/// untagged data), so a failure is a programming error and panics.
pub fn encode(event: &Event) -> Encoded {
    let payload = event
        .encode_payload(bincode_config())
        .expect("domain events always encode with bincode");
    Encoded {
        type_code: event.type_code(),
        schema_version: SCHEMA_VERSION,
        payload,
    }
}

/// Decodes a payload written with `schema_version` of `type_code`.
pub fn decode(type_code: u16, schema_version: u16, payload: &[u8]) -> Result<Event, DecodeError> {
    if Event::name_of(type_code).is_none() {
        return Err(DecodeError::UnknownType { type_code });
    }
    if !(OLDEST_VERSION..=SCHEMA_VERSION).contains(&schema_version) {
        return Err(DecodeError::UnknownSchemaVersion {
            type_code,
            schema_version,
        });
    }
    let (event, used) = Event::decode_payload(type_code, payload, bincode_config())
        .ok_or(DecodeError::UnknownType { type_code })?
        .map_err(|source| DecodeError::Malformed { type_code, source })?;
    if used != payload.len() {
        return Err(DecodeError::TrailingBytes {
            type_code,
            extra: payload.len() - used,
        });
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EVENT_TYPES, *};
    use crate::ids::*;
    use crate::model::*;
    use crate::testing::samples::one_of_each;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn roundtrip(event: &Event) -> Event {
        let encoded = encode(event);
        decode(encoded.type_code, encoded.schema_version, &encoded.payload).unwrap()
    }

    #[test]
    fn every_event_type_roundtrips_and_has_a_unique_code() {
        let samples = one_of_each();
        assert_eq!(samples.len(), EVENT_TYPES.len());
        let codes: BTreeSet<u16> = samples.iter().map(Event::type_code).collect();
        assert_eq!(codes.len(), samples.len(), "duplicate type code");
        let listed: BTreeSet<u16> = EVENT_TYPES.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, listed);
        for event in &samples {
            assert_eq!(&roundtrip(event), event);
            assert_eq!(Event::name_of(event.type_code()), Some(event.type_name()));
            let own = (4000..4800).contains(&event.type_code());
            let halley = (4900..5000).contains(&event.type_code());
            assert!(
                own || halley,
                "{} outside the code blocks",
                event.type_name()
            );
        }
    }

    fn tenant_created() -> Event {
        Event::TenantCreated(TenantCreated {
            tenant_id: TenantId::new(1_700_000_000_000, 1),
            spec: TenantSpec {
                name: "Acme".into(),
                slug: "acme".into(),
                hosts: vec!["backup.acme.test".into()],
                suspended: false,
            },
        })
    }

    fn job_completed() -> Event {
        Event::JobCompleted(JobCompleted {
            job_id: JobId::new(1_700_000_000_000, 2),
            tenant: TenantRef::Root,
            user_id: UserId::new(1_700_000_000_000, 3),
            status: JobStatus::Warning,
            ended_at: 1_700_000_300,
            totals: JobTotals {
                total_bytes: 1 << 40,
                upload_bytes: 300,
                download_bytes: 0,
                total_files: 12,
                total_dirs: 3,
            },
        })
    }

    fn schedule_created() -> Event {
        Event::ScheduleCreated(ScheduleCreated {
            schedule_id: ScheduleId::new(1_700_000_000_000, 4),
            tenant: TenantRef::Tenant(TenantId::new(1_700_000_000_000, 1)),
            user_id: UserId::new(1_700_000_000_000, 3),
            spec: ScheduleSpec {
                name: "nightly".into(),
                item: ItemId::new(1_700_000_000_000, 5),
                vault: VaultId::new(1_700_000_000_000, 6),
                skip_if_running: true,
                triggers: vec![Trigger {
                    frequency: Frequency::Hourly { seconds_past: 60 },
                    window: Some(TimeWindow {
                        from: TimeOfDay::new(9, 0).unwrap(),
                        to: TimeOfDay::new(17, 0).unwrap(),
                    }),
                    days: Some([Weekday::Mon, Weekday::Fri].into_iter().collect()),
                    random_delay_secs: Some(300),
                }],
            },
            at: 1_700_000_000,
        })
    }

    /// Pins the stored bytes: if one of these changes, old logs no longer decode. Bump the
    /// schema version and add a frozen type instead of editing these strings.
    #[test]
    fn golden_bytes() {
        let cases = [
            (tenant_created(), 4500, "10018bcfe56800000000000000000000010441636d650461636d6501106261636b75702e61636d652e7465737400"),
            (job_completed(), 4201, "10018bcfe56800000000000000000000020010018bcfe5680000000000000000000003fb591bfc58e4a7cafd0000000000010000fb2c01000c03"),
            (schedule_created(), 4930, "10018bcfe568000000000000000000000410018bcfe568000000000000000000000110018bcfe5680000000000000000000003076e696768746c7910018bcfe568000000000000000000000510018bcfe56800000000000000000000060101023c01fb1c02fbfc030102000401fb2c01fc00e2a7ca"),
        ];
        for (event, code, golden) in cases {
            let encoded = encode(&event);
            assert_eq!(encoded.type_code, code);
            assert_eq!(encoded.schema_version, 2);
            assert_eq!(hex(&encoded.payload), golden, "{}", event.type_name());
            assert_eq!(decode(code, 2, &encoded.payload).unwrap(), event);
        }
    }

    /// Version 1's bytes, as the first logs hold them: ids as text.
    #[test]
    fn version_1_payloads_still_decode() {
        let cases = [
            (tenant_created(), 4500, "1e74656e5f30314846375941543030303030303030303030303030303030310441636d650461636d6501106261636b75702e61636d652e7465737400"),
            (job_completed(), 4201, "1e6a6f625f303148463759415430303030303030303030303030303030303204726f6f741e7573725f3031484637594154303030303030303030303030303030303033fb591bfc58e4a7cafd0000000000010000fb2c01000c03"),
            (schedule_created(), 4930, "1e7363685f30314846375941543030303030303030303030303030303030341e74656e5f30314846375941543030303030303030303030303030303030311e7573725f3031484637594154303030303030303030303030303030303033076e696768746c791e69746d5f30314846375941543030303030303030303030303030303030351e766c745f30314846375941543030303030303030303030303030303030360101023c01fb1c02fbfc030102000401fb2c01fc00e2a7ca"),
        ];
        for (event, code, golden) in cases {
            let bytes: Vec<u8> = (0..golden.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&golden[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(
                decode(code, 1, &bytes).unwrap(),
                event,
                "{}",
                event.type_name()
            );
        }
    }

    #[test]
    fn rejects_unknown_code_version_and_bad_bytes() {
        let encoded = encode(&tenant_created());
        assert!(matches!(
            decode(4999, 1, &encoded.payload),
            Err(DecodeError::UnknownType { type_code: 4999 })
        ));
        for version in [0, SCHEMA_VERSION + 1] {
            assert!(matches!(
                decode(4500, version, &encoded.payload),
                Err(DecodeError::UnknownSchemaVersion {
                    type_code: 4500,
                    schema_version,
                }) if schema_version == version
            ));
        }
        assert!(matches!(
            decode(4500, 2, &encoded.payload[..encoded.payload.len() - 1]),
            Err(DecodeError::Malformed {
                type_code: 4500,
                ..
            })
        ));
        let mut longer = encoded.payload.clone();
        longer.push(0);
        assert!(matches!(
            decode(4500, 2, &longer),
            Err(DecodeError::TrailingBytes {
                type_code: 4500,
                extra: 1
            })
        ));
        // A payload of one type read as another is rejected, not misread.
        assert!(decode(4201, 2, &encoded.payload).is_err());
    }

    fn any_tenant() -> impl Strategy<Value = TenantRef> {
        prop_oneof![
            Just(TenantRef::Root),
            (any::<u32>(), any::<u128>())
                .prop_map(|(ms, r)| TenantRef::Tenant(TenantId::new(u64::from(ms), r))),
        ]
    }

    fn any_trigger() -> impl Strategy<Value = Trigger> {
        let frequency = prop_oneof![
            any::<i64>().prop_map(|at| Frequency::Once { at }),
            any::<u32>().prop_map(|s| Frequency::Daily { seconds_past: s }),
            (any::<u32>(), any::<u32>()).prop_map(|(p, o)| Frequency::Periodic {
                period_secs: p,
                offset_secs: o
            }),
            (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(m, d, s)| Frequency::Yearly {
                month: m,
                day: d,
                seconds_past: s
            }),
            "\\PC{0,40}".prop_map(|expr| Frequency::Cron { expr }),
        ];
        let time = (0u8..24, 0u8..60).prop_map(|(h, m)| TimeOfDay::new(h, m).unwrap());
        (
            frequency,
            proptest::option::of((time.clone(), time)),
            proptest::option::of(proptest::collection::btree_set(0usize..7, 0..7)),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(|(frequency, window, days, random_delay_secs)| Trigger {
                frequency,
                window: window.map(|(from, to)| TimeWindow { from, to }),
                days: days.map(|d| d.into_iter().map(|i| Weekday::ALL[i]).collect()),
                random_delay_secs,
            })
    }

    fn any_event() -> impl Strategy<Value = Event> {
        let user = (any::<u32>(), any::<u128>()).prop_map(|(ms, r)| UserId::new(u64::from(ms), r));
        prop_oneof![
            (
                user.clone(),
                any_tenant(),
                "\\PC{0,30}",
                proptest::collection::vec("\\PC*", 0..3),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u64>())
            )
                .prop_map(
                    |(user_id, tenant, username, emails, max_devices, quota_bytes)| {
                        Event::UserCreated(UserCreated {
                            user_id,
                            tenant,
                            spec: UserSpec {
                                username: username.clone(),
                                account_name: username,
                                emails,
                                timezone: "Europe/Berlin".into(),
                                language: "de".into(),
                                policy: None,
                                suspended: max_devices.is_none(),
                                max_devices,
                                quota_bytes,
                            },
                            password_hash: "$argon2id$…".into(),
                        })
                    }
                ),
            (
                user.clone(),
                any_tenant(),
                proptest::collection::vec(any_trigger(), 0..4),
                any::<i64>()
            )
                .prop_map(|(user_id, tenant, triggers, at)| Event::ScheduleCreated(
                    ScheduleCreated {
                        schedule_id: ScheduleId::new(7, 7),
                        tenant,
                        user_id,
                        spec: ScheduleSpec {
                            name: "s".into(),
                            item: ItemId::new(1, 1),
                            vault: VaultId::new(2, 2),
                            skip_if_running: at % 2 == 0,
                            triggers,
                        },
                        at,
                    }
                )),
            (
                any_tenant(),
                proptest::collection::btree_map("\\PC{0,10}", 0u8..5, 0..5),
                proptest::option::of(any::<u32>())
            )
                .prop_map(
                    |(tenant, settings, random_delay_secs)| Event::PolicyCreated(PolicyCreated {
                        policy_id: PolicyId::new(3, 3),
                        tenant,
                        spec: PolicySpec {
                            name: "p".into(),
                            description: String::new(),
                            is_default: random_delay_secs.is_some(),
                            random_delay_secs,
                            settings: settings
                                .into_iter()
                                .map(|(k, v)| (k, SettingMode::from_code(v).unwrap()))
                                .collect::<BTreeMap<_, _>>(),
                        },
                    })
                ),
            (
                user,
                any_tenant(),
                proptest::collection::vec((any::<i64>(), "\\PC*"), 0..5)
            )
                .prop_map(|(user_id, tenant, lines)| Event::JobLogged(JobLogged {
                    job_id: JobId::new(9, 9),
                    tenant,
                    user_id,
                    lines: lines
                        .into_iter()
                        .map(|(at, text)| LogLine {
                            at,
                            severity: LogSeverity::Info,
                            text
                        })
                        .collect(),
                })),
            (0usize..JobStatus::ALL.len(), any::<i64>(), any::<u64>()).prop_map(
                |(s, ended_at, bytes)| {
                    Event::JobCompleted(JobCompleted {
                        job_id: JobId::new(1, 1),
                        tenant: TenantRef::Root,
                        user_id: UserId::new(1, 1),
                        status: JobStatus::ALL[s],
                        ended_at,
                        totals: JobTotals {
                            total_bytes: bytes,
                            ..JobTotals::default()
                        },
                    })
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(event in any_event()) {
            prop_assert_eq!(roundtrip(&event), event);
        }

        #[test]
        fn decode_never_panics(code in 4000u16..5000, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(code, SCHEMA_VERSION, &bytes);
        }
    }
}
