//! The key that seals face templates at rest (AES-256-GCM). It lives in its own file beside
//! the database (`node.key_file`, default `<data_dir>/template.key`), created on first start
//! with mode 0600; a copy of the database without the key reveals no biometric data.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: a template key is 32 bytes (raw) or 64 hex digits, this file has {len} bytes", path.display())]
    Format { path: PathBuf, len: usize },
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// The template sealing key. Its `Debug` never prints the key.
#[derive(Clone)]
pub struct TemplateKey(Aes256Gcm);

impl std::fmt::Debug for TemplateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TemplateKey(…)")
    }
}

/// Why a sealed template could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the template cannot be opened with this node's key (another key file, or the row was altered)"
)]
pub struct Unseal;

const NONCE: usize = 12;

impl TemplateKey {
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    /// Reads the key at `path`, or creates one (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
                let key: Option<[u8; 32]> = if bytes.len() == 32 {
                    bytes.as_slice().try_into().ok()
                } else if text.len() == 64 {
                    hex::decode(text).ok().and_then(|k| k.try_into().ok())
                } else {
                    None
                };
                key.map(|k| Self::from_bytes(&k)).ok_or(KeyError::Format {
                    path: path.to_path_buf(),
                    len: bytes.len(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let tmp = path.with_extension("partial");
                {
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    let _ = std::fs::remove_file(&tmp);
                    let mut f = options.open(&tmp).map_err(io)?;
                    f.write_all(hex::encode(key).as_bytes()).map_err(io)?;
                    f.sync_all().map_err(io)?;
                }
                std::fs::rename(&tmp, path).map_err(io)?;
                tracing::info!(path = %path.display(), "created a new template key: back it up with the database");
                Ok(Self::from_bytes(&key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// `nonce ‖ ciphertext ‖ tag`; `context` (the row's identity) is authenticated too, so a
    /// sealed template cannot be moved to another row or person.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Random("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, Unseal> {
        if sealed.len() < NONCE + 16 {
            return Err(Unseal);
        }
        let (nonce, body) = sealed.split_at(NONCE);
        self.0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_its_context() {
        let key = TemplateKey::from_bytes(&[7; 32]);
        let sealed = key.seal("t1|ann|m", b"embedding").expect("seal");
        assert!(
            !sealed.windows(9).any(|w| w == b"embedding"),
            "plaintext leaked"
        );
        assert_eq!(key.open("t1|ann|m", &sealed).expect("open"), b"embedding");
        assert_eq!(
            key.open("t1|bob|m", &sealed),
            Err(Unseal),
            "moved to another person"
        );
        assert_eq!(
            TemplateKey::from_bytes(&[8; 32]).open("t1|ann|m", &sealed),
            Err(Unseal)
        );
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(key.open("t1|ann|m", &flipped), Err(Unseal));
        assert_eq!(key.open("t1|ann|m", &sealed[..10]), Err(Unseal));
        assert_ne!(
            key.seal("c", b"x").expect("seal"),
            key.seal("c", b"x").expect("seal"),
            "fresh nonces"
        );
    }

    #[test]
    fn creates_a_private_key_file_once_and_refuses_a_malformed_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/template.key");
        let a = TemplateKey::load_or_create(&path).expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = TemplateKey::load_or_create(&path).expect("loaded");
        let sealed = a.seal("c", b"same key").expect("seal");
        assert_eq!(b.open("c", &sealed).expect("open"), b"same key");
        std::fs::write(&path, b"short").expect("write");
        let e = TemplateKey::load_or_create(&path)
            .expect_err("malformed")
            .to_string();
        assert!(e.contains("32 bytes") && e.contains("5 bytes"), "{e}");
    }
}
