//! Values a backend cannot hold, stored in a defined, flagged form instead
//! of costing the whole record.
//!
//! PostgreSQL refuses some values a Rust string or an `i64` holds, and a
//! refusal would send the whole step to the dead-letter table. Both
//! backends store the same form (the embedded store could hold the
//! originals, but a trace must read the same whichever backend keeps it),
//! so [`record`] runs before every write of either:
//!
//! | what | stored as | flag |
//! |---|---|---|
//! | a NUL character (U+0000) in any text or JSON string or key (`22P05`, `22021`) | U+FFFD | `nul_replaced` |
//! | a name, project, candidate id or model over [`MAX_KEY_BYTES`] (indexed: a btree entry holds at most ~2,700 bytes, `54000`) | its first bytes, cut at a character boundary, then `…[N bytes]` (N the original length) | `key_truncated` |
//! | an LLM token count outside `integer` (`prompt_tokens int`, `22003`) | clamped to `-2147483648..=2147483647` | `tokens_clamped` |
//!
//! The flag names are added to the step's `attributes._xray_flags` (an
//! execution's `metadata._xray_flags`), beside the capture flags the SDK
//! writes there. A record that needs none of this is passed through
//! without a copy.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::model::{ExecutionRow, ShipRecord, StepRow};

/// Longest name, project, candidate id or model stored whole, in bytes
/// (UTF-8). Longer ones keep a prefix of at most this many bytes and a
/// marker with the original length.
pub const MAX_KEY_BYTES: usize = 1024;

/// Flag: a NUL character was replaced by U+FFFD.
pub const NUL_REPLACED: &str = "nul_replaced";
/// Flag: a name, project, candidate id or model was cut to [`MAX_KEY_BYTES`].
pub const KEY_TRUNCATED: &str = "key_truncated";
/// Flag: a token count was clamped into the range of `integer`.
pub const TOKENS_CLAMPED: &str = "tokens_clamped";

/// `record` in the form every backend can store.
pub(crate) fn record(record: &ShipRecord) -> Cow<'_, ShipRecord> {
    let mut flags = Flags::default();
    match record {
        ShipRecord::Step(s) => {
            check_step(s, &mut flags);
            if flags.none() {
                return Cow::Borrowed(record);
            }
            let mut s = s.clone();
            fix_step(&mut s);
            s.attributes = Some(flagged(s.attributes.take(), &flags));
            Cow::Owned(ShipRecord::Step(s))
        }
        ShipRecord::Execution(e) => {
            check_execution(e, &mut flags);
            if flags.none() {
                return Cow::Borrowed(record);
            }
            let mut e = e.clone();
            fix_execution(&mut e);
            e.metadata = Some(flagged(e.metadata.take(), &flags));
            Cow::Owned(ShipRecord::Execution(e))
        }
    }
}

/// Which rules a record needs.
#[derive(Default)]
struct Flags {
    nul: bool,
    key: bool,
    tokens: bool,
}

impl Flags {
    fn none(&self) -> bool {
        !(self.nul || self.key || self.tokens)
    }

    fn text(&mut self, s: &str) {
        self.nul |= s.contains('\0');
    }

    fn key(&mut self, s: &str) {
        self.text(s);
        self.key |= s.len() > MAX_KEY_BYTES;
    }

    fn json(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.text(s),
            Value::Array(items) => items.iter().for_each(|v| self.json(v)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                self.text(k);
                self.json(v);
            }),
            _ => {}
        }
    }

    fn names(&self) -> impl Iterator<Item = &'static str> {
        [
            (self.nul, NUL_REPLACED),
            (self.key, KEY_TRUNCATED),
            (self.tokens, TOKENS_CLAMPED),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
    }
}

fn check_step(s: &StepRow, flags: &mut Flags) {
    flags.key(&s.name);
    flags.key(&s.project);
    s.kind.iter().chain(&s.error).for_each(|t| flags.text(t));
    [&s.input, &s.output, &s.attributes]
        .into_iter()
        .flatten()
        .for_each(|v| flags.json(v));
    for d in &s.decisions {
        flags.key(&d.candidate_id);
        d.filter.iter().chain(&d.reason).for_each(|t| flags.text(t));
    }
    for u in &s.llm_usage {
        flags.key(&u.model);
        flags.tokens |= clamp(u.prompt_tokens) != u.prompt_tokens
            || clamp(u.completion_tokens) != u.completion_tokens;
    }
}

fn check_execution(e: &ExecutionRow, flags: &mut Flags) {
    flags.key(&e.name);
    flags.key(&e.project);
    e.error.iter().for_each(|t| flags.text(t));
    [&e.metadata, &e.outcome]
        .into_iter()
        .flatten()
        .for_each(|v| flags.json(v));
}

