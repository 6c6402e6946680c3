//! Secrets in free text never reach the outbox: `#[tracing::instrument]`
//! arguments recorded through `Debug`, event messages and string fields,
//! error chains, panic messages, decision reasons, `xray::reason` text,
//! secret enum variants. A real program, a real outbox, searched byte by
//! byte (file and WAL) for every secret.

mod support;

use serde::Serialize;
use support::{capture, execution, outbox, raw_bytes, step};

#[derive(Debug)]
#[allow(dead_code)]
struct Creds {
    user: String,
    password: String,
}

#[tracing::instrument]
fn login(c: &Creds) -> bool {
    tracing::info!("connecting as {} with password={}", c.user, "S3CR3T-EVENT");
    tracing::info!(header = "Bearer S3CR3TeyJhbGciOiJIUzI1NiJ9", "sent");
    true
}

#[derive(Debug, thiserror::Error)]
#[error("login refused")]
struct Refused {
    #[source]
    cause: std::io::Error,
}

#[xray::step]
fn authenticate(user: &str) -> Result<(), Refused> {
    let _ = user;
    Err(Refused {
        cause: std::io::Error::other("server said: token=S3CR3T-CHAIN rejected"),
    })
}

#[xray::step]
fn decide() -> u32 {
    xray::reject("c1", "auth", "Authorization: Bearer S3CR3T-REASON-1");
    xray::reason("fell back, password: S3CR3T-REASON-2");
    1
}

#[derive(Serialize)]
enum Key {
    ApiKey(String),
}

#[xray::step]
fn with_key(key: Key) -> usize {
    let _ = key;
    0
}

#[xray::step]
fn explode() {
    panic!("cannot reach postgres://app:S3CR3T-PANIC@db/x");
}

#[test]
fn no_secret_in_free_text_reaches_the_outbox() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        xray::execution("secrets").run(|| {
            let creds = Creds {
                user: "ann".into(),
                password: "S3CR3T-DEBUG".into(),
            };
            assert!(login(&creds));
            assert!(authenticate("ann").is_err());
            decide();
            with_key(Key::ApiKey("S3CR3T-VARIANT".into()));
            let _ = std::panic::catch_unwind(explode);
        })
    });
    let bytes = raw_bytes(&path);
    for secret in [
        "S3CR3T-DEBUG",
        "S3CR3T-EVENT",
        "S3CR3TeyJ",
        "S3CR3T-CHAIN",
        "S3CR3T-REASON-1",
        "S3CR3T-REASON-2",
        "S3CR3T-VARIANT",
        "S3CR3T-PANIC",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} reached the outbox"
        );
    }
    // What is around the secrets is kept, so the trace still explains.
    let l = step(&path, "login");
    let attributes = l.attributes.unwrap();
    assert_eq!(
        attributes["c"],
        serde_json::json!("Creds { user: \"ann\", password: \"[redacted]\" }")
    );
    let a = step(&path, "authenticate");
    assert_eq!(
        a.error.as_deref(),
        Some("login refused\ncaused by: server said: token=[redacted] rejected")
    );
    let e = execution(&path, "secrets");
    assert_eq!(e.status, "error");
    let x = step(&path, "explode");
    assert_eq!(
        x.error.as_deref(),
        Some("cannot reach postgres://app:[redacted]@db/x")
    );
    let k = step(&path, "with_key");
    assert_eq!(
        k.input.unwrap()["key"],
        serde_json::json!({"ApiKey": "[redacted]"})
    );
}
