//! Turning the application's `Display` and `Debug` impls, error chains and
//! panic payloads into text, safely.
//!
//! `format!` and `to_string()` panic when an impl returns `Err` on its own,
//! run an impl to completion however much it writes, and propagate its
//! panics: none of that may reach the host from X-Ray. Here the text is
//! bounded (cut on a character boundary, with [`CUT_MARKER`]), an impl that
//! returns `Err` or panics is recorded as such, with the
//! [`Flags::format_error`] flag, and an error's `source()` chain is followed
//! for at most [`MAX_CAUSES`] causes and never around a cycle.

use std::error::Error;
use std::fmt::{self, Display};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::json::{floor_char_boundary, BoundedWriter};
use super::Flags;

/// Most causes of an error's `source()` chain kept.
pub(crate) const MAX_CAUSES: usize = 32;

/// Most bytes of a panic message kept.
pub(crate) const MAX_PANIC_MESSAGE: usize = 8 * 1024;

/// Appended to text cut at its limit.
pub(crate) const CUT_MARKER: &str = " …[truncated]";

/// Formats `args` into at most `limit` bytes (plus [`CUT_MARKER`] when cut).
/// An impl that returns `Err` or panics keeps what it wrote, followed by a
/// marker saying so, and sets `flags.format_error`.
pub(crate) fn bounded(args: fmt::Arguments<'_>, limit: usize, flags: &mut Flags) -> String {
    let mut out = BoundedWriter {
        buf: String::new(),
        budget: limit,
        overflow: false,
    };
    let result = catch_unwind(AssertUnwindSafe(|| fmt::write(&mut out, args)));
    let cut = out.overflow;
    let mut text = out.buf;
    match result {
        Ok(_) if cut => {
            flags.truncated = true;
            text.push_str(CUT_MARKER);
        }
        Ok(Ok(())) => {}
        Ok(Err(fmt::Error)) => {
            flags.format_error = true;
            text.push_str("<formatting failed: an impl returned an error>");
        }
        Err(payload) => {
            flags.format_error = true;
            text.push_str("<formatting panicked: ");
            text.push_str(&panic_message(payload.as_ref()));
            text.push('>');
        }
    }
    text
}

/// The `Display` text of `value`, bounded (see [`bounded`]).
pub(crate) fn display<T: Display + ?Sized>(value: &T, limit: usize, flags: &mut Flags) -> String {
    bounded(format_args!("{value}"), limit, flags)
}

/// An error's text and its `source()` chain, one `caused by:` line per
/// cause: at most `limit` bytes in all and [`MAX_CAUSES`] causes, stopping
/// where the chain comes back to an error already printed.
pub(crate) fn error_chain(error: &dyn Error, limit: usize, flags: &mut Flags) -> String {
    let mut text = display(error, limit, flags);
    // An error is known by its address and its text: neither alone, since a
    // cause held as the first field of its error has the same address, and
    // vtables are not unique enough to tell the two apart.
    let mut seen: Vec<(*const (), u64)> = vec![identity(error, &text)];
    let mut source = catch_unwind(AssertUnwindSafe(|| error.source())).unwrap_or(None);
    while let Some(cause) = source {
        if seen.len() > MAX_CAUSES {
            flags.truncated = true;
            text.push_str("\ncaused by: …[more causes]");
            break;
        }
        let room = limit.saturating_sub(text.len());
        if room == 0 {
            flags.truncated = true;
            text.push_str(CUT_MARKER);
            break;
        }
        let line = display(cause, room, flags);
        let id = identity(cause, &line);
        if seen.contains(&id) {
            flags.truncated = true;
            text.push_str("\ncaused by: …[the chain loops back here]");
            break;
        }
        seen.push(id);
        text.push_str("\ncaused by: ");
        text.push_str(&line);
        source = catch_unwind(AssertUnwindSafe(|| cause.source())).unwrap_or(None);
    }
    text
}

/// What tells one error of a chain from another: its address and a hash of
/// its text.
fn identity(error: &dyn Error, text: &str) -> (*const (), u64) {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    ((error as *const dyn Error).cast(), hasher.finish())
}

