//! The options of `#[xray::step(..)]`: parsed into [`StepArgs`], with every
//! mistake reported at the token that caused it.
//!
//! Checks that need only the option list (unknown or duplicate options,
//! values of the wrong kind, contradictory options) happen while parsing.
//! Checks that need the function (does `skip(a)` name a parameter? does the
//! function take `self`?) happen in [`StepArgs::check_against`].

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Token};

/// The option names, as custom keywords so that `peek` and error spans work
/// on them like on Rust keywords.
mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(kind);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(skip_all);
    syn::custom_keyword!(redact);
    syn::custom_keyword!(skip_output);
    syn::custom_keyword!(capture_self);
}

/// Shown whenever an option is not recognised.
const VALID_OPTIONS: &str = "`name = \"…\"`, `kind = \"…\"`, `skip(..)`, `skip_all`, \
                             `redact(..)`, `skip_output`, `capture_self`";

/// The parsed options of one `#[xray::step(..)]`.
#[derive(Default)]
pub(crate) struct StepArgs {
    /// `name = "…"`: the step name; the function name when absent.
    pub(crate) name: Option<LitStr>,
    /// `kind = "…"`: a free-form category such as `"llm"` or `"filter"`.
    pub(crate) kind: Option<LitStr>,
    /// `skip(a, b)`: parameters left out of the recorded input.
    pub(crate) skip: Option<NameList>,
    /// `skip_all`: no parameter is recorded.
    pub(crate) skip_all: Option<kw::skip_all>,
    /// `redact(a, b)`: parameters recorded as `"[redacted]"`.
    pub(crate) redact: Option<NameList>,
    /// `skip_output`: the returned value is not recorded (errors still are).
    pub(crate) skip_output: Option<kw::skip_output>,
    /// `capture_self`: the receiver is recorded as the input `self`.
    pub(crate) capture_self: Option<kw::capture_self>,
}

/// The parenthesised parameter names of `skip(..)` or `redact(..)`.
pub(crate) struct NameList {
    pub(crate) names: Vec<Ident>,
}

impl NameList {
    /// Whether `ident` is in the list (raw identifiers compare unprefixed).
    pub(crate) fn contains(&self, ident: &Ident) -> bool {
        self.names.iter().any(|name| name.unraw() == ident.unraw())
    }
}

