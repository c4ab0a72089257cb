//! TLS 1.3 through rustls with the ring provider, and nothing else (no aws-lc, no OpenSSL).
//!
//! Server side: by default a self-signed certificate whose key IS the instance's Ed25519 key
//! (made with rcgen from the PKCS#8 form of the instance seed), or a CA-issued certificate
//! and key from PEM files.
//!
//! Client side: one verifier per connection. A certificate chain that a trusted root
//! validates (webpki-roots, plus an optional CA file) is accepted as is: the instance key is
//! then checked from the signed descriptor and every signed response. Otherwise the leaf must
//! carry an Ed25519 key, the instance is the one that key names (and, pinned, the one
//! expected), and the handshake signature (TLS 1.3 CertificateVerify, over the transcript)
//! must verify under exactly that key: the server proves it holds the instance key before a
//! byte of the request is sent.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rhizome_core::{InstanceId, PublicKey, SecretKey, Signature};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::{HttpsError, Result};

/// The ring provider: the only one this crate uses.
pub fn provider() -> Arc<CryptoProvider> {
    // rustls 0.23.48 deprecates it only because ring has no post-quantum key exchange; the
    // project keeps ring (aws-lc needs cmake and a C toolchain of its own, CRATES.md).
    #[allow(deprecated)]
    Arc::new(ring::default_provider())
}

/// PKCS#8 v1 (RFC 8410) of an Ed25519 seed: the fixed 16-byte prefix, then the 32 bytes.
fn pkcs8_of(key: &SecretKey) -> Vec<u8> {
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap_or_default();
    der.extend_from_slice(&key.to_seed()[..]);
    der
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const ED25519_SPKI: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The Ed25519 key a certificate carries: the 32 bytes after the only Ed25519 SPKI prefix in
/// the DER. More than one such prefix is refused; whatever is found must then sign the
/// handshake, so a wrong guess can only fail the connection, never pass a false key.
pub fn ed25519_key_of(cert: &[u8]) -> Option<PublicKey> {
    let hits: Vec<usize> = cert
        .windows(ED25519_SPKI.len())
        .enumerate()
        .filter(|(_, w)| *w == ED25519_SPKI)
        .map(|(i, _)| i + ED25519_SPKI.len())
        .collect();
    match hits.as_slice() {
        [at] => {
            let bytes: [u8; 32] = cert.get(*at..*at + 32)?.try_into().ok()?;
            let key = PublicKey::from_bytes(bytes).ok()?;
            key.check().ok().map(|()| key)
        }
        _ => None,
    }
}

fn server_builder() -> Result<rustls::ConfigBuilder<rustls::ServerConfig, rustls::WantsVerifier>> {
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| HttpsError::Tls(e.to_string()))
}

