//! rotor-controller: the controller (`rotor server`) and the operator CLI.
//!
//! See ARCHITECTURE.md for the code map. The binary in main.rs only calls [`cli::main`].
#![forbid(unsafe_code)]

pub mod acl;
pub mod api;
pub mod audit;
pub mod auth;
pub mod change;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod engines;
pub mod leases;
pub mod metrics;
pub mod password_policy;
pub mod pki;
pub mod scheduler;
pub mod server;
pub mod store;
#[cfg(test)]
pub mod testing;
pub mod tokens;
pub mod ui;
