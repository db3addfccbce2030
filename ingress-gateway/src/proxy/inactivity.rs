//! An inactivity timer: I/O times out as nginx's does, after a time with nothing moving,
//! not after a time over the whole exchange (a long upload or a long streamed answer
//! lives as long as it keeps moving).

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Runs out after `timeout` of waiting with no progress in between.
#[derive(Debug)]
pub struct InactivityTimer {
    timeout: Duration,
    /// Made on the first wait: most exchanges never wait.
    sleep: Option<Pin<Box<Sleep>>>,
    /// A period runs (since the first wait after the last progress).
    armed: bool,
}

impl InactivityTimer {
    /// A timer of `timeout` per period of waiting.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            sleep: None,
            armed: false,
        }
    }

    /// Something moved: the next wait starts a new period.
    pub fn progressed(&mut self) {
        self.armed = false;
    }

    /// Waiting: starts a period on the first wait since the last progress; true once the
    /// period ran out (and the task is woken when it does).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = Instant::now() + self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            sleep.as_mut().reset(deadline);
            self.armed = true;
        }
        sleep.as_mut().poll(cx).is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls the timer once from a task.
    async fn expired(timer: &mut InactivityTimer) -> bool {
        std::future::poll_fn(|cx| std::task::Poll::Ready(timer.poll_expired(cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn it_runs_out_only_after_a_whole_period_without_progress() {
        let mut timer = InactivityTimer::new(Duration::from_secs(10));
        assert!(!expired(&mut timer).await);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!expired(&mut timer).await);
        timer.progressed();
        assert!(!expired(&mut timer).await);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!expired(&mut timer).await, "progress started a new period");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(expired(&mut timer).await);
    }
}
