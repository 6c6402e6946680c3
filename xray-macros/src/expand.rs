//! The expansion of `#[xray::step]`: the annotated function keeps its
//! signature, and its body is wrapped in calls into `::xray::__private`.
//!
//! Every `gen_*` function produces one piece of the new body. All paths are
//! absolute and every local the expansion introduces starts with `__xray_`,
//! so the user's body can neither shadow nor see them.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    AttrStyle, Attribute, Block, FnArg, Ident, Item, ItemFn, Pat, ReturnType, Signature,
    TraitItemFn, Type, TypeParamBound, Visibility,
};

use crate::attr::{self, StepArgs};

/// Expands `#[xray::step(args)] item`.
pub(crate) fn step(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function = parse_function(item)?;
    let args: StepArgs = syn::parse2(args)?;
    if let Some(constness) = &function.sig.constness {
        return Err(syn::Error::new_spanned(
            constness,
            "`#[xray::step]` cannot be applied to a `const fn`: recording a step is a runtime side \
             effect; remove `const` or the attribute",
        ));
    }
    let bindings = parameter_bindings(&function.sig);
    args.check_against(&attr::FunctionShape {
        fn_name: &function.sig.ident,
        has_receiver: function.sig.receiver().is_some(),
        bindings: &bindings,
    })?;
    Ok(gen_function(&args, function, &bindings))
}

/// A function with a body, as the attribute sees it: a free function, a
/// method in an `impl` block or a trait method with a default body all have
/// this shape.
struct StepFn {
    outer_attrs: Vec<Attribute>,
    inner_attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    block: Block,
}

/// Parses the annotated item, or explains why it cannot be a step.
fn parse_function(item: TokenStream) -> syn::Result<StepFn> {
    let function_error = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => {
            let (inner_attrs, outer_attrs) = function
                .attrs
                .into_iter()
                .partition(|attribute| matches!(attribute.style, AttrStyle::Inner(_)));
            return Ok(StepFn {
                outer_attrs,
                inner_attrs,
                vis: function.vis,
                sig: function.sig,
                block: *function.block,
            });
        }
        Err(error) => error,
    };
    if let Ok(method) = syn::parse2::<TraitItemFn>(item.clone()) {
        if method.default.is_none() {
            return Err(syn::Error::new_spanned(
                &method.sig,
                "`#[xray::step]` needs a function body to wrap, and this declaration has none: put the \
                 attribute on the implementations of this method, or give it a default body",
            ));
        }
    }
    match syn::parse2::<NotAFunction>(item) {
        Ok(NotAFunction { head, what, hint }) => Err(syn::Error::new_spanned(
            head,
            format!(
                "`#[xray::step]` can only be applied to a function (`fn` or `async fn`), not to {what}{hint}"
            ),
        )),
        // Neither a function nor any other item syn knows: syn's own message
        // about the function is the most useful one.
        Err(_) => Err(function_error),
    }
}

/// Any item other than a function: its leading tokens (for the error span),
/// what it is, and what to do instead when there is a likely intent.
struct NotAFunction {
    head: TokenStream,
    what: &'static str,
    hint: &'static str,
}

impl Parse for NotAFunction {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        fn head(keyword: &impl ToTokens, name: &impl ToTokens) -> TokenStream {
            quote!(#keyword #name)
        }
        let item: Item = input.parse()?;
        let (head, what) = match &item {
            Item::Struct(item) => (head(&item.struct_token, &item.ident), "a struct"),
            Item::Enum(item) => (head(&item.enum_token, &item.ident), "an enum"),
            Item::Union(item) => (head(&item.union_token, &item.ident), "a union"),
            Item::Impl(item) => (head(&item.impl_token, &item.self_ty), "an `impl` block"),
            Item::Trait(item) => (head(&item.trait_token, &item.ident), "a trait"),
            Item::Const(item) => (head(&item.const_token, &item.ident), "a constant"),
            Item::Static(item) => (head(&item.static_token, &item.ident), "a static"),
            Item::Mod(item) => (head(&item.mod_token, &item.ident), "a module"),
            Item::Type(item) => (head(&item.type_token, &item.ident), "a type alias"),
            Item::Use(item) => (item.use_token.to_token_stream(), "a `use` declaration"),
            Item::ForeignMod(item) => (item.abi.to_token_stream(), "an `extern` block"),
            Item::Macro(item) => (item.mac.path.to_token_stream(), "a macro invocation"),
            other => (other.to_token_stream(), "this item"),
        };
        let hint = match item {
            Item::Impl(_) | Item::Trait(_) => {
                "; to record methods, put `#[xray::step]` on each method"
            }
            _ => "",
        };
        Ok(NotAFunction { head, what, hint })
    }
}

