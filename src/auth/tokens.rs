//! One-hour access tokens: JWTs in the shape of RFC 9068 (`typ: at+jwt`),
//! signed with Ed25519 keys that carry a `kid`, verified here.
//!
//! Verifying a signature costs microseconds, so a verified token is cached
//! until it expires; a key revoked since its token was issued is checked
//! against an in-memory set that every replica refreshes from the database
//! (`refresh`), never per request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::permissions::Role;

/// The `typ` of an access token (RFC 9068 §2.1).
const TOKEN_TYPE: &str = "at+jwt";
/// Who issues and who accepts ferroflow's tokens.
pub const ISSUER: &str = "ferroflow";
pub const AUDIENCE: &str = "ferroflow";
/// Longer tokens are refused unparsed (a real one is ~500 bytes).
const MAX_TOKEN_LENGTH: usize = 4096;
/// Verified tokens kept; the cache is emptied when full.
const MAX_CACHED: usize = 10_000;
/// A token issued this far in the future is refused (clock skew allowance).
const IAT_SKEW_SECONDS: u64 = 5;

/// What a token says: RFC 9068's claims plus the workspace and role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The principal.
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    /// The API key the token was exchanged for.
    pub client_id: String,
    pub workspace: String,
    pub role: Role,
    #[serde(default)]
    pub admin: bool,
    /// When the key was presented (RFC 9068's `auth_time`): a browser
    /// session renews its token until a fixed time after it.
    #[serde(default)]
    pub auth_time: u64,
}

/// How long a browser session may keep renewing its token without the key
/// being presented again.
pub const SESSION_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Expired {
        at: u64,
    },
    /// Malformed, tampered, wrongly signed or otherwise not one of ours.
    Invalid(&'static str),
    Revoked,
}

/// A signing key: the private half signs, the public half verifies and is
/// published at `/.well-known/jwks.json`.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public key, base64url (the JWK's `x`).
    x: String,
    /// HMAC key for multipart part URLs, derived from the private key so
    /// that every replica holding the key derives the same.
    part_secret: [u8; 32],
}

impl SigningKey {
    /// A key from its PKCS#8 DER; the `kid` is derived from the public key.
    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<Self> {
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(der)
            .or_else(|_| aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
            .map_err(|_| anyhow::anyhow!("not an Ed25519 PKCS#8 private key"))?;
        use aws_lc_rs::signature::KeyPair;
        let public = pair.public_key().as_ref();
        let x = URL_SAFE_NO_PAD.encode(public);
        let digest = Sha256::digest(public);
        let kid = hex::encode(&digest[..8]);
        let part_secret = Sha256::new()
            .chain_update(b"ferroflow multipart part urls")
            .chain_update(der)
            .finalize()
            .into();
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ed_der(der),
            decoding: DecodingKey::from_ed_components(&x)?,
            x,
            part_secret,
        })
    }

    /// A key from a PEM `PRIVATE KEY` block.
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();
        Self::from_pkcs8(&STANDARD.decode(body.trim())?)
    }

    /// A new random key, and its PEM to keep.
    pub fn generate() -> anyhow::Result<(Self, String)> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow::anyhow!("could not generate a signing key"))?;
        let der = der.as_ref();
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        Ok((Self::from_pkcs8(der)?, pem))
    }
}

/// Issues and verifies tokens; shared by every request of a server.
pub struct Tokens {
    /// Newest first: the first signs, all verify.
    keys: RwLock<Vec<SigningKey>>,
    ttl: Duration,
    revoked: RwLock<HashSet<String>>,
    verified: RwLock<HashMap<String, Arc<Claims>>>,
}

/// How long a multipart part URL stays valid: a large upload's parts may
/// take hours to send.
pub const PART_URL_TTL: Duration = Duration::from_secs(6 * 3600);

