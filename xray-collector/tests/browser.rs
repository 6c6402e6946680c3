//! The web UI in a real headless Chromium, against the real `serve`
//! binary over a real embedded store: `tests/browser/run.mjs` (Playwright)
//! does what a person does — logs in, filters the list, opens an
//! execution, a step and its decisions, follows a candidate, searches,
//! opens stats and a 100 000-step execution — and checks that captured
//! HTML never runs. Screenshots of each page go to
//! `target/screenshots/`.
//!
//! Needs Node and npm (the test runs `npm ci` in `tests/browser` when
//! Playwright is missing) and Chromium (`/usr/bin/chromium`
//! or `XRAY_CHROMIUM`); `.ci/run` installs them. Without them the test
//! fails and says what is missing.
//!
//! `XRAY_BROWSER_MEASURE=1` also seeds 1 000- and 10 000-step executions
//! and prints API times and first-paint times for 1 k / 10 k / 100 k steps
//! (the figures in BENCHMARKS.md).

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;
use uuid::Uuid;
use xray_collector::backend::{AnyStore, Migrations, QueryStore, Store};
use xray_collector::model::{Decision, ShipRecord};

use support::big;
use support::records::{decision, execution, id, step, usage, MS, T0};

const TOKEN: &str = "browser-test-token";
/// Steps of the large execution every run opens.
const BIG_STEPS: usize = 100_000;

/// The serve process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_person_reads_executions_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let chromium = chromium();
    let node = which("node").expect(
        "the browser test needs Node (`apt-get install nodejs npm`, then `npm ci` in tests/browser)",
    );
    install_playwright(&root.join("tests/browser"));
    let measure = std::env::var_os("XRAY_BROWSER_MEASURE").is_some();

    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("xray.db");
    let seeded = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(seed(&store_path, measure));

    let server = serve(&store_path);
    let shots = root.join("target/screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut config = seeded.clone();
    config["base_url"] = json!(format!("http://{}", server.1));
    config["token"] = json!(TOKEN);
    config["screenshots"] = json!(shots);
    config["chromium"] = json!(chromium);
    let config_path = dir.path().join("browser.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    let out = Command::new(node)
        .current_dir(&root)
        .arg("tests/browser/run.mjs")
        .arg(&config_path)
        .output()
        .expect("run node");
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser checks failed (screenshots in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
    for name in [
        "login",
        "list",
        "execution",
        "step-why",
        "decisions",
        "why",
        "why-xss",
        "search-hit",
        "stats",
        "xss",
        "big",
    ] {
        let found = std::fs::read_dir(&shots)
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!("-{name}.png"))
            });
        assert!(found, "no screenshot of {name} in {}", shots.display());
    }
}

/// `npm ci` in `tests/browser` unless Playwright is there already (it comes
/// from the npm registry; no browser is downloaded).
fn install_playwright(dir: &Path) {
    if dir.join("node_modules/playwright-core").is_dir() {
        return;
    }
    let npm = which("npm").expect(
        "the browser test needs npm to install Playwright (`apt-get install npm`, then `npm ci` in tests/browser)",
    );
    let status = Command::new(npm)
        .current_dir(dir)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .status()
        .expect("run npm ci");
    assert!(status.success(), "`npm ci` in {} failed", dir.display());
}

/// Chromium: `XRAY_CHROMIUM`, else `chromium` or `chromium-browser` on the path.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("XRAY_CHROMIUM") {
        return PathBuf::from(path);
    }
    which("chromium")
        .or_else(|| which("chromium-browser"))
        .expect(
            "the browser test needs Chromium (`apt-get install chromium`, or set XRAY_CHROMIUM)",
        )
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Starts `serve` on a free port; the server and its address.
fn serve(store: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xray-collector"))
        .env_remove("DATABASE_URL")
        .env_remove("XRAY_READ_TOKEN")
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--read-token",
            TOKEN,
            "--store",
        ])
        .arg(store)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start serve");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let server = Server(child);
    let address = first
        .trim()
        .strip_prefix("serving http://")
        .unwrap_or_else(|| panic!("serve prints its address first: {first:?}"))
        .to_owned();
    (server, address)
}

