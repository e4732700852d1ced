//! Text that may not reach storage: the NUL character (U+0000). PostgreSQL cannot store it in a
//! `text` value and fails the whole statement, so every string that comes from outside is
//! checked here, once, at the edge: JSON bodies ([`crate::problem::Json`]), URI paths and
//! query strings ([`uri_nul`]), and each item of a node's push ([`nul_field`], so that one bad
//! item is refused alone).

use std::fmt::Write as _;

use serde::{Serialize, ser};

/// What a refusal says about the NUL character.
pub const NUL_REFUSED: &str = "must not contain the NUL character (U+0000)";

/// Whether JSON text holds the escape `\u0000` (raw control characters are invalid JSON and
/// are refused by the parser itself). An escaped backslash followed by `u0000` is not one.
pub fn json_has_nul(json: &[u8]) -> bool {
    let pattern = b"u0000";
    let mut from = 0;
    while let Some(at) = find(&json[from..], pattern).map(|i| from + i) {
        let backslashes = json[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 1 {
            return true;
        }
        from = at + 1;
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The path (`owner.email`, `site_ids[2]`, a key as `meta.<key>`) of the first string or map key
/// of `value` holding a NUL, if any.
pub fn json_nul_path(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    fn walk(v: &Value, path: &mut String) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&k.replace('\0', "\\u0000"));
                let found = k.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| if path.is_empty() { "body".into() } else { path })
}

/// Whether a URI's path or query holds a percent-encoded NUL (`%00`): the name to refuse it
/// under (`path`, or the query parameter's name).
pub fn uri_nul(path: &str, query: Option<&str>) -> Option<String> {
    let nul = |s: &str| s.as_bytes().windows(3).any(|w| w == b"%00");
    if nul(path) {
        return Some("path".into());
    }
    query?.split('&').find(|pair| nul(pair)).map(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        if nul(name) || name.is_empty() {
            "query".to_owned()
        } else {
            name.to_owned()
        }
    })
}

/// The field path of the first string (or map key, or char) of `value` holding a NUL, found by
/// walking its `Serialize` form without writing anything; `None` when there is none.
pub fn nul_field<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    let mut walker = Walker { path: Vec::new() };
    match value.serialize(&mut walker) {
        Err(Found(path)) => Some(path),
        Ok(()) => None,
    }
}

/// Where the walker is: the names and indices from the root.
struct Walker {
    path: Vec<Segment>,
}

enum Segment {
    Field(&'static str),
    Index(usize),
    Key,
}

impl Walker {
    fn found(&self) -> Found {
        let mut out = String::new();
        for s in &self.path {
            match s {
                Segment::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Segment::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
                Segment::Key => out.push_str(".<key>"),
            }
        }
        Found(if out.is_empty() { "value".into() } else { out })
    }

    fn text(&self, s: &str) -> Result<(), Found> {
        if s.contains('\0') {
            Err(self.found())
        } else {
            Ok(())
        }
    }

    fn within<T: Serialize + ?Sized>(&mut self, at: Segment, v: &T) -> Result<(), Found> {
        self.path.push(at);
        v.serialize(&mut *self)?;
        self.path.pop();
        Ok(())
    }

    /// The index the next element of the innermost sequence gets.
    fn next_index(&mut self) -> usize {
        match self.path.last_mut() {
            Some(Segment::Index(i)) => {
                *i = i.wrapping_add(1);
                *i
            }
            _ => 0,
        }
    }
}

/// A NUL was found, at this path (the walker's "error", which ends the walk).
#[derive(Debug)]
struct Found(String);

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {NUL_REFUSED}", self.0)
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        Found(msg.to_string())
    }
}

macro_rules! nothing_to_check {
    ($($method:ident: $t:ty),+ $(,)?) => {$(
        fn $method(self, _: $t) -> Result<(), Found> {
            Ok(())
        }
    )+};
}

impl<'a> ser::Serializer for &'a mut Walker {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    nothing_to_check!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16,
        serialize_i32: i32, serialize_i64: i64, serialize_i128: i128, serialize_u8: u8,
        serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128,
        serialize_f32: f32, serialize_f64: f64, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str);

    fn serialize_char(self, c: char) -> Result<(), Found> {
        if c == '\0' { Err(self.found()) } else { Ok(()) }
    }
    fn serialize_str(self, s: &str) -> Result<(), Found> {
        self.text(s)
    }
    fn serialize_none(self) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Found> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Found> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Found> {
        self.within(Segment::Field(variant), v)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, Found> {
        Ok(Seq::open(self))
    }
    fn serialize_tuple(self, _: usize) -> Result<Seq<'a>, Found> {
        Ok(Seq::open(self))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Seq<'a>, Found> {
        Ok(Seq::open(self))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, Found> {
        Ok(Seq::open(self))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Found> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Found> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Found> {
        Ok(self)
    }
}

/// A sequence being walked: its elements are indexed under one path segment.
struct Seq<'a> {
    walker: &'a mut Walker,
}

