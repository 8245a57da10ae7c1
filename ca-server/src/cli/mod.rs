//! The bodies of `ca-server`'s subcommands, by group (the clap types stay in
//! `main.rs`): [`start`] makes and serves a data directory, [`backup`] moves
//! its records, [`maintenance`] rotates its master key and verifies its audit
//! trail while the server is stopped, [`policy`] reads and removes stored
//! access policy statements without the API.

pub(crate) mod backup;
pub(crate) mod maintenance;
pub(crate) mod policy;
pub(crate) mod start;
