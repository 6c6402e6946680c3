//! What a step records: values, options, statuses, decisions, bad values.
//! Each test records on its own thread-local subscriber into its own outbox.

mod support;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::json;
use support::{capture, executions, outbox, step, steps};

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Product {
    asin: String,
    price: f64,
}

fn products() -> Vec<Product> {
    vec![
        Product {
            asin: "B01".into(),
            price: 20.0,
        },
        Product {
            asin: "B07X".into(),
            price: 79.99,
        },
    ]
}

#[xray::step(kind = "filter")]
fn filter_by_price(candidates: &[Product], max_price: f64) -> Vec<Product> {
    let mut kept = Vec::new();
    for c in candidates {
        if c.price > max_price {
            xray::reject(&c.asin, "price", format!("{} > {}", c.price, max_price));
        } else {
            xray::accept(&c.asin, "price", "within budget");
            kept.push(c.clone());
        }
    }
    xray::reason("kept the affordable ones");
    xray::attr("max_price", &max_price);
    kept
}

#[test]
fn step_records_inputs_output_decisions_and_attributes() {
    let (_dir, path) = outbox();
    let (kept, stats) = capture(
        xray::Config::default().outbox(&path).project("shop"),
        || {
            xray::execution("competitor_selection")
                .metadata("seller_asin", "B0SELLER")
                .run(|| filter_by_price(&products(), 50.0))
        },
    );
    assert_eq!(kept, vec![products()[0].clone()]);
    assert_eq!((stats.captured, stats.written, stats.dropped), (1, 1, 0));

    let s = step(&path, "filter_by_price");
    assert_eq!(s.status, "ok");
    assert_eq!(s.kind.as_deref(), Some("filter"));
    assert_eq!(s.project, "shop");
    assert_eq!(s.parent_id, None, "a top-level step has no parent");
    assert_eq!(
        s.input,
        Some(
            json!({"candidates": [{"asin": "B01", "price": 20.0}, {"asin": "B07X", "price": 79.99}], "max_price": 50.0})
        )
    );
    assert_eq!(s.output, Some(json!([{"asin": "B01", "price": 20.0}])));
    assert_eq!(
        s.decisions,
        Some(json!([
            {"candidate_id": "B01", "accepted": true, "filter": "price", "reason": "within budget", "score": null},
            {"candidate_id": "B07X", "accepted": false, "filter": "price", "reason": "79.99 > 50", "score": null},
        ]))
    );
    let attrs = s.attributes.expect("attributes");
    assert_eq!(attrs["max_price"], json!(50.0));
    assert_eq!(attrs["reasons"], json!(["kept the affordable ones"]));
    assert!(s.duration_us.is_some());

    let e = executions(&path);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].name, "competitor_selection");
    assert_eq!(e[0].status, "ok");
    assert_eq!(e[0].metadata, Some(json!({"seller_asin": "B0SELLER"})));
    assert_eq!(s.execution_id, e[0].id);
}

#[xray::step(name = "llm_relevance", kind = "llm", skip(client), redact(api_key))]
fn relevance(client: &Client, api_key: &str, query: &str) -> f32 {
    xray::llm_usage("gpt-4o-mini", 120, 7);
    xray::score(query, 0.75);
    assert!(api_key.starts_with("sk-"));
    client.factor
}

struct Client {
    factor: f32,
}

#[test]
fn name_kind_skip_and_redact_options_apply() {
    let (_dir, path) = outbox();
    let (r, _) = capture(xray::Config::default().outbox(&path), || {
        relevance(&Client { factor: 0.5 }, "sk-live-123", "laptop stand")
    });
    assert_eq!(r, 0.5);
    let s = step(&path, "llm_relevance");
    assert_eq!(s.kind.as_deref(), Some("llm"));
    assert_eq!(
        s.input,
        Some(json!({"api_key": "[redacted]", "query": "laptop stand"}))
    );
    assert_eq!(s.output, Some(json!(0.5)));
    assert_eq!(
        s.llm_usage,
        Some(json!([{"model": "gpt-4o-mini", "prompt_tokens": 120, "completion_tokens": 7}]))
    );
    assert_eq!(s.decisions.unwrap()[0]["score"], json!(0.75));
    let text = support::raw_bytes(&path);
    assert!(
        !text.windows(11).any(|w| w == b"sk-live-123"),
        "a redacted value reached the outbox file"
    );
}

