//! Shared between controller and agent: the wire protocol, identifiers, the rules for names
//! and addresses, secret types and the TLS/PKI helpers both sides need.
//!
//! Architecture invariant: wire types exist only here; controller and agent never define
//! their own. This crate does no networking of its own beyond building TLS/QUIC
//! configurations and reading/writing frames on streams it is handed, and it never logs.
#![forbid(unsafe_code)]

pub mod ids;
pub mod names;
pub mod otp;
pub mod pki;
pub mod secret;
pub mod tls;
pub mod wire;
