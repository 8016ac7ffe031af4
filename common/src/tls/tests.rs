//! Handshake tests over real quinn endpoints on 127.0.0.1: mutual TLS, foreign CAs,
//! enrollment pinning, ALPN, and configuration validation.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use quinn::Endpoint;

use super::*;
use crate::pki::{CertificateAuthority, generate_agent_key_and_csr};
use crate::wire::{
    AgentMessage, ControllerMessage, Hello, PROTOCOL_VERSION, read_frame, write_frame,
};

const IDLE: Duration = Duration::from_secs(10);
const KEEP_ALIVE: Duration = Duration::from_secs(3);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Upper bound for any single step, so a broken handshake fails the test instead of hanging.
const STEP: Duration = Duration::from_secs(10);

struct AgentCredentials {
    id: AgentId,
    cert_pem: String,
    key: PrivateKeyPem,
}

fn enroll_agent(authority: &CertificateAuthority, id: &str) -> AgentCredentials {
    let id = AgentId::new(id).expect("agent id");
    let (key, csr) = generate_agent_key_and_csr(id.as_str()).expect("csr");
    let issued = authority.sign_agent_csr(&csr, &id, DAY).expect("sign");
    AgentCredentials {
        id,
        cert_pem: issued.cert_pem,
        key,
    }
}

fn server_identity(authority: &CertificateAuthority) -> ServerIdentity {
    authority
        .issue_server_identity(
            &["localhost".to_owned()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            DAY,
        )
        .expect("server identity")
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn server_endpoint(authority: &CertificateAuthority, identity: &ServerIdentity) -> Endpoint {
    let config = quic_server_config(authority.cert_pem(), identity, IDLE, KEEP_ALIVE)
        .expect("server config");
    Endpoint::server(config, loopback()).expect("bind server")
}

fn client_endpoint() -> Endpoint {
    Endpoint::client(loopback()).expect("bind client")
}

/// Accepts one connection and returns the handshake's outcome on the server side.
async fn accept_one(server: &Endpoint) -> Result<quinn::Connection, quinn::ConnectionError> {
    let incoming = tokio::time::timeout(STEP, server.accept())
        .await
        .expect("a client arrives in time")
        .expect("endpoint open");
    tokio::time::timeout(STEP, incoming)
        .await
        .expect("server handshake ends in time")
}

/// Connects and proves the connection usable by a round trip the server must answer;
/// `Err` if the handshake or the first exchange fails.
async fn connect_and_exchange(
    client: &Endpoint,
    config: quinn::ClientConfig,
    server_address: SocketAddr,
    server_name: &str,
) -> Result<quinn::Connection, String> {
    let connecting = client
        .connect_with(config, server_address, server_name)
        .map_err(|error| format!("connect: {error}"))?;
    let connection = tokio::time::timeout(STEP, connecting)
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|error| format!("handshake: {error}"))?;
    let (mut send, mut receive) = connection
        .open_bi()
        .await
        .map_err(|error| format!("open stream: {error}"))?;
    write_frame(&mut send, &AgentMessage::Heartbeat { seq: 1 })
        .await
        .map_err(|error| format!("write: {error}"))?;
    match tokio::time::timeout(STEP, read_frame::<_, ControllerMessage>(&mut receive)).await {
        Ok(Ok(Some(_))) => Ok(connection),
        Ok(Ok(None)) => Err("stream closed without an answer".to_owned()),
        Ok(Err(error)) => Err(format!("read: {error}")),
        Err(_) => Err("no answer in time".to_owned()),
    }
}

/// Server side of [`connect_and_exchange`]: answers one frame on the first stream.
async fn answer_one_frame(connection: &quinn::Connection) {
    if let Ok((mut send, mut receive)) = connection.accept_bi().await
        && let Ok(Some(_)) = read_frame::<_, AgentMessage>(&mut receive).await
    {
        let _ = write_frame(&mut send, &ControllerMessage::Heartbeat { seq: 1 }).await;
        let _ = send.finish();
        // Keep the connection until the peer has read the answer.
        let _ = tokio::time::timeout(STEP, connection.closed()).await;
    }
}

#[tokio::test]
async fn mutual_tls_handshake_identifies_the_agent() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    let identity = server_identity(&authority);
    let agent = enroll_agent(&authority, "agent-one");
    let server = server_endpoint(&authority, &identity);
    let server_address = server.local_addr().expect("address");

    let expected_id = agent.id.clone();
    let server_task = tokio::spawn(async move {
        let connection = accept_one(&server).await.expect("server handshake");
        let peer = peer_agent_id(&connection)
            .expect("a client certificate")
            .expect("an agent id");
        assert_eq!(peer, expected_id);
        let (mut send, mut receive) = connection.accept_bi().await.expect("control stream");
        let hello: AgentMessage = read_frame(&mut receive)
            .await
            .expect("read")
            .expect("a frame");
        assert!(matches!(hello, AgentMessage::Hello(_)));
        let welcome = ControllerMessage::Welcome {
            agent_id: peer,
            heartbeat_interval_ms: 1000,
            missed_beats_allowed: 3,
        };
        write_frame(&mut send, &welcome)
            .await
            .expect("write welcome");
        send.finish().expect("finish");
        let _ = tokio::time::timeout(STEP, connection.closed()).await;
        server.wait_idle().await;
    });

    let config = quic_client_config(
        authority.cert_pem(),
        &agent.cert_pem,
        &agent.key,
        IDLE,
        KEEP_ALIVE,
    )
    .expect("client config");
    let client = client_endpoint();
    let connection = client
        .connect_with(config, server_address, CONTROLLER_SERVER_NAME)
        .expect("connect")
        .await
        .expect("client handshake");
    assert_eq!(
        connection.handshake_data().and_then(|data| {
            data.downcast::<quinn::crypto::rustls::HandshakeData>()
                .ok()
                .and_then(|data| data.protocol)
        }),
        Some(ALPN.to_vec())
    );
    // The controller presents no agent identity.
    assert!(matches!(
        peer_agent_id(&connection),
        Some(Err(PkiError::NoAgentUri))
    ));

    let (mut send, mut receive) = connection.open_bi().await.expect("open control stream");
    let hello = AgentMessage::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: "test".into(),
        site: "site-a".into(),
        capabilities: vec![],
        unacknowledged_results: vec![],
    });
    write_frame(&mut send, &hello).await.expect("write hello");
    let welcome: ControllerMessage = read_frame(&mut receive)
        .await
        .expect("read")
        .expect("a frame");
    assert!(
        matches!(welcome, ControllerMessage::Welcome { ref agent_id, .. } if *agent_id == agent.id)
    );
    connection.close(0u32.into(), b"done");
    server_task.await.expect("server task");
    client.wait_idle().await;
}

