//! What LLM calls cost (DESIGN.md, "Cost"): prices per million prompt and
//! completion tokens, by model name, built in and overridden or extended
//! by the file `XRAY_PRICES`. The collector writes them into the store's
//! `model_prices` at start; each LLM usage row is priced from them when it
//! is written (`llm_usage.cost_usd`). A model with no price has no cost,
//! never a guessed one: names match exactly (a dated snapshot such as
//! `gpt-4o-2024-05-13` is its own model: price it in `XRAY_PRICES`).

use std::collections::BTreeMap;
use std::path::Path;

/// One model's prices, US dollars per million tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    /// The model name, as `xray::llm_usage` records it.
    pub model: String,
    /// Per million prompt (input) tokens.
    pub prompt_per_million: f64,
    /// Per million completion (output) tokens.
    pub completion_per_million: f64,
    /// Where the price comes from (the built-in table's date, or the file).
    pub source: String,
}

/// When the built-in prices were taken from the providers' price pages.
pub const BUILT_IN_AS_OF: &str = "2025-06";

/// Built in: (model, prompt, completion), USD per million tokens, standard
/// (not batch, not cached) rates as the providers listed them in
/// [`BUILT_IN_AS_OF`].
const BUILT_IN: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("o3-mini", 1.10, 4.40),
    ("claude-3-5-haiku-latest", 0.80, 4.00),
    ("claude-3-5-sonnet-latest", 3.00, 15.00),
    ("claude-3-opus-latest", 15.00, 75.00),
    ("gemini-1.5-flash", 0.075, 0.30),
    ("gemini-1.5-pro", 1.25, 5.00),
];

/// The built-in prices.
pub fn built_in() -> Vec<ModelPrice> {
    BUILT_IN
        .iter()
        .map(|(model, prompt, completion)| ModelPrice {
            model: (*model).to_owned(),
            prompt_per_million: *prompt,
            completion_per_million: *completion,
            source: format!("built-in ({BUILT_IN_AS_OF})"),
        })
        .collect()
}

/// The prices to use: the built-in ones, overridden and extended by the
/// file `XRAY_PRICES` names, when it names one.
pub fn from_env() -> Result<Vec<ModelPrice>, String> {
    match std::env::var_os("XRAY_PRICES") {
        Some(path) if !path.is_empty() => with_file(Path::new(&path)),
        _ => Ok(built_in()),
    }
}

/// The built-in prices, overridden and extended by `path`: a JSON object
/// `{"model": {"prompt": 2.5, "completion": 10.0}, …}` (USD per million
/// tokens). Anything else is an error naming the file and the entry.
pub fn with_file(path: &Path) -> Result<Vec<ModelPrice>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("XRAY_PRICES={shown}: {e}"))?;
    let file: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
        format!(
            "XRAY_PRICES={shown}: not a JSON object of models \
             ({{\"model\": {{\"prompt\": 2.5, \"completion\": 10.0}}}}): {e}"
        )
    })?;
    let mut prices: BTreeMap<String, ModelPrice> = built_in()
        .into_iter()
        .map(|p| (p.model.clone(), p))
        .collect();
    for (model, entry) in file {
        let rate = |key: &str| {
            entry[key]
                .as_f64()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    format!(
                        "XRAY_PRICES={shown}: {model:?} needs \"{key}\", a number of US dollars \
                         per million tokens, 0 or more"
                    )
                })
        };
        if model.trim().is_empty() {
            return Err(format!("XRAY_PRICES={shown}: a model name is empty"));
        }
        let price = ModelPrice {
            prompt_per_million: rate("prompt")?,
            completion_per_million: rate("completion")?,
            model: model.clone(),
            source: format!("XRAY_PRICES ({shown})"),
        };
        prices.insert(model, price);
    }
    Ok(prices.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prices.json");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_built_in_table_is_dated_and_has_no_duplicate() {
        let prices = built_in();
        let mut names: Vec<&str> = prices.iter().map(|p| p.model.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), prices.len());
        assert!(prices.iter().all(|p| p.source.contains(BUILT_IN_AS_OF)));
        let mini = prices.iter().find(|p| p.model == "gpt-4o-mini").unwrap();
        assert_eq!(
            (mini.prompt_per_million, mini.completion_per_million),
            (0.15, 0.60)
        );
    }

    #[test]
    fn a_file_overrides_and_extends_the_built_in_prices() {
        let (_dir, path) = file(
            r#"{"gpt-4o-mini": {"prompt": 0.1, "completion": 0.5}, "house-model": {"prompt": 0, "completion": 2}}"#,
        );
        let prices = with_file(&path).unwrap();
        let find = |m: &str| prices.iter().find(|p| p.model == m).unwrap();
        assert_eq!(find("gpt-4o-mini").prompt_per_million, 0.1);
        assert!(find("gpt-4o-mini").source.starts_with("XRAY_PRICES"));
        assert_eq!(find("house-model").completion_per_million, 2.0);
        assert_eq!(find("gpt-4o").prompt_per_million, 2.5, "the rest stays");
        assert_eq!(prices.len(), built_in().len() + 1);
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it_and_the_entry() {
        for (text, expected) in [
            ("not json", "not a JSON object"),
            ("[1, 2]", "not a JSON object"),
            (r#"{"m": {"prompt": 1}}"#, "\"m\" needs \"completion\""),
            (
                r#"{"m": {"prompt": -1, "completion": 1}}"#,
                "\"m\" needs \"prompt\"",
            ),
            (
                r#"{"m": {"prompt": "cheap", "completion": 1}}"#,
                "\"m\" needs \"prompt\"",
            ),
            (
                r#"{" ": {"prompt": 1, "completion": 1}}"#,
                "a model name is empty",
            ),
        ] {
            let (_dir, path) = file(text);
            let err = with_file(&path).unwrap_err();
            assert!(
                err.contains("XRAY_PRICES=")
                    && err.contains("prices.json")
                    && err.contains(expected),
                "{text}: {err}"
            );
        }
        let err = with_file(Path::new("/nonexistent/prices.json")).unwrap_err();
        assert!(err.contains("/nonexistent/prices.json"), "{err}");
    }
}
