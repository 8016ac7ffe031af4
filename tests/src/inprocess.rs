//! A controller's agent side in this process, for tests that need no containers: an
//! in-memory store, the controller's CA, and the real dispatcher serving QUIC on loopback;
//! agents enrolled into it run the real agent link with a job handler the test chooses.
//!
//! Owns starting these and enrolling agents. Must not assert anything: scenarios do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rotor_common::pki::CertificateAuthority;
use rotor_common::secret::Password;
use rotor_controller::dispatch::{DispatchSettings, Dispatcher, registry};
use rotor_controller::store::{Sealer, Store};

/// The store, CA and dispatcher of an in-process controller, and where agents dial it.
pub struct InProcessController {
    pub store: Arc<Store>,
    pub ca: Arc<CertificateAuthority>,
    pub dispatcher: Dispatcher,
    /// `127.0.0.1:<port>` of its QUIC endpoint.
    pub address: String,
}

impl InProcessController {
    /// Starts one with `settings`; must run inside a tokio runtime.
    pub fn start(settings: DispatchSettings) -> Result<Self> {
        rotor_common::tls::install_crypto_provider();
        let store = Arc::new(Store::in_memory(Sealer::ephemeral())?);
        let ca = Arc::new(rotor_controller::pki::load_or_create_ca(&store)?);
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let identity = rotor_controller::pki::issue_server_identity(&ca, &[], &[loopback])?;
        let config = rotor_common::tls::quic_server_config(
            ca.cert_pem(),
            &identity,
            Duration::from_secs(30),
            Duration::from_secs(5),
        )?;
        let endpoint = quinn::Endpoint::server(config, SocketAddr::new(loopback, 0))?;
        let address = endpoint.local_addr()?.to_string();
        let dispatcher = Dispatcher::new(store.clone(), ca.clone(), settings);
        let serving = dispatcher.clone();
        tokio::spawn(async move { serving.serve(endpoint).await });
        Ok(Self {
            store,
            ca,
            dispatcher,
            address,
        })
    }

    /// Enrolls an agent of `site` into a directory of its own under `parent`; answers the
    /// agent's id and directory (run it with `rotor_agent::link::run_with`).
    pub async fn enroll_agent(&self, site: &str, parent: &Path) -> Result<(String, PathBuf)> {
        let (token, record) =
            registry::create_enrollment_token(&self.store, site, Duration::from_secs(60))?;
        let dir = parent.join(&record.agent_id);
        let state = rotor_agent::enroll::enroll(
            &self.address,
            Password::new(token),
            &self.ca.fingerprint(),
            &dir,
            false,
        )
        .await
        .map_err(|error| anyhow::anyhow!("enrolling an agent of site {site}: {error}"))?;
        Ok((state.agent_id, dir))
    }
}