#[tokio::test]
async fn controller_is_verified_by_its_fixed_name_whatever_was_dialled() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    // A server certificate with no names beyond the fixed one.
    let identity = authority
        .issue_server_identity(&[], &[], DAY)
        .expect("identity");
    let agent = enroll_agent(&authority, "agent-two");
    let server = server_endpoint(&authority, &identity);
    let server_address = server.local_addr().expect("address");
    let server_task = tokio::spawn(async move {
        let connection = accept_one(&server).await.expect("server handshake");
        answer_one_frame(&connection).await;
    });
    let config = quic_client_config(
        authority.cert_pem(),
        &agent.cert_pem,
        &agent.key,
        IDLE,
        KEEP_ALIVE,
    )
    .expect("client config");
    let client = client_endpoint();
    let connection = connect_and_exchange(&client, config, server_address, "127.0.0.1")
        .await
        .expect("dialled by IP, verified by name");
    connection.close(0u32.into(), b"done");
    server_task.await.expect("server task");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_rejected() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    let rogue_authority = CertificateAuthority::generate("Rogue CA").expect("rogue CA");
    let identity = server_identity(&authority);
    let rogue_agent = enroll_agent(&rogue_authority, "intruder");
    let server = server_endpoint(&authority, &identity);
    let server_address = server.local_addr().expect("address");

    let server_task = tokio::spawn(async move {
        match accept_one(&server).await {
            Ok(connection) => {
                answer_one_frame(&connection).await;
                panic!("server accepted a certificate from another CA");
            }
            Err(error) => error,
        }
    });
    // The agent trusts the real controller; only its own certificate is foreign.
    let config = quic_client_config(
        authority.cert_pem(),
        &rogue_agent.cert_pem,
        &rogue_agent.key,
        IDLE,
        KEEP_ALIVE,
    )
    .expect("client config");
    let client = client_endpoint();
    let result =
        connect_and_exchange(&client, config, server_address, CONTROLLER_SERVER_NAME).await;
    assert!(
        result.is_err(),
        "a foreign client certificate must not get an answer"
    );
    let server_error = server_task.await.expect("server task");
    let rendered = server_error.to_string();
    assert!(
        rendered.to_lowercase().contains("certificate") || rendered.contains("issuer"),
        "{rendered}"
    );
}

