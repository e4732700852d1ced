//! The identifiers that cross the wire, each a parsing newtype: the only way to make one is to
//! parse it, and the rule lives here once, for the node's API and config and for the cloud.
//!
//! The wire structs ([`crate::wire`]) keep these fields as plain strings on purpose: a push is
//! decoded whole, and one item with a bad id must be refused on its own (a per-item rejection),
//! never fail the decoding of the batch and block the items behind it. Whoever takes an id in
//! (a handler, the ingest of one item, a config file) parses it with the type below.

use std::fmt;

/// Why a text is not an identifier of a kind: names the kind, the text and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{value}` is refused: {rule}")]
pub struct IdError {
    /// What was being parsed (`person id`, `site id`, `model name`).
    pub kind: &'static str,
    /// The refused text, cut to 64 characters.
    pub value: String,
    /// The rule, as people read it.
    pub rule: &'static str,
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $rule:literal, $pattern:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The rule, as an error message states it.
            pub const RULE: &'static str = $rule;
            /// The rule as a regular expression (for the OpenAPI document; tests check the two agree).
            pub const PATTERN: &'static str = $pattern;

            /// Whether `text` is one, as is (no trimming).
            pub fn is_valid(text: &str) -> bool {
                let valid: fn(&[u8]) -> bool = $valid;
                (1..=64).contains(&text.len()) && valid(text.as_bytes())
            }

            /// The identifier `text` is, or why not.
            pub fn parse(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                if Self::is_valid(&text) {
                    Ok(Self(text))
                } else {
                    Err(IdError {
                        kind: $kind,
                        value: text.chars().take(64).collect(),
                        rule: $rule,
                    })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn alnum_start(b: &[u8]) -> bool {
    b.first().is_some_and(u8::is_ascii_alphanumeric)
}

identifier!(
    /// A person's id, as nodes record it in events and the cloud keys people by (payroll
    /// numbers like `E-1042` fit). Template ids follow the same rule.
    PersonId,
    "person id",
    "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
    |b| alnum_start(b)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
);

identifier!(
    /// A site's id, as a node carries it in `node.site_id` and the cloud keys sites by.
    SiteId,
    "site id",
    "1-64 characters of a-z, 0-9, - or _",
    "^[a-z0-9_-]{1,64}$",
    |b| b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'))
);

identifier!(
    /// An embedder (template model) name, under which nodes and the cloud keep templates apart.
    ModelName,
    "model name",
    "1-64 lower-case letters, digits, '-', '_' or '.', starting with a letter or digit",
    "^[a-z0-9][a-z0-9_.-]{0,63}$",
    |b| b
        .first()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        })
);

/// Why a typed card number is not a card name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardFormatError {
    Shape(String),
    Raw(String),
}

impl fmt::Display for CardFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shape(t) => write!(
                f,
                "`{t}` is not a card: write facility:number in decimal (e.g. 12:3456) or raw:BITS:HEX"
            ),
            Self::Raw(t) => write!(
                f,
                "`{t}`: a raw card has 1-64 bits in at least that many hex-encoded bytes"
            ),
        }
    }
}

impl std::error::Error for CardFormatError {}

/// A card's name: `facility:number` of a Wiegand card (as printed on it), or
/// `raw:<bits>:<hex>` with the hex in lower case — the same whether an admin types it (at a
/// node or in the cloud) or a reader reads it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct CardKey(String);

impl CardKey {
    /// Normalises a card name as an admin types it: `012:03456` → `12:3456`, `raw:32:0123ABCD`
    /// → `raw:32:0123abcd`.
    pub fn parse(text: &str) -> Result<Self, CardFormatError> {
        let t = text.trim();
        let shape = || CardFormatError::Shape(t.chars().take(40).collect());
        if let Some(rest) = t.strip_prefix("raw:") {
            let (bits, hex_data) = rest.split_once(':').ok_or_else(shape)?;
            let bits: u16 = bits.parse().map_err(|_| shape())?;
            let data = (hex_data.len() % 2 == 0)
                .then(|| {
                    (0..hex_data.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(hex_data.get(i..i + 2)?, 16).ok())
                        .collect::<Option<Vec<u8>>>()
                })
                .flatten()
                .ok_or_else(shape)?;
            if bits == 0 || bits > 64 || data.len() < (bits as usize).div_ceil(8) {
                return Err(CardFormatError::Raw(t.chars().take(40).collect()));
            }
            return Ok(Self::raw(bits, &data));
        }
        let (facility, number) = t.split_once(':').ok_or_else(shape)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(facility) || !digits(number) {
            return Err(shape());
        }
        let facility: u32 = facility.parse().map_err(|_| shape())?;
        let number: u32 = number.parse().map_err(|_| shape())?;
        Ok(Self::wiegand(facility, number))
    }

