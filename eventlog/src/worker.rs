//! [`Worker`]: a named thread serving one channel, the shape of the log's background threads
//! (the journal's grower, the apply thread, the sync thread).

use std::ops::ControlFlow;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// A thread that hands each message of its channel to `serve`, until `serve` breaks or the
/// worker is stopped; joined on [`Worker::stop`] and on drop, so no work outlives its owner.
pub(crate) struct Worker<T> {
    name: &'static str,
    /// `None` once stopping: the thread ends when the channel is drained and disconnected.
    sender: Option<SyncSender<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    /// Starts the thread. `capacity` is how many messages may wait; 0 makes every send a
    /// hand-over that returns once the thread has taken the message.
    pub(crate) fn spawn(
        name: &'static str,
        capacity: usize,
        mut serve: impl FnMut(T) -> ControlFlow<()> + Send + 'static,
    ) -> std::io::Result<Worker<T>> {
        let (sender, queue) = mpsc::sync_channel::<T>(capacity);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for message in queue {
                    if serve(message).is_break() {
                        return;
                    }
                }
            })?;
        Ok(Worker {
            name,
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Sends, waiting for room; `false` if the thread has stopped.
    pub(crate) fn send(&self, message: T) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|sender| sender.send(message).is_ok())
    }

    /// Sends if there is room; `false` if the queue is full or the thread has stopped.
    pub(crate) fn try_send(&self, message: T) -> bool {
        match self.sender.as_ref().map(|sender| sender.try_send(message)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
        }
    }
}

impl<T> Worker<T> {
    /// Lets the thread serve what is queued, then joins it.
    pub(crate) fn stop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(thread = self.name, "event log thread panicked");
            }
        }
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn serves_in_order_and_finishes_the_queue_when_stopped() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut worker = Worker::spawn("test-worker", 8, {
            let seen = Arc::clone(&seen);
            move |n: u32| {
                seen.lock().unwrap().push(n);
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        for n in 0..5 {
            assert!(worker.send(n));
        }
        worker.stop();
        assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert!(!worker.send(5), "a stopped worker takes nothing");
    }

    #[test]
    fn a_worker_that_breaks_refuses_further_messages() {
        let worker = Worker::spawn("test-worker", 0, |n: u32| {
            if n == 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert!(worker.send(0));
        assert!(worker.send(1));
        // A hand-over waits for the thread, which has ended: the channel is disconnected.
        assert!(!worker.send(2));
        assert!(!worker.try_send(3));
    }
}
