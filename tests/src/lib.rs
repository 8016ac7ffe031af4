//! End-to-end harness: real Debian hosts in containers on per-site docker networks,
//! Rotor's controller and agents in containers beside them, and the faults a test
//! inflicts on them. Every resource is labelled, named per test run and removed on drop.
//! The harness never skips on its own: only `ROTOR_E2E=skip` does (see `skip`).
//!
//! ```no_run
//! use rotor_tests::prelude::*;
//! # fn main() -> anyhow::Result<()> {
//! let site = Site::new("a")?;
//! let host = site.host("web-1").with_parent("mgmt", "mgmt-pw").with_user("app1", "app1-pw").start()?;
//! assert_password(&host, "app1", "app1-pw");
//! assert_not_password(&host, "app1", "old");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod assertions;
pub mod bench;
pub mod browser;
pub mod cleanup;
pub mod container;
pub mod docker;
pub mod faults;
pub mod host;
pub mod image;
pub mod inprocess;
pub mod login;
pub mod naming;
pub mod network;
pub mod otp_helper;
pub mod packages;
pub mod postgres;
pub mod process;
pub mod rotor;
pub mod site;
pub mod skip;
pub mod wait;

pub use assertions::{assert_not_password, assert_password};
pub use container::Container;
pub use faults::Faults;
pub use host::Host;
pub use login::{LoginError, LoginFailure};
pub use network::Network;
pub use rotor::{Agent, Rotor};
pub use site::Site;
pub use skip::skip_requested;

/// What a scenario needs: `use rotor_tests::prelude::*;`.
pub mod prelude {
    pub use crate::assertions::{assert_not_password, assert_password};
    pub use crate::faults::Faults;
    pub use crate::host::Host;
    pub use crate::login::{LoginError, LoginFailure};
    pub use crate::rotor::{Agent, Rotor};
    pub use crate::site::Site;
    pub use crate::skip::skip_requested;
    pub use crate::wait::wait_until;
}
