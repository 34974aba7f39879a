use crate::commands::*;
use crate::events::*;
use crate::ids::TenantRef;
use crate::model::*;
use crate::testing::fixtures::*;
use crate::testing::gwt::*;

const ROOT: TenantRef = TenantRef::Root;
const ACME: TenantRef = TenantRef::Tenant(T1);

fn start() -> StartJob {
    StartJob {
        job_id: J1,
        device_id: D1,
        item_id: Some(I1),
        vault_id: Some(V1),
        schedule_id: Some(S1),
        classification: 4001,
        started_at: NOW - 300,
    }
}

fn running() -> Vec<Event> {
    let mut history = world();
    history.push(job_started(J1, ACME, U1, D1, Some(S1)));
    history
}

fn abandoned() -> Vec<Event> {
    let mut history = running();
    history.push(
        JobAbandoned {
            job_id: J1,
            tenant: ACME,
            user_id: U1,
            at: NOW - 100,
        }
        .into(),
    );
    history
}

fn finished() -> Vec<Event> {
    let mut history = running();
    history.push(completed(5000));
    history
}

fn finish(status: u16) -> FinishJob {
    FinishJob {
        job_id: J1,
        status,
        ended_at: NOW,
        totals: JobTotals {
            total_bytes: 100,
            ..JobTotals::default()
        },
    }
}

fn completed(status: u16) -> Event {
    JobCompleted {
        job_id: J1,
        tenant: ACME,
        user_id: U1,
        status: JobStatus::from_code(status).unwrap(),
        ended_at: NOW,
        totals: JobTotals {
            total_bytes: 100,
            ..JobTotals::default()
        },
    }
    .into()
}

fn revived() -> Event {
    JobRevived {
        job_id: J1,
        tenant: ACME,
        user_id: U1,
        at: NOW,
    }
    .into()
}

#[test]
fn a_device_starts_a_job_with_its_client_version() {
    let state = given(world())
        .when(start())
        .then([job_started(J1, ACME, U1, D1, Some(S1))]);
    let job = state.job(J1).unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.ended_at, None);
    assert_eq!(state.running_jobs_of_schedule(S1).count(), 1);
}

#[test]
fn rejects_bad_job_starts() {
    let bad = |f: fn(&mut StartJob)| {
        let mut c = start();
        f(&mut c);
        c
    };
    given(world())
        .when(bad(|c| c.classification = 4012))
        .then_invalid("classification");
    given(world())
        .when(bad(|c| c.classification = 5000))
        .then_invalid("classification");
    given(world())
        .when(bad(|c| c.started_at = NOW + 86_401))
        .then_invalid("started_at");
    given(world())
        .when(bad(|c| c.started_at = -1))
        .then_invalid("started_at");
    given(world())
        .when(bad(|c| c.device_id = D2))
        .then_not_found("device");
    given(running()).when(start()).then_already_exists("job");
    let mut other = world();
    other.extend([
        user(U2, ROOT, "bob"),
        item(I2, ROOT, U2),
        vault(V2, ROOT, U2, "x"),
        schedule(S2, ROOT, U2, I2, V2),
    ]);
    given(other.clone())
        .when(bad(|c| c.item_id = Some(I2)))
        .then_invalid("protected_item_id");
    given(other.clone())
        .when(bad(|c| c.vault_id = Some(V2)))
        .then_invalid("vault_id");
    given(other)
        .when(bad(|c| c.schedule_id = Some(S2)))
        .then_invalid("schedule_id");
}

#[test]
fn every_known_classification_is_accepted() {
    for c in Classification::ALL {
        let mut cmd = start();
        cmd.classification = c.code();
        given(world()).when(cmd).events();
    }
}

#[test]
fn reports_progress_of_a_running_job() {
    let progress = JobProgress {
        bytes_done: 10,
        items_done: 1,
        items_total: 4,
    };
    let state = given(running())
        .when(ReportJobProgress {
            job_id: J1,
            progress: progress.clone(),
        })
        .then([JobProgressed {
            job_id: J1,
            tenant: ACME,
            user_id: U1,
            progress: progress.clone(),
        }
        .into()]);
    assert_eq!(state.job(J1).unwrap().progress, progress);
}

