//! A real OTLP receiver for tests: Arize Phoenix (from PyPI), an
//! LLM-observability server that takes OTLP/HTTP protobuf on `/v1/traces`
//! and answers what it stored over a REST API — and, in front of it when a
//! test needs a receiver that refuses, nginx (from Debian).
//!
//! - Phoenix: `XRAY_TEST_PHOENIX` (the `phoenix` executable), else
//!   `phoenix` on the `PATH`, else `/opt/xray-phoenix/bin/phoenix` (where
//!   `.ci/run` installs it: `python3 -m venv /opt/xray-phoenix &&
//!   /opt/xray-phoenix/bin/pip install arize-phoenix`). Each [`Phoenix`]
//!   is a server of its own on free ports with its data in a temp dir,
//!   stopped when dropped and, like the PostgreSQL clusters, by a watchdog
//!   when the test process ends however it ends.
//! - nginx: `/usr/sbin/nginx` (`apt-get install nginx-light`), started by
//!   [`Nginx::start`] with the locations a test gives.
//!
//! Missing either, the test panics saying how to install it: it never
//! passes silently.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where `.ci/run` installs Phoenix.
pub const PHOENIX_VENV: &str = "/opt/xray-phoenix";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn phoenix_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("XRAY_TEST_PHOENIX") {
        return PathBuf::from(path);
    }
    if let Ok(found) = Command::new("sh")
        .args(["-c", "command -v phoenix"])
        .output()
    {
        let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        if found.status.success() && !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    let venv = Path::new(PHOENIX_VENV).join("bin/phoenix");
    assert!(
        venv.exists(),
        "no OTLP receiver for the OTLP tests: install Arize Phoenix with \
         `python3 -m venv {PHOENIX_VENV} && {PHOENIX_VENV}/bin/pip install arize-phoenix` \
         (as .ci/run does), or set XRAY_TEST_PHOENIX to its `phoenix` executable"
    );
    venv
}

/// Kills `pid` once this test process is gone (a `static` or a panic never
/// runs `Drop`).
fn watchdog(pid: u32, dir: &Path) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill {pid} 2>/dev/null; sleep 1; \
         kill -9 {pid} 2>/dev/null; rm -rf '{dir}'",
        me = std::process::id(),
        dir = dir.display()
    );
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the watchdog");
}

/// A Phoenix server of this test's own.
pub struct Phoenix {
    dir: tempfile::TempDir,
    port: u16,
    grpc_port: u16,
    child: Option<Child>,
}

impl Phoenix {
    /// Starts a fresh server and waits until it answers.
    pub fn start() -> Phoenix {
        let mut phoenix = Phoenix {
            dir: tempfile::tempdir().expect("a temp dir"),
            port: free_port(),
            grpc_port: free_port(),
            child: None,
        };
        phoenix.start_again();
        phoenix
    }

    /// The OTLP/HTTP endpoint (`…/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// The address, `127.0.0.1:port` (for a proxy in front).
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Until the port is free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.address()).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same port, with the same data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("phoenix.log")).expect("a log file");
        let child = Command::new(phoenix_bin())
            .arg("serve")
            .env("PHOENIX_WORKING_DIR", self.dir.path())
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", self.port.to_string())
            .env("PHOENIX_GRPC_PORT", self.grpc_port.to_string())
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .env("DO_NOT_TRACK", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("start phoenix");
        watchdog(child.id(), self.dir.path());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if get_text(&format!("http://{}/healthz", self.address())).is_ok() {
                return;
            }
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("phoenix exited with {status}: {}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "phoenix did not answer within 120 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("phoenix.log")).unwrap_or_default()
    }

    /// Every span Phoenix stored for `project` (its REST API, all pages),
    /// oldest first; none when the project does not exist (yet).
    pub fn spans(&self, project: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!(
                "http://{}/v1/projects/{project}/spans?limit=1000&order=asc",
                self.address()
            );
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let Ok(page) = get(&url) else {
                return out;
            };
            let Some(data) = page["data"].as_array() else {
                return out;
            };
            out.extend(data.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return out,
            }
        }
    }

    /// Waits until Phoenix holds at least `n` spans of `project`; returns
    /// them.
    pub fn wait_for_spans(&self, project: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans(project);
            if spans.len() >= n {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "Phoenix holds {} spans of {project}, expected {n}",
                spans.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        self.stop();
    }
}

/// GET `url`, answered JSON (a 2xx).
pub fn get(url: &str) -> Result<Value, String> {
    let text = get_text(url)?;
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

/// GET `url`: the body of a 2xx answer, by reqwest on a runtime of its own.
pub fn get_text(url: &str) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        // Plain HTTP; reqwest still wants a TLS set-up (no process-wide
        // rustls provider is installed).
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        response.text().await.map_err(|e| e.to_string())
    })
}

/// nginx in front of a receiver, with the `location` blocks a test gives
/// (each proxying to `upstream` as it sees fit).
pub struct Nginx {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl Nginx {
    /// Starts nginx on a free port with `locations` (nginx configuration
    /// inside `server { … }`; `UPSTREAM` is replaced by `upstream`).
    pub fn start(upstream: &str, locations: &str) -> Nginx {
        let bin = Path::new("/usr/sbin/nginx");
        assert!(
            bin.exists(),
            "no nginx for the OTLP refusal tests: `apt-get install nginx-light` (as .ci/run does)"
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port();
        let conf = format!(
            "daemon off;
             master_process off;
             worker_processes 1;
             pid {dir}/nginx.pid;
             error_log {dir}/error.log warn;
             events {{ worker_connections 64; }}
             http {{
                 access_log {dir}/access.log;
                 client_body_temp_path {dir}/body;
                 proxy_temp_path {dir}/proxy;
                 fastcgi_temp_path {dir}/fastcgi;
                 uwsgi_temp_path {dir}/uwsgi;
                 scgi_temp_path {dir}/scgi;
                 server {{
                     listen 127.0.0.1:{port};
                     {locations}
                 }}
             }}",
            dir = dir.path().display(),
            locations = locations.replace("UPSTREAM", upstream),
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        watchdog(child.id(), dir.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx { dir, port, child }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The status nginx answered to each request so far (its access log).
    pub fn statuses(&self) -> Vec<u16> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split('"').nth(2)?.split_whitespace().next()?.parse().ok())
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
