//! `#[xray::step]` on every kind of signature it supports, called with X-Ray
//! *not* initialised: each function must compile and behave exactly as it
//! would without the attribute. (What the steps record is tested where a
//! pipeline is installed.)

use std::cell::Cell;
use std::error::Error as StdError;
use std::fmt::{self, Debug, Display};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;

// ---------------------------------------------------------------------------
// Free functions: returns of every shape.
// ---------------------------------------------------------------------------

#[xray::step]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

thread_local! {
    static SIDE_EFFECTS: Cell<u32> = const { Cell::new(0) };
}

#[xray::step]
fn returns_nothing(by: u32) {
    SIDE_EFFECTS.with(|count| count.set(count.get() + by));
}

#[xray::step]
#[allow(clippy::unused_unit)] // the explicit `-> ()` is what is under test
fn returns_explicit_unit(by: u32) -> () {
    SIDE_EFFECTS.with(|count| count.set(count.get() + by));
}

#[xray::step]
fn early_return(n: i32) -> &'static str {
    if n < 0 {
        return "negative";
    }
    "non-negative"
}

#[derive(Debug)]
struct RootCause;

impl Display for RootCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("root cause")
    }
}

impl StdError for RootCause {}

#[derive(Debug)]
struct ParseFailure {
    input: String,
    source: RootCause,
}

impl Display for ParseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot parse {:?}", self.input)
    }
}

impl StdError for ParseFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

#[xray::step]
fn parse_number(text: &str) -> Result<i64, ParseFailure> {
    text.trim().parse().map_err(|_| ParseFailure {
        input: text.to_owned(),
        source: RootCause,
    })
}

#[xray::step]
fn uses_question_mark(a: &str, b: &str) -> Result<i64, ParseFailure> {
    let a = parse_number(a)?;
    let b = parse_number(b)?;
    Ok(a + b)
}

/// `?` converts into `Box<dyn Error>`: needs the closure's return type to be
/// known up front.
#[xray::step]
fn boxed_error(text: &str) -> Result<u8, Box<dyn StdError + Send + Sync>> {
    let value: u8 = text.parse()?;
    Ok(value)
}

/// An error type with neither `std::error::Error` nor `Display`.
#[derive(Debug, PartialEq)]
enum DebugOnlyError {
    TooBig(u32),
}

#[xray::step]
fn checked(n: u32) -> Result<u32, DebugOnlyError> {
    if n > 10 {
        Err(DebugOnlyError::TooBig(n))
    } else {
        Ok(n * 2)
    }
}

/// An error type with no trait at all.
struct OpaqueError;

#[xray::step]
fn fails_opaquely(fail: bool) -> Result<(), OpaqueError> {
    if fail {
        Err(OpaqueError)
    } else {
        Ok(())
    }
}

#[xray::step]
fn find_even(items: &[u32]) -> Option<u32> {
    items.iter().copied().find(|n| n % 2 == 0)
}

#[xray::step]
fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}

#[xray::step]
fn longest<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.len() >= b.len() {
        a
    } else {
        b
    }
}

#[xray::step]
fn first_mut<'a>(items: &'a mut [u32]) -> &'a mut u32 {
    &mut items[0]
}

#[xray::step]
fn evens(up_to: u32) -> impl Iterator<Item = u32> {
    (0..up_to).filter(|n| n % 2 == 0)
}

#[xray::step]
fn boxed_display(n: u32) -> Box<dyn Display> {
    Box::new(n)
}

#[xray::step]
fn tuple_result(n: u32) -> (u32, String) {
    (n, n.to_string())
}

// ---------------------------------------------------------------------------
// Arguments: `impl Trait`, generics, where clauses, patterns, odd types.
// ---------------------------------------------------------------------------

#[xray::step]
fn describe(value: impl Display, label: impl AsRef<str>) -> String {
    format!("{}={value}", label.as_ref())
}