/// The text of a panic payload, as `std` prints it, at most
/// [`MAX_PANIC_MESSAGE`] bytes.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text: &str = if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    };
    if text.len() <= MAX_PANIC_MESSAGE {
        return text.to_owned();
    }
    let end = floor_char_boundary(text, MAX_PANIC_MESSAGE);
    let mut out = String::with_capacity(end + CUT_MARKER.len());
    out.push_str(&text[..end]);
    out.push_str(CUT_MARKER);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;
    impl Display for Failing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("partial")?;
            Err(fmt::Error)
        }
    }

    struct Panicking;
    impl Display for Panicking {
        fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
            panic!("boom in Display")
        }
    }

    #[test]
    fn an_impl_returning_err_is_kept_and_flagged() {
        let mut flags = Flags::default();
        let text = display(&Failing, 100, &mut flags);
        assert_eq!(
            text,
            "partial<formatting failed: an impl returned an error>"
        );
        assert!(flags.format_error);
    }

    #[test]
    fn a_panicking_impl_is_contained_and_flagged() {
        let mut flags = Flags::default();
        let text = display(&Panicking, 100, &mut flags);
        assert_eq!(text, "<formatting panicked: boom in Display>");
        assert!(flags.format_error);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let mut flags = Flags::default();
        let text = display(&"é".repeat(100), 11, &mut flags);
        assert_eq!(text, format!("{}{CUT_MARKER}", "é".repeat(5)));
        assert!(flags.truncated && !flags.format_error);
    }

    /// An error whose source is itself, or another error pointing back.
    #[derive(Debug)]
    struct Looping {
        name: &'static str,
        next: Option<&'static Looping>,
        own: bool,
    }
    impl Display for Looping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.name)
        }
    }
    impl Error for Looping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            if self.own {
                // Leaked once per test: a 'static self-reference.
                let me: &'static Looping = Box::leak(Box::new(Looping {
                    name: self.name,
                    next: None,
                    own: true,
                }));
                return Some(me);
            }
            self.next.map(|n| n as &(dyn Error + 'static))
        }
    }

    #[test]
    fn a_cyclic_chain_stops_where_it_loops() {
        static B: Looping = Looping {
            name: "b",
            next: Some(&A),
            own: false,
        };
        static A: Looping = Looping {
            name: "a",
            next: Some(&B),
            own: false,
        };
        let mut flags = Flags::default();
        let text = error_chain(&A, 10_000, &mut flags);
        assert_eq!(
            text,
            "a\ncaused by: b\ncaused by: …[the chain loops back here]"
        );
        assert!(flags.truncated);
    }

    #[test]
    fn an_endless_chain_of_new_errors_stops_at_the_cause_limit() {
        // Every `source()` makes a new error: no pointer repeats.
        let first = Looping {
            name: "e",
            next: None,
            own: true,
        };
        let mut flags = Flags::default();
        let text = error_chain(&first, 1_000_000, &mut flags);
        assert_eq!(text.matches("caused by: e").count(), MAX_CAUSES);
        assert!(text.ends_with("caused by: …[more causes]"));
    }

    #[test]
    fn a_chain_is_bounded_in_bytes() {
        #[derive(Debug)]
        struct Big(usize);
        impl Display for Big {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&"x".repeat(1000))
            }
        }
        impl Error for Big {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                static NEXT: Big = Big(0);
                (self.0 > 0).then_some(&NEXT as &(dyn Error + 'static))
            }
        }
        let mut flags = Flags::default();
        let text = error_chain(&Big(1), 1500, &mut flags);
        assert!(text.len() < 1500 + 64, "{}", text.len());
        assert!(flags.truncated);
    }

    #[test]
    fn panic_messages_are_bounded() {
        let long: Box<dyn std::any::Any + Send> = Box::new("p".repeat(MAX_PANIC_MESSAGE * 3));
        let text = panic_message(long.as_ref());
        assert_eq!(text.len(), MAX_PANIC_MESSAGE + CUT_MARKER.len());
        let odd: Box<dyn std::any::Any + Send> = Box::new(7u8);
        assert_eq!(panic_message(odd.as_ref()), "Box<dyn Any>");
    }
}