#[tokio::test]
async fn agent_refuses_a_controller_from_another_ca() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    let impostor_authority = CertificateAuthority::generate("Impostor CA").expect("impostor CA");
    let agent = enroll_agent(&authority, "agent-three");
    let impostor = server_endpoint(&impostor_authority, &server_identity(&impostor_authority));
    let server_address = impostor.local_addr().expect("address");
    let server_task = tokio::spawn(async move {
        let _ = accept_one(&impostor).await;
    });
    let config = quic_client_config(
        authority.cert_pem(),
        &agent.cert_pem,
        &agent.key,
        IDLE,
        KEEP_ALIVE,
    )
    .expect("client config");
    let client = client_endpoint();
    let error = connect_and_exchange(&client, config, server_address, CONTROLLER_SERVER_NAME)
        .await
        .expect_err("impostor controller");
    assert!(error.starts_with("handshake"), "{error}");
    server_task.await.expect("server task");
}

#[tokio::test]
async fn enrollment_connects_only_with_the_right_fingerprint() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    // The identity carries only the leaf: the server configuration appends the CA itself.
    let (issued, key) = authority
        .issue_server_certificate(&[], &[], DAY)
        .expect("server certificate");
    let identity = ServerIdentity {
        cert_chain_pem: issued.cert_pem,
        key,
    };
    let server = server_endpoint(&authority, &identity);
    let server_address = server.local_addr().expect("address");

    let server_task = tokio::spawn(async move {
        // First connection: the right fingerprint; an enrolling agent has no certificate.
        let connection = accept_one(&server).await.expect("enrollment handshake");
        assert!(peer_agent_id(&connection).is_none());
        answer_one_frame(&connection).await;
        // Second connection: the wrong fingerprint; the client aborts the handshake.
        assert!(accept_one(&server).await.is_err());
    });

    let client = client_endpoint();
    let uppercase = authority
        .fingerprint()
        .to_uppercase()
        .replacen("SHA256:", "sha256:", 1);
    let (config, observer) = quic_enrollment_client_config(&uppercase).expect("enrollment config");
    assert_eq!(observer.expected_fingerprint(), authority.fingerprint());
    let connection = connect_and_exchange(&client, config, server_address, CONTROLLER_SERVER_NAME)
        .await
        .expect("enrollment with the right fingerprint");
    assert!(observer.pinned_ca_offered());
    assert!(observer.mismatch_message().is_none());
    assert_eq!(observer.offered_fingerprints().len(), 2);
    connection.close(0u32.into(), b"done");

    let wrong = format!("SHA256:{}", "ab".repeat(32));
    let (config, observer) = quic_enrollment_client_config(&wrong).expect("enrollment config");
    let error = connect_and_exchange(&client, config, server_address, CONTROLLER_SERVER_NAME)
        .await
        .expect_err("wrong fingerprint");
    assert!(error.starts_with("handshake"), "{error}");
    assert!(!observer.pinned_ca_offered());
    let offered = observer.offered_fingerprints();
    assert!(offered.contains(&authority.fingerprint()), "{offered:?}");
    let message = observer.mismatch_message().expect("a mismatch explanation");
    assert!(message.contains(&wrong), "{message}");
    assert!(message.contains(&authority.fingerprint()), "{message}");
    server_task.await.expect("server task");
}

#[tokio::test]
async fn enrollment_refuses_a_pinned_ca_that_did_not_sign_the_leaf() {
    // An attacker can send the real CA certificate (it is public) next to its own leaf.
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    let attacker = CertificateAuthority::generate("Attacker CA").expect("attacker CA");
    let (issued, key) = attacker
        .issue_server_certificate(&[], &[], DAY)
        .expect("attacker leaf");
    let identity = ServerIdentity::from_parts(&issued, key, authority.cert_pem());
    let server = server_endpoint(&attacker, &identity);
    let server_address = server.local_addr().expect("address");
    let server_task = tokio::spawn(async move {
        let _ = accept_one(&server).await;
    });
    let (config, observer) =
        quic_enrollment_client_config(&authority.fingerprint()).expect("config");
    let client = client_endpoint();
    let error = connect_and_exchange(&client, config, server_address, CONTROLLER_SERVER_NAME)
        .await
        .expect_err("leaf not signed by the pinned CA");
    assert!(error.starts_with("handshake"), "{error}");
    assert!(observer.pinned_ca_offered());
    server_task.await.expect("server task");
}

