//! A step's reasoning and its job, read back with the step
//! (`StepDetail::reasoning_job`): pending before the reasoner ran,
//! completed after, failed with its error (while an earlier text stays).

use xray_collector::backend::{QueryStore, Store};
use xray_collector::query::StepDetail;
use xray_collector::{indexing, reasoning};

use crate::backend::Backend;
use crate::support::records::{execution, filter_step, new_id, step, T0};

on_both_backends!(migrated: each_step_reads_back_with_its_reasoning_job);

async fn each_step_reads_back_with_its_reasoning_job(db: Backend) {
    let e = new_id();
    let (filter, failed, plain) = (new_id(), new_id(), new_id());
    db.store
        .write(&[
            execution(e).record(),
            filter_step(filter, e).at(T0 + 1).record(),
            step(failed, e)
                .name("search")
                .status("error")
                .error("search timed out")
                .at(T0 + 2)
                .record(),
            step(plain, e).name("plain").at(T0 + 3).record(),
        ])
        .await
        .unwrap();
    // Both ways of reading steps agree.
    async fn read(db: &Backend, e: uuid::Uuid, ids: &[uuid::Uuid]) -> Vec<StepDetail> {
        let whole = db.store.execution(e).await.unwrap().unwrap().steps;
        let by_id = db.store.step_details(e, ids).await.unwrap();
        assert_eq!(whole, by_id);
        whole
    }
    let ids = [filter, failed, plain];

    // Queued by the indexer, not yet explained.
    indexing::catch_up(&db.store).await.unwrap();
    let steps = read(&db, e, &ids).await;
    for s in &steps[..2] {
        let job = s.reasoning_job.as_ref().expect("a job");
        assert_eq!(
            (job.status.as_str(), job.method.as_str(), job.attempts),
            ("pending", "rules", 0),
            "{}",
            s.name
        );
        assert_eq!((&job.error, job.completed_at_us), (&None, None));
        assert_eq!(s.reasoning, None);
    }
    assert_eq!(steps[2].reasoning_job, None, "nothing to explain: no job");

    // Explained by the rules.
    let before = jiff::Timestamp::now().as_microsecond();
    reasoning::catch_up(&db.store).await.unwrap();
    let after = jiff::Timestamp::now().as_microsecond();
    let steps = read(&db, e, &ids).await;
    for s in &steps[..2] {
        let job = s.reasoning_job.as_ref().expect("a job");
        assert_eq!(
            (job.status.as_str(), job.method.as_str(), job.attempts),
            ("completed", "rules", 1),
            "{}",
            s.name
        );
        assert_eq!(job.error, None);
        let done = job.completed_at_us.expect("completed_at");
        // PostgreSQL's `now()` is the transaction's start; allow a second.
        assert!(
            (before - 1_000_000..=after + 1_000_000).contains(&done),
            "{done} not in {before}..={after}"
        );
    }
    assert_eq!(
        steps[1].reasoning.as_deref(),
        Some("failed: search timed out")
    );

    // An LLM reasoner that kept failing: the job says so, the rules text
    // stays.
    db.fail_reasoning_job(filter, "429 Too Many Requests <b>")
        .await;
    let steps = read(&db, e, &ids).await;
    let job = steps[0].reasoning_job.as_ref().expect("a job");
    assert_eq!(
        (job.status.as_str(), job.method.as_str(), job.attempts),
        ("failed", "llm", 3)
    );
    assert_eq!(job.error.as_deref(), Some("429 Too Many Requests <b>"));
    assert_eq!(job.completed_at_us, None);
    assert!(
        steps[0]
            .reasoning
            .as_deref()
            .is_some_and(|r| r.starts_with("2 candidates: 1 kept")),
        "{:?}",
        steps[0].reasoning
    );
    let json = serde_json::to_value(&steps[0]).unwrap();
    assert_eq!(json["reasoning_job"]["status"], "failed", "{json}");
    assert_eq!(json["reasoning_job"]["attempts"], 3, "{json}");
    assert!(serde_json::to_value(&steps[2]).unwrap()["reasoning_job"].is_null());
}
