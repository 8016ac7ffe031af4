//! PKI tests: CA persistence, CSR signing and tampering, server certificates, fingerprints.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine;
use rcgen::{CertificateParams, KeyPair, SanType};
use x509_parser::extensions::GeneralName;

use super::*;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn agent(id: &str) -> AgentId {
    AgentId::new(id).expect("valid agent id")
}

fn der_of(pem: &str) -> CertificateDer<'static> {
    first_certificate_der(pem, "test certificate").expect("certificate PEM")
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn from_pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64")
}

#[test]
fn ca_round_trips_through_pem() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let reloaded = CertificateAuthority::from_pem(authority.cert_pem(), authority.key_pem())
        .expect("reload CA");
    assert_eq!(reloaded.fingerprint(), authority.fingerprint());
    assert_eq!(reloaded.cert_pem(), authority.cert_pem());

    // The reloaded CA signs certificates that chain to the original.
    let (_, csr) = generate_agent_key_and_csr("a1").expect("csr");
    let issued_certificate = reloaded
        .sign_agent_csr(&csr, &agent("a1"), DAY)
        .expect("sign");
    let leaf = der_of(&issued_certificate.cert_pem);
    let parsed = parse_certificate(&leaf, "leaf").expect("parse leaf");
    let ca = parse_certificate(authority.cert_der(), "ca").expect("parse ca");
    assert_eq!(parsed.issuer(), ca.subject());

    let ca_parsed = parse_certificate(authority.cert_der(), "ca").expect("parse");
    assert!(ca_parsed.is_ca());
    let lifetime =
        ca_parsed.validity().not_after.timestamp() - ca_parsed.validity().not_before.timestamp();
    assert!(lifetime >= CA_VALIDITY.as_secs() as i64, "{lifetime}");
}

#[test]
fn ca_reload_refuses_a_foreign_key_and_a_leaf() {
    let authority = CertificateAuthority::generate("CA one").expect("generate");
    let other = CertificateAuthority::generate("CA two").expect("generate");
    assert!(matches!(
        CertificateAuthority::from_pem(authority.cert_pem(), other.key_pem()),
        Err(PkiError::CaKeyMismatch)
    ));
    let (server, server_key) = authority
        .issue_server_certificate(&[], &[], DAY)
        .expect("server certificate");
    assert!(matches!(
        CertificateAuthority::from_pem(&server.cert_pem, &server_key),
        Err(PkiError::NotACa)
    ));
    assert!(matches!(
        CertificateAuthority::from_pem("not pem", authority.key_pem()),
        Err(PkiError::NoCertificate { .. })
    ));
    let error =
        CertificateAuthority::from_pem(authority.cert_pem(), &PrivateKeyPem::new("garbage"))
            .expect_err("bad key");
    assert!(matches!(error, PkiError::BadPrivateKey { .. }), "{error}");
}

#[test]
fn signed_csr_yields_the_agent_identity() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let (key, csr) = generate_agent_key_and_csr("jump-01").expect("csr");
    assert!(key.expose().contains("PRIVATE KEY"));
    let id = agent("jump-01");
    let issued_certificate = authority.sign_agent_csr(&csr, &id, 30 * DAY).expect("sign");
    let der = der_of(&issued_certificate.cert_pem);
    assert_eq!(agent_id_from_certificate(&der).expect("agent id"), id);
    assert_eq!(
        issued_certificate.serial_hex,
        certificate_serial_hex(&der).expect("serial")
    );
    assert_eq!(issued_certificate.serial_hex.len(), 32);
    assert_eq!(
        issued_certificate.not_after_unix,
        certificate_not_after(&der).expect("not after")
    );
    let expected_end = unix_seconds(SystemTime::now()) + (30 * DAY).as_secs() as i64;
    assert!((issued_certificate.not_after_unix - expected_end).abs() < 60);

    let parsed = parse_certificate(&der, "leaf").expect("parse");
    let usage = parsed
        .extended_key_usage()
        .expect("eku")
        .expect("eku present")
        .value;
    assert!(usage.client_auth && !usage.server_auth);
    assert!(!parsed.is_ca());
    // The certificate holds the CSR's key.
    let key_pair = KeyPair::from_pem(key.expose()).expect("agent key");
    assert_eq!(key_pair.subject_public_key_info(), parsed.public_key().raw);
}

#[test]
fn csr_requests_for_names_are_ignored() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).expect("params");
    params.subject_alt_names.push(SanType::URI(
        "rotor://agent/admin".to_owned().try_into().expect("uri"),
    ));
    let csr = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");

    let issued_certificate = authority
        .sign_agent_csr(&csr, &agent("honest"), DAY)
        .expect("sign");
    let der = der_of(&issued_certificate.cert_pem);
    assert_eq!(
        agent_id_from_certificate(&der).expect("agent id"),
        agent("honest")
    );
    let parsed = parse_certificate(&der, "leaf").expect("parse");
    let names = parsed
        .subject_alternative_name()
        .expect("san")
        .expect("san present");
    assert_eq!(
        names.value.general_names,
        vec![GeneralName::URI("rotor://agent/honest")]
    );
}

