//! The text values of the `record_type`, `phase` and `status` columns.

use std::fmt;
use std::str::FromStr;

/// A column value this format does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// Which kind of value (`record_type`, `phase`, `step status`, …).
    pub what: &'static str,
    /// The text found.
    pub value: String,
}

/// Defines a text-valued enum: `as_str`, `Display` and `FromStr` from one
/// table of variants and their texts.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the order the format lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the outbox.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: text.to_owned() }),
                }
            }
        }
    };
}

text_enum!(
    /// What a row records (`record_type`).
    RecordType, "record_type", {
        /// A step: an `#[xray::step]` function or a plain `tracing` span.
        Step => "step",
        /// An execution: one run of a pipeline.
        Execution => "execution",
    }
);

text_enum!(
    /// Which half of a step or execution a row records (`phase`).
    Phase, "phase", {
        /// It began (status `running`).
        Start => "start",
        /// It ended; the row repeats everything its start said.
        End => "end",
    }
);

text_enum!(
    /// The status of a step (contract values).
    StepStatus, "step status", {
        /// Started, not finished (yet, or ever: the process died).
        Running => "running",
        /// Returned normally (`Ok` for a `Result`).
        Ok => "ok",
        /// Returned `Err`.
        Error => "error",
        /// Panicked; the panic continued.
        Panicked => "panicked",
        /// An async step whose future was dropped before it completed.
        Cancelled => "cancelled",
    }
);

text_enum!(
    /// The status of an execution (contract values).
    ExecutionStatus, "execution status", {
        /// Started, not finished.
        Running => "running",
        /// Finished without a panic or a failed top-level step.
        Ok => "ok",
        /// A step panicked, a top-level step failed, or the closure panicked.
        Error => "error",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_parses_back_from_its_text_and_others_are_refused() {
        for s in StepStatus::ALL {
            assert_eq!(s.as_str().parse::<StepStatus>(), Ok(*s));
        }
        for s in ExecutionStatus::ALL {
            assert_eq!(s.as_str().parse::<ExecutionStatus>(), Ok(*s));
        }
        for p in Phase::ALL {
            assert_eq!(p.to_string().parse::<Phase>(), Ok(*p));
        }
        for r in RecordType::ALL {
            assert_eq!(r.as_str().parse::<RecordType>(), Ok(*r));
        }
        assert_eq!(
            "panicked".parse::<ExecutionStatus>(),
            Err(UnknownValue {
                what: "execution status",
                value: "panicked".into()
            })
        );
        assert!("OK".parse::<StepStatus>().is_err(), "values are lowercase");
        assert!("".parse::<Phase>().is_err());
    }
}
