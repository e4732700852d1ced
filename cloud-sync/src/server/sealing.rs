//! Encryption of what must never be read from a database dump: face templates.
//!
//! Envelope encryption with AES-256-GCM. The server's **master key** lives outside the database
//! (a file, `--master-key-file`); each tenant has its own **data key**, stored only wrapped by the
//! master key; each template is sealed with its tenant's data key. The associated data binds a
//! ciphertext to its place (tenant, person, template id), so a sealed template copied to another
//! row or tenant does not open. Without the master key file, the templates cannot be read.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use aes_gcm::{
    Aes256Gcm, Key, KeyInit, Nonce,
    aead::{Aead, Payload},
};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("master key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("master key file {path}: {why}")]
    BadKeyFile { path: PathBuf, why: &'static str },
    #[error("no random numbers: {0}")]
    Random(String),
    /// Wrong key, or the ciphertext was altered or moved: nothing is returned.
    #[error("a sealed value does not open with this key and place (wrong master key, or altered)")]
    Open,
}

/// The server's master key (32 bytes).
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

fn random<const N: usize>() -> Result<[u8; N], SealError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| SealError::Random(e.to_string()))?;
    Ok(b)
}

impl MasterKey {
    /// Reads the key file (64 hex characters), or makes one (readable by its owner only) when
    /// there is none. A file that others may read is refused, as ssh refuses a private key.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SealError> {
        let io = |source| SealError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path)?;
                Ok((Self::parse(path, &text)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random::<32>()?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode_private()
                    .open(path)
                    .map_err(io)?;
                f.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                Ok((Self(key), true))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Reads the key file; a missing file is an error (replicas must all be given the same key).
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let text = std::fs::read_to_string(path).map_err(|source| SealError::Io {
            path: path.to_owned(),
            source,
        })?;
        check_private(path)?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, SealError> {
        let bad = |why| SealError::BadKeyFile {
            path: path.to_owned(),
            why,
        };
        let bytes = hex::decode(text.trim()).map_err(|_| bad("not hexadecimal"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("must hold 64 hexadecimal characters (32 bytes)"))?;
        Ok(Self(key))
    }

    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// A new data key for tenant `tenant_id`, and its wrapped form for the database.
    pub fn new_data_key(&self, tenant_id: i64) -> Result<(DataKey, Sealed), SealError> {
        let dek = random::<32>()?;
        let wrapped = seal(&self.0, &dek_place(tenant_id), &dek)?;
        Ok((DataKey(dek), wrapped))
    }

    /// The tenant's data key from its wrapped form.
    pub fn unwrap_data_key(&self, tenant_id: i64, wrapped: &Sealed) -> Result<DataKey, SealError> {
        let bytes = open(&self.0, &dek_place(tenant_id), wrapped)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::Open)?;
        Ok(DataKey(key))
    }
}

fn dek_place(tenant_id: i64) -> Vec<u8> {
    format!("rollcall/tenant-data-key/v1/{tenant_id}").into_bytes()
}

trait PrivateMode {
    fn mode_private(&mut self) -> &mut Self;
}

impl PrivateMode for std::fs::OpenOptions {
    fn mode_private(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

fn check_private(path: &Path) -> Result<(), SealError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| SealError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(SealError::BadKeyFile {
            path: path.to_owned(),
            why: "others may read it: `chmod 600` it (and consider the key exposed)",
        });
    }
    Ok(())
}

/// A tenant's data key.
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    /// Seals `plaintext` for the place named by `place` (e.g. tenant, person, template id).
    pub fn seal(&self, place: &[u8], plaintext: &[u8]) -> Result<Sealed, SealError> {
        seal(&self.0, place, plaintext)
    }

    pub fn open(&self, place: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        open(&self.0, place, sealed)
    }
}

/// A ciphertext with its nonce, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Sealed, SealError> {
    let nonce = random::<12>()?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SealError::Open)?;
    Ok(Sealed {
        nonce: nonce.to_vec(),
        ciphertext,
    })
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &Sealed) -> Result<Vec<u8>, SealError> {
    if sealed.nonce.len() != 12 {
        return Err(SealError::Open);
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(
            Nonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad,
            },
        )
        .map_err(|_| SealError::Open)
}

/// Where a face template is sealed: its tenant, person and id.
pub fn template_place(tenant_id: i64, person_id: &str, template_id: &str) -> Vec<u8> {
    format!("rollcall/face-template/v1/{tenant_id}/{person_id}/{template_id}").into_bytes()
}

/// An embedding as bytes (f32, little-endian) and back.
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_vector(b: &[u8]) -> Option<Vec<f32>> {
    b.len().is_multiple_of(4).then(|| {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_opens_only_with_its_key_and_place() {
        let master = MasterKey::from_bytes([7; 32]);
        let (dek, wrapped) = master.new_data_key(1).expect("key");
        let v = vec![0.25f32, -1.0, 3.5];
        let place = template_place(1, "p1", "t1");
        let sealed = dek.seal(&place, &vector_bytes(&v)).expect("seal");
        assert!(
            !sealed
                .ciphertext
                .windows(4)
                .any(|w| w == 0.25f32.to_le_bytes())
        );
        let dek2 = master.unwrap_data_key(1, &wrapped).expect("unwrap");
        let opened = dek2.open(&place, &sealed).expect("open");
        assert_eq!(bytes_vector(&opened), Some(v));
        // Moved to another person, template or tenant: it does not open.
        for other in [
            template_place(1, "p2", "t1"),
            template_place(1, "p1", "t2"),
            template_place(2, "p1", "t1"),
        ] {
            assert!(matches!(dek.open(&other, &sealed), Err(SealError::Open)));
        }
        // Another tenant's wrapped key, or another master key: no data key.
        assert!(master.unwrap_data_key(2, &wrapped).is_err());
        assert!(
            MasterKey::from_bytes([8; 32])
                .unwrap_data_key(1, &wrapped)
                .is_err()
        );
        // A flipped bit: refused.
        let mut bad = sealed.clone();
        bad.ciphertext[0] ^= 1;
        assert!(dek.open(&place, &bad).is_err());
    }

    #[test]
    fn the_master_key_file_is_made_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let (a, created) = MasterKey::load_or_create(&path).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (b, created) = MasterKey::load_or_create(&path).expect("load");
        assert!(!created);
        assert_eq!(a.0, b.0);
        // Readable by others: refused, with what to do.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = MasterKey::load_or_create(&path).expect_err("refused");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&path, "zz\n").expect("write");
        let e = MasterKey::load_or_create(&path).expect_err("refused");
        assert!(e.to_string().contains("not hexadecimal"), "{e}");
        std::fs::write(&path, "abcd\n").expect("write");
        let e = MasterKey::load_or_create(&path).expect_err("refused");
        assert!(e.to_string().contains("64 hexadecimal"), "{e}");
    }
}
