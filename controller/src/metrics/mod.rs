//! The controller's metrics, as `sys/metrics` serves them.
//!
//! - `registry.rs`: event counters and histograms (rotations, verifications, API requests).
//! - `fleet.rs`: gauges read at scrape time (accounts by status, agents and jobs per site).
//! - `render.rs`: Prometheus text and Vault's JSON shape.
//!
//! The registry is one per process ([`global`]), like Prometheus clients' default registry:
//! the OS driver and the API count into it without threading a handle through every
//! constructor. Must not decide anything from a metric.

pub mod fleet;
pub mod registry;
pub mod render;

use std::sync::LazyLock;

pub use registry::{Registry, RotationOutcome, VerificationKind};

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process-wide registry.
pub fn global() -> &'static Registry {
    &GLOBAL
}
