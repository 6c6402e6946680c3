//! Wall-clock start times at the cost of one monotonic clock read.
//!
//! A step needs both a monotonic instant (for its duration) and a wall-clock
//! time (for its row). Reading one clock and deriving the other from an
//! offset saves a clock read per step and per execution. The offset is
//! re-read by the outbox writer for every batch, and by [`start_time`] itself
//! when nothing has re-read it for [`MAX_SYNC_AGE_US`], so derived times
//! follow a wall clock that is stepped or slewed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

/// A start time from one clock read: the monotonic instant (for the
/// duration) and the wall-clock microseconds since the Unix epoch, derived
/// from it (see [`resync_clock`]).
pub(crate) fn start_time() -> (Instant, i64) {
    let clock = &*CLOCK;
    let now = Instant::now();
    let since_base = now.saturating_duration_since(clock.base).as_micros() as i64;
    if since_base - clock.synced_at_us.load(Ordering::Relaxed) > MAX_SYNC_AGE_US {
        // Nothing resynced for a while (the writer was idle): the wall clock
        // may have been stepped meanwhile. At most once per period.
        clock.resync_at(since_base);
    }
    (now, clock.offset_us.load(Ordering::Relaxed) + since_base)
}

/// The instant `timeout` from now, saturating: a timeout too large for an
/// `Instant` (`Duration::MAX`) is a deadline a century away, not a panic.
pub(crate) fn deadline_after(timeout: std::time::Duration) -> Instant {
    const CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// Re-reads the wall clock, so that [`start_time`] follows it when it is
/// stepped or slewed. The outbox writer calls it for every batch, and
/// [`start_time`] itself when that was more than [`MAX_SYNC_AGE_US`] ago.
pub(crate) fn resync_clock() {
    let clock = &*CLOCK;
    clock.resync_at(clock.base.elapsed().as_micros() as i64);
}

/// Longest a derived start time goes without the wall clock being re-read.
const MAX_SYNC_AGE_US: i64 = 1_000_000;

/// The monotonic clock, with the offset that turns it into wall-clock time.
/// A step's start needs both; reading one clock and deriving the other saves
/// a clock read per step and per execution.
struct Clock {
    base: Instant,
    /// Wall-clock microseconds at `base`, as of the last resync.
    offset_us: AtomicI64,
    /// When the last resync was, in microseconds since `base`.
    synced_at_us: AtomicI64,
}

impl Clock {
    /// Resyncs; `since_base` is the monotonic time of the call.
    fn resync_at(&self, since_base: i64) {
        self.synced_at_us.store(since_base, Ordering::Relaxed);
        self.offset_us
            .store(now_us() - since_base, Ordering::Relaxed);
    }
}

static CLOCK: LazyLock<Clock> = LazyLock::new(|| {
    let clock = Clock {
        base: Instant::now(),
        offset_us: AtomicI64::new(0),
        synced_at_us: AtomicI64::new(0),
    };
    clock.resync_at(0);
    clock
});

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_follow_the_wall_clock() {
        for _ in 0..3 {
            let before = now_us();
            let (instant, wall) = start_time();
            let after = now_us();
            // Derived from the monotonic clock and an offset read at the
            // last resync: within a few milliseconds of the wall clock.
            assert!(
                (before - 5_000..=after + 5_000).contains(&wall),
                "{before} <= {wall} <= {after}"
            );
            assert!(instant.elapsed() < std::time::Duration::from_secs(1));
            resync_clock();
        }
    }
}
