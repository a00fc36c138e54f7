//! SSO: OIDC ID tokens verified against the issuer's JWKS (fetched, cached, refreshed when a
//! token names a key the cache lacks, so key rotation needs no restart).
//!
//! Only RS256 and ES256 are accepted, and only with a key of the matching type from the
//! issuer's JWKS: `alg: none`, HMAC tokens "signed" with a public key and every other
//! algorithm confusion fail before any signature is computed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::tokens::{LEEWAY_SECS, TokenError};

/// How to reach and trust the identity provider.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL (`iss` must equal it).
    pub issuer: String,
    /// The client id (`aud` must contain it).
    pub audience: String,
    /// JWKS URL; default: discovered from `<issuer>/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// The claim holding the user's groups.
    pub groups_claim: String,
    /// Extra CA certificates (PEM) for the provider's TLS.
    pub ca_file: Option<PathBuf>,
    /// How long fetched keys are trusted before a refetch.
    pub cache_ttl: Duration,
    /// The shortest time between two fetches triggered by unknown key ids (an attacker
    /// sending random `kid`s must not make the server hammer the provider).
    pub min_refresh: Duration,
}

/// Who an ID token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// `email` if present, else `sub`.
    pub subject: String,
    /// From the groups claim.
    pub groups: Vec<String>,
    /// Expiry.
    pub exp: i64,
}

#[derive(Debug, Default)]
struct Cache {
    keys: Option<(Instant, Arc<JwkSet>)>,
    last_fetch: Option<Instant>,
}

/// Verifies ID tokens of one provider.
#[derive(Debug)]
pub struct OidcVerifier {
    config: OidcConfig,
    agent: ureq::Agent,
    cache: Mutex<Cache>,
}

/// Why the provider could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The CA file is unusable.
    #[error("--oidc-ca-file: {0}")]
    CaFile(#[from] crate::tls::TlsError),
    /// Fetching discovery or keys failed.
    #[error("fetching {url}: {message}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        message: String,
    },
}

impl OidcVerifier {
    /// A verifier; nothing is fetched until the first token arrives.
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        use ureq::tls::{RootCerts, TlsConfig};
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &config.ca_file {
            let certs = crate::tls::ureq_certs(ca)?;
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(true)
            .build()
            .into();
        Ok(Self {
            config,
            agent,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The issuer this verifier serves.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Verifies `token` (blocking: it may fetch keys).
    pub fn verify(&self, token: &str) -> Result<OidcIdentity, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(TokenError::Algorithm);
        }
        let jwk = self.key_for(header.kid.as_deref(), header.alg)?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| TokenError::Algorithm)?;
        let family_ok = matches!(
            (header.alg, key.family()),
            (Algorithm::RS256, jsonwebtoken::AlgorithmFamily::Rsa)
                | (Algorithm::ES256, jsonwebtoken::AlgorithmFamily::Ec)
        );
        if !family_ok {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims;
        let subject = claims["email"]
            .as_str()
            .or(claims["sub"].as_str())
            .ok_or(TokenError::Malformed)?
            .to_owned();
        let groups = match &claims[self.config.groups_claim.as_str()] {
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Value::String(one) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(OidcIdentity {
            subject,
            groups,
            exp: claims["exp"].as_i64().unwrap_or_default(),
        })
    }

    /// The key `kid` names, refetching the JWKS once if it is unknown.
    fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, TokenError> {
        let pick = |set: &JwkSet| -> Option<Jwk> {
            let usable = |k: &&Jwk| {
                k.common
                    .key_algorithm
                    .is_none_or(|a| a.to_string() == format!("{alg:?}"))
            };
            match kid {
                Some(kid) => set.find(kid).filter(usable).cloned(),
                // Without a kid, only an unambiguous set will do.
                None => {
                    let candidates: Vec<&Jwk> = set.keys.iter().filter(usable).collect();
                    (candidates.len() == 1).then(|| candidates[0].clone())
                }
            }
        };
        if let Some(set) = self.cached(false)
            && let Some(jwk) = pick(&set)
        {
            return Ok(jwk);
        }
        match self.cached(true) {
            Some(set) => pick(&set).ok_or(TokenError::BadSignature),
            None => Err(TokenError::BadSignature),
        }
    }

    /// The cached key set; with `refresh`, refetched unless fetched very recently.
    fn cached(&self, refresh: bool) -> Option<Arc<JwkSet>> {
        let Ok(mut cache) = self.cache.lock() else {
            return None;
        };
        let fresh = cache
            .keys
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.config.cache_ttl)
            .map(|(_, set)| Arc::clone(set));
        let may_fetch = cache
            .last_fetch
            .is_none_or(|at| at.elapsed() >= self.config.min_refresh);
        if (fresh.is_none() || refresh) && may_fetch {
            cache.last_fetch = Some(Instant::now());
            match self.fetch_keys() {
                Ok(set) => {
                    let set = Arc::new(set);
                    cache.keys = Some((Instant::now(), Arc::clone(&set)));
                    return Some(set);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OIDC key fetch failed; keeping cached keys");
                }
            }
        }
        fresh.or_else(|| cache.keys.as_ref().map(|(_, set)| Arc::clone(set)))
    }

    fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let fail = |message: String| OidcError::Fetch {
            url: url.to_owned(),
            message,
        };
        self.agent
            .get(url)
            .call()
            .map_err(|e| fail(e.to_string()))?
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| fail(e.to_string()))
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string())))
    }

    fn fetch_keys(&self) -> Result<JwkSet, OidcError> {
        let url = match &self.config.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let doc = self.get_json(&discovery)?;
                doc["jwks_uri"]
                    .as_str()
                    .ok_or_else(|| OidcError::Fetch {
                        url: discovery.clone(),
                        message: "no jwks_uri".into(),
                    })?
                    .to_owned()
            }
        };
        let doc = self.get_json(&url)?;
        let mut keys = Vec::new();
        // One key of a type this build cannot use must not hide the others.
        for key in doc["keys"].as_array().cloned().unwrap_or_default() {
            if let Ok(jwk) = serde_json::from_value::<Jwk>(key) {
                keys.push(jwk);
            }
        }
        Ok(JwkSet { keys })
    }
}
