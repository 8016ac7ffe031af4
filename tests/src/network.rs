//! A docker bridge network (a site, or the `core` network of the controller) and a
//! docker volume, each removed when the last handle is dropped.
//! Containers hold a handle to every network they joined, so a network is removed only
//! after its containers. Does not attach containers (see `container`).

use std::sync::Arc;

use anyhow::Result;

use crate::docker::docker;
use crate::naming::label_args;

/// A bridge network. Cloning shares it; Docker removes it when the last clone drops.
#[derive(Clone)]
pub struct Network {
    inner: Arc<NetworkInner>,
}

struct NetworkInner {
    name: String,
}

impl Network {
    /// Creates a labelled bridge network named `name` for test run `run_id`.
    pub(crate) fn create(name: &str, run_id: &str) -> Result<Network> {
        let labels = label_args(run_id);
        let mut args = vec!["network", "create", "--driver", "bridge"];
        args.extend(labels.iter().map(String::as_str));
        args.push(name);
        docker(&args).map_err(|error| error.context(format!("creating network {name}")))?;
        Ok(Network {
            inner: Arc::new(NetworkInner {
                name: name.to_string(),
            }),
        })
    }

    /// The Docker name of the network.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl Drop for NetworkInner {
    fn drop(&mut self) {
        if let Err(error) = docker(&["network", "rm", &self.name]) {
            eprintln!(
                "rotor-tests: could not remove network {}: {error:#}",
                self.name
            );
        }
    }
}

/// A named docker volume, removed on drop (after the containers that hold it).
pub struct Volume {
    name: String,
}

impl Volume {
    /// Creates a labelled volume named `name` for test run `run_id`.
    pub(crate) fn create(name: &str, run_id: &str) -> Result<Volume> {
        let labels = label_args(run_id);
        let mut args = vec!["volume", "create"];
        args.extend(labels.iter().map(String::as_str));
        args.push(name);
        docker(&args).map_err(|error| error.context(format!("creating volume {name}")))?;
        Ok(Volume {
            name: name.to_string(),
        })
    }

    /// The Docker name of the volume.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        if let Err(error) = docker(&["volume", "rm", "-f", &self.name]) {
            eprintln!(
                "rotor-tests: could not remove volume {}: {error:#}",
                self.name
            );
        }
    }
}
