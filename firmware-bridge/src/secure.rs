//! OSDP secure channel (AES-128): session keys from the SCBK and the CP's random, the
//! challenge/response cryptograms, the chained CBC-MAC over every message, and the encryption of
//! message data.
//!
//! - session keys: `S-ENC = AES(SCBK, 01 82 RND.A[0..6] 00…)`, `S-MAC1 = AES(SCBK, 01 01 …)`,
//!   `S-MAC2 = AES(SCBK, 01 02 …)`;
//! - the PD proves the key with `AES(S-ENC, RND.A ‖ RND.B)` (client cryptogram), the CP with
//!   `AES(S-ENC, RND.B ‖ RND.A)` (server cryptogram); the initial R-MAC is
//!   `AES(S-MAC2, AES(S-MAC1, server cryptogram))`;
//! - a message's MAC is a CBC-MAC from SOM to the end of its data, blocks under S-MAC1 and the
//!   last under S-MAC2, padded with 0x80 0… when not block-aligned, chained from the last MAC of
//!   the other side (commands from the last R-MAC, replies from the last C-MAC); 4 bytes are sent;
//! - data is AES-CBC under S-ENC with the bitwise NOT of that same chaining MAC as IV, always
//!   padded with 0x80 0….

use aes::{
    Aes128,
    cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray},
};

/// The well-known key of install mode (SCBK-D).
pub const SCBK_DEFAULT: [u8; 16] = *b"0123456789:;<=>?";

/// Which key a secure channel is opened with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ScKey {
    /// SCBK-D, for installing a PD's own key.
    Default,
    /// The PD's own secure channel base key.
    Scbk([u8; 16]),
}

impl std::fmt::Debug for ScKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScKey::Default => f.write_str("ScKey::Default"),
            ScKey::Scbk(_) => f.write_str("ScKey::Scbk(…)"),
        }
    }
}

impl ScKey {
    pub(crate) fn bytes(&self) -> &[u8; 16] {
        match self {
            ScKey::Default => &SCBK_DEFAULT,
            ScKey::Scbk(k) => k,
        }
    }

    /// The SEC_BLK_DATA byte of SCS_11/SCS_13: 0 for SCBK-D, 1 for an SCBK.
    pub(crate) fn selector(&self) -> u8 {
        match self {
            ScKey::Default => 0,
            ScKey::Scbk(_) => 1,
        }
    }
}

fn encrypt_block(key: &[u8; 16], block: &mut [u8; 16]) {
    let cipher = Aes128::new(GenericArray::from_slice(key));
    cipher.encrypt_block(GenericArray::from_mut_slice(block));
}

fn decrypt_block(key: &[u8; 16], block: &mut [u8; 16]) {
    let cipher = Aes128::new(GenericArray::from_slice(key));
    cipher.decrypt_block(GenericArray::from_mut_slice(block));
}