#[test]
fn progress_revives_an_abandoned_job_and_is_refused_once_finished() {
    let progress = JobProgress::default();
    let report = || ReportJobProgress {
        job_id: J1,
        progress: JobProgress::default(),
    };
    let state = given(abandoned()).when(report()).then([
        revived(),
        JobProgressed {
            job_id: J1,
            tenant: ACME,
            user_id: U1,
            progress,
        }
        .into(),
    ]);
    assert_eq!(state.job(J1).unwrap().status, JobStatus::RunningRevived);
    given(finished())
        .when(report())
        .then_transition("report progress on");
    given(world()).when(report()).then_not_found("job");
    given(running())
        .when(ReportJobProgress {
            job_id: J1,
            progress: JobProgress {
                bytes_done: 0,
                items_done: 5,
                items_total: 4,
            },
        })
        .then_invalid("items_done");
}

#[test]
fn finishes_a_running_job() {
    let state = given(running()).when(finish(7001)).then([completed(7001)]);
    let job = state.job(J1).unwrap();
    assert_eq!(job.status, JobStatus::Warning);
    assert_eq!(job.ended_at, Some(NOW));
    assert_eq!(state.running_jobs_of_schedule(S1).count(), 0);
    given(abandoned())
        .when(finish(5000))
        .then([revived(), completed(5000)]);
}

#[test]
fn rejects_bad_finishes() {
    given(running()).when(finish(1234)).then_invalid("status");
    for not_an_end in [6001, 6002, 6003, 6004, 7004, 7006, 7007] {
        given(running())
            .when(finish(not_an_end))
            .then_invalid("status");
    }
    given(finished())
        .when(finish(5000))
        .then_transition("finish");
    given(world()).when(finish(5000)).then_not_found("job");
    let mut early = finish(5000);
    early.ended_at = NOW - 301;
    given(running()).when(early).then_invalid("ended_at");
}

#[test]
fn abandons_only_running_jobs_and_revives_only_abandoned_ones() {
    let state = given(running())
        .when(AbandonJob { job_id: J1 })
        .then([JobAbandoned {
            job_id: J1,
            tenant: ACME,
            user_id: U1,
            at: NOW,
        }
        .into()]);
    assert_eq!(state.job(J1).unwrap().status, JobStatus::Abandoned);
    assert_eq!(state.running_jobs_of_schedule(S1).count(), 0);
    given(finished())
        .when(AbandonJob { job_id: J1 })
        .then_transition("abandon");
    given(abandoned())
        .when(AbandonJob { job_id: J1 })
        .then_transition("abandon");

    let state = given(abandoned())
        .when(ReviveJob { job_id: J1 })
        .then([revived()]);
    assert_eq!(state.job(J1).unwrap().ended_at, None);
    given(running())
        .when(ReviveJob { job_id: J1 })
        .then_transition("revive");
    given(finished())
        .when(ReviveJob { job_id: J1 })
        .then_transition("revive");
}

#[test]
fn appends_log_lines() {
    let line = LogLine {
        at: NOW,
        severity: LogSeverity::Error,
        text: "disk full".into(),
    };
    let state = given(finished())
        .when(AppendJobLog {
            job_id: J1,
            lines: vec![line.clone()],
        })
        .then([JobLogged {
            job_id: J1,
            tenant: ACME,
            user_id: U1,
            lines: vec![line.clone()],
        }
        .into()]);
    assert_eq!(state.job(J1).unwrap().log_lines, 1);
    given(running())
        .when(AppendJobLog {
            job_id: J1,
            lines: vec![],
        })
        .then_invalid("lines");
    given(running())
        .when(AppendJobLog {
            job_id: J1,
            lines: vec![
                line.clone(),
                LogLine {
                    text: "x".repeat(64 * 1024 + 1),
                    ..line.clone()
                },
            ],
        })
        .then_invalid("lines[1].text");
    given(world())
        .when(AppendJobLog {
            job_id: J1,
            lines: vec![line],
        })
        .then_not_found("job");
}

fn missed(due_at: i64) -> RecordMissedJob {
    RecordMissedJob {
        job_id: J2,
        schedule_id: S1,
        due_at,
    }
}

#[test]
fn records_a_missed_run_once() {
    let state = given(world()).when(missed(NOW - 1800)).then([JobMissed {
        job_id: J2,
        tenant: ACME,
        user_id: U1,
        schedule_id: S1,
        item_id: I1,
        vault_id: V1,
        due_at: NOW - 1800,
    }
    .into()]);
    let job = state.job(J2).unwrap();
    assert_eq!(job.status, JobStatus::Missed);
    assert_eq!(
        (job.started_at, job.ended_at),
        (NOW - 1800, Some(NOW - 1800))
    );
    let mut again = missed(NOW - 1800);
    again.job_id = J1;
    given(world())
        .when(missed(NOW - 1800))
        .events()
        .into_iter()
        .for_each(|e| {
            let mut history = world();
            history.push(e);
            given(history).when(again.clone()).then_conflict("due_at");
        });
}

