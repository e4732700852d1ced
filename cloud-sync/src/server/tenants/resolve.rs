//! Tenants as the API sees them: slugs and display names, validated.

/// [`valid_slug`] as the OpenAPI document states it.
pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$";
/// [`invalid_name`]'s rules as the OpenAPI document states them: no control characters, no
/// invisible or direction-changing format characters, not blank, at most 200 characters.
pub const NAME_PATTERN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$";

/// A tenant slug: 2–63 characters of `a-z`, `0-9` and `-`, not starting or ending with `-`
/// (it is also a DNS label: `acme` in `acme.rollcall.example`).
pub fn valid_slug(s: &str) -> bool {
    (2..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// 400 naming `name` when a tenant's or site's name breaks [`invalid_name`]'s rules.
pub(crate) fn check_name(name: &str) -> Result<(), rollcall_service::problem::Problem> {
    match invalid_name(name) {
        Some(why) => Err(rollcall_service::problem::Problem::bad_request(why)),
        None => Ok(()),
    }
}

/// 400 naming `display_name` when a user's or person's display name breaks [`invalid_name`]'s
/// rules.
pub(crate) fn check_display_name(name: &str) -> Result<(), rollcall_service::problem::Problem> {
    match invalid_name(name) {
        Some(why) => Err(rollcall_service::problem::Problem::bad_request(format!(
            "display_{why}"
        ))),
        None => Ok(()),
    }
}

/// Characters that change how the text around them is shown without showing themselves: the
/// bidirectional embeddings, overrides, isolates and marks (a name with U+202E reads
/// backwards from there on: "Ali\u{202E}nimda" shows as "Aliadmin"), zero-width spaces and
/// joiners of words, and the byte-order mark. The zero-width (non-)joiner, which Persian and
/// Indic scripts and emoji need, is kept.
pub fn is_hidden_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// Why a display name is refused, if it is: 1–200 characters, no control characters, no
/// [hidden format characters](is_hidden_format).
pub fn invalid_name(s: &str) -> Option<&'static str> {
    if s.trim().is_empty() {
        Some("name must not be empty")
    } else if s.chars().count() > 200 {
        Some("name must be at most 200 characters")
    } else if s.chars().any(char::is_control) {
        Some("name must not contain control characters")
    } else if s.chars().any(is_hidden_format) {
        Some(
            "name must not contain invisible or direction-changing characters (U+202E and the like)",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slugs_are_dns_labels() {
        for ok in ["acme", "a1", "acme-east-2", "00"] {
            assert!(valid_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "-acme",
            "acme-",
            "Acme",
            "acme.corp",
            "ac me",
            "ümlaut",
            &"a".repeat(64),
        ] {
            assert!(!valid_slug(bad), "{bad}");
        }
        assert_eq!(invalid_name("Acme Security"), None);
        assert!(invalid_name("  ").is_some());
        assert!(invalid_name("a\nb").is_some());
        assert_eq!(
            invalid_name("Ali\u{202E}nimda").map(|w| &w[..25]),
            Some("name must not contain inv")
        );
        for hidden in [
            '\u{200B}', '\u{200F}', '\u{2066}', '\u{2069}', '\u{FEFF}', '\u{061C}',
        ] {
            assert!(
                invalid_name(&format!("Bob{hidden}")).is_some(),
                "{hidden:?}"
            );
        }
        // Persian needs the zero-width non-joiner, emoji sequences the joiner.
        assert_eq!(
            invalid_name("\u{0645}\u{06CC}\u{200C}\u{0634}\u{0648}\u{062F}"),
            None
        );
        assert_eq!(invalid_name("Guard \u{1F469}\u{200D}\u{1F692}"), None);
    }

    proptest! {
        #[test]
        fn a_valid_slug_is_a_lowercase_hostname_label(s in "\\PC{0,70}") {
            if valid_slug(&s) {
                prop_assert!(s.len() <= 63 && s.is_ascii());
                prop_assert_eq!(s.to_ascii_lowercase(), s.clone());
                prop_assert!(!s.contains('.') && !s.contains('_'));
            }
        }
    }
}
