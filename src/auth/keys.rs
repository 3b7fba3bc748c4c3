//! API keys: long-lived secrets a principal exchanges for one-hour tokens.
//!
//! A key reads `ffk_<id>_<secret>`: the `ffk_` prefix lets secret scanners
//! recognise a leaked key, `<id>` finds its row, and `<secret>` (256 random
//! bits) is kept only as a SHA-256. A fast hash is enough for a random
//! secret of that size: there is nothing to guess, only to look up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every ferroflow API key starts with.
pub const KEY_PREFIX: &str = "ffk_";
const ID_LENGTH: usize = 12;
const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_BYTES: usize = 32;

/// A key just made: shown once (`plaintext`), stored as `key_id` and hash.
pub struct NewKey {
    pub key_id: String,
    pub secret_sha256: String,
    pub plaintext: String,
}

/// Makes a key from the operating system's random source.
pub fn generate() -> NewKey {
    let mut random = [0u8; SECRET_BYTES + ID_LENGTH];
    OsRng.fill_bytes(&mut random);
    let (secret, id) = random.split_at(SECRET_BYTES);
    let key_id: String = id
        .iter()
        .map(|b| char::from(ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()]))
        .collect();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    NewKey {
        plaintext: format!("{KEY_PREFIX}{key_id}_{secret}"),
        secret_sha256: sha256_hex(&secret),
        key_id,
    }
}

/// A presented key split into its id and secret; `None` if it is not one.
pub fn parse(key: &str) -> Option<(&str, &str)> {
    let rest = key.trim().strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed = id.len() == ID_LENGTH
        && id.bytes().all(|b| ID_ALPHABET.contains(&b))
        && !secret.is_empty()
        && secret.len() <= 64;
    well_formed.then_some((id, secret))
}

/// Whether `secret` is the one whose hash is stored, compared in constant
/// time so that timing tells nothing about the stored hash.
pub fn secret_matches(secret: &str, stored_sha256: &str) -> bool {
    sha256_hex(secret)
        .as_bytes()
        .ct_eq(stored_sha256.as_bytes())
        .into()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_match_only_their_hash() {
        let key = generate();
        assert!(key.plaintext.starts_with("ffk_"));
        let (id, secret) = parse(&key.plaintext).unwrap();
        assert_eq!(id, key.key_id);
        assert!(secret_matches(secret, &key.secret_sha256));
        assert!(!secret_matches("other", &key.secret_sha256));
        assert_ne!(generate().plaintext, key.plaintext);
        assert!(!key.plaintext.contains(&key.secret_sha256));
    }

    #[test]
    fn garbage_is_not_a_key() {
        for bad in [
            "",
            "ffk_",
            "ffk_short_x",
            "abc",
            "ffk_ABCDEFGHIJKL_x",
            "ffk_abcdefghijkl_",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
