//! Password policies (`sys/policies/password/<name>`): what a generated password looks like.
//!
//! - `policy.rs`: the HCL document, parsed and validated (impossible policies refused).
//! - `generate.rs`: passwords from a policy, with the OS CSPRNG and no modulo bias.
//! - `store.rs`: the stored policies.
//!
//! The HTTP surface is `api/sys/password_policies.rs`; which policy an OS account uses is
//! `engines/os/password.rs`. Must not know about engines or HTTP.

pub mod generate;
pub mod policy;
pub mod store;

pub use generate::{GenerateError, generate};
pub use policy::{CharsetRule, PasswordPolicy, PasswordPolicyError};