#[xray::step]
fn largest<T: PartialOrd + Copy + Debug>(items: &[T]) -> Option<T> {
    let mut iter = items.iter().copied();
    let first = iter.next()?;
    Some(iter.fold(first, |best, item| if item > best { item } else { best }))
}

#[xray::step]
fn join<I>(items: I, separator: &str) -> String
where
    I: IntoIterator,
    I::Item: Display,
{
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(separator)
}

/// An unbounded type parameter: captured as opaque, still compiles.
#[xray::step]
fn identity<T>(value: T) -> T {
    value
}

#[xray::step]
fn sum_array<const N: usize>(values: [u32; N]) -> u32 {
    values.iter().sum()
}

#[xray::step]
fn call_twice<F: FnMut() -> u32>(mut f: F) -> u32 {
    f() + f()
}

#[xray::step]
fn dyn_arg(value: &dyn Display) -> String {
    value.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Point {
    x: i32,
    y: i32,
}

#[xray::step]
fn tuple_pattern((a, b): (u32, u32)) -> u32 {
    a * b
}

#[xray::step]
fn struct_pattern(Point { x, y }: Point) -> i32 {
    x - y
}

#[xray::step]
fn mut_binding(mut bytes: Vec<u8>, _: u8) -> Vec<u8> {
    bytes.push(0xff);
    bytes
}

#[xray::step]
fn nested_patterns(
    [first, _, last]: [u8; 3],
    &reference: &u32,
    (Point { x, .. }, _ignored): (Point, u8),
) -> u32 {
    u32::from(first) + u32::from(last) + reference + x.unsigned_abs()
}

#[xray::step]
fn r#match(r#type: u32) -> u32 {
    r#type + 1
}

/// A type with `Debug` but no `Serialize`.
#[derive(Debug, Clone, PartialEq)]
struct DebugOnly(u32);

/// A type with neither `Serialize` nor `Debug`.
#[derive(Clone, PartialEq)]
struct NoTraits(u32);

#[xray::step]
fn debug_only(value: DebugOnly) -> DebugOnly {
    DebugOnly(value.0 + 1)
}

#[xray::step]
fn no_traits(value: NoTraits, by_ref: &NoTraits) -> NoTraits {
    NoTraits(value.0 + by_ref.0)
}

#[xray::step]
fn mutates_argument(target: &mut Vec<u32>, value: u32) {
    target.push(value);
}

// ---------------------------------------------------------------------------
// Signature modifiers and attributes.
// ---------------------------------------------------------------------------

/// # Safety
/// `pointer` must be valid for reads.
#[xray::step]
unsafe fn read_raw(pointer: *const u32) -> u32 {
    *pointer
}

mod visibility {
    /// Kept doc comment.
    #[xray::step]
    #[inline]
    #[must_use]
    pub(crate) fn crate_visible(n: u32) -> u32 {
        n + 100
    }
}

#[xray::step]
extern "C" fn c_abi(n: u32) -> u32 {
    n * 3
}

#[xray::step]
fn with_inner_attribute(n: u32) -> u32 {
    #![allow(clippy::identity_op)]
    n * 1
}

#[xray::step]
fn with_nested_items(n: u32) -> u32 {
    fn helper(n: u32) -> u32 {
        n + 1
    }
    const OFFSET: u32 = 10;
    helper(n) + OFFSET
}

#[xray::step]
fn factorial(n: u64) -> u64 {
    if n <= 1 {
        1
    } else {
        n * factorial(n - 1)
    }
}

#[xray::step]
fn panics(message: &str) -> u32 {
    panic!("{message}")
}

#[xray::step]
fn diverges(message: &str) -> ! {
    panic!("{message}")
}

// ---------------------------------------------------------------------------
// Methods: every receiver, associated functions, traits.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct Counter {
    count: u32,
    label: String,
}

impl Counter {
    #[xray::step]
    fn new(label: &str) -> Self {
        Counter {
            count: 0,
            label: label.to_owned(),
        }
    }

    #[xray::step]
    fn get(&self) -> u32 {
        self.count
    }