/// Fills the store; what the browser script needs to know about it.
async fn seed(path: &Path, measure: bool) -> serde_json::Value {
    let store = AnyStore::sqlite(path).await.unwrap();
    store.migrate_up().await.unwrap();
    // As `run` does: the LLM calls are priced when written.
    store
        .set_model_prices(&xray_collector::cost::built_in())
        .await
        .unwrap();

    let small = id(0x5111);
    store.write(&competitor_selection(small)).await.unwrap();
    // Other executions, so that the list has something to filter out.
    let failed = id(0x5112);
    store
        .write(&[
            execution(failed)
                .name("pick_competitor")
                .status("error")
                .at(T0 - 3_600_000_000)
                .record(),
            step(id(0x5113), failed)
                .name("search_products")
                .kind("search")
                .at(T0 - 3_600_000_000 + MS)
                .failed("search backend timed out after 5 s")
                .record(),
        ])
        .await
        .unwrap();
    let running = id(0x5114);
    store
        .write(&[execution(running)
            .name("recommend_movies")
            .running()
            .at(T0 + 60_000_000)
            .record()])
        .await
        .unwrap();

    let xss = id(0x5115);
    let xss_step = id(0x5116);
    let hostile = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2;alert(1)\">";
    store
        .write(&[
            execution(xss).name("render_review").record(),
            step(xss_step, xss)
                .name("summarise_review")
                .kind("llm")
                .input(json!({"review": hostile, "html": format!("<b>bold</b>{hostile}")}))
                .output(json!(hostile))
                .attributes(json!({"note": hostile}))
                .decisions(vec![decision(hostile, Some(false), hostile)])
                .failed(hostile)
                .record(),
        ])
        .await
        .unwrap();

    let big_id = write_big(&store, BIG_STEPS).await;
    let mut measure_list = Vec::new();
    if measure {
        for steps in [1_000, 10_000] {
            let id = write_big(&store, steps).await;
            measure_list
                .push(json!({"label": format!("{steps}"), "execution_id": id, "steps": steps}));
        }
        measure_list.push(json!({"label": "100000", "execution_id": big_id, "steps": BIG_STEPS}));
    }
    // As `run --once` does: what was written is found by search, and the
    // steps with decisions or a failure are explained.
    xray_collector::indexing::catch_up(&store).await.unwrap();
    xray_collector::reasoning::catch_up(&store).await.unwrap();
    let why = store
        .step_details(small, &[id(0x5123)])
        .await
        .unwrap()
        .pop()
        .and_then(|s| s.reasoning)
        .expect("the filter step is explained");
    assert!(why.starts_with("5 candidates: 3 kept"), "{why}");
    // An LLM reasoner that gave up on the hostile step, with a hostile
    // error: the job's line shows it as text.
    let conn = rusqlite::Connection::open(path).unwrap();
    let failed_jobs = conn
        .execute(
            "UPDATE reasoning_jobs SET status = 'failed', method = 'llm', attempts = 3, error = ?1
             WHERE step_id = ?2",
            rusqlite::params![format!("HTTP 500: {hostile}"), xss_step.to_string()],
        )
        .unwrap();
    assert_eq!(failed_jobs, 1);
    // The filter step explained by an LLM reasoner after its rules (the
    // model, tokens and cost its job keeps are shown beside the text).
    let why = "B07XJ8C8F5 was dropped: 79.99 is over the budget of 50.";
    let by_model = conn
        .execute(
            "UPDATE reasoning_jobs SET method = 'llm', model = 'gpt-4o-mini', prompt_tokens = 1200,
                 completion_tokens = 40, cost_usd = 0.000204 WHERE step_id = ?1",
            [id(0x5123).to_string()],
        )
        .unwrap();
    assert_eq!(by_model, 1);
    conn.execute(
        "UPDATE steps SET reasoning = ?2 WHERE id = ?1",
        rusqlite::params![id(0x5123).to_string(), why],
    )
    .unwrap();
    json!({
        "small": {
            "execution_id": small,
            "name": "pick_competitor",
            "project": "shop",
            "decision_step_id": id(0x5123),
            "candidate": "B07XJ8C8F5",
            "search_word": "bottle",
            "stats_name": "filter_candidates",
            "why": why,
            // gpt-4o-mini (212 × 0.15 + 24 × 0.60) / 1e6 = 0.0000462, gpt-4o
            // (1 204 × 2.50 + 96 × 10.00) / 1e6 = 0.00397: together $0.0040.
            "cost": "$0.0040",
        },
        "xss": {"execution_id": xss, "step_id": xss_step, "candidate": hostile},
        "big": {"execution_id": big_id, "steps": BIG_STEPS},
        "measure": measure_list,
    })
}

