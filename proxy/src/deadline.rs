//! A connection's timeouts on one timer.
//!
//! `tokio::time::timeout` registers a timer for each operation and removes
//! it when the operation ends first. On a keep-alive connection that is
//! several timers per request, and registering one that is due before the
//! runtime's next wake-up makes tokio wake its driver with a system call
//! (an eventfd write): one more system call per request than nginx makes.
//!
//! A [`Deadline`] keeps one timer per connection and moves it lazily: each
//! operation only records when it must end. The timer is armed no further
//! than `floor` ahead; when it fires before the operation's end, it is
//! armed again, closer to that end. An operation whose end comes before
//! the armed time moves the timer at once, so no operation ever outlives
//! its timeout; with `floor` at most the shortest timeout the connection
//! uses, that never happens.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// An operation did not end within its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// When an operation must end.
pub(crate) enum Until {
    /// At this instant.
    At(Instant),
    /// This long after the operation first has to wait.
    After(Duration),
}

/// One connection's timer (see the module's documentation).
pub(crate) struct Deadline {
    timer: Pin<Box<Sleep>>,
    /// How far ahead the timer is armed at most.
    floor: Duration,
}

impl Deadline {
    /// A timer armed `floor` from now. `floor` is best the shortest
    /// timeout the connection will use (a shorter one costs a timer move).
    pub(crate) fn new(floor: Duration) -> Deadline {
        let floor = floor.max(Duration::from_millis(1));
        Deadline {
            timer: Box::pin(tokio::time::sleep(floor)),
            floor,
        }
    }

    /// Runs `operation`, giving up on it `timeout` after it first had to
    /// wait (an operation that completes at once reads no clock).
    pub(crate) async fn within<F: Future>(
        &mut self,
        timeout: Duration,
        operation: F,
    ) -> Result<F::Output, TimedOut> {
        self.bounded(Until::After(timeout), operation).await
    }

    /// Runs `operation`, giving up on it at `end`.
    pub(crate) async fn until<F: Future>(
        &mut self,
        end: Instant,
        operation: F,
    ) -> Result<F::Output, TimedOut> {
        self.bounded(Until::At(end), operation).await
    }

    /// Runs `operation` until `end`: an instant, or a timeout that starts
    /// when the operation first waits.
    pub(crate) async fn bounded<F: Future>(
        &mut self,
        mut end: Until,
        operation: F,
    ) -> Result<F::Output, TimedOut> {
        let mut operation = pin!(operation);
        let mut checked = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = operation.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            let at = match end {
                Until::At(at) => at,
                Until::After(timeout) => {
                    let at = Instant::now() + timeout;
                    end = Until::At(at);
                    at
                }
            };
            if !checked {
                // An end before the armed time moves the timer now.
                checked = true;
                if at < self.timer.deadline() {
                    self.timer.as_mut().reset(at);
                }
            }
            while self.timer.as_mut().poll(cx).is_ready() {
                let now = Instant::now();
                if now >= at {
                    return Poll::Ready(Err(TimedOut));
                }
                let next = at.min(now + self.floor);
                self.timer.as_mut().reset(next);
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Deadline, TimedOut};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    }

    #[test]
    fn an_operation_that_ends_in_time_gives_its_output() {
        runtime().block_on(async {
            let mut deadline = Deadline::new(Duration::from_secs(1));
            let output = deadline.within(Duration::from_secs(5), async { 7 }).await;
            assert_eq!(output, Ok(7));
        });
    }

    #[test]
    fn a_timeout_longer_than_the_floor_is_kept_to_the_millisecond() {
        runtime().block_on(async {
            let mut deadline = Deadline::new(Duration::from_secs(1));
            let started = Instant::now();
            let never = std::future::pending::<()>();
            let output = deadline.within(Duration::from_millis(3_500), never).await;
            assert_eq!(output, Err(TimedOut));
            assert_eq!(started.elapsed(), Duration::from_millis(3_500));
        });
    }

    #[test]
    fn a_timeout_shorter_than_the_armed_timer_moves_it() {
        runtime().block_on(async {
            let mut deadline = Deadline::new(Duration::from_secs(10));
            let started = Instant::now();
            let never = std::future::pending::<()>();
            let output = deadline.within(Duration::from_millis(250), never).await;
            assert_eq!(output, Err(TimedOut));
            assert_eq!(started.elapsed(), Duration::from_millis(250));
        });
    }

    #[test]
    fn operations_in_a_row_each_get_their_own_time() {
        runtime().block_on(async {
            let mut deadline = Deadline::new(Duration::from_secs(2));
            // Many quick operations, then a slow one: the slow one still
            // gets its whole timeout from its own start.
            for _ in 0..100 {
                let quick = tokio::time::sleep(Duration::from_millis(30));
                assert_eq!(deadline.within(Duration::from_secs(2), quick).await, Ok(()));
            }
            let started = Instant::now();
            let slow = tokio::time::sleep(Duration::from_millis(1_900));
            assert_eq!(deadline.within(Duration::from_secs(2), slow).await, Ok(()));
            assert_eq!(started.elapsed(), Duration::from_millis(1_900));
            let started = Instant::now();
            let never = std::future::pending::<()>();
            assert_eq!(
                deadline.within(Duration::from_secs(2), never).await,
                Err(TimedOut)
            );
            assert_eq!(started.elapsed(), Duration::from_secs(2));
        });
    }
}