    #[xray::step]
    fn label(&self) -> &str {
        &self.label
    }

    #[xray::step]
    fn increment(&mut self, by: u32) -> u32 {
        self.count += by;
        self.count
    }

    #[xray::step]
    fn count_mut(&mut self) -> &mut u32 {
        &mut self.count
    }

    #[xray::step]
    fn into_label(self) -> String {
        self.label
    }

    #[xray::step]
    fn reset(mut self) -> Self {
        self.count = 0;
        self
    }

    #[xray::step]
    fn boxed(self: Box<Self>) -> u32 {
        self.count
    }

    #[xray::step]
    fn rc(self: Rc<Self>) -> usize {
        Rc::strong_count(&self)
    }

    #[xray::step]
    fn arc(self: &Arc<Self>) -> u32 {
        self.count
    }

    #[xray::step]
    fn pinned(self: Pin<&mut Self>) -> u32 {
        self.get_mut().count += 1;
        0
    }

    #[xray::step]
    fn with_lifetime<'a>(&'a self, other: &'a str) -> &'a str {
        if self.label.len() > other.len() {
            &self.label
        } else {
            other
        }
    }

    #[xray::step]
    fn generic_method<T: Into<u32>>(&self, extra: T) -> u32 {
        self.count + extra.into()
    }
}

trait Greeter {
    fn name(&self) -> String;

    #[xray::step]
    fn greet(&self, greeting: &str) -> String {
        format!("{greeting}, {}!", self.name())
    }

    #[xray::step]
    fn shout(&self) -> String
    where
        Self: Sized,
    {
        self.greet("HEY").to_uppercase()
    }
}

struct English;

impl Greeter for English {
    #[xray::step]
    fn name(&self) -> String {
        "world".to_owned()
    }
}

struct Wrapper<T>(T);

impl<T: Clone + Debug> Wrapper<T> {
    #[xray::step]
    fn get(&self) -> T {
        self.0.clone()
    }
}

// ---------------------------------------------------------------------------
// Async functions and functions returning `impl Future`.
// ---------------------------------------------------------------------------

#[xray::step]
async fn async_add(a: u32, b: u32) -> u32 {
    tokio::task::yield_now().await;
    a + b
}

#[xray::step]
async fn async_nothing(by: u32) {
    tokio::task::yield_now().await;
    SIDE_EFFECTS.with(|count| count.set(count.get() + by));
}

#[xray::step]
async fn async_result(text: &str) -> Result<i64, ParseFailure> {
    tokio::task::yield_now().await;
    let value = parse_number(text)?;
    if value < 0 {
        return Ok(0);
    }
    Ok(value)
}

#[xray::step]
async fn async_boxed_error(text: &str) -> Result<u8, Box<dyn StdError + Send + Sync>> {
    Ok(text.parse::<u8>()?)
}

#[xray::step]
async fn async_reference<'a>(a: &'a str, b: &str) -> &'a str {
    tokio::task::yield_now().await;
    if b.is_empty() {
        ""
    } else {
        a
    }
}

#[xray::step]
async fn async_generic<T>(items: Vec<T>) -> usize
where
    T: Send + Debug,
{
    tokio::task::yield_now().await;
    items.len()
}

#[xray::step]
async fn async_impl_trait_arg(value: impl Display + Send) -> String {
    value.to_string()
}

#[xray::step]
async fn async_pattern((a, b): (u32, u32), Point { x, y }: Point) -> i64 {
    i64::from(a + b) + i64::from(x + y)
}

#[xray::step]
async fn async_no_traits(value: NoTraits) -> NoTraits {
    value
}

#[xray::step]
async fn async_returns_impl_display(n: u32) -> impl Display {
    n
}

#[xray::step]
fn returns_future(n: u32) -> impl Future<Output = u32> {
    let doubled = n * 2; // runs when called, inside the step
    async move {
        tokio::task::yield_now().await;
        doubled + 1
    }
}