/// Every identifier the parameters bind, in order: `a` for `a: u32`, `a`
/// and `b` for `(a, b): (u32, u32)`, nothing for `_: u8`. The receiver is
/// not included; it is captured only with `capture_self`.
fn parameter_bindings(sig: &Signature) -> Vec<Ident> {
    let mut bindings = Vec::new();
    for input in &sig.inputs {
        if let FnArg::Typed(typed) = input {
            collect_bindings(&typed.pat, &mut bindings);
        }
    }
    bindings
}

fn collect_bindings(pat: &Pat, bindings: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(pat) => {
            bindings.push(pat.ident.clone());
            if let Some((_, sub)) = &pat.subpat {
                collect_bindings(sub, bindings);
            }
        }
        Pat::Tuple(pat) => pat
            .elems
            .iter()
            .for_each(|elem| collect_bindings(elem, bindings)),
        Pat::TupleStruct(pat) => pat
            .elems
            .iter()
            .for_each(|elem| collect_bindings(elem, bindings)),
        Pat::Struct(pat) => pat
            .fields
            .iter()
            .for_each(|field| collect_bindings(&field.pat, bindings)),
        Pat::Slice(pat) => pat
            .elems
            .iter()
            .for_each(|elem| collect_bindings(elem, bindings)),
        Pat::Reference(pat) => collect_bindings(&pat.pat, bindings),
        Pat::Type(pat) => collect_bindings(&pat.pat, bindings),
        Pat::Paren(pat) => collect_bindings(&pat.pat, bindings),
        // Every alternative binds the same names.
        Pat::Or(pat) => {
            if let Some(first) = pat.cases.first() {
                collect_bindings(first, bindings);
            }
        }
        // `_`, `..`, literals, ranges, paths and macros bind nothing.
        _ => {}
    }
}