#[xray::step(skip_all, skip_output)]
fn secretive(a: u32, b: u32) -> u32 {
    a + b
}

#[test]
fn skip_all_and_skip_output_record_neither_inputs_nor_output() {
    let (_dir, path) = outbox();
    let (r, _) = capture(xray::Config::default().outbox(&path), || secretive(2, 3));
    assert_eq!(r, 5);
    let s = step(&path, "secretive");
    assert_eq!((s.input, s.output, s.status.as_str()), (None, None, "ok"));
}

#[derive(Debug)]
struct Account {
    user: String,
    password: String,
}

struct Db;

impl Db {
    #[xray::step]
    fn login(&self, account: &Account, password: &str, token: String) -> bool {
        account.password == password && !account.user.is_empty() && !token.is_empty()
    }

    #[xray::step(capture_self)]
    fn describe(&self) -> String {
        "db".into()
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Db(postgres://user:hunter2@host)")
    }
}

#[test]
fn default_secret_names_are_redacted_and_self_is_not_captured_unless_asked() {
    let (_dir, path) = outbox();
    let account = Account {
        user: "ann".into(),
        password: "hunter2".into(),
    };
    let (ok, _) = capture(xray::Config::default().outbox(&path), || {
        let ok = Db.login(&account, "hunter2", "tok-1".into());
        let _ = Db.describe();
        ok
    });
    assert!(ok);
    let s = step(&path, "login");
    let input = s.input.unwrap();
    assert_eq!(input["password"], json!("[redacted]"));
    assert_eq!(input["token"], json!("[redacted]"));
    assert!(
        input.get("self").is_none(),
        "self must not be captured by default"
    );
    let debug = input["account"]
        .as_str()
        .expect("Debug-only type captured as text");
    assert!(
        debug.contains("ann") && !debug.contains("hunter2"),
        "got {debug}"
    );
    // Debug text is free text: the password of a URL in it goes too.
    let d = step(&path, "describe");
    assert_eq!(
        d.input.unwrap()["self"],
        json!("Db(postgres://user:[redacted]@host)")
    );
}

#[derive(Debug, thiserror::Error)]
#[error("catalogue unavailable")]
struct SearchError {
    #[source]
    source: std::io::Error,
}

#[xray::step]
fn search(query: &str) -> Result<Vec<String>, SearchError> {
    if query.is_empty() {
        Err(SearchError {
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        })
    } else {
        Ok(vec![format!("{query}-1")])
    }
}

#[test]
fn result_err_is_an_error_with_its_source_chain_and_fails_a_top_level_execution() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        xray::execution("ok_run").run(|| search("desk").unwrap());
        xray::execution("failed_run").run(|| search("").unwrap_err());
    });
    let all = steps(&path);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].status, "ok");
    assert_eq!(all[0].output, Some(json!(["desk-1"])));
    assert_eq!(all[1].status, "error");
    assert_eq!(all[1].output, None);
    assert_eq!(
        all[1].error.as_deref(),
        Some("catalogue unavailable\ncaused by: connect timed out")
    );
    let e = executions(&path);
    let status: BTreeMap<_, _> = e
        .iter()
        .map(|e| (e.name.as_str(), e.status.as_str()))
        .collect();
    assert_eq!(
        status,
        BTreeMap::from([("ok_run", "ok"), ("failed_run", "error")])
    );
}

#[xray::step]
fn explode(n: u32) -> u32 {
    if n > 0 {
        panic!("boom at {n}");
    }
    n
}

#[test]
fn a_panicking_step_is_recorded_with_its_message_and_the_panic_continues_unchanged() {
    let (_dir, path) = outbox();
    let (caught, _) = capture(xray::Config::default().outbox(&path), || {
        std::panic::catch_unwind(|| xray::execution("run").run(|| explode(3)))
    });
    let payload = caught.expect_err("the panic must reach the caller");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("boom at 3")
    );
    let s = step(&path, "explode");
    assert_eq!(s.status, "panicked");
    assert_eq!(s.error.as_deref(), Some("boom at 3"));
    let e = executions(&path);
    assert_eq!(e[0].status, "error");
}

