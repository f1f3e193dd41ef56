//! SASL authentication of a streams group connection: SaslHandshake v1,
//! then SaslAuthenticate (v2 where the broker has it) carrying the PLAIN
//! message (RFC 4616) or the SCRAM-SHA-256/512 exchange (RFC 5802, RFC
//! 7677), with ring's HMAC, SHA-2 and PBKDF2.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use ring::{digest, hmac, pbkdf2};

use super::transport::{Mechanism, Sasl};
use super::{error_name, protocol_error};
use crate::error::Result;

const SASL_HANDSHAKE_KEY: i16 = 17;
const SASL_AUTHENTICATE_KEY: i16 = 36;
/// SaslHandshake 1: the exchange that follows is framed in
/// SaslAuthenticate requests (0 sent raw tokens).
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSIONS: (i16, i16) = (0, 2);
/// SASL_AUTHENTICATION_FAILED.
const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// Kafka's SCRAM iterations are 4096 to 16384; more is taken for a broken
/// or hostile server rather than spent on.
const MAX_SCRAM_ITERATIONS: u32 = 1 << 20;

/// What authenticating needs of a broker connection (`wire::Connection`
/// implements it; this module stays below the wire layer).
pub(super) trait SaslConnection {
    /// The broker's `host:port`, for errors.
    fn address(&self) -> &str;
    /// Whether the broker speaks `version` of `api_key`.
    fn supports(&self, api_key: i16, version: i16) -> bool;
    /// The highest version of `api_key` in `versions` the broker speaks.
    fn version_in(&self, api_key: i16, versions: (i16, i16)) -> Option<i16>;
    /// One request and its response.
    fn call<Req, Resp>(&mut self, api_key: i16, version: i16, request: &Req, doing: &str) -> Result<Resp>
    where
        Req: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
        Resp: kafka_protocol::protocol::Decodable + kafka_protocol::protocol::HeaderVersion;
}

/// Authenticates `conn` as `sasl` says; an error names SASL authentication
/// and the user, never the password.
pub(super) fn authenticate(conn: &mut impl SaslConnection, sasl: &Sasl) -> Result<()> {
    let doing = format!(
        "SASL authentication ({}) as user '{}' with Kafka broker {}",
        sasl.mechanism.name(),
        sasl.username,
        conn.address()
    );
    let fail = |code: Option<i16>, message: String| protocol_error(&doing, code, message);
    if !conn.supports(SASL_HANDSHAKE_KEY, SASL_HANDSHAKE_VERSION) {
        return Err(fail(None, "the broker does not speak SaslHandshake v1 on this listener".into()));
    }
    let version = conn
        .version_in(SASL_AUTHENTICATE_KEY, SASL_AUTHENTICATE_VERSIONS)
        .ok_or_else(|| fail(None, "the broker does not speak SaslAuthenticate".into()))?;
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str(sasl.mechanism.name());
    let response: SaslHandshakeResponse = conn.call(SASL_HANDSHAKE_KEY, SASL_HANDSHAKE_VERSION, &handshake, &doing)?;
    if response.error_code != 0 {
        let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(fail(
            Some(response.error_code),
            format!(
                "{}: the listener offers {} (sasl.mechanisms)",
                error_name(response.error_code),
                offered.join(", ")
            ),
        ));
    }
    let mut exchange = |token: Vec<u8>| -> Result<Vec<u8>> {
        let mut request = SaslAuthenticateRequest::default();
        request.auth_bytes = token.into();
        let response: SaslAuthenticateResponse = conn.call(SASL_AUTHENTICATE_KEY, version, &request, &doing)?;
        if response.error_code != 0 {
            let said = response.error_message.as_ref().map_or("", |m| m.as_str());
            let code = response.error_code;
            let message = if code == SASL_AUTHENTICATION_FAILED {
                format!("SASL authentication failed: {said} (check sasl.username and sasl.password)")
            } else {
                format!("SASL authentication failed: {} {said}", error_name(code))
            };
            return Err(fail(Some(code), message));
        }
        Ok(response.auth_bytes.to_vec())
    };
    match sasl.mechanism {
        Mechanism::Plain => exchange(plain_message(&sasl.username, &sasl.password)).map(drop),
        Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
            let scram = Scram::new(sasl.mechanism, &sasl.username, &sasl.password, &nonce()?);
            let server_first = exchange(scram.client_first().into_bytes())?;
            let (client_final, server_signature) = scram
                .client_final(&server_first)
                .map_err(|e| fail(None, format!("SASL authentication failed: {e}")))?;
            let server_final = exchange(client_final.into_bytes())?;
            Scram::check_server_final(&server_final, &server_signature)
                .map_err(|e| fail(Some(SASL_AUTHENTICATION_FAILED), format!("SASL authentication failed: {e}")))
        }
    }
}

