//! `/api/v1`: the JSON API over the query layer ([`QueryStore`]), the
//! same answers the CLI prints. Large executions come in pages: the
//! execution's own answer holds its first steps and says where the rest
//! are (`next`), and `/steps` pages through all of them, the top-level
//! ones, or one step's children.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::{json_body, ApiError};
use super::params::{uuid, Params};
use super::{AppState, SEARCH_GRACE};
use crate::backend::QueryStore;
use crate::query::{
    ExecutionFilter, StepFilter, StepPage, StepScope, MAX_CANDIDATE_ENTRIES, MAX_STEP_PAGE,
};

/// Default and largest page of executions.
const EXECUTIONS_PAGE: (usize, usize) = (50, 1000);
/// Default page of steps (the largest is [`MAX_STEP_PAGE`]).
const STEPS_PAGE: usize = 1000;
/// Default and largest number of search hits.
const SEARCH_HITS: (usize, usize) = (50, 200);
/// Decisions about a candidate in other executions shown beside its path.
const ELSEWHERE: usize = 100;

type Api = Result<Response, ApiError>;

/// The API routes (the caller adds the token check).
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/executions", get(executions))
        .route("/api/v1/executions/{id}", get(execution))
        .route("/api/v1/executions/{id}/steps", get(steps))
        .route("/api/v1/executions/{id}/steps/{step}", get(step))
        .route("/api/v1/executions/{id}/why/{candidate}", get(why))
        .route("/api/v1/candidates/{candidate}", get(candidate))
        .route("/api/v1/search", get(search))
        .route("/api/v1/stats", get(stats))
}

/// A JSON answer.
fn ok(value: &impl Serialize) -> Api {
    let value = serde_json::to_value(value).map_err(|_| ApiError::internal())?;
    let mut response = json_body(&value).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
}

async fn executions(State(app): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Api {
    let p = Params::parse(
        q.as_deref(),
        &[
            "project", "name", "status", "since", "until", "limit", "cursor",
        ],
    )?;
    let status = p.text("status").map(str::to_owned);
    if let Some(s) = &status {
        if !["running", "ok", "error"].contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "invalid status {s:?}: running, ok or error"
            )));
        }
    }
    let now = jiff::Timestamp::now().as_microsecond();
    let filter = ExecutionFilter {
        project: p.text("project").map(str::to_owned),
        name: p.text("name").map(str::to_owned),
        status,
        since_us: p.time("since", now)?,
        until_us: p.time("until", now)?,
        limit: p.limit(EXECUTIONS_PAGE.0, EXECUTIONS_PAGE.1)?,
        after: p.cursor()?,
    };
    ok(&app.store.executions(&filter).await?)
}

/// `{id}` or `latest`, known to the store.
async fn execution_id(app: &AppState, text: &str) -> Result<Uuid, ApiError> {
    if text == "latest" {
        return app
            .store
            .latest_execution(None)
            .await?
            .ok_or_else(|| ApiError::not_found("no execution has been recorded yet"));
    }
    let id = uuid("execution id", text)?;
    Ok(id)
}

fn unknown_execution(id: Uuid) -> ApiError {
    ApiError::not_found(format!("no execution {id}"))
}

/// A page of steps, with the path of the next page.
fn step_page(id: Uuid, parent: Option<&str>, limit: usize, page: &StepPage) -> Value {
    let next = page.next_cursor.map(|c| {
        let parent = parent.map(|p| format!("parent={p}&")).unwrap_or_default();
        format!(
            "/api/v1/executions/{id}/steps?{parent}cursor={}&limit={limit}",
            c.encode()
        )
    });
    json!({
        "steps": page.steps,
        "next_cursor": page.next_cursor.map(|c| c.encode()),
        "next": next,
    })
}