#[test]
fn a_panic_in_the_execution_closure_makes_the_execution_an_error() {
    let (_dir, path) = outbox();
    let (caught, _) = capture(xray::Config::default().outbox(&path), || {
        std::panic::catch_unwind(|| {
            xray::execution("closure_panics").run(|| {
                let _ = explode(0);
                panic!("after the step")
            })
        })
    });
    assert!(caught.is_err());
    assert_eq!(step(&path, "explode").status, "ok");
    let e = executions(&path);
    assert_eq!(e[0].status, "error");
    assert_eq!(
        e[0].outcome.as_ref().unwrap()["error"],
        json!("panicked: after the step")
    );
}

#[xray::step]
fn inner(x: u32) -> u32 {
    x * 2
}

#[xray::step]
fn outer(x: u32) -> u32 {
    let _span = tracing::info_span!("plain_span", purpose = "grouping", attempt = 2).entered();
    tracing::info!(hits = 3, "searched");
    inner(x) + 1
}

#[test]
fn nesting_follows_spans_and_plain_spans_inside_an_execution_are_steps_with_attributes() {
    let (_dir, path) = outbox();
    let (r, _) = capture(xray::Config::default().outbox(&path), || outer(5));
    assert_eq!(r, 11);
    let o = step(&path, "outer");
    let p = step(&path, "plain_span");
    let i = step(&path, "inner");
    assert_eq!(o.parent_id, None);
    assert_eq!(p.parent_id.as_deref(), Some(o.id.as_str()));
    assert_eq!(i.parent_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(p.kind.as_deref(), Some("span"));
    let attrs = p.attributes.clone().unwrap();
    assert_eq!(attrs["purpose"], json!("grouping"));
    assert_eq!(attrs["attempt"], json!(2));
    let events = &attrs["events"];
    assert_eq!(events[0]["message"], json!("searched"));
    assert_eq!(events[0]["hits"], json!(3));
    // outer was called outside any execution: an implicit one, named after it.
    let e = executions(&path);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].name, "outer");
    assert!([&o, &p, &i].iter().all(|s| s.execution_id == e[0].id));
}

#[test]
fn plain_spans_outside_an_execution_are_not_recorded() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        let _span = tracing::info_span!("background_work").entered();
        tracing::info!("nothing to see");
    });
    assert!(support::rows(&path).is_empty());
}

#[test]
fn decisions_outside_a_step_are_no_ops() {
    let (_dir, path) = outbox();
    let (_, stats) = capture(xray::Config::default().outbox(&path), || {
        xray::accept("x", "f", "r");
        xray::reject("x", "f", "r");
        xray::score("x", 1.0);
        xray::reason("why");
        xray::attr("k", &1);
        xray::llm_usage("m", 1, 1);
    });
    assert_eq!(stats.captured, 0);
    assert!(support::rows(&path).is_empty());
}

#[derive(Serialize)]
struct Weird {
    ratio: f64,
    by_pair: BTreeMap<(u8, u8), &'static str>,
    nested: Nested,
    api_key: &'static str,
}

#[derive(Serialize)]
struct Nested {
    deeper: BTreeMap<&'static str, BTreeMap<&'static str, &'static str>>,
}

#[xray::step]
fn weird(value: Weird) -> f64 {
    value.ratio
}

#[test]
fn bad_values_are_stored_in_flagged_form_without_harming_the_step() {
    let (_dir, path) = outbox();
    let value = Weird {
        ratio: f64::NAN,
        by_pair: BTreeMap::from([((1, 2), "a")]),
        nested: Nested {
            deeper: BTreeMap::from([(
                "headers",
                BTreeMap::from([("Authorization", "Bearer abc")]),
            )]),
        },
        api_key: "sk-1",
    };
    let (r, _) = capture(xray::Config::default().outbox(&path), || weird(value));
    assert!(r.is_nan());
    let s = step(&path, "weird");
    let input = s.input.unwrap();
    assert_eq!(input["value"]["ratio"], json!({"_xray_non_finite": "NaN"}));
    assert_eq!(input["value"]["by_pair"], json!({"[1,2]": "a"}));
    assert_eq!(
        input["value"]["nested"]["deeper"]["headers"]["Authorization"],
        json!("[redacted]")
    );
    assert_eq!(input["value"]["api_key"], json!("[redacted]"));
    assert_eq!(s.output, Some(json!({"_xray_non_finite": "NaN"})));
    let flags = s.attributes.unwrap()["_xray_flags"].clone();
    for flag in ["non_finite", "non_string_keys", "redacted"] {
        assert!(
            flags.as_array().unwrap().contains(&json!(flag)),
            "{flag} missing from {flags}"
        );
    }
}

