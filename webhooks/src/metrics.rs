//! Counters for `/metrics`, as plain numbers.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared by the dispatcher and the stream hub.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) queue_depth: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) attempts: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) gave_up: AtomicU64,
    pub(crate) latency_us_sum: AtomicU64,
    pub(crate) stream_clients: AtomicU64,
    pub(crate) stream_cut_off: AtomicU64,
}

/// One reading of [`Metrics`]. Counters only grow; `queue_depth`, `in_flight` and
/// `stream_clients` are gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Deliveries not yet delivered, given up or cancelled (waiting, due or in flight).
    pub queue_depth: u64,
    pub in_flight: u64,
    pub attempts: u64,
    /// Attempts that did not get a 2xx (including timeouts and connection errors).
    pub failures: u64,
    pub delivered: u64,
    /// Deliveries that used up the retry schedule.
    pub gave_up: u64,
    /// Sum of attempt latencies; divide by `attempts` for the mean.
    pub latency_us_sum: u64,
    pub stream_clients: u64,
    /// Stream clients disconnected for falling behind.
    pub stream_cut_off: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            queue_depth: get(&self.queue_depth),
            in_flight: get(&self.in_flight),
            attempts: get(&self.attempts),
            failures: get(&self.failures),
            delivered: get(&self.delivered),
            gave_up: get(&self.gave_up),
            latency_us_sum: get(&self.latency_us_sum),
            stream_clients: get(&self.stream_clients),
            stream_cut_off: get(&self.stream_cut_off),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}