fn xor(a: &mut [u8; 16], b: &[u8; 16]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// The three session keys.
#[derive(Clone)]
pub(crate) struct SessionKeys {
    enc: [u8; 16],
    mac1: [u8; 16],
    mac2: [u8; 16],
}

impl SessionKeys {
    pub(crate) fn derive(scbk: &[u8; 16], cp_random: &[u8; 8]) -> Self {
        let key = |a: u8, b: u8| {
            let mut block = [0u8; 16];
            block[0] = a;
            block[1] = b;
            block[2..8].copy_from_slice(&cp_random[..6]);
            encrypt_block(scbk, &mut block);
            block
        };
        Self {
            enc: key(0x01, 0x82),
            mac1: key(0x01, 0x01),
            mac2: key(0x01, 0x02),
        }
    }

    fn cryptogram(&self, first: &[u8; 8], second: &[u8; 8]) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(first);
        block[8..].copy_from_slice(second);
        encrypt_block(&self.enc, &mut block);
        block
    }

    /// The PD's proof (sent in osdp_CCRYPT).
    pub(crate) fn client_cryptogram(&self, cp_random: &[u8; 8], pd_random: &[u8; 8]) -> [u8; 16] {
        self.cryptogram(cp_random, pd_random)
    }

    /// The CP's proof (sent in osdp_SCRYPT).
    pub(crate) fn server_cryptogram(&self, cp_random: &[u8; 8], pd_random: &[u8; 8]) -> [u8; 16] {
        self.cryptogram(pd_random, cp_random)
    }

    pub(crate) fn initial_rmac(&self, server_cryptogram: &[u8; 16]) -> [u8; 16] {
        let mut block = *server_cryptogram;
        encrypt_block(&self.mac1, &mut block);
        encrypt_block(&self.mac2, &mut block);
        block
    }

    /// CBC-MAC of `message` chained from `iv`.
    pub(crate) fn mac(&self, iv: &[u8; 16], message: &[u8]) -> [u8; 16] {
        let mut chain = *iv;
        let full = message.len() / 16;
        let rem = message.len() % 16;
        let blocks = if rem == 0 { full.max(1) } else { full + 1 };
        for i in 0..blocks - 1 {
            let mut b = [0u8; 16];
            b.copy_from_slice(&message[i * 16..(i + 1) * 16]);
            xor(&mut b, &chain);
            encrypt_block(&self.mac1, &mut b);
            chain = b;
        }
        let mut last = [0u8; 16];
        let start = (blocks - 1) * 16;
        if rem == 0 && full > 0 {
            last.copy_from_slice(&message[start..start + 16]);
        } else {
            last[..rem].copy_from_slice(&message[start..]);
            last[rem] = 0x80;
        }
        xor(&mut last, &chain);
        encrypt_block(&self.mac2, &mut last);
        last
    }

    /// Encrypts message data; `chain` is the MAC the IV is the complement of.
    pub(crate) fn encrypt(&self, chain: &[u8; 16], data: &[u8]) -> Vec<u8> {
        let mut padded = data.to_vec();
        padded.push(0x80);
        padded.resize(padded.len().div_ceil(16) * 16, 0);
        let mut iv = chain.map(|b| !b);
        for block in padded.chunks_exact_mut(16) {
            let mut b = [0u8; 16];
            b.copy_from_slice(block);
            xor(&mut b, &iv);
            encrypt_block(&self.enc, &mut b);
            block.copy_from_slice(&b);
            iv = b;
        }
        padded
    }

    /// Decrypts message data and strips the 0x80 0… padding; `None` when it is malformed.
    pub(crate) fn decrypt(&self, chain: &[u8; 16], data: &[u8]) -> Option<Vec<u8>> {
        if data.is_empty() || !data.len().is_multiple_of(16) {
            return None;
        }
        let mut out = data.to_vec();
        let mut iv = chain.map(|b| !b);
        for block in out.chunks_exact_mut(16) {
            let b: &mut [u8; 16] = block.try_into().ok()?;
            let cipher_text = *b;
            decrypt_block(&self.enc, b);
            xor(b, &iv);
            iv = cipher_text;
        }
        let end = out.iter().rposition(|&b| b != 0)?;
        (out[end] == 0x80).then(|| {
            out.truncate(end);
            out
        })
    }
}

