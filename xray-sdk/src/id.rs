//! Ids of steps and executions: UUIDv7, time-ordered (so ids sort by start
//! time and index well), with 74 random bits from a per-thread generator.
//!
//! A forked child starts with a copy of its parent's generator and would
//! draw the same bits, so the same ids, as the parent thread that forked.
//! On Unix a `pthread_atfork` child handler counts forks, and a generator
//! made before the last fork is reseeded, with the child's process id mixed
//! in, before its next use. (Elsewhere there is no `fork`.)

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

/// Forks this process has gone through (counted in each child).
static FORKS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's generator and the fork count when it was seeded.
    static RNG: RefCell<Option<(u64, fastrand::Rng)>> = const { RefCell::new(None) };
}

/// A fresh UUIDv7 for something that started at `now_us` (Unix µs).
pub(crate) fn new_id(now_us: i64) -> Uuid {
    let r = random_u128();
    let mut random = [0u8; 10];
    random.copy_from_slice(&r.to_le_bytes()[..10]);
    let millis = u64::try_from(now_us / 1000).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

fn random_u128() -> u128 {
    let forks = FORKS.load(Ordering::Relaxed);
    RNG.try_with(|cell| {
        let mut slot = cell.borrow_mut();
        match &mut *slot {
            Some((seeded_at, rng)) if *seeded_at == forks => rng.u128(..),
            _ => {
                let mut rng = fastrand::Rng::with_seed(fresh_seed());
                let value = rng.u128(..);
                *slot = Some((forks, rng));
                value
            }
        }
    })
    // The thread is being torn down: a generator of its own for this once.
    .unwrap_or_else(|_| fastrand::Rng::with_seed(fresh_seed()).u128(..))
}

/// A seed no other thread or process is likely to have: fastrand's
/// (thread-local, so copied by a fork), mixed with the process id and the
/// time, which a forked child does not share with its parent.
fn fresh_seed() -> u64 {
    watch_forks();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let pid = u64::from(std::process::id());
    fastrand::u64(..) ^ pid.rotate_left(32) ^ nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Registers the fork handler, once per process.
fn watch_forks() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        extern "C" fn forked() {
            FORKS.fetch_add(1, Ordering::Relaxed);
        }
        ONCE.call_once(|| {
            // SAFETY: registers a handler that only touches an atomic, which
            // is async-signal-safe as a fork child handler must be.
            unsafe {
                libc::pthread_atfork(None, None, Some(forked));
            }
        });
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The random bits of an id (all but its timestamp and version bits).
    fn random_part(id: Uuid) -> [u8; 10] {
        id.as_bytes()[6..].try_into().expect("10 bytes")
    }

    #[test]
    fn a_forked_child_does_not_repeat_its_parents_ids() {
        const N: usize = 16;
        // The parent's generator exists before the fork: the child has a copy.
        let _ = new_id(0);
        let mut fds = [0i32; 2];
        // SAFETY: a pipe for the child's ids; the child only computes ids,
        // writes them and exits without running destructors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let mut bytes = Vec::with_capacity(N * 10);
            for _ in 0..N {
                bytes.extend_from_slice(&random_part(new_id(0)));
            }
            unsafe {
                libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0);
            }
        }
        let parent: Vec<[u8; 10]> = (0..N).map(|_| random_part(new_id(0))).collect();
        let mut child = [0u8; N * 10];
        let mut read = 0;
        while read < child.len() {
            let n = unsafe {
                libc::read(
                    fds[0],
                    child[read..].as_mut_ptr().cast(),
                    child.len() - read,
                )
            };
            assert!(n > 0, "the child wrote no ids");
            read += n as usize;
        }
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        for chunk in child.chunks(10) {
            assert!(
                !parent.iter().any(|p| p[..] == *chunk),
                "the child repeated one of its parent's ids"
            );
        }
    }

    #[test]
    fn ids_are_time_ordered_version_7() {
        let a = new_id(1_000_000);
        let b = new_id(2_000_000);
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b);
    }
}
