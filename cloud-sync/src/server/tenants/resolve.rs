//! Tenants as the API sees them: slugs and display names, validated.

/// [`valid_slug`] as the OpenAPI document states it.
pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$";
/// [`invalid_name`]'s rules as the OpenAPI document states them: no control characters, not
/// blank, at most 200 characters.
pub const NAME_PATTERN: &str =
    "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$";

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

/// Why a display name is refused, if it is: 1–200 characters, no control characters.
pub fn invalid_name(s: &str) -> Option<&'static str> {
    if s.trim().is_empty() {
        Some("name must not be empty")
    } else if s.chars().count() > 200 {
        Some("name must be at most 200 characters")
    } else if s.chars().any(char::is_control) {
        Some("name must not contain control characters")
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
