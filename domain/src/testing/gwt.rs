//! `given(events).when(command).then(events)` over `decide`, as in cqrs-es's test framework.

use crate::commands::Command;
use crate::decide::{decide, Decision};
use crate::error::DomainError;
use crate::events::Event;
use crate::state::State;

/// The `now` every test decides at unless it says otherwise.
pub const NOW: i64 = 1_700_000_000;

pub struct Given {
    state: State,
    now: i64,
}

pub fn given(events: impl IntoIterator<Item = Event>) -> Given {
    let events: Vec<Event> = events.into_iter().collect();
    Given {
        state: State::from_events(&events),
        now: NOW,
    }
}

impl Given {
    pub fn at(self, now: i64) -> Given {
        Given { now, ..self }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn when(self, command: impl Into<Command>) -> When {
        let result = decide(&self.state, command.into(), self.now);
        When {
            state: self.state,
            result,
        }
    }
}

pub struct When {
    state: State,
    result: Decision,
}

impl When {
    /// Asserts the exact events and returns the state after applying them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = Event>) -> State {
        let expected: Vec<Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected);
                let mut state = self.state;
                for e in &events {
                    state.apply(e);
                }
                state
            }
            Err(e) => panic!("expected events, got rejection {e:?}"),
        }
    }

    /// Returns the events for checks that do not spell them all out.
    #[track_caller]
    pub fn events(self) -> Vec<Event> {
        self.result
            .unwrap_or_else(|e| panic!("expected events, got rejection {e:?}"))
    }

    #[track_caller]
    pub fn then_err(self, expected: DomainError) {
        assert_eq!(self.result, Err(expected));
    }

    /// Asserts a rejection naming `field` as invalid.
    #[track_caller]
    pub fn then_invalid(self, field: &str) {
        match self.result {
            Err(DomainError::Invalid { field: f, .. }) if f == field => {}
            other => panic!("expected Invalid on {field}, got {other:?}"),
        }
    }

    /// Asserts a conflict on `field`.
    #[track_caller]
    pub fn then_conflict(self, field: &str) {
        match self.result {
            Err(DomainError::Conflict { field: f, .. }) if f == field => {}
            other => panic!("expected Conflict on {field}, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn then_not_found(self, kind: &str) {
        match self.result {
            Err(DomainError::NotFound { kind: k, .. }) if k == kind => {}
            other => panic!("expected NotFound {kind}, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn then_already_exists(self, kind: &str) {
        match self.result {
            Err(DomainError::AlreadyExists { kind: k, .. }) if k == kind => {}
            other => panic!("expected AlreadyExists {kind}, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn then_transition(self, action: &str) {
        match self.result {
            Err(DomainError::InvalidTransition { action: a, .. }) if a == action => {}
            other => panic!("expected InvalidTransition {action}, got {other:?}"),
        }
    }
}