fn part_mac(
    secret: &[u8; 32],
    upload_id: &str,
    part_number: i64,
    path: &str,
    expires: u64,
) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    // Fields joined by NUL, which none of them may contain.
    for field in [
        upload_id,
        &part_number.to_string(),
        path,
        &expires.to_string(),
    ] {
        mac.update(field.as_bytes());
        mac.update(b"\0");
    }
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Tokens {
    pub fn new(keys: Vec<SigningKey>, ttl: Duration) -> Self {
        Self {
            keys: RwLock::new(keys),
            ttl,
            revoked: RwLock::new(HashSet::new()),
            verified: RwLock::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Replaces the verifying keys and the revoked key ids with the
    /// database's current view (every replica calls this periodically).
    pub fn refresh(&self, keys: Vec<SigningKey>, revoked: HashSet<String>) {
        if !keys.is_empty() {
            *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        }
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = revoked;
    }

    /// A signed token for `claims` without their times, which are set here.
    pub fn issue(
        &self,
        principal: &str,
        key_id: &str,
        workspace: &str,
        role: Role,
        admin: bool,
    ) -> anyhow::Result<(String, Claims)> {
        let now = now_seconds();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: principal.into(),
            iat: now,
            nbf: now,
            exp: now + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            client_id: key_id.into(),
            workspace: workspace.into(),
            role,
            admin,
            auth_time: now,
        };
        Ok((self.sign(&claims)?, claims))
    }

    /// A fresh token with the same grant as `claims` (a browser session in
    /// use), or `None` once the session is older than [`SESSION_MAX_AGE`].
    pub fn renew(&self, claims: &Claims) -> Option<(String, Claims)> {
        let now = now_seconds();
        if now.saturating_sub(claims.auth_time) >= SESSION_MAX_AGE.as_secs() {
            return None;
        }
        let renewed = Claims {
            iat: now,
            nbf: now,
            exp: now + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            ..claims.clone()
        };
        let token = self.sign(&renewed).ok()?;
        Some((token, renewed))
    }

    /// `claims` signed with the newest key.
    fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(TOKEN_TYPE.into());
        header.kid = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// The claims of a valid token of ours (shared: a request holds them
    /// without copying).
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        if token.len() > MAX_TOKEN_LENGTH {
            return Err(TokenError::Invalid("too long"));
        }
        let cached = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned();
        let claims = match cached {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.verify_signature(token)?);
                let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
                if verified.len() >= MAX_CACHED {
                    verified.clear();
                }
                verified.insert(token.to_string(), claims.clone());
                claims
            }
        };
        if now_seconds() >= claims.exp {
            return Err(TokenError::Expired { at: claims.exp });
        }
        let revoked = self.revoked.read().unwrap_or_else(|e| e.into_inner());
        if revoked.contains(&claims.client_id) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("wrong algorithm"));
        }
        if header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(TokenError::Invalid("not an access token"));
        }
        let kid = header.kid.ok_or(TokenError::Invalid("no key id"))?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::Invalid("unknown key id"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|err| {
                match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired { at: 0 },
                    ErrorKind::ImmatureSignature => TokenError::Invalid("not valid yet"),
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                        TokenError::Invalid("not issued for this server")
                    }
                    _ => TokenError::Invalid("bad signature or claims"),
                }
            })?;
        if data.claims.iat > now_seconds() + IAT_SKEW_SECONDS {
            return Err(TokenError::Invalid("issued in the future"));
        }
        Ok(data.claims)
    }

    /// The signature of a multipart part URL: an HMAC over the upload, the
    /// part, the path and the expiry, with the newest key's part secret.
    pub fn sign_part(&self, upload_id: &str, part_number: i64, path: &str, expires: u64) -> String {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.first().map_or_else(String::new, |key| {
            part_mac(&key.part_secret, upload_id, part_number, path, expires)
        })
    }

    /// Whether a part URL's signature is one of ours and not stale.
    pub fn part_signature_valid(
        &self,
        upload_id: &str,
        part_number: i64,
        path: &str,
        expires: u64,
        signature: &str,
    ) -> bool {
        if expires <= now_seconds() {
            return false;
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter().any(|key| {
            let expected = part_mac(&key.part_secret, upload_id, part_number, path, expires);
            expected.as_bytes().ct_eq(signature.as_bytes()).into()
        })
    }

    /// The public keys, as a JSON Web Key Set.
    pub fn jwks(&self) -> Value {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<Value> = keys
            .iter()
            .map(|k| {
                json!({"kty": "OKP", "crv": "Ed25519", "x": k.x, "kid": k.kid,
                       "alg": "EdDSA", "use": "sig"})
            })
            .collect();
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ttl: u64) -> Tokens {
        let (key, _) = SigningKey::generate().unwrap();
        Tokens::new(vec![key], Duration::from_secs(ttl))
    }

    fn forge(header: &str, claims: &Value, signature: &str) -> String {
        let part = |v: &str| URL_SAFE_NO_PAD.encode(v);
        format!("{}.{}.{signature}", part(header), part(&claims.to_string()))
    }

    #[test]
    fn issued_tokens_verify_and_round_trip_their_claims() {
        let tokens = service(60);
        let (token, claims) = tokens
            .issue("alice", "k1", "team-a", Role::Edit, false)
            .unwrap();
        assert_eq!(*tokens.verify(&token).unwrap(), claims);
        assert_eq!(*tokens.verify(&token).unwrap(), claims, "from the cache");
        tokens.refresh(Vec::new(), HashSet::from(["k1".to_string()]));
        assert_eq!(tokens.verify(&token), Err(TokenError::Revoked));
    }

    #[test]
    fn hostile_tokens_are_refused() {
        let tokens = service(60);
        let (good, claims) = tokens
            .issue("alice", "k1", "team-a", Role::Read, false)
            .unwrap();
        let kid = tokens.keys.read().unwrap()[0].kid.clone();
        let mut parts = good.split('.');
        let (header, payload, signature) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let mut escalated = serde_json::to_value(&claims).unwrap();
        escalated["role"] = json!("MANAGE");
        let tampered = format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(escalated.to_string())
        );
        let none = forge(r#"{"alg":"none","typ":"at+jwt"}"#, &escalated, "");
        let hs256_header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#);
        let hs256 = forge(&hs256_header, &escalated, "c2ln");
        let other_kid = forge(
            r#"{"alg":"EdDSA","typ":"at+jwt","kid":"nope"}"#,
            &escalated,
            signature,
        );
        let mut foreign = service(60);
        foreign.keys.get_mut().unwrap()[0].kid = kid.clone();
        let (forged_elsewhere, _) = foreign
            .issue("alice", "k1", "team-a", Role::Manage, true)
            .unwrap();
        for bad in [
            tampered.as_str(),
            &none,
            &hs256,
            &other_kid,
            &forged_elsewhere,
            "",
            "garbage",
            &good[..good.len() / 2],
            &format!("{header}.{payload}"),
            &"x".repeat(10_000),
        ] {
            assert!(
                matches!(tokens.verify(bad), Err(TokenError::Invalid(_))),
                "{bad:.60}"
            );
        }
    }

    #[test]
    fn part_urls_verify_only_unaltered_and_fresh() {
        let tokens = service(60);
        let later = now_seconds() + 60;
        let signature = tokens.sign_part("u1", 3, "workspaces/a/1/x.bin", later);
        assert!(tokens.part_signature_valid("u1", 3, "workspaces/a/1/x.bin", later, &signature));
        for (upload, part, path, expires) in [
            ("u2", 3, "workspaces/a/1/x.bin", later),
            ("u1", 4, "workspaces/a/1/x.bin", later),
            ("u1", 3, "workspaces/b/1/x.bin", later),
            ("u1", 3, "workspaces/a/1/x.bin", later + 1),
        ] {
            assert!(!tokens.part_signature_valid(upload, part, path, expires, &signature));
        }
        let stale = now_seconds() - 1;
        let old = tokens.sign_part("u1", 3, "p", stale);
        assert!(!tokens.part_signature_valid("u1", 3, "p", stale, &old));
        assert!(!service(60).part_signature_valid(
            "u1",
            3,
            "workspaces/a/1/x.bin",
            later,
            &signature
        ));
    }

    #[test]
    fn expired_future_and_foreign_tokens_are_refused() {
        let expiring = service(0);
        let (token, _) = expiring
            .issue("alice", "k1", "team-a", Role::Read, false)
            .unwrap();
        assert!(matches!(
            expiring.verify(&token),
            Err(TokenError::Expired { .. })
        ));

        let tokens = service(60);
        let (_, claims) = tokens
            .issue("alice", "k1", "team-a", Role::Read, false)
            .unwrap();
        let hour = 3600;
        let cases = [
            Claims {
                nbf: claims.nbf + hour,
                ..claims.clone()
            },
            Claims {
                iat: claims.iat + hour,
                ..claims.clone()
            },
            Claims {
                iss: "someone-else".into(),
                ..claims.clone()
            },
            Claims {
                aud: "another-api".into(),
                ..claims.clone()
            },
        ];
        for case in cases {
            let token = tokens.sign(&case).unwrap();
            assert!(
                matches!(tokens.verify(&token), Err(TokenError::Invalid(_))),
                "{case:?}"
            );
        }
    }
}
