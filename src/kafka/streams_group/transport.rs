//! What the streams group client's connections speak: librdkafka's
//! `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), its TLS
//! settings (rustls, with the ring provider ureq already builds) and its
//! SASL credentials, read from the same properties rivulet passes to
//! librdkafka; and the socket, plain or TLS, a [`super::wire`] connection
//! reads and writes.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme, StreamOwned};

use super::protocol_error;
use crate::error::{Error, Result};

/// A SASL mechanism the client speaks (`sasl.mechanisms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    /// The name Kafka's SaslHandshake uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials: the mechanism, `sasl.username` and `sasl.password`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sasl {
    pub(crate) mechanism: Mechanism,
    pub(crate) username: String,
    pub(crate) password: String,
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// TLS settings: `ssl.ca.location` (none: the Mozilla roots of
/// `webpki-roots`), `ssl.endpoint.identification.algorithm` (`https`, the
/// default, checks the broker's host name; `none` does not) and a client
/// certificate (`ssl.certificate.location` and `ssl.key.location`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Tls {
    pub(crate) ca_location: Option<PathBuf>,
    pub(crate) verify_hostname: bool,
    pub(crate) certificate_location: Option<PathBuf>,
    pub(crate) key_location: Option<PathBuf>,
}

/// How the streams group client connects: TLS or not, SASL or not
/// (`SecurityConfig::default()`: PLAINTEXT).
#[derive(Debug, Clone, Default)]
pub(crate) struct SecurityConfig {
    /// The TLS settings and their rustls configuration, built (files
    /// read) at once.
    pub(crate) tls: Option<(Tls, Arc<ClientConfig>)>,
    pub(crate) sasl: Option<Sasl>,
}

const SUPPORTED: &str = "the streams group client speaks PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL with SASL \
                         mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512";

fn refuse(key: &str, value: &str, why: &str) -> Error {
    protocol_error("reading the Kafka security settings", None, format!("{key} = {value:?}: {why}"))
}

impl SecurityConfig {
    /// The settings of librdkafka's properties, secrets already resolved:
    /// `get(key)` is the effective value of `key` (consumer over common).
    pub(crate) fn from_properties(get: impl Fn(&str) -> Option<String>) -> Result<SecurityConfig> {
        let protocol = get("security.protocol").unwrap_or_else(|| "plaintext".into());
        let (tls, sasl) = match protocol.to_ascii_lowercase().as_str() {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            _ => return Err(refuse("security.protocol", &protocol, SUPPORTED)),
        };
        let path = |key: &str| get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).map(PathBuf::from);
        let tls = tls
            .then(|| -> Result<Tls> {
                let algorithm = get("ssl.endpoint.identification.algorithm").unwrap_or_else(|| "https".into());
                let verify_hostname = match algorithm.to_ascii_lowercase().as_str() {
                    "https" => true,
                    "none" => false,
                    _ => return Err(refuse("ssl.endpoint.identification.algorithm", &algorithm, "use https or none")),
                };
                let tls = Tls {
                    ca_location: path("ssl.ca.location"),
                    verify_hostname,
                    certificate_location: path("ssl.certificate.location"),
                    key_location: path("ssl.key.location"),
                };
                if tls.certificate_location.is_some() != tls.key_location.is_some() {
                    return Err(refuse(
                        "ssl.certificate.location",
                        &format!("{:?}", tls.certificate_location),
                        "a client certificate needs both ssl.certificate.location and ssl.key.location (PEM files)",
                    ));
                }
                Ok(tls)
            })
            .transpose()?;
        let sasl = sasl
            .then(|| -> Result<Sasl> {
                let mechanisms =
                    get("sasl.mechanisms").or_else(|| get("sasl.mechanism")).unwrap_or_else(|| "GSSAPI".into());
                let mechanism = match mechanisms.trim().to_ascii_uppercase().as_str() {
                    "PLAIN" => Mechanism::Plain,
                    "SCRAM-SHA-256" => Mechanism::ScramSha256,
                    "SCRAM-SHA-512" => Mechanism::ScramSha512,
                    _ => return Err(refuse("sasl.mechanisms", &mechanisms, SUPPORTED)),
                };
                let username = get("sasl.username").unwrap_or_default();
                let password = get("sasl.password").unwrap_or_default();
                if username.is_empty() {
                    return Err(refuse("sasl.username", "", "SASL needs sasl.username and sasl.password"));
                }
                Ok(Sasl { mechanism, username, password })
            })
            .transpose()?;
        let tls = tls.map(|tls| tls_config(&tls).map(|config| (tls, config))).transpose()?;
        Ok(SecurityConfig { tls, sasl })
    }

    /// The rustls configuration of [`Self::tls`], if TLS is on.
    pub(crate) fn tls_config(&self) -> Option<&Arc<ClientConfig>> {
        self.tls.as_ref().map(|(_, config)| config)
    }
}

fn tls_error(message: String) -> Error {
    protocol_error("setting up TLS for the streams group client", None, message)
}

fn tls_config(tls: &Tls) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &tls.ca_location {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| tls_error(format!("reading ssl.ca.location {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(tls_error(format!("ssl.ca.location {} holds no PEM certificate", path.display())));
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?;
    let builder = if tls.verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| tls_error(e.to_string()))?;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoHostnameCheck(inner)))
    };
    let config = match (&tls.certificate_location, &tls.key_location) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| tls_error(format!("reading ssl.certificate.location {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_error(format!("reading ssl.key.location {}: {e}", key.display())))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| tls_error(format!("the client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `ssl.endpoint.identification.algorithm = none`: the broker's chain must
/// still lead to a trusted CA, but its names are not checked.
#[derive(Debug)]
struct NoHostnameCheck(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A connection's socket: plain TCP or TLS over it.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// `tcp`, wrapped in TLS when `tls` is given, for a broker at `host`
    /// (the handshake happens on the first read or write).
    pub(crate) fn new(tcp: TcpStream, tls: Option<&Arc<ClientConfig>>, host: &str) -> Result<Stream> {
        let Some(config) = tls else { return Ok(Stream::Plain(tcp)) };
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| tls_error(format!("{host:?} is not a valid TLS server name: {e}")))?;
        let conn = ClientConnection::new(config.clone(), name).map_err(|e| tls_error(e.to_string()))?;
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }

    /// Read and write timeouts of the socket.
    pub(crate) fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        let t = Some(timeout.max(Duration::from_millis(1)));
        self.tcp().set_read_timeout(t).and_then(|()| self.tcp().set_write_timeout(t))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}