async fn execution(
    State(app): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Api {
    let p = Params::parse(q.as_deref(), &["limit"])?;
    let limit = p.limit(STEPS_PAGE, MAX_STEP_PAGE)?;
    let id = execution_id(&app, &path(id)?).await?;
    let head = app
        .store
        .execution_head(id)
        .await?
        .ok_or_else(|| unknown_execution(id))?;
    let page = app
        .store
        .steps(&StepFilter {
            execution: id,
            scope: StepScope::All,
            limit,
            after: None,
        })
        .await?;
    let llm = app.store.execution_llm(id).await?;
    let mut answer = step_page(id, None, limit, &page);
    answer["execution"] = serde_json::to_value(&head).map_err(|_| ApiError::internal())?;
    // As in `show --json`: the execution's LLM calls and cost, per model.
    answer["execution"]["llm"] = serde_json::to_value(&llm).map_err(|_| ApiError::internal())?;
    ok(&answer)
}

async fn steps(
    State(app): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Api {
    let p = Params::parse(q.as_deref(), &["parent", "cursor", "limit"])?;
    let limit = p.limit(STEPS_PAGE, MAX_STEP_PAGE)?;
    let after = p.cursor()?;
    let id = execution_id(&app, &path(id)?).await?;
    let scope = match p.text("parent") {
        None => StepScope::All,
        Some("root") => StepScope::Roots,
        Some(parent) => StepScope::ChildrenOf(uuid("parent (a step id or root)", parent)?),
    };
    if app.store.execution_head(id).await?.is_none() {
        return Err(unknown_execution(id));
    }
    if let StepScope::ChildrenOf(parent) = scope {
        if app.store.step_details(id, &[parent]).await?.is_empty() {
            return Err(ApiError::not_found(format!(
                "no step {parent} in execution {id}"
            )));
        }
    }
    let page = app
        .store
        .steps(&StepFilter {
            execution: id,
            scope,
            limit,
            after,
        })
        .await?;
    ok(&step_page(id, p.text("parent"), limit, &page))
}

async fn step(
    State(app): State<Arc<AppState>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Api {
    Params::parse(q.as_deref(), &[])?;
    let (id, step) = path(ids)?;
    let id = execution_id(&app, &id).await?;
    let step = uuid("step id", &step)?;
    match app.store.step_details(id, &[step]).await?.pop() {
        Some(detail) => ok(&detail),
        None if app.store.execution_head(id).await?.is_none() => Err(unknown_execution(id)),
        None => Err(ApiError::not_found(format!(
            "no step {step} in execution {id}"
        ))),
    }
}

async fn why(
    State(app): State<Arc<AppState>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Api {
    Params::parse(q.as_deref(), &[])?;
    let (id, candidate) = path(ids)?;
    let id = execution_id(&app, &id).await?;
    if app.store.execution_head(id).await?.is_none() {
        return Err(unknown_execution(id));
    }
    let entries = app.store.why(id, &candidate).await?;
    let elsewhere = app.store.candidate(&candidate, Some(id), ELSEWHERE).await?;
    ok(&json!({
        "execution_id": id,
        "candidate": candidate,
        "entries": entries,
        "elsewhere": elsewhere,
    }))
}

async fn candidate(
    State(app): State<Arc<AppState>>,
    candidate: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Api {
    let p = Params::parse(q.as_deref(), &["limit"])?;
    let limit = p.limit(ELSEWHERE, MAX_CANDIDATE_ENTRIES)?;
    let candidate = path(candidate)?;
    let entries = app.store.candidate(&candidate, None, limit).await?;
    ok(&json!({ "candidate": candidate, "entries": entries }))
}

async fn search(State(app): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Api {
    let p = Params::parse(q.as_deref(), &["q", "limit"])?;
    let text = p
        .text("q")
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("q is needed: the words to search for"))?
        .to_owned();
    let limit = p.limit(SEARCH_HITS.0, SEARCH_HITS.1)?;
    // The backend stops the statement at the deadline; the outer one also
    // covers waiting for the connection.
    let deadline = app.search_timeout + SEARCH_GRACE;
    let hits = tokio::time::timeout(
        deadline,
        app.store.search(&text, limit, Some(app.search_timeout)),
    )
    .await
    .map_err(|_| ApiError::timed_out("the search"))??;
    ok(&json!({ "hits": hits }))
}

async fn stats(State(app): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Api {
    let p = Params::parse(q.as_deref(), &["since", "name"])?;
    let since = p.time("since", jiff::Timestamp::now().as_microsecond())?;
    ok(&app.store.stats(since, p.text("name")).await?)
}