impl<'a> Seq<'a> {
    fn open(walker: &'a mut Walker) -> Self {
        // usize::MAX + 1 wraps to 0 at the first element.
        walker.path.push(Segment::Index(usize::MAX));
        Self { walker }
    }

    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Found> {
        let _ = self.walker.next_index();
        v.serialize(&mut *self.walker)
    }

    fn close(self) -> Result<(), Found> {
        self.walker.path.pop();
        Ok(())
    }
}

macro_rules! seq_like {
    ($($trait:ident: $method:ident),+ $(,)?) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = Found;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Found> {
                self.element(v)
            }
            fn end(self) -> Result<(), Found> {
                self.close()
            }
        }
    )+};
}
seq_like!(SerializeSeq: serialize_element, SerializeTuple: serialize_element,
          SerializeTupleStruct: serialize_field, SerializeTupleVariant: serialize_field);

impl ser::SerializeMap for &mut Walker {
    type Ok = ();
    type Error = Found;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Found> {
        self.within(Segment::Key, k)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Found> {
        self.within(Segment::Key, v)
    }
    fn end(self) -> Result<(), Found> {
        Ok(())
    }
}

macro_rules! struct_like {
    ($($trait:ident),+) => {$(
        impl ser::$trait for &mut Walker {
            type Ok = ();
            type Error = Found;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                v: &T,
            ) -> Result<(), Found> {
                self.within(Segment::Field(name), v)
            }
            fn end(self) -> Result<(), Found> {
                Ok(())
            }
        }
    )+};
}
struct_like!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[derive(Serialize)]
    struct Event {
        id: String,
        person_id: Option<String>,
        reasons: Vec<Reason>,
        tags: std::collections::BTreeMap<String, String>,
        n: i64,
    }

    #[derive(Serialize)]
    struct Reason {
        code: String,
    }

    fn event() -> Event {
        Event {
            id: "01H".into(),
            person_id: Some("ana".into()),
            reasons: vec![Reason { code: "a".into() }, Reason { code: "b".into() }],
            tags: [("k".to_owned(), "v".to_owned())].into(),
            n: 5,
        }
    }

    #[test]
    fn the_walker_names_the_field_holding_a_nul() {
        assert_eq!(nul_field(&event()), None);
        let mut e = event();
        e.person_id = Some("a\0na".into());
        assert_eq!(nul_field(&e).as_deref(), Some("person_id"));
        let mut e = event();
        e.reasons[1].code = "\0".into();
        assert_eq!(nul_field(&e).as_deref(), Some("reasons[1].code"));
        let mut e = event();
        e.tags.insert("bad\0".into(), "v".into());
        assert_eq!(nul_field(&e).as_deref(), Some("tags.<key>"));
        assert_eq!(nul_field("x\0").as_deref(), Some("value"));
    }

    #[test]
    fn json_text_and_values_are_checked_for_the_escape_alone() {
        assert!(json_has_nul(br#"{"email":"a\u0000b"}"#));
        assert!(
            json_has_nul(br#"{"email":"\\\u0000"}"#),
            "escaped backslash then the escape"
        );
        assert!(
            !json_has_nul(br#"{"email":"\\u0000"}"#),
            "the text backslash-u0000"
        );
        assert!(!json_has_nul(br#"{"n":"u0000"}"#));
        let v = json!({"owner": {"email": "ok", "names": ["x", "y\u{0}"]}});
        assert_eq!(json_nul_path(&v).as_deref(), Some("owner.names[1]"));
        assert_eq!(
            json_nul_path(&json!({"a\u{0}": 1})).as_deref(),
            Some("a\\u0000")
        );
        assert_eq!(json_nul_path(&json!("\u{0}")).as_deref(), Some("body"));
        assert_eq!(json_nul_path(&json!({"a": [1, "b"]})), None);
    }

    #[test]
    fn uris_name_the_path_or_the_query_parameter() {
        assert_eq!(
            uri_nul("/api/v1/people/a%00b", None).as_deref(),
            Some("path")
        );
        assert_eq!(
            uri_nul("/api/v1/events", Some("site=hq&person=a%00")).as_deref(),
            Some("person")
        );
        assert_eq!(
            uri_nul("/api/v1/events", Some("%00=1")).as_deref(),
            Some("query")
        );
        assert_eq!(
            uri_nul("/api/v1/events", Some("site=hq%2500")),
            None,
            "%25 is a percent sign"
        );
    }

    proptest! {
        /// Whatever a string holds, serde_json's own encoding of it has the escape exactly when
        /// it holds a NUL, and the walker agrees.
        #[test]
        fn the_escape_scan_agrees_with_the_string(s in "[a-z\\\\\"u0\\x00]{0,12}") {
            let text = serde_json::to_vec(&json!({ "f": s })).expect("encode");
            prop_assert_eq!(json_has_nul(&text), s.contains('\0'));
            prop_assert_eq!(nul_field(&s).is_some(), s.contains('\0'));
        }
    }
}