/// A server configuration with a self-signed certificate made from the instance key.
pub fn self_signed_server(key: &SecretKey) -> Result<rustls::ServerConfig> {
    let tls = |e: rcgen::Error| HttpsError::Tls(format!("making the certificate: {e}"));
    let der = pkcs8_of(key);
    let pkcs8 = PrivatePkcs8KeyDer::from(der.clone());
    let pair =
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519).map_err(tls)?;
    let id = InstanceId::of(&key.public_key()).to_hex();
    let mut params =
        rcgen::CertificateParams::new(vec![format!("{id}.rhizome.invalid")]).map_err(tls)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("rhizome instance {id}"));
    let cert = params.self_signed(&pair).map_err(tls)?;
    let chain = vec![cert.der().clone()];
    let mut config = server_builder()?
        .with_no_client_auth()
        .with_single_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
        .map_err(|e| HttpsError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A server configuration from a CA-issued certificate chain and its key (PEM files).
pub fn ca_server(cert: &Path, key: &Path) -> Result<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| HttpsError::Tls(format!("reading {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(HttpsError::Tls(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| HttpsError::Tls(format!("reading {}: {e}", key.display())))?;
    let mut config = server_builder()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| HttpsError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Root certificates from a PEM file (for a private CA: tests, an organisation).
pub fn roots_from(ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(f) = ca_file {
        let certs = CertificateDer::pem_file_iter(f)
            .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| HttpsError::Tls(format!("reading {}: {e}", f.display())))?;
        for c in certs {
            roots
                .add(c)
                .map_err(|e| HttpsError::Tls(format!("{}: {e}", f.display())))?;
        }
    }
    Ok(roots)
}

/// What a handshake proved about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proven {
    /// Its certificate key is this instance key, and it signed the handshake with it.
    InstanceKey(PublicKey),
    /// A trusted root validated its certificate for the host name; the instance key is
    /// checked from the descriptor and the signed responses.
    Ca,
}

#[derive(Debug, Default)]
struct Seen {
    proven: Option<Proven>,
    refusal: Option<String>,
}

/// The client's certificate verifier (see the module docs). One per connection.
#[derive(Debug)]
pub struct InstanceVerifier {
    pin: Option<InstanceId>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Seen>,
}

impl InstanceVerifier {
    /// A verifier expecting `pin` (any instance when `None`), accepting CA-issued
    /// certificates that `roots` validate.
    pub fn new(pin: Option<InstanceId>, roots: Option<Arc<RootCertStore>>) -> Arc<Self> {
        let provider = provider();
        let webpki = roots.and_then(|r| {
            WebPkiServerVerifier::builder_with_provider(r, Arc::clone(&provider))
                .build()
                .ok()
        });
        Arc::new(Self {
            pin,
            webpki,
            provider,
            seen: Mutex::new(Seen::default()),
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the handshake proved, once it is done.
    pub fn proven(&self) -> Option<Proven> {
        self.seen().proven.clone()
    }

    /// Why the verifier refused the server, if it did.
    pub fn refusal(&self) -> Option<String> {
        self.seen().refusal.clone()
    }

    fn refuse(&self, why: String) -> rustls::Error {
        self.seen().refusal = Some(why.clone());
        rustls::Error::General(why)
    }
}

impl ServerCertVerifier for InstanceVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Some(w) = &self.webpki {
            if w.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .is_ok()
            {
                self.seen().proven = Some(Proven::Ca);
                return Ok(ServerCertVerified::assertion());
            }
        }
        let Some(key) = ed25519_key_of(end_entity) else {
            return Err(self.refuse(
                "the server's certificate is neither issued by a trusted authority nor made from an Ed25519 instance key".into(),
            ));
        };
        let found = InstanceId::of(&key);
        if let Some(pin) = self.pin {
            if found != pin {
                return Err(self.refuse(format!(
                    "wrong instance: expected {pin}, the server holds the key of {found} (fingerprint {}); nothing was sent",
                    key.fingerprint()
                )));
            }
        }
        self.seen().proven = Some(Proven::InstanceKey(key));
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(self.refuse("TLS 1.2 is not accepted".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let proven = self.seen().proven.clone();
        match proven {
            Some(Proven::Ca) => rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            ),
            Some(Proven::InstanceKey(key)) => {
                if dss.scheme != SignatureScheme::ED25519 {
                    return Err(self.refuse(format!(
                        "the server signed the handshake with {:?}, not its Ed25519 instance key",
                        dss.scheme
                    )));
                }
                let sig: [u8; 64] = dss
                    .signature()
                    .try_into()
                    .map_err(|_| self.refuse("handshake signature is not 64 bytes".into()))?;
                key.verify(message, &Signature::from_bytes(sig))
                    .map_err(|_| {
                        self.refuse("the handshake is not signed by the instance key".into())
                    })?;
                Ok(HandshakeSignatureValid::assertion())
            }
            None => Err(self.refuse("no certificate was checked".into())),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration using `verifier`, TLS 1.3 only.
pub fn client_config(verifier: Arc<InstanceVerifier>) -> Result<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| HttpsError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
