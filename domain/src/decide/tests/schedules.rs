use crate::commands::*;
use crate::events::*;
use crate::ids::TenantRef;
use crate::model::*;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

const ROOT: TenantRef = TenantRef::Root;
const ACME: TenantRef = TenantRef::Tenant(T1);

fn create(spec: ScheduleSpec) -> CreateSchedule {
    CreateSchedule {
        schedule_id: S2,
        user_id: U1,
        spec,
    }
}

fn with_trigger(frequency: Frequency) -> CreateSchedule {
    let mut spec = schedule_spec(I1, V1);
    spec.triggers = vec![
        hourly(),
        Trigger {
            frequency,
            ..hourly()
        },
    ];
    create(spec)
}

#[test]
fn creates_a_schedule_stamped_with_now() {
    let mut spec = schedule_spec(I1, V1);
    spec.triggers.push(Trigger {
        frequency: Frequency::Cron {
            expr: "0 0 22 * * Mon-Fri".into(),
        },
        window: Some(TimeWindow {
            from: TimeOfDay::new(17, 0).unwrap(),
            to: TimeOfDay::new(9, 0).unwrap(),
        }),
        days: Some([Weekday::Mon, Weekday::Tue].into_iter().collect()),
        random_delay_secs: Some(18_000),
    });
    let state = given(world())
        .when(create(spec.clone()))
        .then([ScheduleCreated {
            schedule_id: S2,
            tenant: ACME,
            user_id: U1,
            spec,
            at: NOW,
        }
        .into()]);
    assert_eq!(state.schedule(S2).unwrap().created_at, NOW);
    assert_eq!(state.user_schedules(U1).count(), 2);
}

#[test]
fn item_and_vault_must_belong_to_the_schedules_user() {
    let mut history = world();
    history.extend([
        user(U2, ROOT, "bob"),
        item(I2, ROOT, U2),
        vault(V2, ROOT, U2, "x"),
    ]);
    given(history.clone())
        .when(create(schedule_spec(I2, V1)))
        .then_invalid("protected_item_id");
    given(history)
        .when(create(schedule_spec(I1, V2)))
        .then_invalid("vault_id");
}

#[test]
fn rejects_unknown_users_taken_ids_and_bad_names() {
    let mut c = create(schedule_spec(I1, V1));
    c.user_id = U2;
    given(world()).when(c).then_not_found("user");
    let mut c = create(schedule_spec(I1, V1));
    c.schedule_id = S1;
    given(world()).when(c).then_already_exists("schedule");
    let mut spec = schedule_spec(I1, V1);
    spec.name = "\n".into();
    given(world()).when(create(spec)).then_invalid("name");
}

#[test]
fn rejects_out_of_range_trigger_numbers() {
    let cases = [
        (Frequency::Once { at: -1 }, "triggers[1].at"),
        (
            Frequency::Daily {
                seconds_past: 86_400,
            },
            "triggers[1].seconds_past",
        ),
        (
            Frequency::Hourly {
                seconds_past: 3_600,
            },
            "triggers[1].seconds_past",
        ),
        (
            Frequency::Weekly {
                seconds_past: 604_800,
            },
            "triggers[1].seconds_past",
        ),
        (
            Frequency::Monthly {
                seconds_past: 31 * 86_400,
            },
            "triggers[1].seconds_past",
        ),
        (
            Frequency::Periodic {
                period_secs: 0,
                offset_secs: 0,
            },
            "triggers[1].period_secs",
        ),
        (
            Frequency::Periodic {
                period_secs: 60,
                offset_secs: 60,
            },
            "triggers[1].offset_secs",
        ),
        (
            Frequency::Yearly {
                month: 13,
                day: 1,
                seconds_past: 0,
            },
            "triggers[1].month",
        ),
        (
            Frequency::Yearly {
                month: 2,
                day: 30,
                seconds_past: 0,
            },
            "triggers[1].day",
        ),
        (
            Frequency::Yearly {
                month: 4,
                day: 0,
                seconds_past: 0,
            },
            "triggers[1].day",
        ),
        (
            Frequency::Yearly {
                month: 12,
                day: 31,
                seconds_past: 86_400,
            },
            "triggers[1].seconds_past",
        ),
    ];
    for (frequency, field) in cases {
        given(world())
            .when(with_trigger(frequency))
            .then_invalid(field);
    }
}

#[test]
fn rejects_invalid_cron_expressions() {
    for expr in ["0 0 * * *", "0 0 25 * * *", "every day", "0 0 0 * * Funday"] {
        given(world())
            .when(with_trigger(Frequency::Cron { expr: expr.into() }))
            .then_invalid("triggers[1].cron");
    }
}

#[test]
fn rejects_empty_day_sets_and_long_random_delays() {
    let mut spec = schedule_spec(I1, V1);
    spec.triggers[0].days = Some(Default::default());
    given(world())
        .when(create(spec))
        .then_invalid("triggers[0].days");
    let mut spec = schedule_spec(I1, V1);
    spec.triggers[0].random_delay_secs = Some(18_001);
    given(world())
        .when(create(spec))
        .then_invalid("triggers[0].random_delay_secs");
}

#[test]
fn updates_and_removes_schedules() {
    let mut spec = schedule_spec(I1, V1);
    spec.skip_if_running = false;
    given(world())
        .when(UpdateSchedule {
            schedule_id: S1,
            patch: SchedulePatch {
                skip_if_running: Some(false),
                ..SchedulePatch::default()
            },
        })
        .then([ScheduleUpdated {
            schedule_id: S1,
            tenant: ACME,
            user_id: U1,
            spec,
        }
        .into()]);
    given(world())
        .when(UpdateSchedule {
            schedule_id: S1,
            patch: SchedulePatch {
                name: Some("Hourly".into()),
                ..SchedulePatch::default()
            },
        })
        .then([]);
    given(world())
        .when(UpdateSchedule {
            schedule_id: S1,
            patch: SchedulePatch {
                item: Some(I2),
                ..SchedulePatch::default()
            },
        })
        .then_invalid("protected_item_id");
    let state = given(world())
        .when(RemoveSchedule { schedule_id: S1 })
        .then([ScheduleRemoved {
            schedule_id: S1,
            tenant: ACME,
            user_id: U1,
        }
        .into()]);
    assert_eq!(state.user_schedules(U1).count(), 0);
    given([])
        .when(RemoveSchedule { schedule_id: S1 })
        .then_not_found("schedule");
}
