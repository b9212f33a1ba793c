//! TLS for coslocal: loading a certificate and key from PEM files, or generating a private
//! CA plus a server certificate signed by it (`--tls-self-signed`). Clients trust the CA
//! PEM written to `ca_out`; rustls refuses a CA:TRUE certificate as a server's own, hence
//! two certificates.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io;
use std::path::Path;
use std::sync::Arc;

fn err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {e}"))
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS protocol setup", e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err("TLS certificate/key", e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A rustls config from PEM files.
pub fn from_files(cert: &Path, key: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    let cert_pem = std::fs::read(cert)
        .map_err(|e| err(&format!("reading --tls-cert {}", cert.display()), e))?;
    let key_pem =
        std::fs::read(key).map_err(|e| err(&format!("reading --tls-key {}", key.display()), e))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&format!("parsing {}", cert.display()), e))?;
    if certs.is_empty() {
        return Err(err(
            &format!("{}", cert.display()),
            "no certificate in the PEM file",
        ));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| err(&format!("parsing {}", key.display()), e))?
        .ok_or_else(|| {
            err(
                &format!("{}", key.display()),
                "no private key in the PEM file",
            )
        })?;
    server_config(certs, key)
}

/// The names the self-signed server certificate covers.
pub fn server_names(bucket: &str, region: &str) -> Vec<String> {
    vec![
        "127.0.0.1".into(),
        "::1".into(),
        "localhost".into(),
        "*.localhost".into(),
        format!("{bucket}.cos.{region}.myqcloud.com"),
        format!("cos.{region}.myqcloud.com"),
    ]
}

/// Generates a CA and a server certificate for `server_names`, writes the CA PEM to
/// `ca_out` and returns the server config.
pub fn self_signed(
    bucket: &str,
    region: &str,
    ca_out: &Path,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let ca_key = KeyPair::generate().map_err(|e| err("CA key", e))?;
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA params", e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "coslocal test CA");
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|e| err("CA certificate", e))?;

    let srv_key = KeyPair::generate().map_err(|e| err("server key", e))?;
    let mut srv_params = CertificateParams::new(server_names(bucket, region))
        .map_err(|e| err("server certificate names", e))?;
    srv_params.is_ca = IsCa::ExplicitNoCa;
    srv_params
        .distinguished_name
        .push(DnType::CommonName, "coslocal");
    srv_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    srv_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let srv_cert = srv_params
        .signed_by(&srv_key, &ca_cert, &ca_key)
        .map_err(|e| err("server certificate", e))?;

    std::fs::write(ca_out, ca_cert.pem())
        .map_err(|e| err(&format!("writing --ca-out {}", ca_out.display()), e))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(srv_key.serialize_der()));
    // Send the chain so clients that trust only the CA can build the path.
    server_config(vec![srv_cert.der().clone(), ca_cert.der().clone()], key)
}
