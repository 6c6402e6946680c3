//! A large execution shaped like a real ranking job, for the scale tests,
//! the browser test and the `big_execution` example (which includes this
//! file by path): `rank_catalog` runs batches (`rank_batch`, top level) of
//! [`PER_BATCH`] `score_candidates` steps, each taking the SDK benches'
//! 393-byte `Query` as input and returning its `Chosen`, with one decision
//! per candidate (the price filter rejects those above [`MAX_PRICE`], the
//! others are scored); every tenth scoring step asks an LLM to re-rank
//! (`llm_rerank`, a grandchild with token usage).
//!
//! Steps come parents first, in start order, so that any prefix of
//! [`records`] is a consistent execution.
#![allow(dead_code)]

use serde_json::{json, Value};
use uuid::Uuid;
use xray_collector::model::{
    Decision, ExecutionRow, ExecutionStatus, LlmUsage, ShipRecord, StepRow, StepStatus,
};

/// The SDK benches' workload: the `Query` input and the `pick` body.
#[path = "../../../xray-sdk/benches/workload/mod.rs"]
mod workload;

/// Scoring steps per batch.
pub const PER_BATCH: usize = 100;
/// The price filter's limit.
pub const MAX_PRICE: f64 = 30.0;
/// When the execution starts (µs since the epoch): 2026-11-30T12:00:00Z.
pub const STARTED_AT_US: i64 = 1_796_040_000_000_000;
/// The execution's name.
pub const NAME: &str = "rank_catalog";
/// Its project.
pub const PROJECT: &str = "catalog";

/// Time between two scoring steps (µs), and how long one takes.
const SCORE_EVERY_US: i64 = 100;
const SCORE_TOOK_US: i64 = 80;
/// A batch: its root, then each scoring step followed by its re-rank.
const STEPS_PER_BATCH: usize = 1 + PER_BATCH + PER_BATCH / 10;
/// How long a batch takes (µs).
const BATCH_TOOK_US: i64 = PER_BATCH as i64 * SCORE_EVERY_US;

/// The execution row (finished `ok`) and `steps` steps, in order.
pub fn records(execution: Uuid, steps: usize) -> impl Iterator<Item = ShipRecord> {
    let batches = steps.div_ceil(STEPS_PER_BATCH);
    let ended = STARTED_AT_US + batches as i64 * BATCH_TOOK_US + 1;
    let head = ShipRecord::Execution(ExecutionRow {
        seq: 1,
        id: execution,
        project: PROJECT.into(),
        name: NAME.into(),
        status: ExecutionStatus::Ok,
        metadata: Some(json!({"catalog": "sports", "steps": steps})),
        outcome: Some(json!({"ranked": steps})),
        error: None,
        started_at_us: STARTED_AT_US,
        ended_at_us: Some(ended),
        trace_id: None,
        parent_span_id: None,
    });
    let q = workload::query();
    let input = serde_json::to_value(&q).expect("a Query is JSON");
    let output = serde_json::to_value(workload::pick(&q)).expect("a Chosen is JSON");
    let decisions: Vec<Decision> = q
        .candidates
        .iter()
        .map(|c| {
            let rejected = c.price > MAX_PRICE;
            Decision {
                candidate_id: c.asin.clone(),
                accepted: Some(!rejected),
                filter: Some("price".into()),
                reason: rejected.then(|| format!("{:.2} > {MAX_PRICE}", c.price)),
                score: (!rejected).then_some(c.rating * 10.0 - c.price / 10.0),
            }
        })
        .collect();
    let mut gen = Generator {
        execution,
        input,
        output,
        decisions,
        seq: 1,
    };
    std::iter::once(head).chain((0..batches).flat_map(move |b| gen.batch(b)).take(steps))
}

struct Generator {
    execution: Uuid,
    input: Value,
    output: Value,
    decisions: Vec<Decision>,
    seq: i64,
}

impl Generator {
    fn batch(&mut self, b: usize) -> Vec<ShipRecord> {
        let start = STARTED_AT_US + 1 + b as i64 * BATCH_TOOK_US;
        let mut root = self.step(None, "rank_batch", None, start, BATCH_TOOK_US - 1);
        let root_id = root.id;
        root.input = Some(json!({"batch": b, "size": PER_BATCH}));
        let mut out = vec![root];
        for i in 0..PER_BATCH {
            let at = start + i as i64 * SCORE_EVERY_US;
            let mut score = self.step(
                Some(root_id),
                "score_candidates",
                Some("rank"),
                at,
                SCORE_TOOK_US,
            );
            score.input = Some(self.input.clone());
            score.output = Some(self.output.clone());
            score.decisions = self.decisions.clone();
            let score_id = score.id;
            out.push(score);
            if i % 10 == 9 {
                let mut llm = self.step(
                    Some(score_id),
                    "llm_rerank",
                    Some("llm"),
                    at + 10,
                    SCORE_TOOK_US / 2,
                );
                llm.input = Some(json!({"prompt": "Re-rank these water bottles for a hiker."}));
                llm.output = Some(json!({"order": [2, 0, 1]}));
                llm.llm_usage = vec![LlmUsage {
                    model: "gpt-4o-mini".into(),
                    prompt_tokens: 412,
                    completion_tokens: 18,
                }];
                out.push(llm);
            }
        }
        out.into_iter().map(ShipRecord::Step).collect()
    }

    fn step(
        &mut self,
        parent: Option<Uuid>,
        name: &str,
        kind: Option<&str>,
        started_at_us: i64,
        took_us: i64,
    ) -> StepRow {
        self.seq += 1;
        StepRow {
            seq: self.seq,
            id: Uuid::from_u64_pair(self.execution.as_u64_pair().0, self.seq as u64),
            execution_id: self.execution,
            parent_id: parent,
            project: PROJECT.into(),
            name: name.into(),
            kind: kind.map(Into::into),
            status: StepStatus::Ok,
            input: None,
            output: None,
            error: None,
            attributes: None,
            started_at_us,
            duration_us: Some(took_us),
            decisions: Vec::new(),
            llm_usage: Vec::new(),
            trace_id: None,
            reasoning: None,
        }
    }
}
