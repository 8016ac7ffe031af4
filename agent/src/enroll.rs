//! `rotor-agent enroll`: trade a one-time token for an identity.
//!
//! Makes the key pair on this host (the private key never leaves it), pins the controller's
//! CA by the fingerprint the operator was given, sends a CSR over QUIC and stores the signed
//! certificate, the CA and the agent's state in the agent directory. Must not run jobs.

use std::path::Path;
use std::time::Duration;

use rotor_common::pki;
use rotor_common::secret::Password;
use rotor_common::tls;
use rotor_common::wire::{self, AgentMessage, ControllerMessage, EnrollRequest};

use crate::identity::{AgentState, Identity, STATE_FILE};
use crate::link::resolve_controller;

const ENROLL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the QUIC handshake may go unanswered before a TCP connection to the same address
/// is tried: agents speak QUIC (UDP) to the agent port, so an address where TCP answers
/// instead is most likely the controller's HTTPS API port, and waiting the full
/// `ENROLL_TIMEOUT` would only end in "no answer". A live agent port answers in milliseconds.
const API_PORT_PROBE_AFTER: Duration = Duration::from_secs(3);
/// How long that TCP connection may take.
const API_PORT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(
        "agent directory {0} already holds an identity; use another --dir, or --force to replace it"
    )]
    AlreadyEnrolled(String),
    #[error(
        "controller {controller}: its CA does not match the fingerprint you gave: expected {expected}, controller offered {offered}; check the fingerprint from `rotor write agents/enroll`"
    )]
    FingerprintMismatch {
        controller: String,
        expected: String,
        offered: String,
    },
    #[error("controller {controller} refused the enrollment: {reason}")]
    Refused { controller: String, reason: String },
    #[error(
        "controller {controller}: no QUIC answer there, but a TCP service accepts connections: that is most likely the controller's HTTPS API port. Agents use the agent port (QUIC over UDP), which the dev server prints as `agents: host:port` and `rotor write agents/enroll` answers as controller_addr"
    )]
    ApiPortGiven { controller: String },
    #[error("controller {controller}: {detail}")]
    Connection { controller: String, detail: String },
    #[error("enrollment: {0}")]
    Local(String),
}

/// Completes only when, after [`API_PORT_PROBE_AFTER`], a TCP connection to `address`
/// succeeds: the sign that it is the HTTPS API's port and not the agent port. Otherwise never
/// completes, leaving the handshake to its own timeout.
async fn tcp_answers_instead(address: std::net::SocketAddr) {
    tokio::time::sleep(API_PORT_PROBE_AFTER).await;
    let probe = tokio::time::timeout(
        API_PORT_PROBE_TIMEOUT,
        tokio::net::TcpStream::connect(address),
    )
    .await;
    if !matches!(probe, Ok(Ok(_))) {
        std::future::pending::<()>().await;
    }
}

/// Canonical form of a fingerprint for comparison: lowercase hex, no prefix, no colons.
fn canonical_fingerprint(text: &str) -> String {
    let text = text.trim();
    let text = text
        .strip_prefix("SHA256:")
        .or_else(|| text.strip_prefix("sha256:"))
        .unwrap_or(text);
    text.chars()
        .filter(|c| *c != ':')
        .flat_map(char::to_lowercase)
        .collect()
}