#[test]
fn tampered_csr_is_refused() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let (_, csr) = generate_agent_key_and_csr("tamper-me").expect("csr");
    let mut der = from_pem_body(&csr);
    let position = der
        .windows(b"tamper-me".len())
        .position(|window| window == b"tamper-me")
        .expect("CN in CSR");
    der[position] = b'T';
    let tampered = to_pem("CERTIFICATE REQUEST", &der);
    let error = authority
        .sign_agent_csr(&tampered, &agent("x"), DAY)
        .expect_err("tampered");
    assert!(matches!(error, PkiError::CsrSignatureInvalid), "{error}");
    assert!(error.to_string().contains("rotor-agent enroll"));

    let error = authority
        .sign_agent_csr("garbage", &agent("x"), DAY)
        .expect_err("garbage");
    assert!(matches!(error, PkiError::BadCsr(_)), "{error}");
}

#[test]
fn server_certificate_always_names_the_controller() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let addresses = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let (issued_certificate, key) = authority
        .issue_server_certificate(&["rotor.example.com".to_owned()], &addresses, 90 * DAY)
        .expect("server certificate");
    assert!(key.expose().contains("PRIVATE KEY"));
    let der = der_of(&issued_certificate.cert_pem);
    let parsed = parse_certificate(&der, "server").expect("parse");
    let names = parsed
        .subject_alternative_name()
        .expect("san")
        .expect("san present");
    let names = &names.value.general_names;
    assert!(names.contains(&GeneralName::DNSName(CONTROLLER_SERVER_NAME)));
    assert!(names.contains(&GeneralName::DNSName("rotor.example.com")));
    assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
    let usage = parsed
        .extended_key_usage()
        .expect("eku")
        .expect("eku present")
        .value;
    assert!(usage.server_auth && !usage.client_auth);
    assert!(matches!(
        agent_id_from_certificate(&der),
        Err(PkiError::NoAgentUri)
    ));

    // Duplicates of the controller name are not repeated.
    let (issued_certificate, _) = authority
        .issue_server_certificate(&[CONTROLLER_SERVER_NAME.to_owned()], &[], DAY)
        .expect("server certificate");
    let der = der_of(&issued_certificate.cert_pem);
    let parsed = parse_certificate(&der, "server").expect("parse");
    let names = parsed
        .subject_alternative_name()
        .expect("san")
        .expect("san present");
    assert_eq!(names.value.general_names.len(), 1);

    let error = authority
        .issue_server_certificate(&["bad name with spaces\u{0}".to_owned()], &[], DAY)
        .expect_err("invalid DNS name");
    assert!(matches!(error, PkiError::BadParameter { .. }), "{error}");
}

#[test]
fn issued_certificates_never_outlive_the_ca() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let (_, csr) = generate_agent_key_and_csr("long").expect("csr");
    let issued_certificate = authority
        .sign_agent_csr(&csr, &agent("long"), 100 * 365 * DAY)
        .expect("sign");
    let ca_end = certificate_not_after(authority.cert_der()).expect("ca not after");
    assert_eq!(issued_certificate.not_after_unix, ca_end);
}

#[test]
fn fingerprints_are_stable() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let fingerprint = authority.fingerprint();
    assert!(fingerprint.starts_with("SHA256:"));
    let hex_part = &fingerprint["SHA256:".len()..];
    assert_eq!(hex_part.len(), 64);
    assert!(
        hex_part
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    );
    assert_eq!(fingerprint, authority.fingerprint());
    assert_eq!(
        fingerprint_pem(authority.cert_pem()).expect("fingerprint"),
        fingerprint
    );
    assert_eq!(fingerprint_der(authority.cert_der()), fingerprint);
    // Known vector: SHA-256 of the empty string.
    assert_eq!(
        fingerprint_der(b""),
        "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let other = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    assert_ne!(other.fingerprint(), fingerprint);
}

#[test]
fn chains_and_bad_pem() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let identity = authority
        .issue_server_identity(&[], &[], DAY)
        .expect("identity");
    let chain = pem_to_der_chain(&identity.cert_chain_pem).expect("chain");
    assert_eq!(chain.len(), 2);
    assert_eq!(fingerprint_der(&chain[1]), authority.fingerprint());
    assert!(matches!(
        pem_to_der_chain(""),
        Err(PkiError::NoCertificate { .. })
    ));
    // A key alone is not a certificate chain.
    assert!(matches!(
        pem_to_der_chain(authority.key_pem().expose()),
        Err(PkiError::NoCertificate { .. })
    ));
    let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        pem_to_der_chain(broken),
        Err(PkiError::BadPem { .. })
    ));
    assert!(matches!(
        agent_id_from_certificate(b"junk"),
        Err(PkiError::BadCertificate { .. })
    ));
}

#[test]
fn debug_of_the_ca_hides_the_key() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("generate CA");
    let rendered = format!("{authority:?}");
    assert!(!rendered.contains("PRIVATE KEY"), "{rendered}");
    assert!(rendered.contains(&authority.fingerprint()));
}