#[xray::step]
fn returns_send_future(text: String) -> impl Future<Output = Result<i64, ParseFailure>> + Send {
    async move { parse_number(&text) }
}

#[xray::step]
fn returns_std_future(n: u32) -> impl std::future::Future<Output = u32> {
    std::future::ready(n)
}

struct Service {
    base: u32,
}

impl Service {
    #[xray::step]
    async fn call(&self, n: u32) -> u32 {
        tokio::task::yield_now().await;
        self.base + n
    }

    #[xray::step]
    async fn call_mut(&mut self, n: u32) -> u32 {
        self.base += n;
        self.base
    }

    #[xray::step]
    async fn consume(self) -> u32 {
        self.base
    }

    #[xray::step]
    fn borrowed_future(&self, n: u32) -> impl Future<Output = u32> + '_ {
        async move { self.base * n }
    }
}

trait AsyncLookup {
    #[xray::step]
    async fn lookup(&self, key: u32) -> Option<String> {
        tokio::task::yield_now().await;
        (key == 1).then(|| "one".to_owned())
    }
}

impl AsyncLookup for Service {}

// ---------------------------------------------------------------------------
// Options.
// ---------------------------------------------------------------------------

struct Client;

#[xray::step(name = "renamed_step")]
fn renamed(n: u32) -> u32 {
    n
}

#[xray::step(kind = "llm")]
fn with_kind(prompt: &str) -> usize {
    prompt.len()
}

#[xray::step(skip(client, big))]
fn skipping(client: &Client, big: Vec<u8>, kept: u32) -> u32 {
    let _ = client;
    big.len() as u32 + kept
}

#[xray::step(skip_all)]
fn skipping_all(a: u32, b: &NoTraits) -> u32 {
    a + b.0
}

#[xray::step(redact(api_key))]
fn redacting(api_key: &str, query: &str) -> String {
    format!("{}:{query}", api_key.len())
}

#[xray::step(skip_output)]
fn without_output(n: u32) -> Result<Vec<u32>, ParseFailure> {
    Ok(vec![n; 3])
}

#[xray::step(skip_output)]
fn without_output_err(text: &str) -> Result<i64, ParseFailure> {
    parse_number(text)
}

#[xray::step(redact(x), skip(y))]
fn pattern_options(Point { x, y }: Point) -> i32 {
    x + y
}

impl Counter {
    #[xray::step(capture_self)]
    fn captured_self(&self, by: u32) -> u32 {
        self.count + by
    }

    #[xray::step(capture_self, skip_all)]
    fn captured_owned_self(self) -> u32 {
        self.count
    }
}

impl Service {
    #[xray::step(capture_self, skip_output)]
    async fn captured_self_async(&self) -> u32 {
        self.base
    }
}

#[xray::step(
    name = "llm_relevance",
    kind = "llm",
    skip(client),
    redact(api_key),
    skip_output
)]
async fn all_options(client: &Client, api_key: &str, score: f32) -> Result<f32, ParseFailure> {
    let _ = (client, api_key);
    Ok(score * 2.0)
}

// ---------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------

#[test]
fn sync_free_functions_return_what_the_body_returns() {
    assert_eq!(add(2, 3), 5);
    assert_eq!(early_return(-1), "negative");
    assert_eq!(early_return(1), "non-negative");
    assert_eq!(tuple_result(4), (4, "4".to_owned()));
    assert_eq!(boxed_display(7).to_string(), "7");
    assert_eq!(evens(7).collect::<Vec<_>>(), vec![0, 2, 4, 6]);
    assert_eq!(factorial(5), 120);
}

#[test]
fn functions_returning_unit_run_their_side_effects() {
    SIDE_EFFECTS.with(|count| count.set(0));
    returns_nothing(2);
    returns_explicit_unit(3);
    assert_eq!(SIDE_EFFECTS.with(Cell::get), 5);
}

