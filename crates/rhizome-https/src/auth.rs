//! Request authentication (PROTOCOL 10.5-10.7): the client signs each request with its
//! instance key; the server rebuilds the target URI, verifies the signature before reading
//! any body, records the nonce in its bounded replay cache, and later compares the body's
//! digest.

use std::sync::Mutex;

use rhizome_core::{InstanceId, PublicKey, SecretKey};
use rhizome_httpsig::{
    presented_key, sign_request, verify_request, AuthError, ContentDigest, Nonce, Policy,
    ReplayCache, VerifiedRequest,
};

use crate::{HttpsError, Result};

/// A fresh nonce of 16 random bytes.
pub fn nonce() -> Result<Nonce> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| HttpsError::Io(format!("no entropy: {e}")))?;
    Nonce::from_bytes(&b).map_err(|e| HttpsError::Protocol(e.to_string()))
}

/// The fields that sign a request made now: `content-digest` (with a body), `rhizome-key`,
/// `signature-input`, `signature`.
pub fn sign(
    key: &SecretKey,
    method: &str,
    target_uri: &str,
    body: Option<&ContentDigest>,
) -> Result<Vec<(&'static str, String)>> {
    let signed = sign_request(key, method, target_uri, body, crate::now_secs(), &nonce()?)
        .map_err(|e| HttpsError::Protocol(format!("signing the request: {e}")))?;
    Ok(signed.headers)
}

/// The server's side: policy and replay cache.
pub struct Verifier {
    policy: Policy,
    replay: Mutex<ReplayCache>,
}

impl Verifier {
    /// A verifier remembering at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            policy: Policy::default(),
            replay: Mutex::new(ReplayCache::new(capacity)),
        }
    }

    /// Verifies a request's signature and records its nonce. `known` is the key this server
    /// already holds for an instance; otherwise the presented `Rhizome-Key` is used.
    pub fn verify(
        &self,
        method: &str,
        target_uri: &str,
        headers: &[(&str, &str)],
        has_body: bool,
        known: impl FnOnce(&InstanceId) -> Option<PublicKey>,
    ) -> std::result::Result<VerifiedRequest, AuthError> {
        let now = crate::now_secs();
        let presented = presented_key(headers)?;
        let verified = verify_request(
            method,
            target_uri,
            headers,
            has_body,
            now,
            &self.policy,
            |id| known(id).or(presented),
        )?;
        let mut cache = self
            .replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        verified.check_replay(&mut cache, now)?;
        Ok(verified)
    }
}