async fn write_big(store: &AnyStore, steps: usize) -> Uuid {
    let id = support::records::new_id();
    let records: Vec<ShipRecord> = big::records(id, steps).collect();
    for chunk in records.chunks(5_000) {
        store.write(chunk).await.unwrap();
    }
    id
}

/// The example pipeline's shape: keywords from an LLM, a search, a price
/// and rating filter with decisions, a ranking with scores.
fn competitor_selection(execution_id: Uuid) -> Vec<ShipRecord> {
    let at = |ms: i64| T0 + ms * MS;
    let product = |asin: &str, title: &str, price: f64, rating: f64| json!({"asin": asin, "title": title, "price": price, "rating": rating});
    let candidates = json!([
        product("B07XJ8C8F5", "Steel water bottle, 32oz", 79.99, 4.6),
        product("B08QK2R1TM", "Insulated sports bottle", 19.49, 4.3),
        product("B09H7ZL6WQ", "Hiking flask, 1L", 31.0, 4.7),
        product("B0C1Y2X3Z4", "Kids bottle, 12oz", 9.99, 3.2),
        product("B0D4E5F6G7", "Glass bottle with sleeve", 24.5, 4.1),
    ]);
    let reject = |c: &str, filter: &str, reason: &str| Decision {
        candidate_id: c.into(),
        accepted: Some(false),
        filter: Some(filter.into()),
        reason: Some(reason.into()),
        score: None,
    };
    let accept = |c: &str, filter: &str, score: Option<f64>| Decision {
        candidate_id: c.into(),
        accepted: Some(true),
        filter: Some(filter.into()),
        reason: None,
        score,
    };
    vec![
        execution(execution_id)
            .name("pick_competitor")
            .metadata(Some(
                json!({"seller_asin": "B0SELLER01", "title": "Steel water bottle"}),
            ))
            .record(),
        step(id(0x5121), execution_id)
            .name("generate_keywords")
            .kind("llm")
            .at(at(1))
            .took(820 * MS)
            .input(json!({"title": "Stainless steel insulated water bottle, 32oz"}))
            .output(json!({"keywords": ["water bottle", "insulated", "steel"]}))
            .usage(vec![usage("gpt-4o-mini", 212, 24)])
            .record(),
        step(id(0x5122), execution_id)
            .name("search_products")
            .kind("search")
            .at(at(830))
            .took(310 * MS)
            .input(json!({"keywords": ["water bottle", "insulated", "steel"], "limit": 5}))
            .output(json!({"candidates": candidates}))
            .record(),
        step(id(0x5123), execution_id)
            .name("filter_candidates")
            .kind("filter")
            .at(at(1150))
            .took(4 * MS)
            .input(json!({"candidates": candidates, "max_price": 50.0, "min_rating": 4.0}))
            .output(json!({"kept": ["B08QK2R1TM", "B09H7ZL6WQ", "B0D4E5F6G7"]}))
            .attributes(json!({"max_price": 50.0, "min_rating": 4.0}))
            .decisions(vec![
                reject("B07XJ8C8F5", "price", "79.99 > 50"),
                accept("B08QK2R1TM", "price", None),
                accept("B09H7ZL6WQ", "price", None),
                accept("B0C1Y2X3Z4", "price", None),
                accept("B0D4E5F6G7", "price", None),
                accept("B08QK2R1TM", "rating", None),
                accept("B09H7ZL6WQ", "rating", None),
                reject("B0C1Y2X3Z4", "rating", "3.2 < 4.0"),
                accept("B0D4E5F6G7", "rating", None),
            ])
            .record(),
        step(id(0x5124), execution_id)
            .parent(id(0x5123))
            .name("check_rating")
            .at(at(1151))
            .took(MS)
            .record(),
        step(id(0x5125), execution_id)
            .name("rank_candidates")
            .kind("rank")
            .at(at(1160))
            .took(640 * MS)
            .input(json!({"kept": ["B08QK2R1TM", "B09H7ZL6WQ", "B0D4E5F6G7"]}))
            .output(json!({"picked": "B08QK2R1TM", "score": 0.91}))
            .decisions(vec![
                accept("B08QK2R1TM", "rank", Some(0.91)),
                accept("B09H7ZL6WQ", "rank", Some(0.84)),
                accept("B0D4E5F6G7", "rank", Some(0.62)),
            ])
            .usage(vec![usage("gpt-4o", 1_204, 96)])
            .record(),
    ]
}
