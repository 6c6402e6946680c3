//! What LLM calls cost, read back: each usage row's own cost, an
//! execution's calls summed per model, and `stats`' tokens per model
//! priced at the current prices.

use uuid::Uuid;
use xray_collector::backend::{QueryStore, Store};
use xray_collector::cost::{built_in, ModelPrice};
use xray_collector::query::{LlmTotals, ModelTokens};

use crate::backend::Backend;
use crate::query::per_model;
use crate::support::records::{execution, new_id, step, usage, T0};

on_both_backends!(
    migrated: each_usage_row_reads_back_with_its_own_cost,
    an_execution_sums_its_calls_per_model_and_an_unpriced_call_leaves_no_cost,
    stats_price_the_summed_tokens_at_the_current_prices,
);

/// The built-in prices and `house-model` at 2 $ / 10 $ per million.
async fn with_house_price(db: &Backend) {
    let mut prices = built_in();
    prices.push(ModelPrice {
        model: "house-model".into(),
        prompt_per_million: 2.0,
        completion_per_million: 10.0,
        source: "test".into(),
    });
    db.store.set_model_prices(&prices).await.unwrap();
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-12)
}

fn cost_of(models: &[ModelTokens], model: &str) -> Option<f64> {
    models.iter().find(|m| m.model == model).unwrap().cost_usd
}

async fn each_usage_row_reads_back_with_its_own_cost(db: Backend) {
    with_house_price(&db).await;
    let (e, s) = (new_id(), new_id());
    db.store
        .write(&[
            execution(e).record(),
            step(s, e)
                .usage(vec![
                    usage("house-model", 120, 30),
                    usage("gpt-4o-mini", 2_400, 120),
                    usage("nobody-knows-v9", 500, 500),
                ])
                .record(),
        ])
        .await
        .unwrap();
    // Both ways of reading a step: the execution whole, and by id.
    let whole = db.store.execution(e).await.unwrap().unwrap().steps;
    let by_id = db.store.step_details(e, &[s]).await.unwrap();
    for steps in [whole, by_id] {
        let usage = &steps[0].llm_usage;
        assert_eq!(usage.len(), 3, "{usage:?}");
        assert_eq!(usage[0].model, "house-model", "in the order recorded");
        // (120 × 2 + 30 × 10) / 1e6
        assert!(close(usage[0].cost_usd, 0.00054), "{usage:?}");
        // (2 400 × 0.15 + 120 × 0.60) / 1e6
        assert!(close(usage[1].cost_usd, 0.000432), "{usage:?}");
        assert_eq!(usage[2].cost_usd, None, "never a guessed cost");
        let json = serde_json::to_value(&usage[2]).unwrap();
        assert!(json["cost_usd"].is_null(), "{json}");
        assert_eq!(json.as_object().unwrap().len(), 4, "{json}");
    }
}