/// The PLAIN message: no authorization id, the user, the password.
pub(super) fn plain_message(username: &str, password: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(username.len() + password.len() + 2);
    message.push(0);
    message.extend_from_slice(username.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    message
}

/// A fresh client nonce: 24 random bytes, base64 (printable, no comma).
fn nonce() -> Result<String> {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| protocol_error("SASL authentication", None, "no random bytes for the SCRAM nonce".into()))?;
    Ok(BASE64.encode(bytes))
}

/// The client side of one SCRAM exchange (no channel binding: `n,,`).
pub(super) struct Scram {
    mechanism: Mechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
}

impl Scram {
    pub(super) fn new(mechanism: Mechanism, username: &str, password: &str, nonce: &str) -> Scram {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        Scram {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce: nonce.to_string(),
        }
    }

    pub(super) fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    fn algorithms(&self) -> (pbkdf2::Algorithm, hmac::Algorithm, &'static digest::Algorithm) {
        match self.mechanism {
            Mechanism::ScramSha512 => (pbkdf2::PBKDF2_HMAC_SHA512, hmac::HMAC_SHA512, &digest::SHA512),
            _ => (pbkdf2::PBKDF2_HMAC_SHA256, hmac::HMAC_SHA256, &digest::SHA256),
        }
    }

    /// The client-final message answering `server_first`, and the server
    /// signature the server-final message must carry.
    pub(super) fn client_final(&self, server_first: &[u8]) -> std::result::Result<(String, Vec<u8>), String> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| "the server-first message is not UTF-8".to_string())?;
        let attribute = |name: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .ok_or_else(|| format!("the server-first message has no '{name}': {server_first:?}"))
        };
        let nonce = attribute("r")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend the client's".into());
        }
        let salt = BASE64.decode(attribute("s")?).map_err(|e| format!("the salt is not base64: {e}"))?;
        let iterations = attribute("i")?
            .parse::<u32>()
            .ok()
            .filter(|i| *i <= MAX_SCRAM_ITERATIONS)
            .and_then(NonZeroU32::new)
            .ok_or_else(|| format!("the server asks for a bad iteration count: {server_first:?}"))?;
        let (kdf, mac, hash) = self.algorithms();
        let mut salted = vec![0u8; hash.output_len()];
        pbkdf2::derive(kdf, iterations, &salt, self.password.as_bytes(), &mut salted);
        let salted = hmac::Key::new(mac, &salted);
        let client_key = hmac::sign(&salted, b"Client Key");
        let stored_key = digest::digest(hash, client_key.as_ref());
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac::sign(&hmac::Key::new(mac, stored_key.as_ref()), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.as_ref().iter().zip(client_signature.as_ref()).map(|(k, s)| k ^ s).collect();
        let server_key = hmac::sign(&salted, b"Server Key");
        let server_signature = hmac::sign(&hmac::Key::new(mac, server_key.as_ref()), auth_message.as_bytes());
        Ok((format!("{without_proof},p={}", BASE64.encode(proof)), server_signature.as_ref().to_vec()))
    }

    /// Checks that the server-final message proves the server knows the
    /// password too.
    pub(super) fn check_server_final(server_final: &[u8], signature: &[u8]) -> std::result::Result<(), String> {
        let text = String::from_utf8_lossy(server_final);
        if let Some(error) = text.strip_prefix("e=") {
            return Err(format!("the broker answers {error}"));
        }
        let verifier = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or_else(|| format!("the server-final message has no verifier: {text:?}"))?;
        if verifier != signature {
            return Err("the broker's server signature is wrong (is this the right broker?)".into());
        }
        Ok(())
    }
}
