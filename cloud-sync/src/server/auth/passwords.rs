//! Password hashing with Argon2id (RFC 9106 parameters as the `argon2` crate defaults them:
//! 19 MiB, 2 passes, 1 lane), and the rules a new password must meet.

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString},
};

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

/// Most Argon2 blocks (KiB) a stored hash may ask for: four times today's cost, so a hash
/// made with stronger settings still verifies but no stored string can ask for gigabytes.
const MAX_BLOCKS: usize = 4 * Params::DEFAULT_M_COST as usize;

/// A PHC string (`$argon2id$v=19$m=…`) of `password` with a fresh random salt, computed in
/// `memory` (grown to the cost's size if smaller, and kept by the caller for the next one).
pub fn hash_in(password: &str, memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let fail = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| fail(&e))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| fail(&e))?;
    let params = Params::DEFAULT;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    run(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password.as_bytes(),
        &bytes,
        &mut out,
        memory,
    )
    .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the stored PHC string, computed in `memory` like [`hash_in`]. An
/// unreadable hash, or one asking for more than [`MAX_BLOCKS`], never matches.
pub fn verify_in(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(stored.algorithm),
        Params::try_from(&stored),
        stored.salt,
        stored.hash,
    ) else {
        return false;
    };
    let version = match stored.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    run(
        algorithm,
        version,
        params,
        password.as_bytes(),
        salt,
        &mut out,
        memory,
    )
    .is_ok()
        && Output::new(&out).is_ok_and(|o| o == expected)
}

/// One Argon2 computation in `memory`, which grows (up to [`MAX_BLOCKS`]) to fit the cost.
fn run(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return Err(argon2::Error::MemoryTooMuch);
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        out,
        &mut memory[..blocks],
    )
}

/// The hash an unknown user is checked against, so that it answers as slowly as a wrong
/// password (no user enumeration by timing); made once, in the first caller's memory.
pub(crate) fn dummy(memory: &mut Vec<Block>) -> Option<&'static str> {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| hash_in("not a password anyone has", memory).ok())
        .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let mut m = Vec::new();
        let a = hash_in("correct horse battery", &mut m).expect("hash");
        let b = hash_in("correct horse battery", &mut m).expect("hash");
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_in("correct horse battery", &a, &mut m));
        assert!(!verify_in("correct horse batterY", &a, &mut m));
        assert!(!verify_in(
            "correct horse battery",
            "not a phc string",
            &mut m
        ));
        assert!(!verify_in(&"x".repeat(MAX_PASSWORD_BYTES + 1), &a, &mut m));
        assert!(dummy(&mut m).is_some_and(|d| !verify_in("anything", d, &mut m)));
        assert_eq!(
            m.len(),
            Params::DEFAULT_M_COST as usize,
            "one block, reused"
        );
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
