//! Rhizome's profile of RFC 9421 (docs/PROTOCOL.md section 10): what a request and a response must
//! cover and say, how they are signed ([`sign_request`], [`sign_response`]) and the checks a
//! verifier makes, in order ([`verify_request`], [`verify_response`]).
//!
//! Everything is pure: the time (`now`, Unix seconds) and the nonce bytes are arguments, and
//! the verifier's key store is a function from key id to key.

use base64::Engine as _;
use rhizome_core::keys::{PublicKey, SecretKey};
use rhizome_core::InstanceId;

use crate::base::{signature_base, Component, Message, Param, SignatureParams};
use crate::digest::{ContentDigest, CONTENT_DIGEST};
use crate::error::AuthError;
use crate::message::{field_value, Headers, Request, Response};
use crate::replay::ReplayCache;
use crate::signature::{
    find_signature, sign, signature_fields, verify, ALG_ED25519, SIGNATURE, SIGNATURE_INPUT,
};

/// The label of Rhizome's signature in `Signature-Input` and `Signature`.
pub const LABEL: &str = "rz";

/// `tag` of a request signature.
pub const REQUEST_TAG: &str = "rhizome-request";

/// `tag` of a response signature.
pub const RESPONSE_TAG: &str = "rhizome-response";

/// Longest validity window, `expires - created`, in seconds.
pub const MAX_WINDOW_SECS: i64 = 300;

/// Default allowance for a signer's clock ahead of the verifier's, in seconds.
pub const DEFAULT_CLOCK_SKEW_SECS: i64 = 60;

/// Field carrying the signer's public key (64 lowercase hex), so that a verifier that has
/// never met the signer can check the signature (the key must hash to `keyid`).
pub const KEY_HEADER: &str = "rhizome-key";

/// Fewest random bytes in a nonce.
pub const NONCE_MIN_BYTES: usize = 16;

/// Most bytes in a nonce.
pub const NONCE_MAX_BYTES: usize = 64;

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A signature nonce: 16 to 64 bytes from the caller's entropy source, written as unpadded
/// base64url (RFC 4648 section 5).
#[derive(Clone, PartialEq, Eq)]
pub struct Nonce(String);

impl Nonce {
    /// Encodes random bytes (the caller brings them, e.g. from `getrandom`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AuthError> {
        if !(NONCE_MIN_BYTES..=NONCE_MAX_BYTES).contains(&bytes.len()) {
            return Err(AuthError::malformed(
                "nonce",
                format!(
                    "{} bytes, not {NONCE_MIN_BYTES} to {NONCE_MAX_BYTES}",
                    bytes.len()
                ),
            ));
        }
        Ok(Self(B64URL.encode(bytes)))
    }

    /// Checks a received nonce: canonical unpadded base64url of 16 to 64 bytes.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let bytes = B64URL
            .decode(text)
            .map_err(|_| AuthError::malformed("nonce", "not canonical unpadded base64url"))?;
        Self::from_bytes(&bytes)
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nonce({})", self.0)
    }
}

/// The verifier's tolerances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Longest accepted `expires - created` (at most [`MAX_WINDOW_SECS`] in Rhizome).
    pub max_window_secs: i64,
    /// How far `created` may be ahead of the verifier's clock.
    pub clock_skew_secs: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_window_secs: MAX_WINDOW_SECS,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

/// Header fields to add to a message to sign it, and the signature base (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// (lowercase name, value) pairs, in this order: `content-digest` (if a body digest was
    /// given), `rhizome-key`, `signature-input`, `signature`.
    pub headers: Vec<(&'static str, String)>,
    /// The exact bytes signed.
    pub signature_base: String,
}

/// What a verified request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// The caller's instance id (`keyid`).
    pub keyid: InstanceId,
    /// The caller's key, which hashes to `keyid` and verified the signature.
    pub key: PublicKey,
    /// `created`.
    pub created: i64,
    /// `expires`.
    pub expires: i64,
    /// `nonce`.
    pub nonce: String,
    /// The signed `Content-Digest`, if the request has one: the body must hash to it.
    pub content_digest: Option<ContentDigest>,
}

