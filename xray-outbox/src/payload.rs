//! The elements of the JSON arrays in the `decisions` and `llm_usage`
//! columns.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One decision about a candidate, taken inside a step
/// (`xray::accept`, `xray::reject`, `xray::score`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The candidate's id.
    pub candidate_id: String,
    /// `Some(true)` accepted, `Some(false)` rejected, `None` only scored.
    #[serde(default)]
    pub accepted: Option<bool>,
    /// The filter that decided.
    #[serde(default)]
    pub filter: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// A score given to the candidate. A non-finite score is written in
    /// the flagged form `{"_xray_non_finite": "NaN"}` (JSON has no NaN)
    /// and read back as `None`, as is any other value that is not a number.
    #[serde(default, serialize_with = "score_out", deserialize_with = "score_in")]
    pub score: Option<f64>,
}

fn score_out<S: Serializer>(score: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match score {
        Some(v) if v.is_finite() => s.serialize_some(v),
        Some(v) => {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("_xray_non_finite", &v.to_string())?;
            m.end()
        }
        None => s.serialize_none(),
    }
}

fn score_in<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(serde_json::Value::deserialize(d)?.as_f64())
}

/// Tokens one LLM call used (`xray::llm_usage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmUsage {
    /// Model name.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_round_trip_and_a_non_finite_score_is_flagged_then_read_as_none() {
        let d = Decision {
            candidate_id: "B07X".into(),
            accepted: Some(false),
            filter: Some("price".into()),
            reason: Some("79.99 > 50".into()),
            score: Some(0.5),
        };
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(
            text,
            r#"{"candidate_id":"B07X","accepted":false,"filter":"price","reason":"79.99 > 50","score":0.5}"#
        );
        assert_eq!(serde_json::from_str::<Decision>(&text).unwrap(), d);

        let nan = Decision {
            score: Some(f64::NAN),
            ..d.clone()
        };
        let text = serde_json::to_string(&nan).unwrap();
        assert!(
            text.ends_with(r#""score":{"_xray_non_finite":"NaN"}}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Decision>(&text).unwrap().score, None);
    }

    #[test]
    fn a_decision_needs_a_string_candidate_id_and_usage_integer_tokens() {
        assert!(serde_json::from_str::<Decision>(r#"{"candidate_id": 7}"#).is_err());
        let only_id: Decision = serde_json::from_str(r#"{"candidate_id": "c"}"#).unwrap();
        assert_eq!((only_id.accepted, only_id.score), (None, None));
        assert!(serde_json::from_str::<LlmUsage>(
            r#"{"model":"m","prompt_tokens":1.5,"completion_tokens":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<LlmUsage>(r#"{"model":"m","prompt_tokens":1}"#).is_err());
    }
}
