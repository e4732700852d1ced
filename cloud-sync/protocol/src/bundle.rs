//! Node config bundles: a node's whole `node.toml`, signed with Ed25519 by its tenant's key in
//! the cloud, so that an installer can flash it and the node can tell it came from its tenant,
//! for its site, and is newer than what it runs.
//!
//! The signature covers `FORMAT`, tenant, site, serial, issue time and the SHA-256 of the
//! config text, one per line: no JSON canonicalisation is needed to verify it.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT: &str = "rollcall-config-bundle/1";

/// Largest bundle file a node reads.
pub const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

/// A signed config for one site's node.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigBundle {
    pub format: String,
    pub tenant: String,
    pub site_id: String,
    /// Increases with every bundle the cloud signs for the site: a node refuses an older one.
    pub serial: u64,
    pub issued_ms: i64,
    /// The node's complete config file.
    pub config_toml: String,
    /// [`key_id`] of the signing key.
    pub key_id: String,
    /// Ed25519 signature, hex.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a config bundle: {0}")]
    Malformed(String),
    #[error("bundle format `{0}` is not {FORMAT}")]
    Format(String),
    #[error("the public key is not an Ed25519 key (64 hex digits): {0}")]
    Key(String),
    #[error("signed by key {got}, but this node trusts key {expected}")]
    WrongKey { expected: String, got: String },
    #[error("the signature does not match: the bundle was altered or not signed by this tenant")]
    Signature,
}

/// A short, stable name of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Parses a public key written as 64 hex digits.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, BundleError> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| BundleError::Key("expected 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| BundleError::Key(e.to_string()))
}

fn signed_bytes(b: &ConfigBundle) -> Vec<u8> {
    format!(
        "{FORMAT}\n{}\n{}\n{}\n{}\n{}\n",
        b.tenant,
        b.site_id,
        b.serial,
        b.issued_ms,
        hex::encode(Sha256::digest(b.config_toml.as_bytes()))
    )
    .into_bytes()
}

/// A tenant's signing key.
pub struct BundleSigner {
    key: SigningKey,
}

impl BundleSigner {
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// The public key, 64 hex digits, as a node's config holds it.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    pub fn key_id(&self) -> String {
        key_id(&self.key.verifying_key())
    }

    pub fn sign(
        &self,
        tenant: &str,
        site_id: &str,
        serial: u64,
        issued_ms: i64,
        config_toml: String,
    ) -> ConfigBundle {
        let mut bundle = ConfigBundle {
            format: FORMAT.into(),
            tenant: tenant.into(),
            site_id: site_id.into(),
            serial,
            issued_ms,
            config_toml,
            key_id: self.key_id(),
            signature: String::new(),
        };
        bundle.signature = hex::encode(self.key.sign(&signed_bytes(&bundle)).to_bytes());
        bundle
    }
}

impl ConfigBundle {
    /// Reads a bundle file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::Malformed(format!(
                "{} bytes, more than {MAX_BUNDLE_BYTES}",
                bytes.len()
            )));
        }
        let bundle: Self =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.format != FORMAT {
            return Err(BundleError::Format(bundle.format));
        }
        Ok(bundle)
    }

    /// Checks the signature with the tenant's public key.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), BundleError> {
        let expected = key_id(key);
        if self.key_id != expected {
            return Err(BundleError::WrongKey {
                expected,
                got: self.key_id.chars().take(32).collect(),
            });
        }
        let signature: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(BundleError::Signature)?;
        key.verify(&signed_bytes(self), &Signature::from_bytes(&signature))
            .map_err(|_| BundleError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> BundleSigner {
        BundleSigner::from_secret([seed; 32])
    }

    fn bundle() -> ConfigBundle {
        signer(7).sign(
            "acme",
            "hq",
            3,
            1_700_000_000_000,
            "[node]\nsite_id = \"hq\"\n".into(),
        )
    }

    fn key(seed: u8) -> VerifyingKey {
        parse_public_key(&signer(seed).public_key_hex()).expect("key")
    }

    #[test]
    fn a_signed_bundle_verifies_and_round_trips_through_its_file() {
        let b = bundle();
        let file = serde_json::to_vec_pretty(&b).expect("json");
        let back = ConfigBundle::parse(&file).expect("parse");
        assert_eq!(back, b);
        back.verify(&key(7)).expect("verifies");
    }

    #[test]
    fn any_change_or_another_key_is_refused() {
        let b = bundle();
        let changes: [fn(&mut ConfigBundle); 5] = [
            |b| b.config_toml.push(' '),
            |b| b.serial += 1,
            |b| b.site_id = "hq2".into(),
            |b| b.tenant = "evil".into(),
            |b| b.issued_ms += 1,
        ];
        for change in changes {
            let mut altered = b.clone();
            change(&mut altered);
            assert_eq!(altered.verify(&key(7)), Err(BundleError::Signature));
        }
        assert!(matches!(
            b.verify(&key(8)),
            Err(BundleError::WrongKey { .. })
        ));
        // Signed by another key that claims this key's id.
        let mut forged = signer(8).sign("acme", "hq", 3, 1, b.config_toml.clone());
        forged.key_id = b.key_id.clone();
        assert_eq!(forged.verify(&key(7)), Err(BundleError::Signature));
        let mut garbled = b.clone();
        garbled.signature = "zz".into();
        assert_eq!(garbled.verify(&key(7)), Err(BundleError::Signature));
    }

    #[test]
    fn malformed_files_and_keys_are_refused_with_a_reason() {
        assert!(matches!(
            ConfigBundle::parse(b"{"),
            Err(BundleError::Malformed(_))
        ));
        let mut other = serde_json::to_value(bundle()).expect("json");
        other["format"] = "rollcall-config-bundle/9".into();
        assert!(matches!(
            ConfigBundle::parse(other.to_string().as_bytes()),
            Err(BundleError::Format(_))
        ));
        assert!(matches!(
            ConfigBundle::parse(&vec![b' '; MAX_BUNDLE_BYTES + 1]),
            Err(BundleError::Malformed(_))
        ));
        for bad in ["", "abcd", &"g".repeat(64)] {
            assert!(
                matches!(parse_public_key(bad), Err(BundleError::Key(_))),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        /// Flipping any bit of the signed text or of the signature breaks verification.
        #[test]
        fn every_bit_flip_is_caught(byte in 0usize..4096, bit in 0u8..8, in_signature: bool) {
            let b = bundle();
            let mut altered = b.clone();
            if in_signature {
                let mut sig = hex::decode(&b.signature).expect("hex");
                let i = byte % sig.len();
                sig[i] ^= 1 << bit;
                altered.signature = hex::encode(sig);
            } else {
                let mut text = b.config_toml.clone().into_bytes();
                let i = byte % text.len();
                text[i] ^= 1 << bit;
                altered.config_toml = String::from_utf8_lossy(&text).into_owned();
            }
            proptest::prop_assert!(altered.verify(&key(7)).is_err());
        }
    }
}