impl VerifiedRequest {
    /// Records the (key id, nonce) pair in `cache`, refusing a replay. Call once per request,
    /// after verification.
    pub fn check_replay(&self, cache: &mut ReplayCache, now: i64) -> Result<(), AuthError> {
        cache.check_and_insert(self.keyid, &self.nonce, self.expires, now)
    }

    /// Compares the digest of the body as received (from a [`crate::BodyHasher`]) with the
    /// signed one. A request verified without a `Content-Digest` (no body) accepts only the
    /// digest of the empty body.
    pub fn check_body(&self, received: &ContentDigest) -> Result<(), AuthError> {
        let expected = self
            .content_digest
            .unwrap_or_else(|| ContentDigest::of(b""));
        if expected == *received {
            Ok(())
        } else {
            Err(AuthError::DigestMismatch)
        }
    }
}

/// What a verified response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedResponse {
    /// `created`.
    pub created: i64,
    /// `expires`.
    pub expires: i64,
    /// The signed `Content-Digest`, if any: the body must hash to it.
    pub content_digest: Option<ContentDigest>,
}

impl VerifiedResponse {
    /// Compares the digest of the body as received with the signed one.
    pub fn check_body(&self, received: &ContentDigest) -> Result<(), AuthError> {
        match &self.content_digest {
            Some(d) if d == received => Ok(()),
            Some(_) => Err(AuthError::DigestMismatch),
            None => Err(AuthError::MissingHeader {
                name: CONTENT_DIGEST.into(),
            }),
        }
    }
}

fn component(name: &'static str) -> Component {
    Component::known(name, false)
}

fn request_component(name: &'static str) -> Component {
    Component::known(name, true)
}

/// The components a request signature covers, in order: `@method`, `@target-uri`, and
/// `content-digest` when the request has a body.
pub fn request_components(has_body: bool) -> Vec<Component> {
    let mut c = vec![component("@method"), component("@target-uri")];
    if has_body {
        c.push(component(CONTENT_DIGEST));
    }
    c
}

/// The components a response signature covers, in order: `@status`, `"@method";req`,
/// `"@target-uri";req`, `"signature-input";req` (binding the response to the request's
/// nonce and time), and `content-digest` when the response carries one.
pub fn response_components(has_digest: bool) -> Vec<Component> {
    let mut c = vec![
        component("@status"),
        request_component("@method"),
        request_component("@target-uri"),
        request_component(SIGNATURE_INPUT),
    ];
    if has_digest {
        c.push(component(CONTENT_DIGEST));
    }
    c
}

fn rhizome_params(key: &SecretKey, created: i64, nonce: &Nonce, tag: &str) -> Vec<Param> {
    vec![
        Param::Created(created),
        Param::Expires(created.saturating_add(MAX_WINDOW_SECS)),
        Param::Nonce(nonce.as_str().to_string()),
        Param::KeyId(InstanceId::of(&key.public_key()).to_hex()),
        Param::Alg(ALG_ED25519.to_string()),
        Param::Tag(tag.to_string()),
    ]
}

