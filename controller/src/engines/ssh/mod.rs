//! The SSH secrets engine (mount type `ssh`), certificate half: a CA key per mount that
//! signs OpenSSH user and host certificates within a role's limits, and key pairs issued
//! with their certificate. The OTP half (issue 8) shares the role record (`key_type=otp`).
//!
//! - `ca.rs`: the CA key, sealed in the store; never returned or logged.
//! - `keys.rs`: key types and sizes, generation, parsing, `allowed_user_key_lengths`.
//! - `roles.rs`: the role record (`key_type` ca | otp) and its API form.
//! - `policy.rs`: the pure decisions: what a request may get from a role.
//! - `sign.rs`: building and signing a certificate with ssh-key.
//! - `otp.rs`: one-time passwords: creds under a lease, lookup, zero-address roles,
//!   verify-and-consume (HTTP and the agents' PAM helper), address-to-agent bindings.
//! - `paths.rs`: the HTTP surface.
//!
//! Touches no host and no agent: certificates are checked by the hosts' own sshd.

pub mod ca;
pub mod keys;
pub mod otp;
pub mod paths;
pub mod policy;
pub mod roles;
pub mod sign;

#[cfg(test)]
mod tests;