#[test]
fn results_and_options_pass_through_unchanged() {
    assert_eq!(parse_number(" 42 ").unwrap(), 42);
    let error = parse_number("x").unwrap_err();
    assert_eq!(error.to_string(), "cannot parse \"x\"");
    assert!(error.source().is_some());
    assert_eq!(uses_question_mark("1", "2").unwrap(), 3);
    assert!(uses_question_mark("1", "nope").is_err());
    assert_eq!(boxed_error("7").unwrap(), 7);
    assert!(boxed_error("300").is_err());
    assert_eq!(checked(3), Ok(6));
    assert_eq!(checked(30), Err(DebugOnlyError::TooBig(30)));
    assert!(fails_opaquely(true).is_err());
    assert!(fails_opaquely(false).is_ok());
    assert_eq!(find_even(&[1, 3, 4]), Some(4));
    assert_eq!(find_even(&[1, 3]), None);
}

#[test]
fn references_keep_their_lifetimes() {
    let text = String::from("hello world");
    assert_eq!(first_word(&text), "hello");
    assert_eq!(longest("ab", "abc"), "abc");
    let mut items = [1, 2, 3];
    *first_mut(&mut items) = 10;
    assert_eq!(items, [10, 2, 3]);
}

#[test]
fn generic_and_impl_trait_arguments_work() {
    assert_eq!(describe(3, "n"), "n=3");
    assert_eq!(largest(&[3, 9, 2]), Some(9));
    assert_eq!(largest::<f64>(&[]), None);
    assert_eq!(join(vec![1, 2, 3], "-"), "1-2-3");
    assert_eq!(identity(NoTraits(5)).0, 5);
    assert_eq!(sum_array([1, 2, 3, 4]), 10);
    let mut calls = 0;
    assert_eq!(
        call_twice(|| {
            calls += 1;
            calls
        }),
        3
    );
    assert_eq!(dyn_arg(&1.5), "1.5");
}

#[test]
fn pattern_arguments_bind_as_in_the_original() {
    assert_eq!(tuple_pattern((6, 7)), 42);
    assert_eq!(struct_pattern(Point { x: 5, y: 3 }), 2);
    assert_eq!(mut_binding(vec![1], 0), vec![1, 0xff]);
    assert_eq!(
        nested_patterns([1, 2, 3], &10, (Point { x: -4, y: 0 }, 9)),
        18
    );
    assert_eq!(r#match(1), 2);
    assert_eq!(pattern_options(Point { x: 1, y: 2 }), 3);
}

#[test]
fn values_without_serialize_or_debug_are_fine() {
    assert_eq!(debug_only(DebugOnly(1)), DebugOnly(2));
    assert!(no_traits(NoTraits(1), &NoTraits(2)) == NoTraits(3));
    let mut target = vec![1];
    mutates_argument(&mut target, 2);
    assert_eq!(target, vec![1, 2]);
}

#[test]
fn modifiers_and_attributes_are_kept() {
    let value = 9;
    // SAFETY: `value` is a live local.
    assert_eq!(unsafe { read_raw(&value) }, 9);
    assert_eq!(visibility::crate_visible(1), 101);
    assert_eq!(c_abi(2), 6);
    let _: extern "C" fn(u32) -> u32 = c_abi;
    assert_eq!(with_inner_attribute(4), 4);
    assert_eq!(with_nested_items(1), 12);
}

#[test]
fn a_panicking_step_panics_with_the_original_message() {
    let payload = std::panic::catch_unwind(|| panics("boom")).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("boom")
    );
    let payload = std::panic::catch_unwind(|| diverges("never returns")).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("never returns")
    );
}