fn finish(
    mut extra: Vec<(&'static str, String)>,
    key: &SecretKey,
    msg: &Message<'_>,
    params: &SignatureParams,
) -> Result<Signed, AuthError> {
    let (base, sig) = sign(msg, params, key)?;
    let (input, signature) = signature_fields(LABEL, params, &sig)?;
    extra.push((KEY_HEADER, key.public_key().to_hex()));
    extra.push((SIGNATURE_INPUT, input));
    extra.push((SIGNATURE, signature));
    Ok(Signed {
        headers: extra,
        signature_base: base,
    })
}

/// Signs a Rhizome request made at `created` (Unix seconds), valid [`MAX_WINDOW_SECS`].
/// `body_digest` is the digest of the body (None for a request without one). Returns the
/// fields to add to the request.
pub fn sign_request(
    key: &SecretKey,
    method: &str,
    target_uri: &str,
    body_digest: Option<&ContentDigest>,
    created: i64,
    nonce: &Nonce,
) -> Result<Signed, AuthError> {
    let digest_field = body_digest.map(|d| (CONTENT_DIGEST, d.header_value()));
    let headers: Vec<(&str, &str)> = digest_field.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let msg = Message::Request(Request {
        method,
        target_uri,
        headers: &headers,
    });
    let params = SignatureParams::new(
        request_components(body_digest.is_some()),
        rhizome_params(key, created, nonce, REQUEST_TAG),
    )?;
    finish(
        digest_field.clone().into_iter().collect(),
        key,
        &msg,
        &params,
    )
}

/// Signs a Rhizome response to `request` (as the server received it, signature fields
/// included). Returns the fields to add to the response.
pub fn sign_response(
    key: &SecretKey,
    status: u16,
    request: Request<'_>,
    body_digest: Option<&ContentDigest>,
    created: i64,
    nonce: &Nonce,
) -> Result<Signed, AuthError> {
    let digest_field = body_digest.map(|d| (CONTENT_DIGEST, d.header_value()));
    let headers: Vec<(&str, &str)> = digest_field.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let msg = Message::Response {
        response: Response {
            status,
            headers: &headers,
        },
        request: Some(request),
    };
    let params = SignatureParams::new(
        response_components(body_digest.is_some()),
        rhizome_params(key, created, nonce, RESPONSE_TAG),
    )?;
    finish(
        digest_field.clone().into_iter().collect(),
        key,
        &msg,
        &params,
    )
}

/// The key in the `Rhizome-Key` field, if the message has one.
pub fn presented_key(headers: Headers<'_>) -> Result<Option<PublicKey>, AuthError> {
    match field_value(headers, KEY_HEADER)? {
        None => Ok(None),
        Some(v) => v
            .parse::<PublicKey>()
            .map(Some)
            .map_err(|e| AuthError::malformed(KEY_HEADER, e.to_string())),
    }
}

/// Checks the parameters common to requests and responses, in order: alg, keyid, created,
/// expires, nonce, tag; then the window and the times.
fn check_params(
    params: &SignatureParams,
    tag: &'static str,
    now: i64,
    policy: &Policy,
) -> Result<(InstanceId, i64, i64, String), AuthError> {
    let alg = params
        .alg()
        .ok_or(AuthError::MissingParam { param: "alg" })?;
    if alg != ALG_ED25519 {
        return Err(AuthError::UnsupportedAlg { alg: alg.into() });
    }
    let keyid_text = params
        .keyid()
        .ok_or(AuthError::MissingParam { param: "keyid" })?;
    let keyid: InstanceId = keyid_text
        .parse()
        .map_err(|e: rhizome_core::IdError| AuthError::malformed("keyid", e.to_string()))?;
    let created = params
        .created()
        .ok_or(AuthError::MissingParam { param: "created" })?;
    let expires = params
        .expires()
        .ok_or(AuthError::MissingParam { param: "expires" })?;
    let nonce = params
        .nonce()
        .ok_or(AuthError::MissingParam { param: "nonce" })?;
    Nonce::parse(nonce)?;
    let found = params
        .tag()
        .ok_or(AuthError::MissingParam { param: "tag" })?;
    if found != tag {
        return Err(AuthError::WrongTag {
            found: found.into(),
            expected: tag,
        });
    }
    let window = expires.saturating_sub(created);
    let max = policy.max_window_secs.min(MAX_WINDOW_SECS);
    if !(0..=max).contains(&window) {
        return Err(AuthError::WindowTooLong { window, max });
    }
    if created > now.saturating_add(policy.clock_skew_secs) {
        return Err(AuthError::NotYetValid { created, now });
    }
    if expires <= now {
        return Err(AuthError::Expired { expires, now });
    }
    Ok((keyid, created, expires, nonce.to_string()))
}

fn require(params: &SignatureParams, c: Component) -> Result<(), AuthError> {
    if params.covers(&c) {
        Ok(())
    } else {
        Err(AuthError::NotCovered {
            component: c.identifier(),
        })
    }
}

/// Verifies a Rhizome request's signature, before its body is read.
///
/// `has_body` says whether the request has content (a non-zero `Content-Length` or a
/// chunked body): then `content-digest` must be covered, and the body must later pass
/// [`VerifiedRequest::check_body`]. `resolve` gives the key the verifier holds for a key id
/// (from its peers, or the `Rhizome-Key` field via [`presented_key`]), or `None`.
///
/// Checks, in order (the first failure is returned): the signature fields parse and hold
/// the label `rz`; `alg` is `ed25519`; `keyid`, `created`, `expires`, `nonce` (16 to 64
/// bytes, base64url) and `tag` (`rhizome-request`) are present; `0 <= expires - created <=
/// 300`; `created <= now + skew`; `expires > now`; `@method`, `@target-uri` and, with a body,
/// `content-digest` are covered and the digest parses; the signature base builds; a key is
/// known for the key id and hashes to it; the signature verifies strictly.
///
/// Replays are checked separately, once the caller holds the outcome
/// ([`VerifiedRequest::check_replay`]).
pub fn verify_request<F>(
    method: &str,
    target_uri: &str,
    headers: Headers<'_>,
    has_body: bool,
    now: i64,
    policy: &Policy,
    resolve: F,
) -> Result<VerifiedRequest, AuthError>
where
    F: FnOnce(&InstanceId) -> Option<PublicKey>,
{
    let (params, sig) = find_signature(headers, LABEL)?;
    let (keyid, created, expires, nonce) = check_params(&params, REQUEST_TAG, now, policy)?;
    for c in request_components(has_body) {
        require(&params, c)?;
    }
    let content_digest = if params.covers(&component(CONTENT_DIGEST)) {
        Some(
            ContentDigest::from_headers(headers)?.ok_or(AuthError::MissingHeader {
                name: CONTENT_DIGEST.into(),
            })?,
        )
    } else {
        None
    };
    let msg = Message::Request(Request {
        method,
        target_uri,
        headers,
    });
    // Built before the key lookup, so a missing covered field is reported as such.
    let base = signature_base(&msg, &params)?;
    let key = resolve(&keyid).ok_or_else(|| AuthError::UnknownKey {
        keyid: keyid.to_hex(),
    })?;
    if InstanceId::of(&key) != keyid {
        return Err(AuthError::WrongKey {
            keyid: keyid.to_hex(),
        });
    }
    key.verify(base.as_bytes(), &sig)
        .map_err(|_| AuthError::BadSignature)?;
    Ok(VerifiedRequest {
        keyid,
        key,
        created,
        expires,
        nonce,
        content_digest,
    })
}

/// Verifies a Rhizome response's signature against the request that was sent and the key
/// the client expects (the pinned peer's key).
///
/// `require_digest` says whether this response must carry a signed `Content-Digest`. The
/// checks are those of [`verify_request`] with `tag` `rhizome-response` and the components of
/// [`response_components`]; a `keyid` other than the expected key's instance id is
/// [`AuthError::WrongKey`].
pub fn verify_response(
    status: u16,
    headers: Headers<'_>,
    request: Request<'_>,
    require_digest: bool,
    now: i64,
    policy: &Policy,
    expected: &PublicKey,
) -> Result<VerifiedResponse, AuthError> {
    let (params, sig) = find_signature(headers, LABEL)?;
    let (keyid, created, expires, _nonce) = check_params(&params, RESPONSE_TAG, now, policy)?;
    for c in response_components(require_digest) {
        require(&params, c)?;
    }
    let content_digest = if params.covers(&component(CONTENT_DIGEST)) {
        Some(
            ContentDigest::from_headers(headers)?.ok_or(AuthError::MissingHeader {
                name: CONTENT_DIGEST.into(),
            })?,
        )
    } else {
        None
    };
    if InstanceId::of(expected) != keyid {
        return Err(AuthError::WrongKey {
            keyid: keyid.to_hex(),
        });
    }
    let msg = Message::Response {
        response: Response { status, headers },
        request: Some(request),
    };
    verify(&msg, &params, &sig, expected)?;
    Ok(VerifiedResponse {
        created,
        expires,
        content_digest,
    })
}
