//! The database secrets engine (mount type `database`): PostgreSQL connections reached
//! through an agent of their site, roles, and dynamic credentials under leases that never
//! leave a role Rotor does not know about.
//!
//! - `url.rs`: `connection_url` parsing (pure).
//! - `username.rs`: generated usernames within 63 bytes, random part never cut (pure).
//! - `model.rs`: connection and role records; the connection password sealed.
//! - `jobs.rs`: database jobs through the dispatcher, certain failures apart from unknown.
//! - `creds.rs`: issuance with the lease written ahead, recovery, revoke and renew actions.
//! - `paths.rs`: the HTTP surface.
//!
//! Never touches QUIC and never connects to a database: agents do.

pub mod creds;
pub mod jobs;
pub mod model;
pub mod paths;
pub mod url;
pub mod username;

#[cfg(test)]
mod tests;
