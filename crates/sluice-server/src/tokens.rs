//! The server's own tokens: HS256 JSON Web Tokens with a key only the server holds.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The `iss` of every token the server issues.
pub const ISSUER: &str = "sluice";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// "Never expires" for API keys without an expiry: `exp` is required, so far in the future.
const NO_EXPIRY_SECS: i64 = 100 * 365 * 24 * 3600;

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenKind {
    /// A login session of a local account.
    Session,
    /// A long-lived API key of a local account.
    ApiKey,
    /// A project role token.
    Project,
}

/// The claims of a server-issued token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer, always [`ISSUER`].
    pub iss: String,
    /// Subject: the account name, or `proj:<project>:<role>`.
    pub sub: String,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires.
    pub exp: i64,
    /// Token id (revocation key).
    pub jti: String,
    /// What the token stands for.
    pub kind: TokenKind,
    /// The account's password generation when issued.
    #[serde(default)]
    pub generation: u64,
    /// The project of a project role token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The role of a project role token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Claims {
    /// New claims valid from now for `ttl_secs` (`None`: no expiry).
    pub fn new(sub: String, kind: TokenKind, ttl_secs: Option<i64>) -> Self {
        let now = crate::now_secs();
        Self {
            iss: ISSUER.to_owned(),
            sub,
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl_secs.unwrap_or(NO_EXPIRY_SECS)),
            jti: crate::random_id(),
            kind,
            generation: 0,
            project: None,
            role: None,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or claims missing or of the wrong type.
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify.
    #[error("invalid token signature")]
    BadSignature,
    /// An algorithm the server does not accept for this issuer (`none`, confusion attacks).
    #[error("token algorithm not accepted")]
    Algorithm,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`.
    #[error("token not valid yet")]
    NotYetValid,
    /// Wrong `iss` or `aud`.
    #[error("token issuer or audience not accepted")]
    Issuer,
    /// Revoked, or its account changed since (disabled, password changed, capability removed).
    #[error("token revoked")]
    Revoked,
}

impl TokenError {
    /// Whether this refusal hints at a forged or tampered token rather than an old one.
    pub fn is_suspicious(&self) -> bool {
        matches!(self, Self::BadSignature | Self::Algorithm | Self::Malformed)
    }
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Self::Algorithm,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => Self::Issuer,
            _ => Self::Malformed,
        }
    }
}

/// Signs and verifies the server's tokens.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(<key>)")
    }
}

impl TokenSigner {
    /// A signer for `key` (raw bytes, at least 32).
    pub fn new(key: &[u8]) -> Self {
        // Only HS256 verifies with this key: a token claiming RS256, ES256 or `none` is
        // refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "sub", "jti"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
        }
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        // Serializing plain claims with HS256 cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .unwrap_or_default()
    }

    /// Verifies signature, algorithm, issuer, `exp` and `nbf`; revocation is the caller's.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

/// The `iss` claim of a token, unverified: only to pick which verifier applies.
pub fn peek_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    jsonwebtoken::dangerous::insecure_decode::<Iss>(token)
        .ok()
        .and_then(|d| d.claims.iss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let signer = TokenSigner::new(&[7u8; 32]);
        let claims = Claims::new("alice".into(), TokenKind::Session, Some(60));
        let token = signer.sign(&claims);
        assert_eq!(signer.verify(&token).map(|c| c.sub), Ok("alice".into()));
        let other = TokenSigner::new(&[8u8; 32]);
        assert_eq!(other.verify(&token).err(), Some(TokenError::BadSignature));
        assert_eq!(signer.verify("a.b.c").err(), Some(TokenError::Malformed));
    }
}
