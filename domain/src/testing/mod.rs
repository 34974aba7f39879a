//! Test support: sample events, fixtures and the given/when/then harness.

pub mod fixtures;
pub mod gwt;
pub mod samples;
