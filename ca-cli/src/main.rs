//! `ca-cli`: the operator's tool of the private CA, its API client, and a narrated
//! walk-through of the public-key story (Bob, Alice, the CA and Mallory).
//!
//! Exit codes are part of the interface (scripts and tests rely on them):
//! 0 success, 1 error, 2 usage error (clap's own code), 3 verification failed.

#![forbid(unsafe_code)]

mod acme;
mod admin;
mod args;
mod cli;
mod client;
mod crypto;
mod events;
mod exit;
mod files;
mod inspect;
mod local;
mod ocsp;
mod online;
mod output;
mod trust;
mod verify;
mod walkthrough;

use std::process::ExitCode;

use clap::Parser;

use cli::Cli;
use exit::{UsageError, VerificationFailed};
use output::Out;

/// Everything worked.
pub const EXIT_OK: u8 = 0;
/// Something went wrong (bad file, server error, ...).
pub const EXIT_ERROR: u8 = 1;
/// The command line itself is wrong (clap exits with 2 for these too).
pub const EXIT_USAGE: u8 = 2;
/// A certificate (or signature) was checked and found not valid.
pub const EXIT_VERIFY_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new(cli.output, cli.no_color);
    match cli::run(cli, &out) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            let code = if e.downcast_ref::<VerificationFailed>().is_some() {
                EXIT_VERIFY_FAILED
            } else if e.downcast_ref::<UsageError>().is_some() {
                EXIT_USAGE
            } else {
                EXIT_ERROR
            };
            out.error(&e, code);
            ExitCode::from(code)
        }
    }
}
