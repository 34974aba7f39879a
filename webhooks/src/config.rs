//! Delivery settings: retry schedule, timeouts and concurrency bounds.

use std::time::Duration;

use crate::error::WebhookError;

/// Seconds between attempts (HALLEY_WEBHOOK_RETRY_SCHEDULE's default): 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 10 h. Its length is the number of retries after the first attempt.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5,300,1800,7200,18000,36000,36000";

#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryConfig {
    /// Delay before each retry; `retry_schedule.len()` retries follow the first attempt.
    pub retry_schedule: Vec<Duration>,
    /// A retry waits its scheduled delay times a random factor in `[1, 1 + jitter]`, so
    /// endpoints that failed together do not all come back at the same instant.
    pub jitter: f64,
    /// A `Retry-After` longer than the scheduled delay is honoured up to this bound.
    pub max_retry_after: Duration,
    /// Whole-request timeout; an endpoint that takes longer counts as failed.
    pub request_timeout: Duration,
    /// Attempts in flight to one endpoint at most, so one slow endpoint holds only its
    /// own slots.
    pub per_endpoint_concurrency: usize,
    /// Attempts in flight across all endpoints at most.
    pub max_in_flight: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_schedule: parse_retry_schedule(DEFAULT_RETRY_SCHEDULE)
                .expect("the default schedule parses"),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(36_000),
            request_timeout: Duration::from_secs(15),
            per_endpoint_concurrency: 16,
            max_in_flight: 256,
        }
    }
}

/// Parses comma-separated seconds, e.g. `5,300,1800`. An empty string means no retries.
pub fn parse_retry_schedule(value: &str) -> Result<Vec<Duration>, WebhookError> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| WebhookError::BadRetrySchedule {
                    value: value.to_owned(),
                    reason: format!("{part:?} is not a whole number of seconds"),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_and_rejects_garbage() {
        let d = DeliveryConfig::default();
        let secs: Vec<u64> = d.retry_schedule.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(parse_retry_schedule(" 1, 2 ").unwrap().len(), 2);
        assert!(parse_retry_schedule("").unwrap().is_empty());
        assert!(parse_retry_schedule("5,x").is_err());
        assert!(parse_retry_schedule("-1").is_err());
    }
}
