//! The serializer of a container's content ([`Compound`]): separators,
//! struct fields (secret ones redacted without being serialized), map keys
//! through [`KeySer`] (a key that is not string-like becomes the string of
//! its JSON text) and values, each through [`serialize_guarded`].

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant,
};

use super::key::KeySer;
use super::ser::{serialize_guarded, Error, State};
use super::Flags;

/// Writes the content of one container. With `skip` (the container was
/// replaced by the depth-limited marker) it ignores everything, so nothing
/// inside is ever visited.
pub(super) struct Compound<'b, 'a> {
    pub st: &'b mut State<'a>,
    /// Depth of the elements.
    pub depth: usize,
    pub first: bool,
    pub skip: bool,
    /// The closing bracket, followed by `}` for an enum variant's content.
    pub close: char,
    pub in_variant: bool,
    /// The key just written is a secret: write the next value as redacted.
    pub redact_value: bool,
}

impl Compound<'_, '_> {
    /// Unchecked, like the closing bracket (see [`write_json`](super::write_json)).
    #[inline]
    fn separator(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.st.out.push(',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        self.separator();
        serialize_guarded(self.st, self.depth, value)
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        self.separator();
        self.st.write_field_name(name)?;
        if self.st.redactor.is_secret(name) {
            self.st.write_redacted()
        } else {
            serialize_guarded(self.st, self.depth, value)
        }
    }

    fn finish(self) -> Result<(), Error> {
        if !self.skip {
            self.st.out.push(self.close);
            if self.in_variant {
                self.st.out.push('}');
            }
        }
        Ok(())
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        self.separator();
        let start = self.st.out.len();
        self.st.key_is_secret = false;
        match key.serialize(KeySer { st: &mut *self.st }) {
            Ok(()) => self.redact_value = self.st.key_is_secret,
            Err(_) if self.st.too_large => return Err(Error::too_large()),
            Err(_) => {
                // Not string-like (or its Serialize failed): use its JSON
                // text, rendered apart so it can be written as one string.
                self.st.out.truncate(start);
                self.redact_value = false;
                self.st.flags.non_string_keys = true;
                let mut text = String::new();
                let mut sub = State {
                    out: &mut text,
                    limit: self.st.limit.saturating_sub(start),
                    max_depth: self.st.max_depth,
                    redactor: self.st.redactor,
                    flags: Flags::default(),
                    too_large: false,
                    key_is_secret: false,
                };
                let rendered = serialize_guarded(&mut sub, self.depth, key);
                let sub_too_large = rendered.is_err() || sub.too_large;
                self.st.flags.merge(sub.flags);
                // Even when it overflowed, write what fits: it is the preview.
                self.st.write_str_literal(&text)?;
                if sub_too_large {
                    return Err(self.st.overflowed());
                }
            }
        }
        self.st.push(":")
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        if std::mem::take(&mut self.redact_value) {
            self.st.write_redacted()
        } else {
            serialize_guarded(self.st, self.depth, value)
        }
    }
}

/// Implements a `SerializeX` trait by handing each method to the
/// [`Compound`] method that does the work (the traits differ only in their
/// names: elements, fields, keys and values are written the same way in all
/// of them). Inline, like the other forwarding methods (see
/// `forward_scalars!`).
macro_rules! forward_compound {
    ($($trait:ident { $($method:ident($($arg:ident: $ty:ty),*) => $target:ident;)* })*) => {
        $(
            impl $trait for Compound<'_, '_> {
                type Ok = ();
                type Error = Error;

                $(
                    #[inline]
                    fn $method<T: Serialize + ?Sized>(
                        &mut self,
                        $($arg: $ty,)*
                        value: &T,
                    ) -> Result<(), Error> {
                        self.$target($($arg,)* value)
                    }
                )*

                #[inline]
                fn end(self) -> Result<(), Error> {
                    self.finish()
                }
            }
        )*
    };
}

forward_compound! {
    SerializeSeq { serialize_element() => element; }
    SerializeTuple { serialize_element() => element; }
    SerializeTupleStruct { serialize_field() => element; }
    SerializeTupleVariant { serialize_field() => element; }
    SerializeMap {
        serialize_key() => key;
        serialize_value() => value;
    }
    SerializeStruct { serialize_field(key: &'static str) => field; }
    SerializeStructVariant { serialize_field(key: &'static str) => field; }
}
