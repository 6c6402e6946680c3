//! A real PostgreSQL for tests, thrown away afterwards.
//!
//! - With `XRAY_TEST_DATABASE_URL` set (a URL to a server where the user
//!   may `CREATE DATABASE`), tests use that server: each test gets a fresh
//!   database `t_<random>`, dropped when the test's [`TestDb`] is dropped.
//! - Otherwise one cluster per test binary is created from the newest
//!   `/usr/lib/postgresql/*/bin` ([`server`]): `initdb` into a temp dir
//!   (owned by `postgres` and run via `runuser` when the tests run as
//!   root, since PostgreSQL refuses to run as root), started with
//!   `pg_ctl` on a free port of 127.0.0.1 with durability switched off
//!   for speed. Host logins need a password (scram), so tests see real
//!   password handling; when `openssl` is available the server also
//!   offers TLS with a self-signed certificate. Each test still gets its
//!   own database, created through one admin session per test binary.
//! - No PostgreSQL at all: the test panics saying how to install it. It
//!   never passes silently.
//!
//! # Stopping the cluster when the tests end
//!
//! A cluster kept in a `static` is never dropped, and Rust has no
//! `atexit`. So each cluster gets a **watchdog**: a small `sh` loop,
//! started as a child of the test process, that polls the test process
//! (`kill -0 <pid>` every second) and, once it is gone — however it
//! ended, panics and aborts included — stops PostgreSQL
//! (`pg_ctl stop -m immediate`) and deletes the temp dir. A cluster made
//! with [`LocalCluster::start_new`] (for tests that stop and restart the
//! server, see [`LocalCluster::stop`] / [`LocalCluster::start`]) is also
//! stopped and deleted when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// The environment variable naming an existing server to use instead of a
/// throw-away cluster.
pub const DATABASE_URL_VAR: &str = "XRAY_TEST_DATABASE_URL";

/// The server the tests of this binary share.
pub struct TestServer {
    admin_url: String,
    cluster: Option<LocalCluster>,
    admin: AdminSession,
}

/// The one session creating the tests' databases, on a runtime of its own:
/// each test has its own runtime, which a connection cannot outlive, and a
/// login per database would cost ~50 ms (SCRAM in a debug build).
struct AdminSession {
    runtime: tokio::runtime::Runtime,
    client: Arc<tokio::sync::OnceCell<Client>>,
}

impl AdminSession {
    fn new() -> AdminSession {
        AdminSession {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("start the admin session's runtime"),
            client: Arc::default(),
        }
    }
}

/// The shared server: `XRAY_TEST_DATABASE_URL`, or a cluster started on
/// first use.
pub fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => TestServer {
            admin_url: url,
            cluster: None,
            admin: AdminSession::new(),
        },
        _ => {
            let cluster = LocalCluster::start_new();
            TestServer {
                admin_url: cluster.admin_url(),
                cluster: Some(cluster),
                admin: AdminSession::new(),
            }
        }
    })
}

/// A fresh, empty database on the shared server.
pub async fn fresh_database() -> TestDb {
    server().fresh_database().await
}

impl TestServer {
    /// A URL with rights to create databases (database `postgres`).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The throw-away cluster, when this binary started one (`None` with
    /// `XRAY_TEST_DATABASE_URL`).
    pub fn cluster(&self) -> Option<&LocalCluster> {
        self.cluster.as_ref()
    }

