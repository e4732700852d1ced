//! Password hashing with Argon2id (RFC 9106 parameters as the `argon2` crate defaults them:
//! 19 MiB, 2 passes, 1 lane), and the rules a new password must meet.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};

/// Longest password accepted: hashing cost must not be an attacker's lever.
pub const MAX_PASSWORD_BYTES: usize = 1024;
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Why a new password is refused, if it is.
pub fn weakness(password: &str, email: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Some(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        ))
    } else if password.len() > MAX_PASSWORD_BYTES {
        Some(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        ))
    } else if password.eq_ignore_ascii_case(email)
        || password.to_lowercase().contains(&email.to_lowercase())
    {
        Some("password must not contain the email address".into())
    } else if password.chars().all(|c| password.starts_with(c)) {
        Some("password must not be one character repeated".into())
    } else {
        None
    }
}

/// A PHC string (`$argon2id$v=19$m=…`) with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string. An unreadable hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Spends the time of one verification, so that an unknown user answers as slowly as a wrong
/// password (no user enumeration by timing).
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash("not a password anyone has").ok()) {
        let _ = verify(password, phc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse battery").expect("hash");
        let b = hash("correct horse battery").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("correct horse battery", "not a phc string"));
        assert!(!verify(&"x".repeat(MAX_PASSWORD_BYTES + 1), &a));
        verify_nothing("anything");
    }

    #[test]
    fn weak_passwords_are_refused_with_the_rule() {
        assert!(weakness("short", "a@b.c").is_some_and(|w| w.contains("at least 12")));
        assert!(weakness("aaaaaaaaaaaaaa", "a@b.c").is_some_and(|w| w.contains("repeated")));
        assert!(
            weakness("XXguard@acme.exampleXX", "guard@acme.example")
                .is_some_and(|w| w.contains("email"))
        );
        assert!(weakness(&"ab".repeat(600), "a@b.c").is_some_and(|w| w.contains("at most")));
        assert_eq!(weakness("tr0ub4dor&3-staple", "guard@acme.example"), None);
    }
}
