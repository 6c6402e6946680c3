//! Without X-Ray started, a step runs its body and nothing else: no
//! serialization, no span, no file. This binary never starts X-Ray.

use std::sync::atomic::{AtomicUsize, Ordering};

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

struct Watched(u32);

impl serde::Serialize for Watched {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        s.serialize_u32(self.0)
    }
}

#[xray::step]
fn watched(input: Watched) -> Watched {
    xray::accept("c", "f", "r");
    Watched(input.0 + 1)
}

#[xray::step]
async fn watched_async(input: Watched) -> Result<Watched, String> {
    Ok(Watched(input.0 * 2))
}

#[test]
fn steps_serialize_nothing_and_record_nothing_when_xray_is_not_initialised() {
    assert_eq!(watched(Watched(1)).0, 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(watched_async(Watched(4))).unwrap().0, 8);
    assert_eq!(
        xray::execution("nothing")
            .metadata("k", &Watched(0))
            .run(|| watched(Watched(5)).0),
        6
    );
    assert_eq!(
        SERIALIZED.load(Ordering::SeqCst),
        0,
        "a value was serialized without X-Ray"
    );
    assert_eq!(xray::stats(), xray::Stats::default());
    assert_eq!(xray::current_execution_id(), None);
}