#[tokio::test]
async fn alpn_mismatch_fails_the_handshake() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    let identity = server_identity(&authority);
    let server = server_endpoint(&authority, &identity);
    let server_address = server.local_addr().expect("address");
    let server_task = tokio::spawn(async move { accept_one(&server).await.is_err() });

    let provider = provider();
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(root_store(authority.cert_pem()).expect("roots")),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ControllerNameVerifier { inner: verifier }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"rotor/999".to_vec()];
    let quic = QuicClientConfig::try_from(tls).expect("quic");
    let config = quinn::ClientConfig::new(Arc::new(quic));

    let client = client_endpoint();
    let error = connect_and_exchange(&client, config, server_address, CONTROLLER_SERVER_NAME)
        .await
        .expect_err("ALPN mismatch");
    assert!(error.starts_with("handshake"), "{error}");
    assert!(
        server_task.await.expect("server task"),
        "server must refuse the handshake"
    );
}

#[test]
fn keep_alive_must_be_below_idle_timeout() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    let identity = server_identity(&authority);
    let error = quic_server_config(
        authority.cert_pem(),
        &identity,
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .expect_err("keep-alive equal to idle");
    assert!(
        matches!(error, TlsError::KeepAliveNotBelowIdleTimeout { .. }),
        "{error}"
    );
    let agent = enroll_agent(&authority, "agent-four");
    let error = quic_client_config(
        authority.cert_pem(),
        &agent.cert_pem,
        &agent.key,
        Duration::from_secs(5),
        Duration::ZERO,
    )
    .expect_err("zero keep-alive");
    assert!(error.to_string().contains("keep-alive"), "{error}");
}

#[test]
fn configuration_errors_name_what_failed() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    let identity = server_identity(&authority);
    let error = quic_server_config("nonsense", &identity, IDLE, KEEP_ALIVE).expect_err("bad CA");
    assert!(error.to_string().contains("CA certificate"), "{error}");
    let broken = ServerIdentity {
        cert_chain_pem: identity.cert_chain_pem.clone(),
        key: PrivateKeyPem::new("nope"),
    };
    let error =
        quic_server_config(authority.cert_pem(), &broken, IDLE, KEEP_ALIVE).expect_err("bad key");
    assert!(matches!(error, TlsError::PrivateKey { .. }), "{error}");
    assert!(!format!("{error:?}").contains("nope"));
    // A key that does not match the certificate.
    let other_key = server_identity(&authority).key;
    let mismatched = ServerIdentity {
        cert_chain_pem: identity.cert_chain_pem.clone(),
        key: other_key,
    };
    assert!(https_server_config(&mismatched).is_err());
}

#[test]
fn fingerprints_are_normalized() {
    let canonical = format!("SHA256:{}", "0123456789abcdef".repeat(4));
    for form in [
        canonical.clone(),
        canonical.to_uppercase(),
        "0123456789abcdef".repeat(4),
        format!(
            "sha256:{}",
            "01:23:45:67:89:ab:cd:ef:".repeat(4).trim_end_matches(':')
        ),
        format!("  {canonical}\n"),
    ] {
        assert_eq!(normalize_fingerprint(&form).expect(&form), canonical);
    }
    for bad in [
        "",
        "SHA256:",
        "SHA256:abc",
        &format!("SHA256:{}", "g".repeat(64)),
    ] {
        assert!(
            matches!(
                normalize_fingerprint(bad),
                Err(TlsError::BadFingerprint { .. })
            ),
            "{bad}"
        );
    }
    assert!(quic_enrollment_client_config("not-a-fingerprint").is_err());
}

#[test]
fn https_configuration_offers_h2_and_http1() {
    let authority = CertificateAuthority::generate("Rotor test CA").expect("CA");
    let config = https_server_config(&server_identity(&authority)).expect("https config");
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn installing_the_provider_twice_is_harmless() {
    install_crypto_provider();
    install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
}
