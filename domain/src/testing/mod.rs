//! Test support: sample events and the given/when/then harness.

pub mod samples;
