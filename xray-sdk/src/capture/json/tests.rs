//! Every rule of the writer checked against `serde_json`'s output (for
//! ordinary values, byte for byte) and against the flagged forms it writes
//! where `serde_json` would lose information or fail.

use super::text::{first_escape, ESCAPE};
use super::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

const BIG: usize = 1 << 30;

fn write_with<T: Serialize + ?Sized>(
    value: &T,
    max_depth: usize,
    limit: usize,
) -> (Result<(), TooLarge>, String, Flags) {
    let redactor = Redactor::default();
    let opts = JsonOptions {
        max_depth,
        redactor: &redactor,
        limit,
    };
    let mut out = String::new();
    let mut flags = Flags::default();
    let result = write_json(&mut out, value, &opts, &mut flags);
    (result, out, flags)
}

fn ours<T: Serialize + ?Sized>(value: &T) -> (String, Flags) {
    let (result, out, flags) = write_with(value, 128, BIG);
    assert_eq!(result, Ok(()));
    (out, flags)
}

/// Our output must equal serde_json's, with no flag set.
#[track_caller]
fn same_as_serde_json<T: Serialize + ?Sized>(value: &T) {
    let (out, flags) = ours(value);
    assert_eq!(out, serde_json::to_string(value).unwrap());
    assert!(!flags.any(), "unexpected flags {flags:?} for {out}");
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Newtype(u8);

#[derive(Serialize)]
struct Tuple(i32, String, ());

#[derive(Serialize)]
enum Kind {
    Unit,
    Newtype(u32),
    Tuple(u8, bool),
    EmptyTuple(),
    Struct { a: i8, b: Option<String> },
    EmptyStruct {},
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum Tagged {
    A { x: u8 },
    B(Plain),
}

#[derive(Serialize)]
struct Plain {
    id: u64,
    price: f64,
    name: String,
    tags: Vec<String>,
    score: Option<f32>,
    missing: Option<u8>,
    kinds: Vec<Kind>,
    #[serde(with = "serde_bytes_like")]
    blob: Vec<u8>,
    nested: Option<Box<Plain>>,
}

/// Serializes through `serialize_bytes`, as serde_bytes does.
mod serde_bytes_like {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }
}

fn plain() -> Plain {
    Plain {
        id: u64::MAX,
        price: 0.1,
        name: "Ünïcødé \"q\" \\ / \u{0} \u{1f} \u{7f} \n\r\t\u{8}\u{c} 😀 \u{2028}".to_owned(),
        tags: vec!["a".into(), String::new()],
        score: Some(0.1),
        missing: None,
        kinds: vec![
            Kind::Unit,
            Kind::Newtype(7),
            Kind::Tuple(1, true),
            Kind::EmptyTuple(),
            Kind::Struct {
                a: -1,
                b: Some("x".into()),
            },
            Kind::EmptyStruct {},
        ],
        blob: vec![0, 1, 255],
        nested: Some(Box::new(Plain {
            id: 0,
            price: 1e300,
            name: String::new(),
            tags: vec![],
            score: None,
            missing: Some(3),
            kinds: vec![],
            blob: vec![],
            nested: None,
        })),
    }
}

#[test]
fn ordinary_values_match_serde_json() {
    same_as_serde_json(&plain());
    same_as_serde_json(&Unit);
    same_as_serde_json(&Newtype(4));
    same_as_serde_json(&Tuple(-5, "t".into(), ()));
    same_as_serde_json(&Tagged::A { x: 1 });
    same_as_serde_json(&Tagged::B(plain()));
    same_as_serde_json(&(1u8, 'c', "s", [1.5f64, -0.0]));
    same_as_serde_json(&Some(Some(3)));
    same_as_serde_json(&Option::<u8>::None);
    same_as_serde_json(&());
    same_as_serde_json("");
    same_as_serde_json(&'\u{1}');
    let every_ascii: String = (0u8..=127).map(char::from).collect();
    same_as_serde_json(&every_ascii);
    same_as_serde_json(&vec![Vec::<u8>::new(); 2]);
    same_as_serde_json(&std::time::Duration::from_millis(1500));
    same_as_serde_json(&std::net::Ipv4Addr::new(127, 0, 0, 1));
    same_as_serde_json(&std::path::PathBuf::from("/tmp/\"x\""));
}

#[test]
fn numbers_match_serde_json() {
    same_as_serde_json(&(u64::MAX, i64::MIN, i64::MAX, 0u64, -1i8, i8::MIN));
    same_as_serde_json(&(u128::MAX, i128::MIN, i128::MAX, 0i128, -7i128));
    same_as_serde_json(&(u8::MAX, u16::MAX, u32::MAX, i16::MIN, i32::MIN));
    same_as_serde_json(&[
        0.1,
        1e300,
        -1e-300,
        1.0,
        0.0,
        -0.0,
        1e15,
        1e16,
        1e17,
        1e-5,
        1e-7,
        123_456.789,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::EPSILON,
        5e-324,
    ]);
    same_as_serde_json(&[
        0.1f32,
        1e30,
        f32::MAX,
        f32::MIN_POSITIVE,
        -3.5,
        16_777_216.0,
    ]);
}

#[test]
fn maps_match_serde_json() {
    let mut hash = HashMap::new();
    hash.insert("k\"ey".to_owned(), vec![1, 2]);
    hash.insert("other".to_owned(), vec![]);
    same_as_serde_json(&hash);

    let ints: BTreeMap<i64, &str> = [(-1, "a"), (i64::MAX, "b")].into_iter().collect();
    same_as_serde_json(&ints);
    let wide: BTreeMap<u128, u8> = [(u128::MAX, 1)].into_iter().collect();
    same_as_serde_json(&wide);
    let bools: BTreeMap<bool, u8> = [(true, 1), (false, 0)].into_iter().collect();
    same_as_serde_json(&bools);
    let chars: BTreeMap<char, u8> = [('\n', 1), ('z', 0)].into_iter().collect();
    same_as_serde_json(&chars);

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Color {
        Red,
        Green,
    }
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct Name(String);
    let variants: BTreeMap<Color, u8> = [(Color::Red, 1), (Color::Green, 2)].into_iter().collect();
    same_as_serde_json(&variants);
    let newtypes: BTreeMap<Name, Option<Name>> = [(Name("n".into()), Some(Name("v".into())))]
        .into_iter()
        .collect();
    same_as_serde_json(&newtypes);
    let optional: BTreeMap<Option<u8>, u8> = [(Some(4), 1)].into_iter().collect();
    same_as_serde_json(&optional);
    same_as_serde_json(&BTreeMap::<String, u8>::new());
}

#[test]
fn the_word_at_a_time_scan_finds_the_first_byte_to_escape() {
    let by_bytes = |b: &[u8]| b.iter().position(|&c| ESCAPE[usize::from(c)] != 0);
    // Every byte value at every position of texts of 0 to 20 bytes, in
    // a background of plain ASCII and of multi-byte UTF-8 (high bytes).
    for background in [b'a', 0xC3, 0x7F, 0x20, 0x21, 0x5B, 0x5D] {
        for len in 0..=20 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut text = vec![background; len];
                    text[at] = byte;
                    assert_eq!(first_escape(&text), by_bytes(&text), "{text:?}");
                }
            }
            assert_eq!(
                first_escape(&vec![background; len]),
                by_bytes(&vec![background; len])
            );
        }
    }
    // And the escaped text is serde_json's, for every ASCII character
    // in runs of every length around it.
    for c in (0..128u8).map(char::from) {
        for run in 0..18 {
            let plain = "é".repeat(run / 2) + &"x".repeat(run);
            let text = format!("{plain}{c}{plain}{c}{c}\"\\{plain}");
            assert_eq!(ours(&text).0, serde_json::to_string(&text).unwrap());
        }
    }
}