#[xray::step]
fn big(blob: String) -> usize {
    blob.len()
}

#[test]
fn oversize_payloads_are_truncated_with_a_preview() {
    let (_dir, path) = outbox();
    let blob = "x".repeat(10_000);
    let (n, _) = capture(
        xray::Config::default()
            .outbox(&path)
            .max_payload_bytes(1024),
        || big(blob),
    );
    assert_eq!(n, 10_000);
    let s = step(&path, "big");
    let input = s.input.unwrap();
    assert_eq!(input["_xray_truncated"], json!(true));
    assert_eq!(input["limit"], json!(1024));
    assert!(input["preview"]
        .as_str()
        .unwrap()
        .starts_with("{\"blob\":\"xxx"));
    assert_eq!(s.output, Some(json!(10_000)));
    assert!(s.attributes.unwrap()["_xray_flags"]
        .as_array()
        .unwrap()
        .contains(&json!("truncated")));
}

enum Tree {
    Leaf,
    Node(Box<Tree>),
}

impl Serialize for Tree {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Leaf => s.serialize_unit(),
            Tree::Node(child) => {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(Some(1))?;
                seq.serialize_element(child)?;
                seq.end()
            }
        }
    }
}

#[xray::step]
fn deep(tree: &Tree) -> bool {
    matches!(tree, Tree::Node(_))
}

#[test]
fn deep_nesting_is_cut_at_the_depth_limit() {
    let (_dir, path) = outbox();
    let mut tree = Tree::Leaf;
    for _ in 0..10_000 {
        tree = Tree::Node(Box::new(tree));
    }
    let (r, _) = capture(xray::Config::default().outbox(&path), || deep(&tree));
    assert!(r);
    let s = step(&path, "deep");
    let text = s.input.unwrap().to_string();
    assert!(
        text.contains("_xray_depth_limited"),
        "{}",
        &text[..200.min(text.len())]
    );
    // Drop the tree iteratively: the default recursive drop would overflow.
    let mut node = tree;
    while let Tree::Node(child) = node {
        node = *child;
    }
}

struct Neither(u8);

#[xray::step]
fn takes_neither(value: Neither, n: u8) -> Neither {
    Neither(value.0 + n)
}

#[test]
fn a_value_with_neither_serialize_nor_debug_is_opaque() {
    let (_dir, path) = outbox();
    let (r, _) = capture(xray::Config::default().outbox(&path), || {
        takes_neither(Neither(1), 2)
    });
    assert_eq!(r.0, 3);
    let s = step(&path, "takes_neither");
    assert_eq!(s.input, Some(json!({"value": "<opaque>", "n": 2})));
    assert_eq!(s.output, Some(json!("<opaque>")));
}

#[test]
fn sampling_rate_zero_records_nothing_and_one_records_everything() {
    let (_dir, path) = outbox();
    let (_, stats) = capture(
        xray::Config::default().outbox(&path).sample_rate(0.0),
        || {
            for i in 0..50 {
                xray::execution("never").run(|| inner(i));
                inner(i);
            }
        },
    );
    assert_eq!(stats.captured, 0);
    assert_eq!(stats.unsampled_executions, 100);
    assert!(support::rows(&path).is_empty());

    let (_dir2, path2) = outbox();
    let (_, stats) = capture(
        xray::Config::default().outbox(&path2).sample_rate(1.0),
        || {
            for i in 0..50 {
                xray::execution("always").run(|| inner(i));
            }
        },
    );
    assert_eq!((stats.captured, stats.written), (50, 50));
    assert_eq!(executions(&path2).len(), 50);
}

#[test]
fn sampling_decides_once_per_execution() {
    let (_dir, path) = outbox();
    capture(
        xray::Config::default().outbox(&path).sample_rate(0.5),
        || {
            for i in 0..400 {
                xray::execution("half").run(|| {
                    inner(i);
                    inner(i + 1);
                    outer(i);
                });
            }
        },
    );
    let e = executions(&path);
    // A fair coin 400 times lands outside 120..280 with probability < 1e-15.
    assert!((120..280).contains(&e.len()), "{} of 400 sampled", e.len());
    let s = steps(&path);
    // Every sampled execution has all of its 5 steps (inner, inner, outer, plain_span, inner).
    assert_eq!(s.len(), e.len() * 5);
}

