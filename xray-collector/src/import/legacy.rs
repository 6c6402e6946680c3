//! The earlier X-Ray's JSON data (DESIGN.md, "Import"), and how an entry
//! becomes this X-Ray's records.
//!
//! An execution `{executionId, projectId?, metadata?, finalOutcome?,
//! startedAt, completedAt?, steps: [{name, input?, output?, error?,
//! durationMs?, reasoning?, createdAt?}]}`; times are RFC 3339 text or
//! milliseconds since the epoch.
//!
//! Ids are derived, so importing twice writes the same rows: an
//! `executionId` that is a UUID is kept, any other is made one (UUIDv5 of
//! it in [`NAMESPACE`]); a step's id is the UUIDv5 of its execution's id
//! and its position. A step starts at its `createdAt`, else where the one
//! before it ended (the first at the execution's start); it failed when it
//! has an `error`. The execution is `error` when a step failed, `ok` when it
//! completed, else `running`.

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::model::{ExecutionRow, ExecutionStatus, ShipRecord, StepRow, StepStatus};

/// The namespace of imported ids (UUIDv5).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x5852_4159_696d_706f_7274_0000_0000_0001);

/// One execution of the earlier X-Ray.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyExecution {
    execution_id: Value,
    project_id: Option<String>,
    metadata: Option<Value>,
    final_outcome: Option<Value>,
    started_at: Time,
    completed_at: Option<Time>,
    #[serde(default)]
    steps: Vec<LegacyStep>,
}

/// One of its steps.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyStep {
    name: String,
    input: Option<Value>,
    output: Option<Value>,
    error: Option<Value>,
    duration_ms: Option<f64>,
    reasoning: Option<String>,
    created_at: Option<Time>,
}

/// A time as the earlier X-Ray wrote it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Time {
    Millis(f64),
    Text(String),
}

impl Time {
    fn us(&self, what: &str) -> Result<i64, String> {
        match self {
            Time::Millis(ms) if ms.is_finite() && ms.abs() < 1e16 => Ok((ms * 1000.0) as i64),
            Time::Millis(ms) => Err(format!("{what} {ms} is not a time")),
            Time::Text(text) => text
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_microsecond())
                .map_err(|e| format!("{what} {text:?} is not an RFC 3339 time: {e}")),
        }
    }
}

impl LegacyExecution {
    /// The execution's id as this X-Ray stores it.
    pub fn id(&self) -> Result<Uuid, String> {
        let text = match &self.execution_id {
            Value::String(s) if !s.trim().is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(format!("executionId {other} is not an id")),
        };
        Ok(Uuid::parse_str(&text)
            .unwrap_or_else(|_| Uuid::new_v5(&NAMESPACE, format!("execution:{text}").as_bytes())))
    }

    /// Its records: the execution, then its steps in order; `project`
    /// when the entry names none.
    pub fn records(&self, project: &str) -> Result<Vec<ShipRecord>, String> {
        let id = self.id()?;
        let project = self
            .project_id
            .clone()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| project.to_owned());
        let started = self.started_at.us("startedAt")?;
        let ended = self
            .completed_at
            .as_ref()
            .map(|t| t.us("completedAt"))
            .transpose()?;
        if let Some(end) = ended {
            if end < started {
                return Err(format!(
                    "completedAt is before startedAt ({end} < {started} µs)"
                ));
            }
        }
        let mut records = Vec::with_capacity(self.steps.len() + 1);
        let mut clock = started;
        let mut failed = false;
        for (i, step) in self.steps.iter().enumerate() {
            if step.name.trim().is_empty() {
                return Err(format!("steps[{i}].name is empty"));
            }
            let at = match &step.created_at {
                Some(t) => t.us(&format!("steps[{i}].createdAt"))?,
                None => clock,
            };
            let duration_us = match step.duration_ms {
                Some(ms) if ms.is_finite() && (0.0..1e12).contains(&ms) => {
                    Some((ms * 1000.0) as i64)
                }
                Some(ms) => return Err(format!("steps[{i}].durationMs {ms} is not a duration")),
                None => None,
            };
            clock = at + duration_us.unwrap_or(0);
            let error = step.error.as_ref().and_then(|e| match e {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            });
            failed |= error.is_some();
            records.push(ShipRecord::Step(StepRow {
                seq: 0,
                id: Uuid::new_v5(&NAMESPACE, format!("step:{id}:{i}").as_bytes()),
                execution_id: id,
                parent_id: None,
                project: project.clone(),
                name: step.name.clone(),
                kind: None,
                status: if error.is_some() {
                    StepStatus::Error
                } else {
                    StepStatus::Ok
                },
                input: step.input.clone(),
                output: step.output.clone(),
                error,
                attributes: Some(serde_json::json!({"imported": true})),
                started_at_us: at,
                duration_us: Some(duration_us.unwrap_or(0)),
                decisions: Vec::new(),
                llm_usage: Vec::new(),
                trace_id: None,
                reasoning: step.reasoning.clone(),
            }));
        }
        let status = match (ended, failed) {
            (_, true) => ExecutionStatus::Error,
            (Some(_), false) => ExecutionStatus::Ok,
            (None, false) => ExecutionStatus::Running,
        };
        let metadata = match &self.metadata {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(Value::Object(m.clone())),
            Some(other) => Some(serde_json::json!({"value": other})),
        };
        records.insert(
            0,
            ShipRecord::Execution(ExecutionRow {
                seq: 0,
                id,
                project,
                name: "imported".to_owned(),
                status,
                metadata,
                outcome: self.final_outcome.clone().filter(|v| !v.is_null()),
                error: failed.then(|| "a step failed".to_owned()),
                started_at_us: started,
                ended_at_us: ended.or((status != ExecutionStatus::Running).then_some(clock)),
                trace_id: None,
                parent_span_id: None,
            }),
        );
        Ok(records)
    }
}
