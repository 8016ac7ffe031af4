//! rotor-agent: the agent that sits near target hosts. It dials out to the controller over
//! mutual-TLS QUIC (`link`), runs the jobs pushed to it (`handlers`, which use `exec` to
//! reach hosts), and keeps their outcomes until the controller acknowledges them (`journal`).
#![forbid(unsafe_code)]

pub mod enroll;
pub mod exec;
pub mod handlers;
pub mod identity;
pub mod journal;
pub mod link;
pub mod metrics;
pub mod otp;
