//! `#[xray::step]`: record a function call as a step of an X-Ray execution.
//!
//! Use it through the SDK, which re-exports it as `xray::step`; this crate
//! holds only the expansion, which calls into the SDK for everything at run
//! time.
//!
//! The examples below are marked `ignore`: a proc-macro crate's doctests
//! cannot depend on the SDK that re-exports the macro. The same signatures
//! and options are compiled and run in `xray-sdk/tests/step_signatures.rs`.
//!
//! # What a step records
//!
//! Each call of a step function becomes a step, nested under the step (or
//! [tracing](https://docs.rs/tracing) span) it was called from, with:
//!
//! - **input**: one JSON object with a member per parameter binding. A value
//!   is recorded as JSON when its type implements `serde::Serialize`, else as
//!   its `Debug` text, else as `"<opaque>"`: adding `#[xray::step]` never
//!   makes a function fail to compile because a type lacks a trait. In a
//!   generic function the choice follows the bounds the function declares
//!   (`T: Debug` is recorded by its `Debug` text, an unbounded `T` as
//!   `"<opaque>"`). The receiver (`self`) is not recorded unless
//!   `capture_self` is given.
//! - **output**: the returned value, captured like an input. For a `Result`,
//!   `Ok(v)` records `v` and the status `ok`; `Err(e)` records the error
//!   text (its `Display`, followed by its `source()` chain) and the status
//!   `error`.
//! - **status and duration**: a panic is recorded as `panicked` with its
//!   message and then continues unchanged; an `async` step whose future is
//!   dropped before it completes is recorded as `cancelled`.
//!
//! When X-Ray is not initialised, a step costs one atomic load: nothing is
//! captured and no span is created. The function's behaviour and result are
//! never changed. (To make that load all it costs, the body of a synchronous
//! step is compiled twice, once for each case, so that the recording path's
//! stack frame is not paid for without X-Ray. A body declaring something
//! that must exist once — a `static`, a `thread_local!`, an `impl`, any
//! `name! { … }` item macro — or returning `impl Trait` is compiled once;
//! a `static` hidden in a statement macro invoked with parentheses would
//! exist once per case.)
//!
//! ```ignore
//! #[xray::step]
//! fn filter_by_price(candidates: &[Product], max_price: f64) -> Vec<Product> {
//!     candidates.iter().filter(|c| c.price <= max_price).cloned().collect()
//! }
//! ```
//!
//! # Supported functions
//!
//! Free functions and methods (`&self`, `&mut self`, `self`, `mut self`,
//! `self: Box<Self>`, …), in `impl` blocks and as trait methods with a
//! default body; `async fn`; synchronous functions returning
//! `impl Future<Output = T>` (the step then starts when the function is
//! called and ends when the future completes); generics, `where` clauses,
//! lifetimes, `impl Trait` parameters and return types; patterns as
//! parameters, whose every bound name is recorded; `unsafe fn` and
//! `extern "…" fn`; functions returning `!` (recorded as `panicked` when
//! they panic). Attributes, doc comments and visibility are kept.
//!
//! ```ignore
//! impl Ranker {
//!     #[xray::step]
//!     async fn rank(&self, (query, limit): (&str, usize)) -> Result<Vec<Product>, RankError> {
//!         /* … */
//!     }
//!
//!     #[xray::step]
//!     fn fetch(&self, id: u64) -> impl Future<Output = Product> + '_ {
//!         let request = self.request_for(id); // runs now, inside the step
//!         async move { request.send().await }  // the step ends when this completes
//!     }
//! }
//! ```
//!
//! A `const fn` and a function without a body (a required trait method, a
//! foreign function) are rejected at compile time, and so is any item that
//! is not a function.
//!
//! # Options
//!
//! Options are separated by commas and may come in any order; each may be
//! given once. A mistake is a compile error pointing at the option.
//!
//! ## `name = "…"`
//!
//! The step's name; the function's name by default.
//!
//! ```ignore
//! #[xray::step(name = "llm_relevance")]
//! async fn relevance(p: &Product) -> f32 { /* … */ }
//! ```
//!
//! ## `kind = "…"`
//!
//! A free-form category shown with the step, such as `"llm"`, `"search"`
//! or `"filter"`.
//!
//! ```ignore
//! #[xray::step(kind = "llm")]
//! async fn generate_keywords(title: &str) -> Vec<String> { /* … */ }
//! ```
//!
//! ## `skip(a, …)`
//!
//! Leaves the named parameters out of the input, for values that are large,
//! uninteresting or not meant to be stored. Each name must be a parameter
//! binding of the function.
//!
//! ```ignore
//! #[xray::step(skip(client))]
//! async fn search(client: &HttpClient, keywords: &[String]) -> Vec<Product> { /* … */ }
//! ```
//!
//! ## `skip_all`
//!
//! Records no parameter at all. Cannot be combined with `skip(..)` or
//! `redact(..)`.
//!
//! ```ignore
//! #[xray::step(skip_all)]
//! fn rank(candidates: Vec<Product>, weights: &Weights) -> Vec<Product> { /* … */ }
//! ```
//!
//! ## `redact(a, …)`
//!
//! Records the named parameters as `"[redacted]"`: the record shows the
//! parameter was there, not its value. (Parameters whose names are on the
//! configured redaction list, such as `api_key` or `password`, are redacted
//! without being listed.) A parameter cannot be both skipped and redacted.
//!
//! ```ignore
//! #[xray::step(redact(customer_email))]
//! fn lookup_orders(customer_email: &str, since: Date) -> Vec<Order> { /* … */ }
//! ```
//!
//! ## `skip_output`
//!
//! Does not record the returned value (or the `Ok` value of a `Result`).
//! An `Err` is still recorded as the step's error.
//!
//! ```ignore
//! #[xray::step(skip_output)]
//! fn load_catalog(path: &Path) -> Result<Catalog, io::Error> { /* … */ }
//! ```
//!
//! ## `capture_self`
//!
//! Records the receiver as the input `self`. Off by default because a
//! receiver's `Debug` output is a classic way to leak credentials; only
//! valid on a method that takes `self` in some form.
//!
//! ```ignore
//! impl PriceFilter {
//!     #[xray::step(capture_self)]
//!     fn apply(&self, candidates: &[Product]) -> Vec<Product> { /* … */ }
//! }
//! ```

#![warn(missing_docs)]

mod attr;
mod expand;

use proc_macro::TokenStream;

/// Records each call of the function as an X-Ray step.
///
/// See the [crate documentation](crate) for what is recorded, the supported
/// functions and the options `name = "…"`, `kind = "…"`, `skip(..)`,
/// `skip_all`, `redact(..)`, `skip_output` and `capture_self`.
///
/// ```ignore
/// #[xray::step(name = "llm_relevance", kind = "llm", skip(client), redact(api_key))]
/// async fn relevance(client: &Client, api_key: &str, p: &Product) -> Result<f32, MyError> {
///     /* … */
/// }
/// ```
#[proc_macro_attribute]
pub fn step(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match expand::step(args.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        Err(error) => {
            // The item is kept unchanged next to the error, so that the only
            // error reported is ours, not a cascade of "cannot find function".
            let mut output = error.to_compile_error();
            output.extend(item);
            output.into()
        }
    }
}
