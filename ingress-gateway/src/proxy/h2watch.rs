//! The waits of an HTTP/2 connection that hyper's server does not bound, watched beside
//! it: a connection with no open stream (closed after the keep-alive timeout, as nginx's
//! `keepalive_timeout` closes an idle HTTP/2 connection; hyper never does), a stream
//! whose client takes none of its data (hyper stops polling a response body while the
//! client's flow-control window is shut, so the body's own timers never run: after the
//! client send timeout that stream alone is reset, as nginx does), and a connection
//! closing after GOAWAY whose client never takes the last data hyper holds (a response's
//! last piece is handed to hyper whole, so its stream ended for the watch while the
//! client's window still keeps part of it back: closed).
//!
//! hyper offers no way to reset one stream from outside, but it runs each stream as a
//! task of the executor it is given: [`StreamExecutor`] keeps an abort handle for each,
//! and aborting the task drops the stream's handles, which makes h2 send `RST_STREAM`
//! (CANCEL).
//!
//! [`judge`] is the pure core; [`StreamWatch`] keeps what it needs, fed by a
//! [`WatchedBody`] around every response body.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::task::{AbortHandle, Id};
use tokio::time::Instant;

/// The limits watched.
#[derive(Debug, Clone, Copy)]
pub struct WatchLimits {
    /// A connection with no open stream for this long is closed.
    pub idle: Duration,
    /// A stream whose client took none of the data handed to it for this long closes the
    /// connection.
    pub client_send: Duration,
}

/// What to do with the connection, as of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing yet: look again then.
    CheckAt(Instant),
    /// No stream open for the idle limit: close gracefully (GOAWAY).
    Idle,
    /// A stream's client took none of its data for the client send limit: reset the
    /// streams stalled that long.
    StreamsStalled,
    /// Closing, and the client took none of what hyper still holds after the last stream
    /// ended for the client send limit: close now.
    ClosingStalled,
}

/// What the watch saw of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Streams open.
    pub open: usize,
    /// When the last stream ended (or the connection started).
    pub idle_since: Instant,
    /// Since when the longest-waiting stream's client has data it has not taken.
    pub oldest_wait: Option<Instant>,
    /// When the connection started closing (GOAWAY sent), if it did.
    pub closing_since: Option<Instant>,
}

/// The verdict on a connection as `seen`, as of `now`. It looks again at least every
/// quarter of the send limit: a stream that opens or starts waiting does not wake the
/// watch, so a stall is seen within 1.25 times the limit.
pub fn judge(seen: Seen, now: Instant, limits: WatchLimits) -> Verdict {
    let mut next = now + limits.client_send / 4;
    if let Some(since) = seen.oldest_wait {
        let stalled_at = since + limits.client_send;
        if now >= stalled_at {
            return Verdict::StreamsStalled;
        }
        next = next.min(stalled_at);
    }
    if seen.open == 0 {
        // Closing with no stream open, hyper has only to hand over what it holds and
        // close: given the client send limit for that, not the idle limit.
        let (until, verdict) = match seen.closing_since {
            None => (seen.idle_since + limits.idle, Verdict::Idle),
            Some(closing) => (
                seen.idle_since.max(closing) + limits.client_send,
                Verdict::ClosingStalled,
            ),
        };
        if now >= until {
            return verdict;
        }
        next = next.min(until);
    }
    Verdict::CheckAt(next)
}

/// The streams of one connection.
#[derive(Debug)]
pub struct StreamWatch {
    state: Mutex<State>,
    /// Streams the connection serves before it closes; zero = no limit.
    stream_limit: u64,
    /// Notified when the stream that reaches the limit opens.
    limit_reached: Notify,
}

#[derive(Debug)]
struct State {
    /// One slot per open stream; freed slots are listed in `free`.
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Streams opened so far.
    opened: u64,
    /// The stream opened last, until its task is spawned.
    unadopted: Option<usize>,
    /// The connection's own task: the one that spawns the stream tasks (a stream task
    /// may spawn tasks of its own, which are not streams).
    connection_task: Option<Id>,
    idle_since: Instant,
    closing_since: Option<Instant>,
}