pub async fn enroll(
    controller: &str,
    token: Password,
    ca_fingerprint: &str,
    dir: &Path,
    force: bool,
) -> Result<AgentState, EnrollError> {
    if dir.join(STATE_FILE).exists() && !force {
        return Err(EnrollError::AlreadyEnrolled(dir.display().to_string()));
    }
    let connection_error = |detail: String| EnrollError::Connection {
        controller: controller.to_string(),
        detail,
    };
    let address = resolve_controller(controller)
        .await
        .map_err(connection_error)?;
    let (key, csr_pem) = pki::generate_agent_key_and_csr("rotor-agent")
        .map_err(|error| EnrollError::Local(error.to_string()))?;
    let (client_config, observer) = tls::quic_enrollment_client_config(ca_fingerprint)
        .map_err(|error| EnrollError::Local(error.to_string()))?;
    let bind: std::net::SocketAddr = if address.is_ipv6() {
        "[::]:0"
            .parse()
            .map_err(|_| EnrollError::Local("bad bind address".into()))?
    } else {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| EnrollError::Local("bad bind address".into()))?
    };
    let endpoint = quinn::Endpoint::client(bind)
        .map_err(|error| EnrollError::Local(format!("cannot open a UDP socket: {error}")))?;
    let outcome = tokio::time::timeout(ENROLL_TIMEOUT, async {
        let connecting = endpoint
            .connect_with(client_config, address, pki::CONTROLLER_SERVER_NAME)
            .map_err(|error| connection_error(error.to_string()))?;
        let answered = tokio::select! {
            answered = connecting => answered,
            () = tcp_answers_instead(address) => {
                return Err(EnrollError::ApiPortGiven {
                    controller: controller.to_string(),
                });
            }
        };
        let connection = match answered {
            Ok(connection) => connection,
            Err(error) => {
                if let Some(offered) = observer.offered_fingerprints().last() {
                    return Err(EnrollError::FingerprintMismatch {
                        controller: controller.to_string(),
                        expected: ca_fingerprint.to_string(),
                        offered: offered.clone(),
                    });
                }
                return Err(connection_error(format!("TLS handshake failed: {error}")));
            }
        };
        let (mut send, mut recv) = connection
            .open_bi()
            .await
            .map_err(|error| connection_error(error.to_string()))?;
        let request = AgentMessage::Enroll(EnrollRequest {
            protocol_version: wire::PROTOCOL_VERSION,
            token,
            csr_pem,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
        });
        wire::write_frame(&mut send, &request)
            .await
            .map_err(|error| connection_error(error.to_string()))?;
        let answer = wire::read_frame::<_, ControllerMessage>(&mut recv)
            .await
            .map_err(|error| connection_error(error.to_string()))?;
        connection.close(quinn::VarInt::from_u32(0), b"enrolled");
        Ok(answer)
    })
    .await
    .map_err(|_| {
        connection_error(format!(
            "no answer within {}s: is the controller running, and is this its agent port (the dev server prints it as `agents: host:port`)?",
            ENROLL_TIMEOUT.as_secs()
        ))
    })??;
    endpoint.wait_idle().await;
    let (agent_id, site, certificate_pem, ca_pem) = match outcome {
        Some(ControllerMessage::Enrolled {
            agent_id,
            site,
            certificate_pem,
            ca_pem,
        }) => (agent_id, site, certificate_pem, ca_pem),
        Some(ControllerMessage::Refused { reason }) => {
            return Err(EnrollError::Refused {
                controller: controller.to_string(),
                reason,
            });
        }
        _ => {
            return Err(connection_error(
                "unexpected answer to the enrollment".into(),
            ));
        }
    };
    let received =
        pki::fingerprint_pem(&ca_pem).map_err(|error| EnrollError::Local(error.to_string()))?;
    if canonical_fingerprint(&received) != canonical_fingerprint(ca_fingerprint) {
        return Err(EnrollError::FingerprintMismatch {
            controller: controller.to_string(),
            expected: ca_fingerprint.to_string(),
            offered: received,
        });
    }
    let state = AgentState {
        agent_id: agent_id.to_string(),
        site,
        controllers: vec![controller.to_string()],
    };
    Identity {
        state: state.clone(),
        key,
        cert_pem: certificate_pem,
        ca_pem,
    }
    .save(dir)
    .map_err(|error| EnrollError::Local(error.to_string()))?;
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::canonical_fingerprint;

    #[test]
    fn fingerprints_compare_in_any_spelling() {
        assert_eq!(canonical_fingerprint("SHA256:AB:cd"), "abcd");
        assert_eq!(canonical_fingerprint("abcd"), "abcd");
        assert_ne!(
            canonical_fingerprint("SHA256:abce"),
            canonical_fingerprint("abcd")
        );
    }
}