#[test]
fn rejects_missed_runs_before_the_schedule_existed_or_of_unknown_schedules() {
    // The fixture schedule was created an hour before NOW.
    given(world())
        .when(missed(NOW - 3601))
        .then_invalid("due_at");
    let mut unknown = missed(NOW);
    unknown.schedule_id = S2;
    given(world()).when(unknown).then_not_found("schedule");
    let mut taken = missed(NOW);
    taken.job_id = J1;
    given(running()).when(taken).then_already_exists("job");
}

fn skipped() -> RecordSkippedJob {
    RecordSkippedJob {
        job_id: J2,
        schedule_id: S1,
        due_at: NOW,
    }
}

#[test]
fn records_a_skipped_run_while_the_schedules_job_runs() {
    let state = given(running()).when(skipped()).then([JobSkipped {
        job_id: J2,
        tenant: ACME,
        user_id: U1,
        schedule_id: S1,
        item_id: I1,
        vault_id: V1,
        due_at: NOW,
    }
    .into()]);
    assert_eq!(state.job(J2).unwrap().status, JobStatus::Skipped);
}

#[test]
fn rejects_skips_without_a_running_job_or_when_the_schedule_does_not_skip() {
    given(world()).when(skipped()).then_conflict("schedule_id");
    given(finished())
        .when(skipped())
        .then_conflict("schedule_id");
    let mut history = running();
    let mut spec = schedule_spec(I1, V1);
    spec.skip_if_running = false;
    history.push(
        ScheduleUpdated {
            schedule_id: S1,
            tenant: ACME,
            user_id: U1,
            spec,
        }
        .into(),
    );
    given(history).when(skipped()).then_conflict("schedule_id");
}

#[test]
fn status_classes() {
    assert!(JobStatus::Running.is_running() && JobStatus::NotYetStarted.is_running());
    assert!(JobStatus::Success.is_finished() && JobStatus::Abandoned.is_finished());
    assert_eq!(JobStatus::from_code(7007), Some(JobStatus::Abandoned));
    assert_eq!(JobStatus::from_code(7008), None);
    assert_eq!(
        Classification::from_code(4000),
        Some(Classification::Unknown)
    );
    assert_eq!(serde_json::to_string(&JobStatus::Missed).unwrap(), "7004");
    assert!(serde_json::from_str::<JobStatus>("6005").is_err());
}

fn dispatched(due_at: i64) -> RecordRunDispatched {
    RecordRunDispatched {
        job_id: J2,
        schedule_id: S1,
        device_id: D1,
        due_at,
    }
}

#[test]
fn a_run_is_dispatched_once_and_may_then_be_missed_under_its_job_id() {
    let history = given(world()).at(NOW).when(dispatched(NOW - 60)).events();
    assert_eq!(
        history,
        vec![RunDispatched {
            job_id: J2,
            tenant: ACME,
            user_id: U1,
            schedule_id: S1,
            device_id: D1,
            due_at: NOW - 60,
            at: NOW,
        }
        .into()]
    );
    let mut after = world();
    after.extend(history);
    let state = given(after.clone()).state().clone();
    assert_eq!(state.run_dispatched(S1, NOW - 60), Some(J2));
    assert_eq!(state.last_run_due(S1), Some(NOW - 60));
    given(after.clone())
        .when(dispatched(NOW - 60))
        .then_conflict("due_at");
    // The device never started it: the same job id records the miss.
    given(after).when(missed(NOW - 60)).then([JobMissed {
        job_id: J2,
        tenant: ACME,
        user_id: U1,
        schedule_id: S1,
        item_id: I1,
        vault_id: V1,
        due_at: NOW - 60,
    }
    .into()]);
}

#[test]
fn a_run_is_not_dispatched_before_its_schedule_existed_or_after_it_was_recorded() {
    given(world())
        .when(dispatched(NOW - 3601))
        .then_invalid("due_at");
    let mut recorded = world();
    recorded.extend(given(world()).when(missed(NOW - 60)).events());
    let mut again = dispatched(NOW - 60);
    again.job_id = crate::ids::JobId::new(1, 3);
    given(recorded).when(again).then_conflict("due_at");
}

#[test]
fn a_scheduled_job_without_item_or_vault_takes_the_schedules() {
    let c = StartJob {
        item_id: None,
        vault_id: None,
        ..start()
    };
    let state = given(world()).when(c).events();
    match &state[..] {
        [Event::JobStarted(e)] => {
            assert_eq!((e.item_id, e.vault_id), (Some(I1), Some(V1)));
        }
        other => panic!("expected one JobStarted, got {other:?}"),
    }
}