#[test]
fn collect_str_is_escaped_like_serde_json() {
    struct Shown;
    impl std::fmt::Display for Shown {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a\"b\\c\n{}", 'é'.to_uppercase())
        }
    }
    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self)
        }
    }
    same_as_serde_json(&Shown);
    same_as_serde_json(&[Shown, Shown]);
}

#[derive(Serialize)]
struct Reading {
    value: f64,
    single: f32,
}

#[test]
fn non_finite_floats_are_flagged_not_null() {
    let (out, flags) = ours(&Reading {
        value: f64::NAN,
        single: f32::INFINITY,
    });
    assert_eq!(
        out,
        r#"{"value":{"_xray_non_finite":"NaN"},"single":{"_xray_non_finite":"inf"}}"#
    );
    assert!(flags.non_finite);
    assert_eq!(flags.to_json_array(), r#"["non_finite"]"#);

    let (out, flags) = ours(&vec![1.0, f64::NEG_INFINITY, f64::INFINITY, -f64::NAN]);
    assert_eq!(
        out,
        r#"[1.0,{"_xray_non_finite":"-inf"},{"_xray_non_finite":"inf"},{"_xray_non_finite":"NaN"}]"#
    );
    assert!(flags.non_finite);

    let (out, flags) = ours(&f32::NAN);
    assert_eq!(out, r#"{"_xray_non_finite":"NaN"}"#);
    assert!(flags.non_finite);
    let (out, _) = ours(&f32::NEG_INFINITY);
    assert_eq!(out, r#"{"_xray_non_finite":"-inf"}"#);
}

/// A linked list as deep as we like, built and dropped without recursion.
#[derive(Serialize)]
enum List {
    Cons(u32, Box<List>),
    Nil,
}

impl List {
    fn with_len(len: u32) -> List {
        let mut list = List::Nil;
        for i in (0..len).rev() {
            list = List::Cons(i, Box::new(list));
        }
        list
    }
}

impl Drop for List {
    fn drop(&mut self) {
        // Detach each tail before its owner is dropped, so every drop is
        // shallow: the derived drop would recurse once per element.
        let mut rest = match self {
            List::Cons(_, next) => std::mem::replace(&mut **next, List::Nil),
            List::Nil => return,
        };
        loop {
            let next = match &mut rest {
                List::Cons(_, next) => std::mem::replace(&mut **next, List::Nil),
                List::Nil => return,
            };
            rest = next;
        }
    }
}

#[test]
fn depth_limit_stops_descent_into_very_deep_values() {
    let list = List::with_len(100_000);
    let (result, out, flags) = write_with(&list, 3, BIG);
    assert_eq!(result, Ok(()));
    assert_eq!(
        out,
        r#"{"Cons":[0,{"Cons":[1,{"Cons":[2,{"_xray_depth_limited":true}]}]}]}"#
    );
    assert!(flags.depth_limited);
    assert!(!flags.truncated);

    // A realistic limit on the default test-thread stack.
    let (result, out, flags) = write_with(&list, 128, BIG);
    assert_eq!(result, Ok(()));
    assert!(flags.depth_limited);
    assert_eq!(out.matches("Cons").count(), 128);
}

#[test]
fn depth_limit_counts_every_container_level() {
    let nested = vec![vec![vec![vec![1]]]];
    let (_, out, flags) = write_with(&nested, 4, BIG);
    assert_eq!(out, "[[[[1]]]]");
    assert!(!flags.depth_limited);
    let (_, out, flags) = write_with(&nested, 3, BIG);
    assert_eq!(out, r#"[[[{"_xray_depth_limited":true}]]]"#);
    assert!(flags.depth_limited);
    let (_, out, _) = write_with(&nested, 0, BIG);
    assert_eq!(out, r#"{"_xray_depth_limited":true}"#);
    // Scalars are not levels.
    let (_, out, flags) = write_with(&5u8, 0, BIG);
    assert_eq!(out, "5");
    assert!(!flags.any());
}

#[test]
fn non_string_keys_become_their_json_text() {
    let map: BTreeMap<(i32, i32), &str> = [((1, 2), "a"), ((3, -4), "b")].into_iter().collect();
    let (out, flags) = ours(&map);
    assert_eq!(out, r#"{"[1,2]":"a","[3,-4]":"b"}"#);
    assert!(flags.non_string_keys);
    assert!(!flags.non_finite);

    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct Point {
        x: u8,
        label: &'static str,
    }
    let map: BTreeMap<Point, u8> = [(
        Point {
            x: 1,
            label: "\"q\"",
        },
        9,
    )]
    .into_iter()
    .collect();
    let (out, flags) = ours(&map);
    assert_eq!(out, r#"{"{\"x\":1,\"label\":\"\\\"q\\\"\"}":9}"#);
    assert!(flags.non_string_keys);

    let map: BTreeMap<Option<u8>, u8> = [(None, 1)].into_iter().collect();
    assert_eq!(ours(&map).0, r#"{"null":1}"#);
    let map: BTreeMap<Vec<u8>, u8> = [(vec![], 1), (vec![1], 2)].into_iter().collect();
    assert_eq!(ours(&map).0, r#"{"[]":1,"[1]":2}"#);
    let map: BTreeMap<(), u8> = [((), 1)].into_iter().collect();
    assert_eq!(ours(&map).0, r#"{"null":1}"#);

    // Keys are never an error, floats included.
    struct FloatKeys;
    impl Serialize for FloatKeys {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap as _;
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry(&1.5f64, "x")?;
            map.serialize_entry(&f64::NAN, "y")?;
            map.end()
        }
    }
    let (out, flags) = ours(&FloatKeys);
    assert_eq!(out, r#"{"1.5":"x","{\"_xray_non_finite\":\"NaN\"}":"y"}"#);
    assert!(flags.non_string_keys && flags.non_finite);
}

#[derive(Serialize)]
struct Request {
    url: String,
    api_key: String,
    meta: Meta,
}

#[derive(Serialize)]
struct Meta {
    attempt: u8,
    headers: HashMap<String, String>,
}

#[test]
fn secrets_are_redacted_without_serializing_them() {
    let mut headers = HashMap::new();
    headers.insert("Authorization".to_owned(), "Bearer abc".to_owned());
    let request = Request {
        url: "https://x".into(),
        api_key: "sk-123".into(),
        meta: Meta {
            attempt: 2,
            headers,
        },
    };
    let (out, flags) = ours(&request);
    // The headers map is the third level: Request > Meta > map.
    assert_eq!(
        out,
        r#"{"url":"https://x","api_key":"[redacted]","meta":{"attempt":2,"headers":{"Authorization":"[redacted]"}}}"#
    );
    assert!(flags.redacted);
    assert!(!out.contains("sk-123") && !out.contains("Bearer"));

    /// Fails the test if it is ever serialized.
    struct Untouchable;
    impl Serialize for Untouchable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("a redacted value was serialized");
        }
    }
    #[derive(Serialize)]
    enum Login {
        Form {
            user: &'static str,
            password: Untouchable,
        },
        // A variant named like a secret is a secret key: its content goes
        // without being serialized.
        Password {
            user: &'static str,
            password: Untouchable,
        },
        ApiKey(Untouchable),
    }
    let (out, _) = ours(&Login::Form {
        user: "u",
        password: Untouchable,
    });
    assert_eq!(out, r#"{"Form":{"user":"u","password":"[redacted]"}}"#);
    let (out, _) = ours(&Login::Password {
        user: "u",
        password: Untouchable,
    });
    assert_eq!(out, r#"{"Password":"[redacted]"}"#);
    assert_eq!(
        ours(&Login::ApiKey(Untouchable)).0,
        r#"{"ApiKey":"[redacted]"}"#
    );

    let map: BTreeMap<&str, Untouchable> = [("session_cookie", Untouchable)].into_iter().collect();
    assert_eq!(ours(&map).0, r#"{"session_cookie":"[redacted]"}"#);

    // A unit variant is written as a string key, so it is checked too.
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Header {
        Authorization,
        Accept,
    }
    let map: BTreeMap<Header, &str> = [(Header::Authorization, "Basic x"), (Header::Accept, "*/*")]
        .into_iter()
        .collect();
    assert_eq!(
        ours(&map).0,
        r#"{"Authorization":"[redacted]","Accept":"*/*"}"#
    );

    // Near misses stay.
    let map: BTreeMap<&str, u32> = [("prompt_tokens", 5)].into_iter().collect();
    same_as_serde_json(&map);
}

#[test]
fn size_limit_stops_early() {
    let big = "x".repeat(1 << 20);
    let limit = 64 * 1024;
    let (result, out, flags) = write_with(&big, 128, limit);
    assert_eq!(result, Err(TooLarge));
    assert!(flags.truncated);
    assert!(out.len() <= limit);
    assert!(
        out.capacity() < 256 * 1024,
        "capacity {} suggests the whole string was copied",
        out.capacity()
    );
    assert!(out.starts_with("\"xxx"));

    // A long sequence stops at the limit too (no full pass over it).
    let many = vec![12_345u32; 1 << 20];
    let (result, out, _) = write_with(&many, 128, limit);
    assert_eq!(result, Err(TooLarge));
    assert!(out.len() <= limit && out.capacity() < 256 * 1024);

    // The limit counts what is already in the output.
    let redactor = Redactor::default();
    let opts = JsonOptions {
        max_depth: 8,
        redactor: &redactor,
        limit: 10,
    };
    let mut out = String::from("1234567");
    let mut flags = Flags::default();
    assert_eq!(
        write_json(&mut out, &"ab", &opts, &mut flags),
        Err(TooLarge)
    );
    let mut out = String::from("123456");
    assert_eq!(write_json(&mut out, &"ab", &opts, &mut flags), Ok(()));
    assert_eq!(out, "123456\"ab\"");

    // Numbers are cut at the limit too, never written past it.
    for (value, prefix) in [(123_456i64, "123"), (-98_765, "-98")] {
        let (result, out, _) = write_with(&value, 8, 3);
        assert_eq!(result, Err(TooLarge));
        assert_eq!(out, prefix);
    }
    let (result, out, _) = write_with(&0.123_456_f64, 8, 3);
    assert_eq!(result, Err(TooLarge));
    assert_eq!(out, "0.1");
    let (result, out, _) = write_with(&u128::MAX, 8, 5);
    assert_eq!(result, Err(TooLarge));
    assert_eq!(out, "34028");

    // Multi-byte text is never cut inside a character.
    let (result, out, _) = write_with(&"é".repeat(100), 8, 20);
    assert_eq!(result, Err(TooLarge));
    assert!(out.len() <= 20);

    // Separators, closing brackets and field names are written without
    // a check of their own, yet a value never ends past the limit...
    #[derive(Serialize)]
    struct One {
        field: u8,
    }
    let one = One { field: 1 };
    assert_eq!(write_with(&one, 8, 11).1, "{\"field\":1}");
    for limit in 0..11 {
        let (result, out, flags) = write_with(&one, 8, limit);
        assert_eq!(result, Err(TooLarge), "limit {limit}");
        assert!(flags.truncated);
        assert!(out.len() <= limit, "{out:?} is over {limit}");
    }
    // ... nor runs on through a long sequence of empty containers.
    #[derive(Serialize)]
    struct Empty {}
    let empties: Vec<Empty> = (0..1 << 20).map(|_| Empty {}).collect();
    let (result, out, _) = write_with(&empties, 128, limit);
    assert_eq!(result, Err(TooLarge));
    assert!(out.len() <= limit && out.capacity() < 256 * 1024);
    let nested: Vec<Vec<Vec<u8>>> = vec![vec![vec![]; 4]; 1 << 18];
    let (result, out, _) = write_with(&nested, 128, limit);
    assert_eq!(result, Err(TooLarge));
    assert!(out.len() <= limit && out.capacity() < 256 * 1024);
}

/// Fails with a custom error after writing part of itself.
struct Failing;
impl Serialize for Failing {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq as _};
        let mut seq = s.serialize_seq(None)?;
        seq.serialize_element(&1)?;
        seq.serialize_element(&f64::NAN)?;
        Err(S::Error::custom("lock \"poisoned\""))
    }
}

#[test]
fn serialize_errors_replace_only_their_value() {
    #[derive(Serialize)]
    struct Holder {
        a: u8,
        b: Failing,
        c: Vec<Failing>,
        d: u8,
    }
    let (out, flags) = ours(&Holder {
        a: 1,
        b: Failing,
        c: vec![Failing],
        d: 4,
    });
    let marker = r#"{"_xray_serialize_error":"lock \"poisoned\""}"#;
    assert_eq!(
        out,
        format!(r#"{{"a":1,"b":{marker},"c":[{marker}],"d":4}}"#)
    );
    // The NaN written before the failure was discarded with its flag.
    assert!(!flags.non_finite);

    let (out, _) = ours(&Failing);
    assert_eq!(out, marker);

    let map: BTreeMap<u8, Failing> = [(1, Failing)].into_iter().collect();
    assert_eq!(ours(&map).0, format!(r#"{{"1":{marker}}}"#));

    // Even a failing map key is not an error.
    struct FailingKey;
    impl Serialize for FailingKey {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap as _;
            let mut map = s.serialize_map(None)?;
            map.serialize_entry(&Failing, &2)?;
            map.end()
        }
    }
    let (out, flags) = ours(&FailingKey);
    assert_eq!(
        out,
        r#"{"{\"_xray_serialize_error\":\"lock \\\"poisoned\\\"\"}":2}"#
    );
    assert!(flags.non_string_keys);
}

#[test]
fn too_large_cannot_be_hidden_by_a_serialize_impl() {
    /// Turns every error into a custom one, as a careless impl might.
    struct Masking(String);
    impl Serialize for Masking {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::Error as _;
            s.serialize_str(&self.0)
                .map_err(|e| S::Error::custom(format!("masked: {e}")))
        }
    }
    let values = vec![Masking("y".repeat(100)), Masking("z".into())];
    let (result, _, flags) = write_with(&values, 8, 50);
    assert_eq!(result, Err(TooLarge));
    assert!(flags.truncated);
}

#[test]
fn debug_text_is_one_redacted_string_literal() {
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Login {
        user: String,
        password: String,
        port: u16,
    }
    let creds = Login {
        user: "bob \"the\" builder".into(),
        password: "hunter2, really".into(),
        port: 22,
    };
    let redactor = Redactor::default();
    let opts = JsonOptions {
        max_depth: 8,
        redactor: &redactor,
        limit: BIG,
    };
    let mut out = String::new();
    let mut flags = Flags::default();
    assert_eq!(write_debug(&mut out, &creds, &opts, &mut flags), Ok(()));
    let text: String = serde_json::from_str(&out).unwrap();
    assert_eq!(
        text,
        r#"Login { user: "bob \"the\" builder", password: "[redacted]", port: 22 }"#
    );
    assert!(flags.redacted);
    assert!(!out.contains("hunter2"));

    let mut out = String::new();
    let mut flags = Flags::default();
    assert_eq!(
        write_debug(&mut out, "tab\there", &opts, &mut flags),
        Ok(())
    );
    assert_eq!(out, serde_json::to_string("\"tab\\there\"").unwrap());
    assert!(!flags.any());
}

#[test]
fn debug_output_is_cut_off_at_the_limit() {
    /// Would print forever if nothing stopped it.
    struct Endless;
    impl std::fmt::Debug for Endless {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Endless { password: \"")?;
            loop {
                f.write_str("secret secret secret ")?;
            }
        }
    }
    let redactor = Redactor::default();
    let opts = JsonOptions {
        max_depth: 8,
        redactor: &redactor,
        limit: 4096,
    };
    let mut out = String::new();
    let mut flags = Flags::default();
    assert_eq!(
        write_debug(&mut out, &Endless, &opts, &mut flags),
        Err(TooLarge)
    );
    assert!(flags.truncated && flags.redacted);
    assert!(out.len() <= 4096);
    // What is left for a preview is redacted already.
    assert!(!out.contains("secret"), "{out}");
}

#[test]
fn failing_debug_impl_is_flagged() {
    struct Broken;
    impl std::fmt::Debug for Broken {
        fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            Err(std::fmt::Error)
        }
    }
    let redactor = Redactor::default();
    let opts = JsonOptions {
        max_depth: 8,
        redactor: &redactor,
        limit: BIG,
    };
    let mut out = String::new();
    let mut flags = Flags::default();
    assert_eq!(write_debug(&mut out, &Broken, &opts, &mut flags), Ok(()));
    assert_eq!(
        out,
        r#"{"_xray_serialize_error":"Debug implementation returned an error"}"#
    );
}

#[test]
fn truncated_marker() {
    let mut out = String::new();
    write_truncated(&mut out, 65_536, "{\"a\":\"x\ny\"");
    assert_eq!(
        out,
        r#"{"_xray_truncated":true,"limit":65536,"preview":"{\"a\":\"x\ny\""}"#
    );
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["preview"], "{\"a\":\"x\ny\"");

    let mut out = String::new();
    let source = "é".repeat(300);
    write_truncated(&mut out, 1, &source);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["preview"].as_str().unwrap().chars().count(), 256);
    assert_eq!(value["limit"], 1);
}

#[test]
fn flags_helpers() {
    let mut flags = Flags::default();
    assert!(!flags.any());
    assert_eq!(flags.to_json_array(), "[]");
    flags.merge(Flags {
        redacted: true,
        ..Flags::default()
    });
    flags.merge(Flags {
        non_finite: true,
        ..Flags::default()
    });
    assert!(flags.any());
    assert_eq!(flags.to_json_array(), r#"["non_finite","redacted"]"#);
    let all = Flags {
        non_finite: true,
        depth_limited: true,
        non_string_keys: true,
        redacted: true,
        truncated: true,
        format_error: true,
        capped: true,
        malformed_traceparent: true,
    };
    assert_eq!(
        all.to_json_array(),
        r#"["non_finite","depth_limited","non_string_keys","redacted","truncated","format_error","capped","malformed_traceparent"]"#
    );
}

#[test]
fn enum_variants_named_like_secrets_are_keys_and_redacted() {
    #[derive(Serialize)]
    enum Credential {
        ApiKey(String),
        Token(String, u32),
        Password { value: String },
        Username(String),
        Anonymous,
    }
    let values = vec![
        Credential::ApiKey("sk-live-1".into()),
        Credential::Token("tok-2".into(), 7),
        Credential::Password {
            value: "hunter2".into(),
        },
        Credential::Username("ann".into()),
        Credential::Anonymous,
    ];
    let (json, flags) = ours(&values);
    assert_eq!(
        json,
        r#"[{"ApiKey":"[redacted]"},{"Token":"[redacted]"},{"Password":"[redacted]"},{"Username":"ann"},"Anonymous"]"#
    );
    assert!(flags.redacted);
    let _: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
}
