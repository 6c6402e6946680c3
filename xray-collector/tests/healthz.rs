//! What `/healthz` and the daemon's log tell about a backend that does not
//! answer, against a real PostgreSQL that refuses the login and then is
//! down: the URL with its password masked (host, port, user, database) and
//! the error text — never the password, whether it came from
//! `DATABASE_URL` or `--database-url`.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::outbox::{http_get, write_steps};
use support::pg::LocalCluster;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `run --listen` on a fresh outbox, the URL in the environment or as a flag.
fn daemon(url: &str, as_flag: bool, addr: &str, dir: &std::path::Path) -> Child {
    let outbox = dir.join("outbox.db");
    write_steps(&outbox, 0, 1);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("XRAY_COLLECTOR_FAULT")
        .env_remove("DATABASE_URL")
        .args(["run", "--listen", addr, "--outbox"])
        .arg(&outbox)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if as_flag {
        cmd.args(["--database-url", url]);
    } else {
        cmd.env("DATABASE_URL", url);
    }
    cmd.spawn().unwrap()
}

/// `/healthz` once it answers 503 (the first connection attempt failed).
fn degraded(addr: &str, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the daemon exited ({status}) instead of reporting degraded");
        }
        if let Ok(stream) = std::net::TcpStream::connect(addr) {
            drop(stream);
            let health = http_get(addr, "/healthz");
            if health.starts_with("HTTP/1.1 503") {
                return health;
            }
        }
        assert!(Instant::now() < deadline, "/healthz never said degraded");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(child: Child) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn healthz_names_the_server_and_user_and_never_the_password() {
    let cluster = LocalCluster::start_new();
    let port = cluster.port();
    let dir = tempfile::tempdir().unwrap();
    let masked = format!("cannot use postgres://postgres:***@127.0.0.1:{port}/postgres: ");

    // A refused login is not waited out (retrying cannot fix it): the
    // daemon ends with one line saying so, before /healthz matters.
    let wrong = "Wr0ng-S3cret";
    for as_flag in [false, true] {
        let url = format!("postgres://postgres:{wrong}@127.0.0.1:{port}/postgres");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = daemon(&url, as_flag, &addr, dir.path());
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{log}");
        assert!(log.contains(&masked), "{log}");
        assert!(
            log.contains("password authentication failed for user"),
            "{log}"
        );
        assert!(!log.contains(wrong), "{log}");
    }

    // A server that is down is waited out, and /healthz says why.
    cluster.stop();
    for as_flag in [false, true] {
        let password = cluster.password();
        let url = format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut child = daemon(&url, as_flag, &addr, dir.path());
        let health = degraded(&addr, &mut child);
        let log = stop(child);
        let body = health.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert!(
            body.starts_with(&format!("degraded: {masked}backend unavailable: ")),
            "{body}"
        );
        assert!(!health.contains(password), "{health}");
        assert!(!log.contains(password), "{log}");
    }
}