impl Parse for StepArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = StepArgs::default();
        while !input.is_empty() {
            if input.peek(kw::name) {
                let keyword: kw::name = input.parse()?;
                reject_duplicate(&args.name, &keyword, "name")?;
                args.name = Some(parse_string_value(input, keyword.span, "name")?);
            } else if input.peek(kw::kind) {
                let keyword: kw::kind = input.parse()?;
                reject_duplicate(&args.kind, &keyword, "kind")?;
                args.kind = Some(parse_string_value(input, keyword.span, "kind")?);
            } else if input.peek(kw::skip) {
                let keyword: kw::skip = input.parse()?;
                reject_duplicate(&args.skip, &keyword, "skip")?;
                if args.skip_all.is_some() {
                    return Err(syn::Error::new_spanned(
                        keyword,
                        "`skip(..)` cannot be combined with `skip_all`, which already skips every argument",
                    ));
                }
                let list = parse_name_list(input, "skip")?;
                reject_overlap(&list, args.redact.as_ref(), "skip", "redact")?;
                args.skip = Some(list);
            } else if input.peek(kw::skip_all) {
                let keyword: kw::skip_all = input.parse()?;
                reject_duplicate(&args.skip_all, &keyword, "skip_all")?;
                if args.skip.is_some() {
                    return Err(syn::Error::new_spanned(
                        keyword,
                        "`skip_all` cannot be combined with `skip(..)`: use `skip_all` alone to skip every argument",
                    ));
                }
                if args.redact.is_some() {
                    return Err(skip_all_with_redact(keyword.span));
                }
                reject_value(input, "skip_all")?;
                args.skip_all = Some(keyword);
            } else if input.peek(kw::redact) {
                let keyword: kw::redact = input.parse()?;
                reject_duplicate(&args.redact, &keyword, "redact")?;
                if args.skip_all.is_some() {
                    return Err(skip_all_with_redact(keyword.span));
                }
                let list = parse_name_list(input, "redact")?;
                reject_overlap(&list, args.skip.as_ref(), "redact", "skip")?;
                args.redact = Some(list);
            } else if input.peek(kw::skip_output) {
                let keyword: kw::skip_output = input.parse()?;
                reject_duplicate(&args.skip_output, &keyword, "skip_output")?;
                reject_value(input, "skip_output")?;
                args.skip_output = Some(keyword);
            } else if input.peek(kw::capture_self) {
                let keyword: kw::capture_self = input.parse()?;
                reject_duplicate(&args.capture_self, &keyword, "capture_self")?;
                reject_value(input, "capture_self")?;
                args.capture_self = Some(keyword);
            } else if input.peek(Ident::peek_any) {
                let unknown = Ident::parse_any(input)?;
                return Err(syn::Error::new_spanned(
                    &unknown,
                    format!("unknown option `{unknown}`; the options are {VALID_OPTIONS}"),
                ));
            } else {
                return Err(input.error(format!("expected an option: one of {VALID_OPTIONS}")));
            }

            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// What the function offers that the options may refer to.
pub(crate) struct FunctionShape<'a> {
    /// The function's name, for messages.
    pub(crate) fn_name: &'a Ident,
    /// Whether it takes `self` in any form.
    pub(crate) has_receiver: bool,
    /// Every identifier its parameters bind, in order.
    pub(crate) bindings: &'a [Ident],
}