    /// A fresh, empty database on this server.
    pub async fn fresh_database(&self) -> TestDb {
        let external = self.cluster.is_none();
        let (admin_url, client) = (self.admin_url.clone(), Arc::clone(&self.admin.client));
        self.admin
            .runtime
            .spawn(async move {
                let admin = client.get_or_init(|| connect_plain(&admin_url)).await;
                create_database(admin, &admin_url, external).await
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

/// A database made for one test.
pub struct TestDb {
    /// A URL to it, with the password.
    pub url: String,
    /// Its name.
    pub name: String,
    /// Where to drop it from when the test ends (external servers only:
    /// a throw-away cluster goes away whole).
    drop_from: Option<String>,
}

impl TestDb {
    /// A plain (no TLS) connection to it, for checking what the store did.
    pub async fn client(&self) -> Client {
        connect_plain(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin) = self.drop_from.take() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on;
        // a thread with its own small runtime can.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Connects without TLS and runs the connection on the current runtime.
pub async fn connect_plain(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test database: {e:?}"));
    tokio::spawn(conn);
    client
}

/// The first column of every row `sql` returns.
pub async fn column<T>(client: &Client, sql: &str) -> Vec<T>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let rows = client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    rows.iter().map(|r| r.get(0)).collect()
}

async fn create_database(admin: &Client, admin_url: &str, external: bool) -> TestDb {
    let name = format!("t_{}", random_word(12));
    // CREATE DATABASE may collide with another test copying template1 at
    // the same moment; that is worth a few retries.
    let mut tries = 0;
    loop {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
        {
            Ok(()) => break,
            Err(e) if tries < 20 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50 * tries)).await;
            }
            Err(e) => panic!("cannot create test database {name}: {e:?}"),
        }
    }
    TestDb {
        url: with_dbname(admin_url, &name),
        name,
        drop_from: external.then(|| admin_url.to_string()),
    }
}

/// `url` pointing at database `db` instead.
pub fn with_dbname(url: &str, db: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // Key-value form: a later key wins.
        return format!("{url} dbname={db}");
    };
    let host_start = url[scheme_end..]
        .find('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    let rest = &url[host_start..];
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => {
            let path_start = host_start + i;
            let path_end = url[path_start..]
                .find('?')
                .map_or(url.len(), |j| path_start + j);
            format!("{}/{db}{}", &url[..path_start], &url[path_end..])
        }
        Some(i) => format!("{}/{db}{}", &url[..host_start + i], &url[host_start + i..]),
        None => format!("{url}/{db}"),
    }
}

fn random_word(len: usize) -> String {
    (0..len).map(|_| fastrand::lowercase()).collect()
}

/// A PostgreSQL cluster in a temp dir, run by this test binary.
pub struct LocalCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    password: String,
    as_postgres: bool,
    tls: bool,
    /// Serialises stop/start.
    control: Mutex<()>,
}

impl LocalCluster {
    /// Creates and starts a new cluster (with its watchdog). Panics with
    /// installation advice when no PostgreSQL binaries are found.
    pub fn start_new() -> LocalCluster {
        let bin = find_bin_dir();
        let as_postgres = running_as_root();
        let dir =
            std::env::temp_dir().join(format!("xray-pg-{}-{}", std::process::id(), random_word(8)));
        std::fs::create_dir_all(&dir).expect("create the cluster's temp dir");
        let password = random_word(20);
        std::fs::write(dir.join("pwfile"), format!("{password}\n")).expect("write pwfile");
        let tls = make_certificate(&dir);
        if as_postgres {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir),
                "chown the cluster dir",
            );
        }
        let mut cluster = LocalCluster {
            bin,
            dir,
            port: 0,
            password,
            as_postgres,
            tls,
            control: Mutex::new(()),
        };
        cluster.spawn_watchdog();
        let mut initdb = cluster.command("initdb");
        initdb
            .arg("-D")
            .arg(cluster.data())
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ])
            .args(["-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", cluster.dir.join("pwfile").display()));
        run(&mut initdb, "initdb");
        // A port free now may be taken before the server binds it: try a few.
        for attempt in 0.. {
            cluster.port = free_port();
            match cluster.try_start() {
                Ok(()) => break,
                Err(log) if attempt >= 4 => panic!("cannot start the test PostgreSQL:\n{log}"),
                Err(_) => {}
            }
        }
        cluster
    }

    /// Stops the server (fast shutdown: open connections are cut), keeping
    /// its data and port.
    pub fn stop(&self) {
        let _g = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "fast", "stop"]);
        run(&mut stop, "pg_ctl stop");
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port
    /// with the same data.
    pub fn start(&self) {
        let _g = self.control.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(log) = self.try_start() {
            panic!("cannot restart the test PostgreSQL:\n{log}");
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of user `postgres` over TCP.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether the server offers TLS (with a self-signed certificate).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// A URL to its `postgres` database as user `postgres`.
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// A fresh, empty database on this cluster.
    pub async fn fresh_database(&self) -> TestDb {
        let admin_url = self.admin_url();
        create_database(&connect_plain(&admin_url).await, &admin_url, false).await
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn try_start(&self) -> Result<(), String> {
        let log = self.dir.join("postgres.log");
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c synchronous_commit=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                self.dir.display()
            ));
        }
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        let out = start
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start: {}\n{}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    /// A command running PostgreSQL's `tool`, as user `postgres` when we are root.
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // `postgres` may not be allowed into the test's working directory.
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    fn spawn_watchdog(&self) {
        let as_pg = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {as_pg}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        // Deliberately never waited for: it must outlive this process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster's watchdog");
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"]);
        let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with the tools we need.
fn find_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|t| bin.join(t).exists())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "these tests need PostgreSQL and found none: install it \
             (`apt-get install -y postgresql`, giving /usr/lib/postgresql/<version>/bin), \
             or set {DATABASE_URL_VAR} to a server where the user may CREATE DATABASE"
        ),
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A self-signed certificate for the server, if `openssl` is installed.
fn make_certificate(dir: &Path) -> bool {
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        );
    }
    ok
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
