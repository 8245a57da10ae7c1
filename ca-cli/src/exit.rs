//! The errors that choose the tool's exit code: a usage error (2) and a
//! verification that said no (3), apart from the tool's own failures (1).

/// A verification that ran and said "no": not an error of the tool, so it gets
/// its own exit code. The explanation has already been printed.
#[derive(Debug)]
pub struct VerificationFailed(pub String);

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "verification failed: {}", self.0)
    }
}

impl std::error::Error for VerificationFailed {}

/// A command line that parsed but makes no sense (checked after clap).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