impl StepArgs {
    /// Checks the options that refer to the function: `skip`/`redact` must
    /// name parameters it has, `capture_self` needs a receiver.
    pub(crate) fn check_against(&self, shape: &FunctionShape<'_>) -> syn::Result<()> {
        for (option, list) in [("skip", &self.skip), ("redact", &self.redact)] {
            let Some(list) = list else { continue };
            for name in &list.names {
                let exists = shape
                    .bindings
                    .iter()
                    .any(|binding| binding.unraw() == name.unraw());
                if !exists {
                    return Err(syn::Error::new_spanned(
                        name,
                        unknown_parameter_message(option, name, shape),
                    ));
                }
            }
        }
        if let Some(keyword) = &self.capture_self {
            if !shape.has_receiver {
                return Err(syn::Error::new_spanned(
                    keyword,
                    format!(
                        "`capture_self` needs a method that takes `self`, but `{}` has no `self` parameter",
                        shape.fn_name.unraw()
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn unknown_parameter_message(option: &str, name: &Ident, shape: &FunctionShape<'_>) -> String {
    let fn_name = shape.fn_name.unraw();
    let name = name.unraw();
    if shape.bindings.is_empty() {
        return format!("`{option}({name})`: `{fn_name}` has no parameter named `{name}` (it has no parameters to {option})");
    }
    let known = shape
        .bindings
        .iter()
        .map(|binding| format!("`{}`", binding.unraw()))
        .collect::<Vec<_>>()
        .join(", ");
    format!("`{option}({name})`: `{fn_name}` has no parameter named `{name}`; its parameters are {known}")
}

fn reject_duplicate<T>(
    previous: &Option<T>,
    keyword: &impl Spanned,
    option: &str,
) -> syn::Result<()> {
    if previous.is_none() {
        return Ok(());
    }
    let hint = match option {
        "skip" | "redact" => format!("; list all the parameters in one `{option}(..)`"),
        _ => String::new(),
    };
    Err(syn::Error::new(
        keyword.span(),
        format!("duplicate option `{option}`: it may be given only once{hint}"),
    ))
}

/// Flags take no value: `skip_all = true` or `skip_all(..)` is a mistake
/// worth a precise message rather than syn's "expected `,`".
fn reject_value(input: ParseStream<'_>, option: &str) -> syn::Result<()> {
    if input.is_empty() || input.peek(Token![,]) {
        Ok(())
    } else {
        Err(input.error(format!(
            "`{option}` is a flag and takes no value; write just `{option}`"
        )))
    }
}

/// `= "literal"` after `name` or `kind`; `keyword` is the option's span.
fn parse_string_value(input: ParseStream<'_>, keyword: Span, option: &str) -> syn::Result<LitStr> {
    let example = match option {
        "name" => "name = \"fetch_candidates\"",
        _ => "kind = \"llm\"",
    };
    if !input.peek(Token![=]) {
        // At the end of the options syn would point at the whole attribute;
        // the option itself is the useful place.
        let span = if input.is_empty() {
            keyword
        } else {
            input.span()
        };
        return Err(syn::Error::new(
            span,
            format!("`{option}` needs a string value, e.g. `{example}`"),
        ));
    }
    input.parse::<Token![=]>()?;
    let value: Expr = input.parse()?;
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(literal),
            ..
        }) => {
            if literal.value().is_empty() {
                Err(syn::Error::new_spanned(
                    literal,
                    format!("`{option}` must not be empty"),
                ))
            } else {
                Ok(literal)
            }
        }
        other => Err(syn::Error::new_spanned(
            other,
            format!("`{option}` expects a string literal, e.g. `{example}`"),
        )),
    }
}

/// `(a, b, …)` after `skip` or `redact`.
fn parse_name_list(input: ParseStream<'_>, option: &str) -> syn::Result<NameList> {
    if !input.peek(syn::token::Paren) {
        return Err(input.error(format!(
            "`{option}` expects a parenthesised list of parameter names, e.g. `{option}(client, config)`"
        )));
    }
    let content;
    let parens = syn::parenthesized!(content in input);
    // `parse_any` so that `self` reaches the check below instead of a
    // generic "expected identifier".
    let idents = content.parse_terminated(Ident::parse_any, Token![,])?;
    if idents.is_empty() {
        return Err(syn::Error::new(
            parens.span.join(),
            format!("`{option}(..)` needs at least one parameter name"),
        ));
    }
    let mut names: Vec<Ident> = Vec::with_capacity(idents.len());
    for ident in idents {
        if ident == "self" {
            return Err(syn::Error::new_spanned(
                &ident,
                format!(
                    "`{option}(self)` is not needed: `self` is recorded only when `capture_self` is given, \
                     so leaving `capture_self` off keeps the receiver out of the record"
                ),
            ));
        }
        if names.iter().any(|seen| seen.unraw() == ident.unraw()) {
            return Err(syn::Error::new_spanned(
                &ident,
                format!("`{}` is listed twice in `{option}(..)`", ident.unraw()),
            ));
        }
        names.push(ident);
    }
    Ok(NameList { names })
}

/// A parameter may be skipped or redacted, not both: the two promise
/// different things about what the record shows.
fn reject_overlap(
    list: &NameList,
    other: Option<&NameList>,
    option: &str,
    other_option: &str,
) -> syn::Result<()> {
    let Some(other) = other else { return Ok(()) };
    match list.names.iter().find(|name| other.contains(name)) {
        Some(name) => Err(syn::Error::new_spanned(
            name,
            format!(
                "`{}` is in both `{other_option}(..)` and `{option}(..)`: a skipped parameter is not recorded at all, \
                 a redacted one is recorded as \"[redacted]\"; choose one",
                name.unraw()
            ),
        )),
        None => Ok(()),
    }
}

fn skip_all_with_redact(span: Span) -> syn::Error {
    syn::Error::new(
        span,
        "`skip_all` and `redact(..)` cannot be combined: `skip_all` records no parameter at all, \
         so there is nothing left to redact",
    )
}