#[test]
fn methods_with_every_receiver_kind_work() {
    let mut counter = Counter::new("apples");
    assert_eq!(counter.get(), 0);
    assert_eq!(counter.label(), "apples");
    assert_eq!(counter.increment(3), 3);
    *counter.count_mut() += 1;
    assert_eq!(counter.get(), 4);
    assert_eq!(counter.with_lifetime("pears"), "apples");
    assert_eq!(counter.generic_method(2u8), 6);
    assert_eq!(Box::new(counter.clone()).boxed(), 4);
    let shared = Rc::new(counter.clone());
    let _second = Rc::clone(&shared);
    assert_eq!(shared.rc(), 2);
    assert_eq!(Arc::new(counter.clone()).arc(), 4);
    let mut pinned = counter.clone();
    assert_eq!(Pin::new(&mut pinned).pinned(), 0);
    assert_eq!(pinned.count, 5);
    assert_eq!(counter.clone().reset().count, 0);
    assert_eq!(counter.captured_self(1), 5);
    assert_eq!(counter.clone().captured_owned_self(), 4);
    assert_eq!(counter.into_label(), "apples");
}

#[test]
fn trait_methods_with_default_bodies_work() {
    assert_eq!(English.greet("Hello"), "Hello, world!");
    assert_eq!(English.shout(), "HEY, WORLD!");
    assert_eq!(Wrapper(DebugOnly(3)).get(), DebugOnly(3));
}

#[test]
fn options_do_not_change_results() {
    assert_eq!(renamed(1), 1);
    assert_eq!(with_kind("four"), 4);
    assert_eq!(skipping(&Client, vec![0; 3], 1), 4);
    assert_eq!(skipping_all(1, &NoTraits(2)), 3);
    assert_eq!(redacting("secret", "q"), "6:q");
    assert_eq!(without_output(2).unwrap(), vec![2, 2, 2]);
    assert!(without_output_err("x").is_err());
}

#[tokio::test]
async fn async_functions_return_what_the_body_returns() {
    assert_eq!(async_add(1, 2).await, 3);
    SIDE_EFFECTS.with(|count| count.set(0));
    async_nothing(4).await;
    assert_eq!(SIDE_EFFECTS.with(Cell::get), 4);
    assert_eq!(async_result("5").await.unwrap(), 5);
    assert_eq!(async_result("-5").await.unwrap(), 0);
    assert!(async_result("x").await.is_err());
    assert_eq!(async_boxed_error("8").await.unwrap(), 8);
    assert!(async_boxed_error("-8").await.is_err());
    let owned = String::from("kept");
    assert_eq!(async_reference(&owned, "x").await, "kept");
    assert_eq!(async_generic(vec![1, 2]).await, 2);
    assert_eq!(async_impl_trait_arg(1.5).await, "1.5");
    assert_eq!(async_pattern((1, 2), Point { x: 3, y: 4 }).await, 10);
    assert!(async_no_traits(NoTraits(1)).await == NoTraits(1));
    assert_eq!(async_returns_impl_display(6).await.to_string(), "6");
    assert_eq!(all_options(&Client, "key", 1.5).await.unwrap(), 3.0);
}

#[tokio::test]
async fn async_methods_work() {
    let mut service = Service { base: 10 };
    assert_eq!(service.call(1).await, 11);
    assert_eq!(service.call_mut(5).await, 15);
    assert_eq!(service.borrowed_future(2).await, 30);
    assert_eq!(service.captured_self_async().await, 15);
    assert_eq!(service.lookup(1).await.as_deref(), Some("one"));
    assert_eq!(service.lookup(2).await, None);
    assert_eq!(service.consume().await, 15);
}

#[tokio::test]
async fn functions_returning_impl_future_work() {
    let future = returns_future(3);
    assert_eq!(future.await, 7);
    assert_eq!(returns_send_future("12".to_owned()).await.unwrap(), 12);
    assert_eq!(returns_std_future(4).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_steps_are_send_and_can_be_spawned() {
    let handle = tokio::spawn(async { async_add(20, 22).await });
    assert_eq!(handle.await.unwrap(), 42);
    let handle = tokio::spawn(returns_send_future("7".to_owned()));
    assert_eq!(handle.await.unwrap().unwrap(), 7);
    let handle = tokio::spawn(async { all_options(&Client, "k", 2.0).await.unwrap() });
    assert_eq!(handle.await.unwrap(), 4.0);
}
