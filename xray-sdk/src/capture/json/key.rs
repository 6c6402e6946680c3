//! The map key serializer ([`KeySer`]). A key is written as a JSON string
//! when it is string-like, as `serde_json` writes it: strings, chars,
//! integers, bools and unit variants, through newtype structs and `Some`.
//! Anything else is refused before anything is written, and [`Compound`]
//! then writes the key as the string of its JSON text instead.
//!
//! [`Compound`]: super::compound::Compound

use serde::ser::{self, Impossible, Serialize};

use super::ser::{Error, State};
use super::text::{push_integer, Digits, TooLarge};

/// Implements `Serializer` methods that refuse their value as a map key
/// (the caller then falls back to the key's JSON text).
macro_rules! refuse_non_string_keys {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(
            fn $method(self, $(_: $arg),*) -> Result<$ok, Error> {
                Err(Error::key_not_string())
            }
        )*
    };
}

/// Writes a map key when it is string-like, as `serde_json` does (strings,
/// chars, integers, bools, unit variants, through newtype structs and `Some`);
/// anything else is refused ([`Error::key_not_string`]) before writing.
pub(super) struct KeySer<'b, 'a> {
    pub st: &'b mut State<'a>,
}

impl KeySer<'_, '_> {
    fn quoted(self, text: &str) -> Result<(), Error> {
        self.st.push("\"")?;
        self.st.push(text)?;
        self.st.push("\"")
    }

    fn quoted_integer(self, v: u64, negative: bool) -> Result<(), Error> {
        self.st.push("\"")?;
        push_integer(self.st.out, self.st.limit, v, negative)
            .map_err(|TooLarge| self.st.overflowed())?;
        self.st.push("\"")
    }

    fn quoted_ascii(self, ascii: &[u8]) -> Result<(), Error> {
        self.st.push("\"")?;
        self.st.push_ascii(ascii)?;
        self.st.push("\"")
    }
}

impl ser::Serializer for KeySer<'_, '_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.st.key_is_secret = self.st.redactor.is_secret(v);
        self.st.write_str_literal(v)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        // Written as a string key, so it is redacted like one.
        self.st.key_is_secret = self.st.redactor.is_secret(variant);
        self.st.write_str_literal(variant)
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.st.write_str_literal(v.encode_utf8(&mut [0u8; 4]))
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(if v { "true" } else { "false" })
    }

    forward_scalars! {
        serialize_i8(i8) => serialize_i64;
        serialize_i16(i16) => serialize_i64;
        serialize_i32(i32) => serialize_i64;
        serialize_u8(u8) => serialize_u64;
        serialize_u16(u16) => serialize_u64;
        serialize_u32(u32) => serialize_u64;
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.quoted_integer(v.unsigned_abs(), v < 0)
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.quoted_ascii(Digits::i128(v).bytes())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.quoted_integer(v, false)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.quoted_ascii(Digits::u128(v).bytes())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(Error::key_not_string())
    }

    refuse_non_string_keys! {
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}