async fn an_execution_sums_its_calls_per_model_and_an_unpriced_call_leaves_no_cost(db: Backend) {
    with_house_price(&db).await;
    let (priced, mixed, none) = (new_id(), new_id(), new_id());
    db.store
        .write(&[
            execution(priced).record(),
            step(new_id(), priced)
                .at(T0 + 1)
                .usage(vec![
                    usage("house-model", 100, 10),
                    usage("gpt-4o", 1_000, 100),
                ])
                .record(),
            step(new_id(), priced)
                .at(T0 + 2)
                .usage(vec![usage("house-model", 200, 20)])
                .record(),
            // Another execution's calls are not counted.
            execution(none).record(),
            step(new_id(), none)
                .usage(vec![usage("house-model", 9_999, 9_999)])
                .record(),
        ])
        .await
        .unwrap();
    let llm = db.store.execution_llm(priced).await.unwrap();
    assert_eq!(
        per_model(&llm.models),
        [("gpt-4o", 1, 1_000, 100), ("house-model", 2, 300, 30)]
    );
    // (1 000 × 2.5 + 100 × 10) / 1e6
    assert!(close(cost_of(&llm.models, "gpt-4o"), 0.0035), "{llm:?}");
    // (300 × 2 + 30 × 10) / 1e6
    assert!(
        close(cost_of(&llm.models, "house-model"), 0.0009),
        "{llm:?}"
    );
    assert_eq!(
        (llm.calls, llm.prompt_tokens, llm.completion_tokens),
        (3, 1_300, 130)
    );
    assert!(close(llm.cost_usd, 0.0044), "{llm:?}");
    // The execution read whole says the same.
    let whole = db.store.execution(priced).await.unwrap().unwrap();
    assert_eq!(whole.llm, llm);

    // A call written while its model had no price: that model has no cost
    // (never the priced calls' part), nor has the execution.
    db.store
        .write(&[
            execution(mixed).record(),
            step(new_id(), mixed)
                .at(T0 + 1)
                .usage(vec![
                    usage("house-model", 100, 10),
                    usage("gpt-4o", 1_000, 100),
                ])
                .record(),
        ])
        .await
        .unwrap();
    db.store.set_model_prices(&built_in()).await.unwrap();
    db.store
        .write(&[step(new_id(), mixed)
            .at(T0 + 2)
            .usage(vec![usage("house-model", 200, 20)])
            .record()])
        .await
        .unwrap();
    let llm = db.store.execution_llm(mixed).await.unwrap();
    assert_eq!(
        per_model(&llm.models),
        [("gpt-4o", 1, 1_000, 100), ("house-model", 2, 300, 30)]
    );
    assert!(close(cost_of(&llm.models, "gpt-4o"), 0.0035), "{llm:?}");
    assert_eq!(cost_of(&llm.models, "house-model"), None, "{llm:?}");
    assert_eq!(llm.cost_usd, None, "{llm:?}");

    // No calls, or no such execution: nothing, costing nothing.
    let (quiet, unknown) = (new_id(), Uuid::from_u128(404));
    db.store
        .write(&[execution(quiet).record(), step(new_id(), quiet).record()])
        .await
        .unwrap();
    for id in [quiet, unknown] {
        assert_eq!(
            db.store.execution_llm(id).await.unwrap(),
            LlmTotals {
                cost_usd: Some(0.0),
                ..LlmTotals::default()
            }
        );
    }
}

async fn stats_price_the_summed_tokens_at_the_current_prices(db: Backend) {
    // Written with no price for house-model: the rows carry no cost.
    db.store.set_model_prices(&built_in()).await.unwrap();
    let e = new_id();
    db.store
        .write(&[
            execution(e).record(),
            step(new_id(), e)
                .name("llm")
                .at(T0 + 1)
                .usage(vec![
                    usage("gpt-4o-mini", 1_000_000, 2_000_000),
                    usage("house-model", 100_000, 10_000),
                ])
                .record(),
            step(new_id(), e)
                .name("llm")
                .at(T0 + 2)
                .usage(vec![
                    usage("house-model", 300_000, 30_000),
                    usage("nobody-knows-v9", 5, 5),
                ])
                .record(),
        ])
        .await
        .unwrap();
    let stats = db.store.stats(None, None).await.unwrap();
    assert_eq!(
        per_model(&stats.models),
        [
            ("gpt-4o-mini", 1, 1_000_000, 2_000_000),
            ("house-model", 2, 400_000, 40_000),
            ("nobody-knows-v9", 1, 5, 5),
        ]
    );
    // 1 M × 0.15 + 2 M × 0.60
    assert!(
        close(cost_of(&stats.models, "gpt-4o-mini"), 1.35),
        "{stats:?}"
    );
    assert_eq!(cost_of(&stats.models, "house-model"), None);
    assert_eq!(cost_of(&stats.models, "nobody-knows-v9"), None);

    // A price given later prices every token in the window, those written
    // before it as well: stats are at the current prices.
    with_house_price(&db).await;
    let stats = db.store.stats(None, Some("llm")).await.unwrap();
    // (400 000 × 2 + 40 000 × 10) / 1e6
    assert!(
        close(cost_of(&stats.models, "house-model"), 1.2),
        "{stats:?}"
    );
    assert!(
        close(cost_of(&stats.models, "gpt-4o-mini"), 1.35),
        "{stats:?}"
    );
    assert_eq!(cost_of(&stats.models, "nobody-knows-v9"), None);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["models"][1]["cost_usd"], 1.2, "{json}");
    assert!(json["models"][2]["cost_usd"].is_null(), "{json}");
}