#[test]
fn disabled_records_nothing_and_creates_no_outbox() {
    let (_dir, path) = outbox();
    let (r, stats) = capture(xray::Config::default().outbox(&path).disabled(true), || {
        inner(2)
    });
    assert_eq!(r, 4);
    assert_eq!(stats, xray::Stats::default());
    assert!(!path.exists());
}

#[test]
fn steps_run_unchanged_and_record_nothing_without_xray() {
    assert_eq!(inner(21), 42);
    assert_eq!(search("a").unwrap(), vec!["a-1".to_string()]);
    assert!(std::panic::catch_unwind(|| explode(1)).is_err());
}

#[derive(Serialize)]
struct Session {
    user: &'static str,
    cookie: &'static str,
}

#[xray::step]
fn open_session(user: &'static str) -> Session {
    xray::attr("authorization", &"Bearer zzz");
    xray::attr(
        "headers",
        &BTreeMap::from([("X-Api-Key", "k-1"), ("accept", "json")]),
    );
    Session {
        user,
        cookie: "c-42",
    }
}

#[test]
fn secrets_are_redacted_in_outputs_metadata_and_attributes_too() {
    let (_dir, path) = outbox();
    capture(
        xray::Config::default()
            .outbox(&path)
            .redact_keys(["seller_pin"]),
        || {
            xray::execution("login")
                .metadata("db_password", "p@ss")
                .metadata("seller_pin", &1234)
                .metadata(
                    "request",
                    &json!({"session": {"access_token": "t-9"}, "page": 2}),
                )
                .run(|| open_session("ann"))
        },
    );
    let s = step(&path, "open_session");
    assert_eq!(
        s.output,
        Some(json!({"user": "ann", "cookie": "[redacted]"}))
    );
    let attrs = s.attributes.unwrap();
    assert_eq!(attrs["authorization"], json!("[redacted]"));
    assert_eq!(
        attrs["headers"],
        json!({"X-Api-Key": "[redacted]", "accept": "json"})
    );
    let e = executions(&path);
    assert_eq!(
        e[0].metadata,
        Some(
            json!({"db_password": "[redacted]", "seller_pin": "[redacted]", "request": {"session": {"access_token": "[redacted]"}, "page": 2}})
        )
    );
    let bytes = support::raw_bytes(&path);
    for secret in ["p@ss", "t-9", "c-42", "k-1", "zzz"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} reached the outbox"
        );
    }
}

#[test]
fn execution_metadata_is_captured_with_the_settings_of_the_pipeline_it_is_recorded_in() {
    use tracing_subscriber::layer::SubscriberExt;
    let (_dir_a, path_a) = outbox();
    let (_dir_b, path_b) = outbox();
    let (layer_a, guard_a) = xray::Config::default()
        .outbox(&path_a)
        .max_payload_bytes(256)
        .redact_keys(["alpha_pin"])
        .build()
        .unwrap();
    // Built last, so it is "the latest pipeline": A's executions must still
    // be captured with A's limit and A's redaction list, not with B's.
    let (layer_b, guard_b) = xray::Config::default()
        .outbox(&path_b)
        .redact_keys(["beta_pin"])
        .build()
        .unwrap();
    let long = "x".repeat(1000);
    let run = || {
        xray::execution("settings")
            .metadata("alpha_pin", &1)
            .metadata("beta_pin", &2)
            .metadata("long", &long)
            .run(|| ())
    };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer_a), run);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer_b), run);
    guard_a.flush().unwrap();
    guard_b.flush().unwrap();

    let a = support::execution(&path_a, "settings").metadata.unwrap();
    assert_eq!(a["alpha_pin"], json!("[redacted]"));
    assert_eq!(a["beta_pin"], json!(2));
    assert_eq!(a["long"]["_xray_truncated"], json!(true), "{a}");
    assert_eq!(a["long"]["limit"], json!(256));

    let b = support::execution(&path_b, "settings").metadata.unwrap();
    assert_eq!(b["alpha_pin"], json!(1));
    assert_eq!(b["beta_pin"], json!("[redacted]"));
    assert_eq!(b["long"], json!(long));
}