    /// The name of a parity-checked Wiegand card the reader decoded.
    pub fn wiegand(facility: u32, number: u32) -> Self {
        Self(format!("{facility}:{number}"))
    }

    /// The name of any other card: its bit count and bytes as read.
    pub fn raw(bits: u16, data: &[u8]) -> Self {
        Self(format!("raw:{bits}:{}", hex::encode(data)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<CardKey> for String {
    fn from(k: CardKey) -> String {
        k.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn person_ids_follow_the_rule() {
        for ok in ["E-1042", "guard", "a", "A.b_c-d", &"x".repeat(64)] {
            assert!(PersonId::is_valid(ok), "{ok}");
        }
        for bad in ["", "_guard", ".x", "-x", "a b", "é", "a/b", &"x".repeat(65)] {
            assert!(!PersonId::is_valid(bad), "{bad}");
        }
        let e = PersonId::parse("_guard").expect_err("refused");
        assert_eq!(
            e.to_string(),
            "person id `_guard` is refused: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        );
    }

    #[test]
    fn site_ids_and_model_names_follow_theirs() {
        assert!(SiteId::is_valid("hq-2_b"));
        for bad in ["", "HQ", "a.b", "a b", &"s".repeat(65)] {
            assert!(!SiteId::is_valid(bad), "{bad}");
        }
        assert!(ModelName::is_valid("mobilefacenet-v1"));
        for bad in ["", "Mobile", "-x", "_x", "a b"] {
            assert!(!ModelName::is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn deserialising_parses() {
        let ok: PersonId = serde_json::from_str("\"E-1\"").expect("valid");
        assert_eq!(ok.as_str(), "E-1");
        let e = serde_json::from_str::<SiteId>("\"HQ\"").expect_err("refused");
        assert!(e.to_string().contains("site id `HQ` is refused"), "{e}");
        assert_eq!(serde_json::to_string(&ok).expect("json"), "\"E-1\"");
    }

    #[test]
    fn card_names_are_normalised() {
        assert_eq!(
            CardKey::parse(" 012:03456 ").map(String::from),
            Ok("12:3456".into())
        );
        assert_eq!(
            CardKey::parse("raw:32:0123ABCD").map(String::from),
            Ok("raw:32:0123abcd".into())
        );
        for bad in [
            "",
            "12",
            "a:1",
            "1:",
            "raw:x:00",
            "raw:8:0",
            "12:99999999999",
        ] {
            assert!(
                matches!(CardKey::parse(bad), Err(CardFormatError::Shape(_))),
                "{bad}"
            );
        }
        for bad in ["raw:0:00", "raw:65:00", "raw:32:0011"] {
            assert!(
                matches!(CardKey::parse(bad), Err(CardFormatError::Raw(_))),
                "{bad}"
            );
        }
        assert_eq!(CardKey::wiegand(12, 3456).as_str(), "12:3456");
        assert_eq!(CardKey::raw(12, &[0xAB, 0x0C]).as_str(), "raw:12:ab0c");
    }

    proptest! {
        #[test]
        fn a_parsed_id_is_valid_and_reparses_to_itself(s in "[A-Za-z0-9_.-]{0,70}") {
            match PersonId::parse(s.clone()) {
                Ok(id) => {
                    prop_assert!(PersonId::is_valid(&id));
                    prop_assert_eq!(PersonId::parse(id.as_str()), Ok(id.clone()));
                }
                Err(e) => {
                    prop_assert!(!PersonId::is_valid(&s));
                    prop_assert_eq!(e.rule, PersonId::RULE);
                }
            }
        }

        #[test]
        fn any_text_gets_an_answer(s in "\\PC{0,80}") {
            let _ = PersonId::parse(s.clone());
            let _ = SiteId::parse(s.clone());
            let _ = ModelName::parse(s.clone());
            if let Ok(k) = CardKey::parse(&s) {
                prop_assert_eq!(CardKey::parse(k.as_str()), Ok(k.clone()));
            }
        }

        #[test]
        fn read_cards_parse_back_to_their_name(f in any::<u32>(), n in any::<u32>(),
                                                data in proptest::collection::vec(any::<u8>(), 1..8)) {
            let w = CardKey::wiegand(f, n);
            prop_assert_eq!(CardKey::parse(w.as_str()), Ok(w.clone()));
            let bits = (data.len() * 8) as u16;
            let r = CardKey::raw(bits, &data);
            prop_assert_eq!(CardKey::parse(r.as_str()), Ok(r.clone()));
        }
    }
}