fn fix_step(s: &mut StepRow) {
    fix_key(&mut s.name);
    fix_key(&mut s.project);
    s.kind.iter_mut().chain(&mut s.error).for_each(fix_text);
    [&mut s.input, &mut s.output, &mut s.attributes]
        .into_iter()
        .flatten()
        .for_each(fix_json);
    for d in &mut s.decisions {
        fix_key(&mut d.candidate_id);
        d.filter.iter_mut().chain(&mut d.reason).for_each(fix_text);
    }
    for u in &mut s.llm_usage {
        fix_key(&mut u.model);
        u.prompt_tokens = clamp(u.prompt_tokens);
        u.completion_tokens = clamp(u.completion_tokens);
    }
}

fn fix_execution(e: &mut ExecutionRow) {
    fix_key(&mut e.name);
    fix_key(&mut e.project);
    e.error.iter_mut().for_each(fix_text);
    [&mut e.metadata, &mut e.outcome]
        .into_iter()
        .flatten()
        .for_each(fix_json);
}

/// `s` with every NUL character replaced by U+FFFD.
pub(crate) fn without_nul(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

fn fix_text(s: &mut String) {
    if s.contains('\0') {
        *s = without_nul(s);
    }
}

fn fix_key(s: &mut String) {
    fix_text(s);
    if s.len() > MAX_KEY_BYTES {
        let mut cut = MAX_KEY_BYTES;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let marker = format!("…[{} bytes]", s.len());
        s.truncate(cut);
        s.push_str(&marker);
    }
}

/// `v` with every NUL character in its strings and keys replaced by U+FFFD.
pub(crate) fn fix_json(v: &mut Value) {
    match v {
        Value::String(s) => fix_text(s),
        Value::Array(items) => items.iter_mut().for_each(fix_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (without_nul(&k), v))
                    .collect();
            }
            map.values_mut().for_each(fix_json);
        }
        _ => {}
    }
}

fn clamp(tokens: i64) -> i64 {
    tokens.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

/// `object` (attributes or metadata) with `flags` added to its
/// `_xray_flags` list. A value that is not an object is kept under
/// `_xray_value`; a `_xray_flags` that is not a list becomes its first
/// element.
fn flagged(object: Option<Value>, flags: &Flags) -> Value {
    let mut map = match object {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => Map::new(),
        Some(other) => Map::from_iter([("_xray_value".to_owned(), other)]),
    };
    let list = match map.remove(xray_outbox::FLAGS_KEY) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => vec![other],
    };
    let mut list = list;
    for name in flags.names() {
        if !list.iter().any(|f| f == name) {
            list.push(Value::from(name));
        }
    }
    map.insert(xray_outbox::FLAGS_KEY.to_owned(), Value::Array(list));
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_key_keeps_a_prefix_cut_at_a_character_boundary_and_its_length() {
        let mut s = "é".repeat(MAX_KEY_BYTES); // 2 bytes each
        fix_key(&mut s);
        let (prefix, marker) = s.split_once('…').unwrap();
        assert_eq!(prefix.len(), MAX_KEY_BYTES);
        assert_eq!(marker, format!("[{} bytes]", 2 * MAX_KEY_BYTES));
        let mut odd = format!("a{}", "é".repeat(MAX_KEY_BYTES));
        fix_key(&mut odd);
        assert_eq!(odd.split_once('…').unwrap().0.len(), MAX_KEY_BYTES - 1);
        let mut short = "x".repeat(MAX_KEY_BYTES);
        fix_key(&mut short);
        assert_eq!(short, "x".repeat(MAX_KEY_BYTES), "at the limit: whole");
    }

    #[test]
    fn flags_join_those_already_there_whatever_shape_the_object_has() {
        let flags = Flags {
            nul: true,
            key: false,
            tokens: true,
        };
        assert_eq!(
            flagged(
                Some(serde_json::json!({"a": 1, "_xray_flags": ["redacted", "nul_replaced"]})),
                &flags
            ),
            serde_json::json!({"a": 1, "_xray_flags": ["redacted", "nul_replaced", "tokens_clamped"]})
        );
        assert_eq!(
            flagged(Some(serde_json::json!([1])), &flags),
            serde_json::json!({"_xray_value": [1], "_xray_flags": ["nul_replaced", "tokens_clamped"]})
        );
        assert_eq!(
            flagged(None, &flags),
            serde_json::json!({"_xray_flags": ["nul_replaced", "tokens_clamped"]})
        );
    }
}
