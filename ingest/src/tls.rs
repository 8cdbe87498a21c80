//! TLS for device connections (and the HTTPS side of the shared TLS port):
//! certificate loading, and a self-signed certificate generated on first run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{IngestError, Result};

/// ALPN protocol id of Blynk sessions over QUIC (documented in docs/protocol.md).
pub const QUIC_ALPN: &[u8] = b"blynk";

/// Where the certificate chain and key of the TLS and QUIC listeners come from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files given by the operator (chain first, then the key).
    Files {
        /// Certificate chain (leaf first).
        cert: PathBuf,
        /// PKCS#8, PKCS#1 or SEC1 private key.
        key: PathBuf,
    },
    /// A certificate authority and a leaf certificate made for this server and
    /// kept in `dir` (`ca.pem` is what clients trust; `cert.pem` + `key.pem`
    /// serve). Created on first use, reused afterwards.
    SelfSigned {
        /// Folder of the generated files (in the data dir).
        dir: PathBuf,
        /// Extra DNS names or IP addresses for the leaf (localhost and the
        /// loopback addresses are always included).
        names: Vec<String>,
    },
}

/// Certificate and key ready for rustls.
#[derive(Debug)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The file a client should trust for a self-signed identity.
    pub ca_file: Option<PathBuf>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            ca_file: self.ca_file.clone(),
        }
    }
}

fn tls_err(context: impl std::fmt::Display) -> impl FnOnce(String) -> IngestError {
    let context = context.to_string();
    move |msg| IngestError::Tls(format!("{context}: {msg}"))
}

impl TlsIdentity {
    /// Load the identity, generating the self-signed files when needed.
    pub fn load(source: &CertSource) -> Result<Self> {
        match source {
            CertSource::Files { cert, key } => Self::from_files(cert, key, None),
            CertSource::SelfSigned { dir, names } => {
                let (cert, key, ca) = (
                    dir.join("cert.pem"),
                    dir.join("key.pem"),
                    dir.join("ca.pem"),
                );
                if !cert.exists() || !key.exists() {
                    generate_self_signed(dir, names)?;
                    tracing::warn!(
                        ca = %ca.display(),
                        "generated a self-signed TLS certificate; devices must trust this CA file, \
                         or configure tls_cert/tls_key with a real certificate"
                    );
                }
                Self::from_files(&cert, &key, Some(ca))
            }
        }
    }

    fn from_files(cert: &Path, key: &Path, ca_file: Option<PathBuf>) -> Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| tls_err(cert.display())(e.to_string()))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| tls_err(cert.display())(e.to_string()))?;
        if chain.is_empty() {
            return Err(tls_err(cert.display())("no certificate in the file".into()));
        }
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key.display())(e.to_string()))?;
        Ok(Self {
            chain,
            key,
            ca_file,
        })
    }

    /// Server config for TLS over TCP (TLS 1.2 and 1.3, no ALPN: Blynk
    /// libraries send none, and HTTPS clients fall back to HTTP/1.1).
    pub fn tcp_config(&self) -> Result<Arc<ServerConfig>> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| IngestError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| IngestError::Tls(e.to_string()))?;
        Ok(Arc::new(config))
    }

    /// Server config for QUIC (TLS 1.3, ALPN [`QUIC_ALPN`]).
    pub fn quic_config(&self) -> Result<quinn::ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| IngestError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| IngestError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![QUIC_ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(config)
            .map_err(|e| IngestError::Tls(e.to_string()))?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
    }
}

/// The crypto provider of every TLS config we build (ring), chosen explicitly
/// so no process-wide default is needed.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn generate_self_signed(dir: &Path, names: &[String]) -> Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let gen_err = |e: rcgen::Error| IngestError::Tls(format!("generating a certificate: {e}"));
    std::fs::create_dir_all(dir)?;

    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pinhouse self-signed CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    sans.extend(names.iter().filter(|n| !n.is_empty()).cloned());
    sans.dedup();
    let leaf_key = KeyPair::generate().map_err(gen_err)?;
    let mut leaf_params = CertificateParams::new(sans).map_err(gen_err)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "pinhouse");
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).map_err(gen_err)?;

    write_file(&dir.join("ca.pem"), ca_cert.pem().as_bytes(), false)?;
    write_file(
        &dir.join("cert.pem"),
        format!("{}{}", leaf.pem(), ca_cert.pem()).as_bytes(),
        false,
    )?;
    write_file(
        &dir.join("key.pem"),
        leaf_key.serialize_pem().as_bytes(),
        true,
    )?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_identity_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let source = CertSource::SelfSigned {
            dir: dir.path().join("tls"),
            names: vec!["pinhouse.example".into()],
        };
        let first = TlsIdentity::load(&source).unwrap();
        assert_eq!(first.chain.len(), 2);
        first.tcp_config().unwrap();
        first.quic_config().unwrap();
        let pem = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
        let second = TlsIdentity::load(&source).unwrap();
        assert_eq!(first.chain, second.chain);
        assert_eq!(pem, std::fs::read(dir.path().join("tls/cert.pem")).unwrap());
    }

    #[test]
    fn missing_files_are_clear_errors() {
        let err = TlsIdentity::load(&CertSource::Files {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
