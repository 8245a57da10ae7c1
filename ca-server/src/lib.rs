//! `ca-server`: the network service of the private CA.
//!
//! Layers, each seeing only what it needs (Boulder-style seams in one process):
//! [`http`] (routing, JSON, errors; never sees a CA key) → [`authority`]
//! (authorise, validate, decide, drive issuance) → [`vault`] (CA keys behind
//! `ca_core::Signer`) and [`store`] (the storage authority: one trait, an embedded backend).
//! [`api`] holds what clients share with the server: the wire types and the
//! mTLS client (`ca-cli` depends on it). Bench tooling lives with the bench
//! binaries, not here.

#![forbid(unsafe_code)]

pub mod accept;
pub mod acme;
pub mod alias;
pub mod api;
pub mod api_tls;
pub mod audit;
pub mod authority;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod files;
pub mod health;
pub mod hsm;
pub mod http;
pub mod ids;
pub mod init;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub(crate) mod policy_follow;
pub mod public;
pub mod refusals;
pub mod revocation;
pub mod server;
pub mod store;
pub mod tls;
pub mod vault;
