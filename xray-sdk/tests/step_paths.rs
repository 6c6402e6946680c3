//! A synchronous step runs its body on one of two paths: directly when X-Ray
//! is not active, inside the recording machinery when it is. Whatever must
//! exist once in the body (a `static`, a `thread_local!`, an `impl`) is the
//! same on both paths. One test function: the binary starts X-Ray once,
//! midway.

mod support;

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

#[xray::step]
fn counts() -> u32 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed) + 1
}

#[xray::step]
fn counts_per_thread() -> u32 {
    thread_local! {
        static CALLS: Cell<u32> = const { Cell::new(0) };
    }
    CALLS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

#[xray::step]
fn displays(x: u8) -> String {
    struct Local(u8);
    impl std::fmt::Display for Local {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "local {}", self.0)
        }
    }
    Local(x).to_string()
}

#[test]
fn statics_in_a_step_body_are_shared_by_the_recording_and_the_plain_path() {
    // X-Ray not active: the plain path.
    assert_eq!((counts(), counts()), (1, 2));
    assert_eq!((counts_per_thread(), counts_per_thread()), (1, 2));
    assert_eq!(displays(1), "local 1");

    // Active and recording: the same statics, counting on.
    let (_dir, path) = support::outbox();
    let (values, stats) = support::capture(xray::Config::default().outbox(&path), || {
        (counts(), counts(), counts_per_thread(), displays(2))
    });
    assert_eq!(values, (3, 4, 3, "local 2".to_owned()));
    assert_eq!(stats.written, 4, "{stats:?}");
    let mut outputs: Vec<u64> = support::steps(&path)
        .into_iter()
        .filter(|s| s.name == "counts")
        .map(|s| s.output.unwrap().as_u64().unwrap())
        .collect();
    outputs.sort_unstable();
    assert_eq!(outputs, [3, 4]);
}
