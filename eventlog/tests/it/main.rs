//! The eventlog's tests against real sled databases in temporary directories. One test binary
//! (modules below) so the crate links once; the crash test re-executes this same binary.

mod basic;
mod concurrent;
mod corruption;
mod crash;
mod journal;
mod timing;

use eventlog::{AppendRequest, ExpectedVersion, NewEvent};

/// A payload of `len` bytes that differs for every `seed`.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn event(payload: Vec<u8>) -> NewEvent {
    NewEvent {
        tenant: "ten_test".into(),
        type_code: 4901,
        schema_version: 1,
        recorded_at_us: 1_700_000_000_000_000,
        actor: "adm_test".into(),
        correlation_id: "cor_test".into(),
        payload,
    }
}

pub fn request(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest {
        stream: stream.into(),
        expected,
        events,
        idempotency_key: None,
    }
}

/// `n` small events whose payloads are `"<stream>#<i>"`.
pub fn events(stream: &str, n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event(format!("{stream}#{i}").into_bytes()))
        .collect()
}
