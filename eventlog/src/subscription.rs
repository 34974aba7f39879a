//! Catch-up-then-live reading of the log for one consumer.

use std::sync::Arc;

use tokio::sync::watch;

use crate::error::LogError;
use crate::{EventLog, Position, RecordedEvent};

/// Reads the log from a position onwards: first whatever is already there, then each new
/// durable append as it lands. Every event is delivered exactly once, in position order,
/// because the subscription only ever asks for positions after the last one it handed out.
///
/// It does not save its position: a durable consumer stores the position of the last event
/// it applied with [`crate::Checkpoints`] and starts its next `Subscription` from there.
pub struct Subscription {
    log: Arc<dyn EventLog>,
    position: Position,
    head: watch::Receiver<Position>,
}

impl Subscription {
    /// A subscription delivering the events with positions greater than `after`.
    pub fn new(log: Arc<dyn EventLog>, after: Position) -> Subscription {
        let head = log.watch_head();
        Subscription {
            log,
            position: after,
            head,
        }
    }

    /// The position of the last event handed out (or the starting `after`).
    pub fn position(&self) -> Position {
        self.position
    }

    /// Up to `max` next events; waits for an append when there are none. Errors with
    /// [`LogError::Closed`] if the log goes away while waiting.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        loop {
            let batch = self.try_next_batch(max).await?;
            if !batch.is_empty() || max == 0 {
                return Ok(batch);
            }
            // `try_next_batch` marked the head it looked at as seen, so this returns as soon
            // as the head moves past it, including if it already did in between.
            self.head.changed().await.map_err(|_| LogError::Closed)?;
        }
    }

    /// Up to `max` next events, without waiting: empty when the consumer is caught up. Lets
    /// tests and shutdown paths drive a consumer until idle.
    pub async fn try_next_batch(&mut self, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let head = *self.head.borrow_and_update();
        if head <= self.position || max == 0 {
            return Ok(Vec::new());
        }
        let batch = self.log.read_all(self.position, max).await?;
        if let Some(last) = batch.last() {
            self.position = last.envelope.position;
        }
        Ok(batch)
    }
}
