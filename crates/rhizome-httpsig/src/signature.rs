//! Ed25519 HTTP message signatures (RFC 9421 section 3.3.6: Ed25519 over the signature base
//! bytes, no prehash, no prefix), verified strictly with `rhizome-core`'s keys, and the
//! `Signature-Input` / `Signature` fields (sections 4.1 and 4.2) that carry them.

use rhizome_core::keys::{PublicKey, SecretKey, Signature};

use crate::base::{signature_base, Message, SignatureParams};
use crate::error::AuthError;
use crate::message::{field_value, Headers};
use crate::sfv::{self, BareItem, Limits, Member};
use crate::{MAX_COMPONENTS, MAX_FIELD_LEN, MAX_LABELS};

/// `alg` value for Ed25519 (RFC 9421 section 6.2.2).
pub const ALG_ED25519: &str = "ed25519";

/// Field name of `Signature-Input`, lowercase.
pub const SIGNATURE_INPUT: &str = "signature-input";

/// Field name of `Signature`, lowercase.
pub const SIGNATURE: &str = "signature";

/// Bounds for parsing the signature fields.
pub(crate) const FIELD_LIMITS: Limits = Limits {
    max_input: MAX_FIELD_LEN,
    max_members: MAX_LABELS,
    max_inner_items: MAX_COMPONENTS,
    max_params: 16,
};

/// Signs the signature base of `params` over `msg` with Ed25519. Returns the base (for logs
/// and tests) and the signature.
pub fn sign(
    msg: &Message<'_>,
    params: &SignatureParams,
    key: &SecretKey,
) -> Result<(String, Signature), AuthError> {
    let base = signature_base(msg, params)?;
    let sig = key.sign(base.as_bytes());
    Ok((base, sig))
}

/// Rebuilds the signature base of `params` over `msg` and verifies `sig` over it with `key`,
/// strictly (non-canonical signatures and small-order keys or points are refused).
/// Checks nothing else: see [`crate::policy`] for times, coverage and keys.
pub fn verify(
    msg: &Message<'_>,
    params: &SignatureParams,
    sig: &Signature,
    key: &PublicKey,
) -> Result<(), AuthError> {
    let base = signature_base(msg, params)?;
    key.verify(base.as_bytes(), sig)
        .map_err(|_| AuthError::BadSignature)
}

/// The values of the two fields that carry one signature under `label`:
/// (`Signature-Input` value, `Signature` value), e.g. `rz=("@method");created=1` and
/// `rz=:BASE64:`.
pub fn signature_fields(
    label: &str,
    params: &SignatureParams,
    sig: &Signature,
) -> Result<(String, String), AuthError> {
    if !sfv::is_key(label) {
        return Err(AuthError::malformed(
            "label",
            "not an RFC 8941 key (lowercase letters, digits, _ - . *)",
        ));
    }
    let input = format!("{label}={}", params.serialize());
    let mut signature = format!("{label}=");
    sfv::write_bare(&mut signature, &BareItem::ByteSeq(sig.as_bytes().to_vec()));
    Ok((input, signature))
}

/// Finds the signature labelled `label` in a message's header fields: parses every
/// `Signature-Input` and `Signature` line (combined), strictly and within the crate's
/// bounds, and returns its parameters and signature bytes.
///
/// Other labels are parsed (they must be valid) but otherwise ignored. A label present in one
/// field and not in the other is an error, as RFC 9421 section 4 requires.
pub fn find_signature(
    headers: Headers<'_>,
    label: &str,
) -> Result<(SignatureParams, Signature), AuthError> {
    let input = field_value(headers, SIGNATURE_INPUT)?.ok_or(AuthError::MissingSignature {
        field: SIGNATURE_INPUT,
    })?;
    let sigs =
        field_value(headers, SIGNATURE)?.ok_or(AuthError::MissingSignature { field: SIGNATURE })?;
    let inputs = sfv::parse_dictionary(&input, FIELD_LIMITS)
        .map_err(|e| AuthError::from_sfv(SIGNATURE_INPUT, e))?;
    let sigs = sfv::parse_dictionary(&sigs, FIELD_LIMITS)
        .map_err(|e| AuthError::from_sfv(SIGNATURE, e))?;
    for (k, _) in &inputs {
        if !sigs.iter().any(|(s, _)| s == k) {
            return Err(AuthError::malformed(
                SIGNATURE,
                format!("label {k:?} has a Signature-Input but no Signature"),
            ));
        }
    }
    for (k, _) in &sigs {
        if !inputs.iter().any(|(s, _)| s == k) {
            return Err(AuthError::malformed(
                SIGNATURE_INPUT,
                format!("label {k:?} has a Signature but no Signature-Input"),
            ));
        }
    }
    let missing = || AuthError::MissingLabel {
        label: label.to_string(),
    };
    let member = inputs
        .iter()
        .find(|(k, _)| k == label)
        .map(|(_, m)| m)
        .ok_or_else(missing)?;
    let Member::InnerList(list) = member else {
        return Err(AuthError::malformed(
            SIGNATURE_INPUT,
            format!("member {label:?} is not an inner list"),
        ));
    };
    let params = SignatureParams::from_inner_list(list)?;
    let sig = sigs
        .iter()
        .find(|(k, _)| k == label)
        .map(|(_, m)| m)
        .ok_or_else(missing)?;
    let bytes = match sig {
        Member::Item(item) if item.params.is_empty() => match &item.bare {
            BareItem::ByteSeq(b) => b,
            _ => {
                return Err(AuthError::malformed(
                    SIGNATURE,
                    format!("member {label:?} is not a byte sequence"),
                ))
            }
        },
        _ => {
            return Err(AuthError::malformed(
                SIGNATURE,
                format!("member {label:?} is not a byte sequence without parameters"),
            ))
        }
    };
    let sig = Signature::try_from(bytes.as_slice()).map_err(|_| {
        AuthError::malformed(
            SIGNATURE,
            format!("an Ed25519 signature is 64 bytes, not {}", bytes.len()),
        )
    })?;
    Ok((params, sig))
}