#[derive(Debug, Default)]
struct Slot {
    /// Since when its client has data it has not taken, if it has.
    wait: Option<Instant>,
    /// Its task, to reset it.
    task: Option<AbortHandle>,
}

impl State {
    /// Streams open: the slots not freed.
    fn open(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

impl StreamWatch {
    /// A connection starting now, with no stream yet, that serves `stream_limit`
    /// streams (zero: any number).
    pub fn new(stream_limit: u64) -> Arc<Self> {
        Arc::new(Self {
            stream_limit,
            limit_reached: Notify::new(),
            state: Mutex::new(State {
                slots: Vec::new(),
                free: Vec::new(),
                opened: 0,
                unadopted: None,
                connection_task: tokio::task::try_id(),
                idle_since: Instant::now(),
                closing_since: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain counters behind: go on with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream opened; it counts until the guard is dropped.
    pub fn opened(self: &Arc<Self>) -> StreamGuard {
        let mut state = self.lock();
        let slot = match state.free.pop() {
            Some(slot) => slot,
            None => {
                state.slots.push(Slot::default());
                state.slots.len() - 1
            }
        };
        state.unadopted = Some(slot);
        state.opened += 1;
        let reached = state.opened == self.stream_limit;
        drop(state);
        if reached {
            self.limit_reached.notify_one();
        }
        StreamGuard {
            watch: self.clone(),
            slot,
        }
    }

    /// Resolves once the stream that reaches the stream limit has opened (at once if it
    /// already has).
    pub fn stream_limit_reached(&self) -> Notified<'_> {
        self.limit_reached.notified()
    }

    /// The connection starts closing (GOAWAY sent) now.
    pub fn closing(&self) {
        self.lock().closing_since.get_or_insert_with(Instant::now);
    }

    /// The verdict as of `now`.
    pub fn verdict(&self, now: Instant, limits: WatchLimits) -> Verdict {
        let state = self.lock();
        let seen = Seen {
            open: state.open(),
            idle_since: state.idle_since,
            oldest_wait: state.slots.iter().filter_map(|s| s.wait).min(),
            closing_since: state.closing_since,
        };
        drop(state);
        judge(seen, now, limits)
    }

    /// Resets every stream whose client took none of its data for `limit` (their tasks
    /// are aborted; they count as open until the tasks are gone). `false` if one of them
    /// has no task to abort: then only closing the connection ends it.
    pub fn reset_stalled(&self, now: Instant, limit: Duration) -> bool {
        let mut state = self.lock();
        let mut all = true;
        for slot in &mut state.slots {
            if slot.wait.is_some_and(|since| now >= since + limit) {
                slot.wait = None;
                match slot.task.take() {
                    Some(task) => task.abort(),
                    None => all = false,
                }
            }
        }
        all
    }

    /// The task of the stream opened last was spawned.
    fn adopt(&self, task: AbortHandle) {
        let mut state = self.lock();
        if tokio::task::try_id() != state.connection_task {
            return;
        }
        if let Some(slot) = state.unadopted.take() {
            state.slots[slot].task = Some(task);
        }
    }
}

/// The executor hyper spawns a watched connection's stream tasks on (tokio's), keeping
/// each stream's abort handle in the watch. hyper opens a stream by calling the service
/// (`StreamWatch::opened`) and spawns its task right after, on the connection's task.
#[derive(Debug, Clone)]
pub struct StreamExecutor {
    watch: Arc<StreamWatch>,
}

impl StreamExecutor {
    /// Spawns the streams of `watch`'s connection.
    pub fn new(watch: Arc<StreamWatch>) -> Self {
        Self { watch }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, task: F) {
        let task = tokio::spawn(task);
        self.watch.adopt(task.abort_handle());
    }
}

/// An open stream of a [`StreamWatch`].
#[derive(Debug)]
pub struct StreamGuard {
    watch: Arc<StreamWatch>,
    slot: usize,
}

impl StreamGuard {
    /// Data was handed to the client's stream (`true`), or the body waits on its source
    /// or ended (`false`). Each piece handed out starts the wait again: hyper asks for
    /// the next piece only once the client made room for it, so a client reading a long
    /// body steadily never stalls, however seldom the body waits on its source.
    fn waiting_on_client(&self, waiting: bool) {
        self.watch.lock().slots[self.slot].wait = waiting.then(Instant::now);
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut state = self.watch.lock();
        state.slots[self.slot] = Slot::default();
        if state.unadopted == Some(self.slot) {
            state.unadopted = None;
        }
        state.free.push(self.slot);
        if state.open() == 0 {
            state.idle_since = Instant::now();
        }
    }
}

/// A response body on a watched connection: handing out a piece marks its stream as
/// waiting on the client until the body is polled again.
#[derive(Debug)]
pub struct WatchedBody<B> {
    inner: B,
    guard: StreamGuard,
}

impl<B> WatchedBody<B> {
    /// `inner`, counted as the stream of `guard`.
    pub fn new(inner: B, guard: StreamGuard) -> Self {
        Self { inner, guard }
    }
}

impl<B: Body + Unpin> Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // hyper polls again at once while the client's window is open: a piece handed
        // out is only a wait on the client if the next poll does not come.
        let handed_out = matches!(&polled, Poll::Ready(Some(Ok(frame))) if frame.is_data());
        self.guard.waiting_on_client(handed_out);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WatchLimits = WatchLimits {
        idle: Duration::from_secs(75),
        client_send: Duration::from_secs(60),
    };

    /// `open` streams, none since `idle_since`, the oldest waiting since `oldest_wait`;
    /// not closing.
    fn open(open: usize, idle_since: Instant, oldest_wait: Option<Instant>) -> Seen {
        Seen {
            open,
            idle_since,
            oldest_wait,
            closing_since: None,
        }
    }

    #[test]
    fn an_idle_connection_closes_after_the_idle_limit() {
        let t0 = Instant::now();
        let quarter = LIMITS.client_send / 4;
        assert_eq!(
            judge(open(0, t0, None), t0, LIMITS),
            Verdict::CheckAt(t0 + quarter)
        );
        let later = t0 + Duration::from_secs(74);
        assert_eq!(
            judge(open(0, t0, None), later, LIMITS),
            Verdict::CheckAt(t0 + LIMITS.idle)
        );
        assert_eq!(
            judge(open(0, t0, None), t0 + LIMITS.idle, LIMITS),
            Verdict::Idle
        );
    }

    #[test]
    fn open_streams_keep_a_connection_however_long_they_run() {
        let t0 = Instant::now();
        let late = t0 + Duration::from_secs(3600);
        assert_eq!(
            judge(open(2, t0, None), late, LIMITS),
            Verdict::CheckAt(late + LIMITS.client_send / 4)
        );
    }

    #[test]
    fn a_stream_waiting_on_its_client_past_the_send_limit_stalls_the_connection() {
        let t0 = Instant::now();
        let since = t0 + Duration::from_secs(10);
        let now = t0 + Duration::from_secs(65);
        // Looked at again when the limit runs out, not a quarter later.
        assert_eq!(
            judge(open(1, t0, Some(since)), now, LIMITS),
            Verdict::CheckAt(since + LIMITS.client_send)
        );
        assert_eq!(
            judge(open(1, t0, Some(since)), since + LIMITS.client_send, LIMITS),
            Verdict::StreamsStalled
        );
    }

    #[test]
    fn a_closing_connection_gets_the_send_limit_to_hand_over_what_hyper_holds() {
        let t0 = Instant::now();
        let goaway = t0 + LIMITS.idle;
        let closing = |open_streams| Seen {
            closing_since: Some(goaway),
            ..open(open_streams, t0, None)
        };
        // Idle long before GOAWAY: the send limit runs from the GOAWAY.
        assert_eq!(
            judge(closing(0), goaway, LIMITS),
            Verdict::CheckAt(goaway + LIMITS.client_send / 4)
        );
        let due = goaway + LIMITS.client_send;
        assert_eq!(
            judge(closing(0), due - Duration::from_secs(1), LIMITS),
            Verdict::CheckAt(due)
        );
        assert_eq!(judge(closing(0), due, LIMITS), Verdict::ClosingStalled);
        // Streams still open (a drain): they finish as they would have.
        assert_eq!(
            judge(closing(3), due + LIMITS.idle, LIMITS),
            Verdict::CheckAt(due + LIMITS.idle + LIMITS.client_send / 4)
        );
        // The last one ended after the GOAWAY: the send limit runs from then.
        let ended = due + LIMITS.idle;
        let after = Seen {
            idle_since: ended,
            ..closing(0)
        };
        assert_eq!(
            judge(after, ended + Duration::from_secs(50), LIMITS),
            Verdict::CheckAt(ended + LIMITS.client_send)
        );
        assert_eq!(
            judge(after, ended + LIMITS.client_send, LIMITS),
            Verdict::ClosingStalled
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_is_reset_alone_by_aborting_its_task() {
        use hyper::rt::Executor;
        let watch = StreamWatch::new(0);
        let exec = StreamExecutor::new(watch.clone());
        // Two streams, as hyper opens them: the service is called, then the task spawned.
        let spawn_stream = |waiting: bool| {
            let guard = watch.opened();
            exec.execute(async move {
                guard.waiting_on_client(waiting);
                std::future::pending::<()>().await;
            });
        };
        spawn_stream(true);
        spawn_stream(false);
        tokio::task::yield_now().await;
        assert_eq!(watch.lock().open(), 2);
        tokio::time::advance(LIMITS.client_send).await;
        let now = Instant::now();
        assert_eq!(watch.verdict(now, LIMITS), Verdict::StreamsStalled);
        assert!(watch.reset_stalled(now, LIMITS.client_send));
        // Its wait is over at once; its slot once its task is gone.
        assert!(matches!(watch.verdict(now, LIMITS), Verdict::CheckAt(_)));
        tokio::task::yield_now().await;
        assert_eq!(watch.lock().open(), 1, "the other stream goes on");
        // A stalled stream whose task is unknown cannot be reset alone.
        let orphan = watch.opened();
        orphan.waiting_on_client(true);
        tokio::time::advance(LIMITS.client_send).await;
        assert!(!watch.reset_stalled(Instant::now(), LIMITS.client_send));
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_counts_streams_and_their_waits() {
        let watch = StreamWatch::new(0);
        let t0 = Instant::now();
        let a = watch.opened();
        let b = watch.opened();
        a.waiting_on_client(true);
        tokio::time::advance(Duration::from_secs(30)).await;
        // A second piece handed out: the client took the first, the wait starts again.
        a.waiting_on_client(true);
        b.waiting_on_client(true);
        b.waiting_on_client(false);
        assert_eq!(
            watch.verdict(Instant::now(), LIMITS),
            Verdict::CheckAt(Instant::now() + LIMITS.client_send / 4)
        );
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(matches!(
            watch.verdict(Instant::now(), LIMITS),
            Verdict::CheckAt(_)
        ));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(
            watch.verdict(Instant::now(), LIMITS),
            Verdict::StreamsStalled
        );
        // Taken: no longer waiting.
        a.waiting_on_client(false);
        assert!(matches!(
            watch.verdict(Instant::now(), LIMITS),
            Verdict::CheckAt(_)
        ));
        drop(a);
        // A freed slot is used again.
        let c = watch.opened();
        assert_eq!(c.slot, 0);
        drop((b, c));
        let closed = Instant::now();
        assert!(closed >= t0 + Duration::from_secs(90));
        assert_eq!(
            watch.verdict(closed, LIMITS),
            Verdict::CheckAt(closed + LIMITS.client_send / 4)
        );
        assert_eq!(watch.verdict(closed + LIMITS.idle, LIMITS), Verdict::Idle);
        // GOAWAY sent: with no stream open, hyper gets the send limit to finish.
        tokio::time::advance(LIMITS.idle).await;
        watch.closing();
        let goaway = Instant::now();
        assert_eq!(
            watch.verdict(goaway + LIMITS.client_send, LIMITS),
            Verdict::ClosingStalled
        );
    }
}