/// Compares two MACs without an early exit.
pub(crate) fn same_mac(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn aes_known_answer() {
        // FIPS-197 appendix C.1.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let mut block: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        encrypt_block(&key, &mut block);
        assert_eq!(
            block,
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        assert_eq!(
            &SCBK_DEFAULT,
            &[
                0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D,
                0x3E, 0x3F
            ]
        );
    }

    /// The secure-channel example of the OSDP specification (SIA, Annex E), as reproduced in
    /// libosdp's tests/unit-tests/test-sc-sia-vectors.c: SCBK-D, RND.A = B0…B7, RND.B = A0…A7.
    #[test]
    fn specification_annex_e_vectors() {
        let rnd_a = [0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7];
        let rnd_b = [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7];
        let keys = SessionKeys::derive(&SCBK_DEFAULT, &rnd_a);
        assert_eq!(
            keys.mac1,
            [
                0x5E, 0x86, 0xC6, 0x76, 0x60, 0x3B, 0xDE, 0xE2, 0xD8, 0xBE, 0xAF, 0xE1, 0x78, 0x63,
                0x73, 0x32
            ]
        );
        assert_eq!(
            keys.mac2,
            [
                0x6F, 0xDA, 0x86, 0xE8, 0x57, 0x77, 0x7E, 0x81, 0x13, 0x20, 0x35, 0x75, 0x82, 0x39,
                0x17, 0x2E
            ]
        );
        assert_eq!(
            keys.enc,
            [
                0xBF, 0x8D, 0xC2, 0xA8, 0x32, 0x9A, 0xCB, 0x8C, 0x67, 0xC6, 0xD0, 0xCD, 0x9A, 0x45,
                0x16, 0x82
            ]
        );
        let server = keys.server_cryptogram(&rnd_a, &rnd_b);
        assert_eq!(
            server,
            [
                0x26, 0xD3, 0x35, 0x6E, 0x07, 0x76, 0x2D, 0x26, 0x28, 0x01, 0xFC, 0x8E, 0x66, 0x65,
                0xA8, 0x91
            ]
        );
        assert_eq!(
            keys.client_cryptogram(&rnd_a, &rnd_b),
            [
                0xFD, 0xE5, 0xD2, 0xF4, 0x28, 0xEC, 0x16, 0x31, 0x24, 0x71, 0xEA, 0x3C, 0x02, 0xBD,
                0x77, 0x96
            ]
        );
        assert_eq!(
            keys.initial_rmac(&server),
            [
                0xB2, 0xA3, 0x00, 0x57, 0xEB, 0x98, 0xBA, 0x22, 0x29, 0xEC, 0x1F, 0x87, 0x56, 0x62,
                0xB5, 0x24
            ]
        );
    }

    #[test]
    fn cryptograms_differ_by_order_and_key() {
        let keys = SessionKeys::derive(&SCBK_DEFAULT, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let (a, b) = ([1u8; 8], [2u8; 8]);
        assert_ne!(
            keys.client_cryptogram(&a, &b),
            keys.server_cryptogram(&a, &b)
        );
        let other = SessionKeys::derive(&[7u8; 16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_ne!(
            keys.client_cryptogram(&a, &b),
            other.client_cryptogram(&a, &b)
        );
        // Only the first six bytes of RND.A enter the session keys.
        let same = SessionKeys::derive(&SCBK_DEFAULT, &[1, 2, 3, 4, 5, 6, 0, 0]);
        assert_eq!(keys.enc, same.enc);
    }

    #[test]
    fn mac_pads_only_unaligned_messages_and_chains() {
        let keys = SessionKeys::derive(&SCBK_DEFAULT, &[9; 8]);
        let iv = [0u8; 16];
        let aligned = [0x53u8; 16];
        let mut manual = aligned;
        encrypt_block(&keys.mac2, &mut manual);
        assert_eq!(
            keys.mac(&iv, &aligned),
            manual,
            "one full block: no padding, S-MAC2 only"
        );
        assert_ne!(keys.mac(&iv, &[0x53; 15]), keys.mac(&iv, &[0x53; 15][..14]));
        assert_ne!(
            keys.mac(&iv, b"hello"),
            keys.mac(&[1u8; 16], b"hello"),
            "the chain matters"
        );
    }

    proptest! {
        #[test]
        fn encryption_round_trips(data in proptest::collection::vec(any::<u8>(), 0..100), chain in any::<[u8; 16]>()) {
            let keys = SessionKeys::derive(&SCBK_DEFAULT, &[3; 8]);
            let sealed = keys.encrypt(&chain, &data);
            prop_assert_eq!(sealed.len() % 16, 0);
            prop_assert!(sealed.len() > data.len());
            prop_assert_eq!(keys.decrypt(&chain, &sealed), Some(data));
        }

        #[test]
        fn decrypt_never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let keys = SessionKeys::derive(&SCBK_DEFAULT, &[3; 8]);
            let _ = keys.decrypt(&[0; 16], &data);
        }
    }
}
