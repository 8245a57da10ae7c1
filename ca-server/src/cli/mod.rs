//! The bodies of `ca-server`'s subcommands, by group (the clap types stay in
//! `main.rs`): [`start`] makes and serves a data directory, [`backup`] moves
//! its records, [`maintenance`] rotates its master key and verifies its audit
//! trail while the server is stopped.

pub(crate) mod backup;
pub(crate) mod maintenance;
pub(crate) mod start;
