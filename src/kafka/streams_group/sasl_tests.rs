//! The SASL messages against the RFCs' examples, and the security
//! settings read from librdkafka's properties.

use std::collections::HashMap;

use super::sasl::{plain_message, Scram};
use super::transport::{Mechanism, SecurityConfig};

/// RFC 7677, section 3: user "user", password "pencil".
#[test]
fn scram_sha_256_messages_are_those_of_rfc_7677() {
    let scram = Scram::new(Mechanism::ScramSha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
    assert_eq!(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let (client_final, signature) = scram.client_final(server_first).unwrap();
    assert_eq!(
        client_final,
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    Scram::check_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", &signature).unwrap();
    let wrong = Scram::check_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", &signature);
    assert!(wrong.unwrap_err().contains("server signature is wrong"));
    let refused = Scram::check_server_final(b"e=invalid-proof", &signature).unwrap_err();
    assert!(refused.contains("invalid-proof"), "{refused}");
}

#[test]
fn scram_refuses_a_server_nonce_that_does_not_extend_the_clients_and_escapes_the_user_name() {
    let scram = Scram::new(Mechanism::ScramSha512, "a=b,c", "pw", "abc");
    assert_eq!(scram.client_first(), "n,,n=a=3Db=2Cc,r=abc");
    let err = scram.client_final(b"r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").unwrap_err();
    assert!(err.contains("nonce"), "{err}");
    let err = scram.client_final(b"r=abc123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0").unwrap_err();
    assert!(err.contains("iteration"), "{err}");
    let (client_final, signature) = scram.client_final(b"r=abc123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").unwrap();
    assert!(client_final.starts_with("c=biws,r=abc123,p="), "{client_final}");
    assert_eq!(signature.len(), 64, "HMAC-SHA-512");
}

/// RFC 4616: `[authzid] NUL authcid NUL passwd`.
#[test]
fn the_plain_message_is_nul_user_nul_password() {
    assert_eq!(plain_message("alice", "s3cret"), b"\0alice\0s3cret");
}

fn settings(pairs: &[(&str, &str)]) -> crate::error::Result<SecurityConfig> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    SecurityConfig::from_properties(|key| map.get(key).cloned())
}

#[test]
fn security_settings_follow_librdkafkas_properties() {
    let plain = settings(&[]).unwrap();
    assert!(plain.tls.is_none() && plain.sasl.is_none());
    let sasl = settings(&[
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanisms", "SCRAM-SHA-256"),
        ("sasl.username", "u"),
        ("sasl.password", "p"),
    ])
    .unwrap();
    assert!(sasl.tls.is_none());
    let credentials = sasl.sasl.unwrap();
    assert_eq!((credentials.mechanism, credentials.username.as_str()), (Mechanism::ScramSha256, "u"));
    assert!(!format!("{credentials:?}").contains("\"p\""), "the password is redacted");
    let tls = settings(&[("security.protocol", "SSL"), ("ssl.endpoint.identification.algorithm", "none")]).unwrap();
    let (tls, _) = tls.tls.unwrap();
    assert!(!tls.verify_hostname && tls.ca_location.is_none());
}

#[test]
fn oauthbearer_gssapi_and_unknown_protocols_are_refused_naming_what_is_supported() {
    for (protocol, mechanism) in [("SASL_SSL", "OAUTHBEARER"), ("SASL_PLAINTEXT", "GSSAPI"), ("SASL_SSL", "")] {
        let mut pairs = vec![("security.protocol", protocol), ("sasl.username", "u")];
        if !mechanism.is_empty() {
            pairs.push(("sasl.mechanisms", mechanism));
        }
        let err = settings(&pairs).unwrap_err().to_string();
        assert!(err.contains("sasl.mechanisms") && err.contains("SCRAM-SHA-512"), "{err}");
    }
    let err = settings(&[("security.protocol", "quic")]).unwrap_err().to_string();
    assert!(err.contains("security.protocol"), "{err}");
    let err = settings(&[("security.protocol", "SSL"), ("ssl.ca.location", "/nonexistent/ca.pem")]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
