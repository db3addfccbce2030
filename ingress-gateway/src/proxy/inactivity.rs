//! An inactivity timer: I/O times out as nginx's does, after a time with nothing moving,
//! not after a time over the whole exchange (a long upload or a long streamed answer
//! lives as long as it keeps moving).

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// How [`copy_both_ways`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum CopyEnd {
    /// Both sides closed their writing half.
    Closed,
    /// Nothing moved either way for the idle time.
    Idle,
}

/// Copies bytes both ways between `a` and `b` (as `tokio::io::copy_bidirectional`) until
/// both have closed, or until `idle` passed with nothing moving in either direction: an
/// upgraded connection ends as nginx ends one after `proxy_read_timeout`, so a peer gone
/// without a word does not hold the other side for ever.
pub async fn copy_both_ways<A, B>(a: &mut A, b: &mut B, idle: Duration) -> io::Result<CopyEnd>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let start = Instant::now();
    // Nanoseconds after `start` of the last byte moved: shared by both directions.
    let last = AtomicU64::new(0);
    let mut a = Touching {
        io: a,
        start,
        last: &last,
    };
    let mut b = Touching {
        io: b,
        start,
        last: &last,
    };
    let mut copy = pin!(tokio::io::copy_bidirectional(&mut a, &mut b));
    let mut due = pin!(tokio::time::sleep_until(start + idle));
    loop {
        tokio::select! {
            copied = copy.as_mut() => return copied.map(|_| CopyEnd::Closed),
            () = due.as_mut() => {
                let moved = start + Duration::from_nanos(last.load(Ordering::Relaxed));
                if Instant::now() >= moved + idle {
                    return Ok(CopyEnd::Idle);
                }
                due.as_mut().reset(moved + idle);
            }
        }
    }
}

/// An I/O object that notes when bytes last moved through it.
struct Touching<'a, S: ?Sized> {
    io: &'a mut S,
    start: Instant,
    last: &'a AtomicU64,
}

impl<S: ?Sized> Touching<'_, S> {
    fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin + ?Sized> AsyncRead for Touching<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin + ?Sized> AsyncWrite for Touching<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut *self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
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

    #[tokio::test(start_paused = true)]
    async fn a_copy_lives_while_bytes_move_and_ends_after_the_idle_time_without() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, mut a) = tokio::io::duplex(64);
        let (mut b, mut upstream) = tokio::io::duplex(64);
        let idle = Duration::from_secs(10);
        let copying = tokio::spawn(async move { copy_both_ways(&mut a, &mut b, idle).await });
        let started = Instant::now();
        // A byte one way, then the other, every 6 s: never 10 s of silence.
        let mut byte = [0u8; 1];
        for round in 0..4 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            if round % 2 == 0 {
                client.write_all(b"c").await.unwrap();
                upstream.read_exact(&mut byte).await.unwrap();
            } else {
                upstream.write_all(b"u").await.unwrap();
                client.read_exact(&mut byte).await.unwrap();
            }
            assert!(!copying.is_finished(), "round {round}");
        }
        let last_byte = Instant::now();
        assert_eq!(copying.await.unwrap().unwrap(), CopyEnd::Idle);
        assert_eq!(last_byte - started, Duration::from_secs(24));
        assert_eq!(Instant::now() - last_byte, idle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_ends_when_both_sides_close() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut a) = tokio::io::duplex(64);
        let (mut b, mut upstream) = tokio::io::duplex(64);
        let copying =
            tokio::spawn(
                async move { copy_both_ways(&mut a, &mut b, Duration::from_secs(10)).await },
            );
        client.shutdown().await.unwrap();
        upstream.shutdown().await.unwrap();
        assert_eq!(copying.await.unwrap().unwrap(), CopyEnd::Closed);
    }
}
