//! Hardening, end to end, on both backends: a program written from the
//! contract alone feeds X-Ray every hostile value it can (secrets in every
//! free-text form, failing `Display`/`Debug` impls, a cyclic error chain,
//! NUL characters, an over-long candidate id, a token count past `int4`);
//! the outbox is then doctored with a poison row, a NUL row and a 40 MB row;
//! the real binary ships it all with `run --once`. Nothing is lost (every
//! row is stored, flagged, or dead-lettered with its reason), the collector
//! exits 0, and no secret is found in a dump of the database or in the
//! outbox's bytes.

#[macro_use]
mod support;

use std::fmt;
use std::path::Path;
use std::process::Command;

use support::target::Target;
use tracing_subscriber::layer::SubscriberExt;

/// Every secret the program records; none may be stored anywhere.
const SECRETS: [&str; 11] = [
    "S3CR3T-ARG",
    "S3CR3T-DEBUG",
    "S3CR3T-EVENT",
    "S3CR3TbearerTOKEN",
    "S3CR3T-CHAIN",
    "S3CR3T-REASON",
    "S3CR3T-WHY",
    "S3CR3T-VARIANT",
    "S3CR3T-PANIC",
    "S3CR3T-URL",
    "S3CR3T-META",
];

#[derive(Debug)]
#[allow(dead_code)]
struct Creds {
    user: String,
    password: String,
}

#[derive(serde::Serialize)]
enum Key {
    ApiKey(String),
}

/// A `Display`/`Debug` impl that fails on its own.
struct Failing;
impl fmt::Display for Failing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("half")?;
        Err(fmt::Error)
    }
}
impl fmt::Debug for Failing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An error that is its own cause, forever.
#[derive(Debug)]
struct Cycle;
impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("token=S3CR3T-CHAIN in a loop")
    }
}
impl std::error::Error for Cycle {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        static ME: Cycle = Cycle;
        Some(&ME)
    }
}

/// What `#[tracing::instrument]` does: a span with the argument recorded
/// through `Debug`.
fn login(c: &Creds) -> bool {
    let _span = tracing::info_span!("login", c = ?c).entered();
    tracing::info!("connecting with password={}", "S3CR3T-EVENT");
    tracing::info!(header = "Bearer S3CR3TbearerTOKEN", "sent");
    true
}

#[xray::step]
fn connect(api_key: &str, dsn: &str) -> Result<u32, Cycle> {
    let _ = (api_key, dsn);
    Err(Cycle)
}

#[xray::step]
fn decide(with_nul: &str) -> usize {
    xray::reject(
        "B07X\0nul",
        "price\0",
        "79.99 > 50, Authorization: Bearer S3CR3T-REASON",
    );
    xray::reject("x".repeat(5000), "id", "long candidate id");
    xray::reject(Failing, Failing, Failing);
    xray::reason("retried with password: S3CR3T-WHY");
    xray::reason("fell back to https://u:S3CR3T-URL@mirror.example.com/x");
    xray::llm_usage("model\0x", u64::MAX, u64::MAX);
    with_nul.len()
}

#[xray::step]
fn with_key(key: Key) -> usize {
    let _ = key;
    1
}

#[xray::step]
fn explode() {
    panic!("cannot reach postgres://app:S3CR3T-PANIC@db/x");
}

/// Steps the program records.
const PROGRAM_STEPS: i64 = 5;

fn record_hostile_program(outbox: &Path) {
    let (layer, guard) = xray::Config::default().outbox(outbox).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        xray::execution("hostile")
            .metadata("db_password", "S3CR3T-META")
            .run(|| {
                let creds = Creds {
                    user: "ann".into(),
                    password: "S3CR3T-DEBUG".into(),
                };
                assert!(login(&creds));
                assert!(connect("S3CR3T-ARG", "host=db").is_err());
                assert_eq!(decide("a\0b"), 3);
                assert_eq!(with_key(Key::ApiKey("S3CR3T-VARIANT".into())), 1);
                assert!(std::panic::catch_unwind(explode).is_err());
            });
    });
    guard.flush().unwrap();
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn outbox_bytes(outbox: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(outbox).unwrap();
    let mut wal = outbox.as_os_str().to_owned();
    wal.push("-wal");
    bytes.extend(std::fs::read(std::path::PathBuf::from(wal)).unwrap_or_default());
    bytes
}

fn hostile_values_ship_and_no_secret_is_stored(target: Target) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    record_hostile_program(&outbox);
    for secret in SECRETS {
        assert!(
            !contains(&outbox_bytes(&outbox), secret),
            "{secret} reached the outbox"
        );
    }

    // Doctored: a row this backend refuses, a NUL in raw text, 40 MB.
    target.append_poison_row(&outbox);
    support::outbox::append_raw_step(&outbox, "nul\0row", "ok", "{\"x\":\"a\\u0000b\"}");
    let big = format!("{{\"blob\":\"{}\"}}", "y".repeat(40 * 1024 * 1024));
    support::outbox::append_raw_step(&outbox, "big_row", "ok", &big);
    drop(big);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("XRAY_COLLECTOR_FAULT")
        .args(["run", "--once", "--outbox"])
        .arg(&outbox);
    target.configure(&mut cmd);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run --once failed: {stderr}");
    for secret in SECRETS {
        assert!(!stderr.contains(secret), "{secret} in the collector's log");
    }

    // Nothing lost: every row left the outbox into a table.
    assert_eq!(support::outbox::outbox_rows(&outbox), 0, "{stderr}");
    let counts = target.counts();
    let reasons = target.dead_letter_reasons();
    assert!(
        counts.dead_letters >= 1,
        "the poison row is dead-lettered: {counts:?}"
    );
    assert_eq!(
        counts.steps + counts.dead_letters,
        PROGRAM_STEPS + 3,
        "every step row is stored or dead-lettered: {counts:?} {reasons:?}"
    );
    // The program's steps and the NUL row are stored, not dead-lettered.
    assert!(counts.steps > PROGRAM_STEPS, "{counts:?} {reasons:?}");
    assert_eq!(counts.decisions, 3, "{counts:?}");
    assert_eq!(counts.llm_usage, 1, "{counts:?}");

    let dump = target.dump();
    assert!(contains(&dump, "decide"), "the dump holds the steps");
    for secret in SECRETS {
        assert!(!contains(&dump, secret), "{secret} is in the database");
    }
}
on_both_backends!(hostile_program, hostile_values_ship_and_no_secret_is_stored);
