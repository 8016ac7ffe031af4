//! A site: one docker bridge network standing for a segmented network, the hosts on it
//! and, on first login, a small "probe" container from which logins are tried (so they
//! come from inside the site, as an agent's would).
//! Does not know Rotor; `rotor` attaches agents to a site's network.

use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow};

use crate::cleanup::sweep_once;
use crate::container::{Container, ContainerSpec};
use crate::docker::require_docker;
use crate::host::HostBuilder;
use crate::image::test_image;
use crate::naming::{current_run_id, validate_part};
use crate::network::Network;

/// A site network. Cloning shares it; it is removed with the last clone and the last
/// host, agent or probe on it.
#[derive(Clone)]
pub struct Site {
    shared: Arc<SiteShared>,
}

struct SiteShared {
    name: String,
    run_id: String,
    /// Created on the first login; shared by concurrent logins (hence Arc, not a guard).
    probe: Mutex<Option<Arc<Container>>>,
    network: Network,
}

impl Site {
    /// Creates the site's network, `<run id>-<name>`. First checks (once per process)
    /// that Docker and the test image are there, failing with what is missing.
    pub fn new(name: &str) -> Result<Site> {
        validate_part("site", name)?;
        require_docker()?;
        sweep_once();
        test_image()?;
        let run_id = current_run_id();
        let network = Network::create(&format!("{run_id}-{name}"), &run_id)?;
        Ok(Site {
            shared: Arc::new(SiteShared {
                name: name.to_string(),
                run_id,
                probe: Mutex::new(None),
                network,
            }),
        })
    }

    /// The site's name as the test gave it (`a`), which is also its Rotor site name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The site's docker network.
    pub fn network(&self) -> &Network {
        &self.shared.network
    }

    /// Describes a host to start on this site.
    pub fn host(&self, name: &str) -> HostBuilder {
        HostBuilder::new(self.clone(), name)
    }

    /// The test run that created this site (prefix of every name it makes).
    pub(crate) fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// The site's probe container, started on first use.
    pub(crate) fn probe(&self) -> Result<Arc<Container>> {
        let mut probe = self
            .shared
            .probe
            .lock()
            .map_err(|_| anyhow!("probe of site {} poisoned by a panic", self.name()))?;
        if let Some(existing) = probe.as_ref() {
            return Ok(existing.clone());
        }
        let name = format!("{}-{}-probe", self.run_id(), self.name());
        let started = Arc::new(Container::start(ContainerSpec {
            role: format!("login probe of site {} ({name})", self.name()),
            name,
            run_id: self.run_id(),
            network: self.network(),
            run_options: Vec::new(),
            command: vec!["/usr/local/sbin/host-init".to_string(), "idle".to_string()],
        })?);
        *probe = Some(started.clone());
        Ok(started)
    }
}