/// The whole function: the original attributes and signature around the
/// instrumented body.
fn gen_function(args: &StepArgs, function: StepFn, bindings: &[Ident]) -> TokenStream {
    let StepFn {
        outer_attrs,
        inner_attrs,
        vis,
        sig,
        block,
    } = function;
    let step_start = gen_step_start(args, &sig, bindings);
    let one_body = |body: TokenStream| quote! { #step_start #body };
    let statements = if sig.asyncness.is_some() {
        one_body(gen_async_body(args, &sig.output, block))
    } else if returns_future(&sig.output) {
        one_body(gen_future_returning_body(args, block))
    } else if returns_never(&sig.output) {
        one_body(gen_diverging_body(block))
    } else if mentions_impl_trait(&sig.output) || defines_items_that_must_be_unique(&block) {
        // Two copies of the body would return two different opaque types
        // (a closure in `impl Iterator` differs from its copy), or would
        // hold two copies of a `static` (two counters, two caches) or of an
        // `impl` of an outer type (a compile error): one body.
        one_body(gen_sync_body(args, &sig.output, block))
    } else {
        // A plain synchronous function: when X-Ray is not active it runs
        // its own body and nothing else; the recording path is a closure
        // run out of line, so that its stack frame and saved registers are
        // not paid for on every call of a program without X-Ray. (The body
        // is compiled twice, once on each path.)
        let recorded = one_body(gen_sync_body(args, &sig.output, block.clone()));
        quote! {
            if ::xray::__private::is_active() {
                #[allow(clippy::redundant_closure_call)]
                return ::xray::__private::out_of_line(move || { #recorded });
            }
            #block
        }
    };
    quote! {
        #(#outer_attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #statements
        }
    }
}

/// `let __xray_step = …;`: starts the step when X-Ray is active (creating
/// its span and capturing the arguments), else an inert step.
fn gen_step_start(args: &StepArgs, sig: &Signature, bindings: &[Ident]) -> TokenStream {
    let step_name = match &args.name {
        Some(name) => name.value(),
        None => sig.ident.unraw().to_string(),
    };
    let kind = match &args.kind {
        Some(kind) => quote!(::core::option::Option::Some(#kind)),
        None => quote!(::core::option::Option::None),
    };
    let input_capture = gen_input_capture(args, bindings);
    quote! {
        let __xray_step = if ::xray::__private::is_active() {
            static __XRAY_SITE: ::xray::__private::StepSite =
                ::xray::__private::StepSite::new(#step_name, #kind);
            ::xray::__private::Step::start(
                &__XRAY_SITE,
                || ::xray::__private::tracing::span!(
                    target: ::core::module_path!(),
                    ::xray::__private::tracing::Level::INFO,
                    #step_name,
                    xray.step = ::xray::__private::tracing::field::Empty
                ),
                |__xray_inputs: &mut ::xray::__private::Inputs<'_>| {
                    #input_capture
                },
            )
        } else {
            ::xray::__private::Step::inert()
        };
    }
}

/// The statements of the input-capturing closure: one per recorded binding,
/// plus `self` under `capture_self`.
fn gen_input_capture(args: &StepArgs, bindings: &[Ident]) -> TokenStream {
    let mut statements = Vec::new();
    if let Some(keyword) = &args.capture_self {
        let receiver = Ident::new("self", keyword.span);
        statements.push(quote! {
            (&&&::xray::__private::Capture(&#receiver)).xray_capture(__xray_inputs.arg("self"));
        });
    }
    if args.skip_all.is_none() {
        for binding in bindings {
            let name = binding.unraw().to_string();
            // The reference is the macro's, not the user's: lints about how
            // a binding is used (`used_underscore_binding` on `_unused: T`)
            // must not fire on the capture.
            let mut binding = binding.clone();
            binding.set_span(Span::call_site());
            if args
                .redact
                .as_ref()
                .is_some_and(|list| list.contains(&binding))
            {
                statements.push(quote! { __xray_inputs.redacted(#name); });
            } else if !args
                .skip
                .as_ref()
                .is_some_and(|list| list.contains(&binding))
            {
                statements.push(quote! {
                    (&&&::xray::__private::Capture(&#binding)).xray_capture(__xray_inputs.arg(#name));
                });
            }
        }
    }
    if statements.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #[allow(unused_imports)] // which of the three is picked depends on the argument's type
        use ::xray::__private::{CaptureSerialize as _, CaptureDebug as _, CaptureOpaque as _};
        #(#statements)*
    }
}

/// The body of a synchronous function returning `!`: it can only panic
/// (recorded by `Step::call`) or leave the process, so there is no output
/// to capture and no normal end.
fn gen_diverging_body(block: Block) -> TokenStream {
    quote! {
        __xray_step.call(move || -> ! #block)
    }
}

/// The body of a plain synchronous function.
fn gen_sync_body(args: &StepArgs, output: &ReturnType, block: Block) -> TokenStream {
    let fake_return_edge = gen_fake_return_edge(output);
    let finish = gen_finish(args);
    quote! {
        // `let_unit_value`: the function may return `()`; the closure is
        // immediately called by `Step::call`, inside the step's span.
        #[allow(clippy::let_unit_value, clippy::redundant_closure_call)]
        let __xray_ret = __xray_step.call(move || {
            #fake_return_edge
            #block
        });
        #finish
    }
}

/// The body of an `async fn`: the original body becomes an `async move`
/// block polled inside the step's span.
fn gen_async_body(args: &StepArgs, output: &ReturnType, block: Block) -> TokenStream {
    let fake_return_edge = gen_fake_return_edge(output);
    let finish = gen_finish(args);
    quote! {
        #[allow(clippy::let_unit_value)] // the function may return `()`
        let __xray_ret = __xray_step.call_async(async move {
            #fake_return_edge
            #block
        }).await;
        #finish
    }
}

/// The body of a synchronous function returning `impl Future`: the
/// synchronous part runs now, inside the span; the returned future is
/// wrapped so that the step ends when it completes.
///
/// There is no fake return edge: the closure returns the body's concrete
/// future type, which `impl Future` would only hide.
fn gen_future_returning_body(args: &StepArgs, block: Block) -> TokenStream {
    let finish = gen_finish(args);
    quote! {
        #[allow(clippy::redundant_closure_call)]
        let __xray_future = __xray_step.call(move || #block);
        async move {
            #[allow(clippy::let_unit_value)] // the future may resolve to `()`
            let __xray_ret = __xray_step.call_async(__xray_future).await;
            #finish
        }
    }
}

/// Captures `__xray_ret` as the output (and its `Err` as the error), ends
/// the step and returns the value.
fn gen_finish(args: &StepArgs) -> TokenStream {
    let value_capture = if args.skip_output.is_some() {
        quote!()
    } else {
        quote! {
            if let ::core::option::Option::Some(__xray_value) = __xray_ok {
                (&&&::xray::__private::Capture(__xray_value)).xray_capture(__xray_output.value());
            }
        }
    };
    quote! {
        __xray_step.end_with(|__xray_output: &mut ::xray::__private::Output<'_>| {
            // Which impls are picked depends on the returned type.
            #[allow(unused_imports)]
            use ::xray::__private::{
                CaptureSerialize as _, CaptureDebug as _, CaptureOpaque as _,
                SplitResult as _, SplitPlain as _,
                ErrorChain as _, ErrorDisplay as _, ErrorDebug as _, ErrorOpaque as _,
            };
            let (__xray_ok, __xray_err) = (&&::xray::__private::Split(&__xray_ret)).xray_split();
            #value_capture
            if let ::core::option::Option::Some(__xray_error) = __xray_err {
                (&&&&::xray::__private::CaptureError(__xray_error)).xray_capture_error(__xray_output);
            }
        });
        __xray_ret
    }
}

/// An unreachable `return` of the declared return type, so that the
/// closure's (or async block's) return type is known before its body is
/// checked: `?`, `return` and coercions such as `Box<dyn Error>` then work as
/// in the original function. `impl Trait` in the type becomes `_`, since
/// the concrete type is only known from the body.
fn gen_fake_return_edge(output: &ReturnType) -> TokenStream {
    let (return_type, span) = match output {
        ReturnType::Default => (quote!(()), Span::call_site()),
        // `!` cannot be written as a `let` type on stable Rust; a diverging
        // `async fn` has nothing to infer anyway.
        _ if returns_never(output) => return TokenStream::new(),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            ImplTraitEraser.visit_type_mut(&mut ty);
            let span = ty.span();
            (ty.into_token_stream(), span)
        }
    };
    quote_spanned! {span=>
        // The edge is never taken; these lints would flag exactly that.
        #[allow(
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::let_unit_value,
            clippy::unreachable,
            clippy::let_with_type_underscore,
            clippy::needless_return
        )]
        if false {
            let __xray_fake_return: #return_type = ::core::unreachable!();
            return __xray_fake_return;
        }
    }
}

/// Replaces every `impl Trait` in a type with `_`.
struct ImplTraitEraser;

impl VisitMut for ImplTraitEraser {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(impl_trait) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                attrs: Vec::new(),
                underscore_token: syn::Token![_](impl_trait.impl_token.span),
            });
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

/// Whether the declared return type is `!`.
fn returns_never(output: &ReturnType) -> bool {
    matches!(output, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)))
}

/// Whether the body declares, at any depth, something that must exist once:
/// a `static`, an `impl` block, an `extern` block, or anything an item macro
/// may expand to (`thread_local!`, `lazy_static!`, any `name! { … }`).
/// Compiling such a body twice would change what it means, so it is
/// compiled once (see [`gen_function`]).
fn defines_items_that_must_be_unique(block: &Block) -> bool {
    use syn::visit::Visit;

    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_item(&mut self, item: &'ast syn::Item) {
            match item {
                syn::Item::Static(_)
                | syn::Item::Impl(_)
                | syn::Item::ForeignMod(_)
                | syn::Item::Macro(_)
                | syn::Item::Verbatim(_) => self.0 = true,
                _ => syn::visit::visit_item(self, item),
            }
        }

        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            let item_like = matches!(mac.delimiter, syn::MacroDelimiter::Brace(_))
                || mac.path.segments.last().is_some_and(|segment| {
                    segment.ident == "thread_local" || segment.ident == "lazy_static"
                });
            if item_like {
                self.0 = true;
            }
        }
    }
    let mut finder = Finder(false);
    finder.visit_block(block);
    finder.0
}

/// Whether `impl Trait` appears anywhere in the declared return type
/// (`impl Iterator<…>`, `Result<impl Display, E>`, …).
fn mentions_impl_trait(output: &ReturnType) -> bool {
    fn scan(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => ident == "impl",
            proc_macro2::TokenTree::Group(group) => scan(group.stream()),
            _ => false,
        })
    }
    scan(output.to_token_stream())
}

/// Whether the declared return type is `impl Future<…>` (with any path to
/// `Future` and any further bounds such as `+ Send`).
fn returns_future(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Type::ImplTrait(impl_trait) = &**ty else {
        return false;
    };
    impl_trait.bounds.iter().any(|bound| match bound {
        TypeParamBound::Trait(bound) => bound
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Future"),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn signature(tokens: TokenStream) -> Signature {
        syn::parse2::<ItemFn>(tokens).expect("a function").sig
    }

    fn names(bindings: &[Ident]) -> Vec<String> {
        bindings.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn parameter_bindings_are_every_name_the_patterns_bind_except_self() {
        let sig = signature(quote! {
            fn f(
                &self,
                plain: u32,
                mut changed: Vec<u8>,
                _: u8,
                (a, b): (u32, u32),
                Point { x, y: renamed, .. }: Point,
                [first, .., last]: [u8; 4],
                &by_ref: &u32,
                whole @ Wrapper(inner): Wrapper,
                r#type: u8,
            ) {}
        });
        assert_eq!(
            names(&parameter_bindings(&sig)),
            [
                "plain", "changed", "a", "b", "x", "renamed", "first", "last", "by_ref", "whole",
                "inner", "r#type"
            ]
        );
    }

    #[test]
    fn only_an_impl_future_return_type_counts_as_returning_a_future() {
        let returns = |tokens| returns_future(&signature(tokens).output);
        assert!(returns(quote!(
            fn f() -> impl Future<Output = u32> {}
        )));
        assert!(returns(quote!(
            fn f() -> impl std::future::Future<Output = ()> + Send + 'static {}
        )));
        assert!(!returns(quote!(
            fn f() -> impl Iterator<Item = u32> {}
        )));
        assert!(!returns(quote!(
            fn f() -> Pin<Box<dyn Future<Output = ()>>> {}
        )));
        assert!(!returns(quote!(
            fn f() {}
        )));
    }

    #[test]
    fn bodies_with_items_that_must_be_unique_are_found_at_any_depth() {
        let finds = |tokens: TokenStream| {
            defines_items_that_must_be_unique(&syn::parse2::<Block>(tokens).expect("a block"))
        };
        assert!(finds(quote!({
            static COUNT: AtomicU32 = AtomicU32::new(0);
        })));
        assert!(finds(quote!({
            if x {
                let f = || {
                    static C: u8 = 0;
                };
            }
        })));
        assert!(finds(quote!({
            impl Display for Local {}
        })));
        assert!(finds(quote!({
            thread_local! { static X: Cell<u8> = Cell::new(0); }
        })));
        assert!(finds(quote!({
            std::thread_local!(static X: u8 = 0);
        })));
        assert!(finds(quote!({
            let v = {
                my_items! { a }
            };
        })));
        assert!(!finds(quote!({
            use std::fmt::Write;
            const LIMIT: usize = 3;
            fn helper() {}
            struct Local;
            println!("{}", x);
            tracing::info!(n = 1, "message");
            let v = vec![1, 2];
            v.len()
        })));
    }

    #[test]
    fn impl_trait_is_found_anywhere_in_the_return_type() {
        let mentions = |tokens| mentions_impl_trait(&signature(tokens).output);
        assert!(mentions(quote!(
            fn f() -> impl Iterator<Item = u32> {}
        )));
        assert!(mentions(quote!(
            fn f() -> Result<Box<impl Display>, (u8, impl Debug)> {}
        )));
        assert!(!mentions(quote!(
            fn f() -> Result<Box<dyn Display>, Implement> {}
        )));
        assert!(!mentions(quote!(
            fn f() {}
        )));
    }

    #[test]
    fn the_fake_return_edge_erases_impl_trait_and_skips_never() {
        let edge = |tokens| gen_fake_return_edge(&signature(tokens).output).to_string();
        assert!(edge(quote!(
            fn f() -> Box<impl Display> {}
        ))
        .contains("__xray_fake_return : Box < _ >"));
        assert!(edge(quote!(
            fn f() -> Vec<u8> {}
        ))
        .contains("__xray_fake_return : Vec < u8 >"));
        assert!(edge(quote!(
            fn f() {}
        ))
        .contains("__xray_fake_return : ()"));
        assert!(edge(quote!(
            fn f() -> ! {}
        ))
        .is_empty());
    }
}
