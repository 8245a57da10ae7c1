//! How results reach the user: text for people, JSON for scripts, colour only
//! where a person is looking (a TTY, without NO_COLOR), progress on stderr.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Readable text.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

pub struct Out {
    pub format: OutputFormat,
    color: bool,
    stderr_tty: bool,
}

impl Out {
    pub fn new(format: OutputFormat, no_color: bool) -> Self {
        // Colour codes in a pipe or a file are noise; NO_COLOR (no-color.org) opts out.
        let color = !no_color
            && format == OutputFormat::Text
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Out {
            format,
            color,
            stderr_tty: std::io::stderr().is_terminal(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Print a JSON document (pretty, one per command) on stdout. Typed API
    /// answers go through `Value` first, so their keys come out sorted, as
    /// the server sends them.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        let mut text = serde_json::to_value(value)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| "null".into());
        text.push('\n');
        print(&text);
    }

    /// Print text for people; ignored in JSON mode (the JSON carries the facts).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.is_json() {
            print(&format!("{}\n", text.as_ref()));
        }
    }

    /// Print either the JSON value or the text, by mode.
    pub fn emit<T: Serialize + ?Sized>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.is_json() {
            self.json(value);
        } else {
            let mut t = text();
            if !t.ends_with('\n') {
                t.push('\n');
            }
            print(&t);
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }

    /// Tell a person at a terminal that something slow is happening. Never on
    /// stdout, so it does not pollute output that is piped or parsed.
    pub fn progress(&self, msg: &str) {
        if self.stderr_tty {
            let mut e = std::io::stderr();
            let _ = writeln!(e, "… {msg}");
        }
    }

    /// Report an error on stderr: `error: ...` with its causes, or JSON in JSON mode.
    pub fn error(&self, e: &anyhow::Error, code: u8) {
        let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
        let message = chain.join(": ");
        if self.is_json() {
            let mut v = serde_json::json!({ "error": message, "exit_code": code });
            // A refusal by the server keeps its stable code and status, so a
            // script can branch on them rather than on the wording.
            let api = e.chain().find_map(|c| {
                c.downcast_ref::<ca_server::api::client::ApiFailure>()
                    .or_else(
                        || match c.downcast_ref::<ca_server::api::client::ClientError>() {
                            Some(ca_server::api::client::ClientError::Api(f)) => Some(f),
                            _ => None,
                        },
                    )
            });
            if let Some(f) = api {
                v["code"] = f.code.clone().into();
                v["status"] = f.status.into();
            }
            eprintln!("{v}");
        } else {
            eprintln!("error: {message}");
        }
    }
}

/// Write all of `data` to stdout. A reader that went away (`ca-cli ... | head`)
/// is a normal end for a Unix tool: exit 0 quietly. (`print!` would panic, as
/// Rust ignores SIGPIPE and the write fails with EPIPE.) Other errors are returned.
pub fn write_stdout(data: &[u8]) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(data).and_then(|()| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(crate::EXIT_OK.into())
        }
        r => r,
    }
}

/// `print!` without its panic: a closed pipe exits 0 (see [`write_stdout`]);
/// any other failure (a full disk) is an error, exit 1, as the output is lost.
pub fn print(text: &str) {
    if let Err(e) = write_stdout(text.as_bytes()) {
        eprintln!("error: writing standard output: {e}");
        std::process::exit(crate::EXIT_ERROR.into());
    }
}

pub use ca_core::hex::{colon_separated as colon_hex, encode as hex};

pub fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

pub fn sha1(data: &[u8]) -> Vec<u8> {
    // SHA-1 only as a fingerprint, because older tools still show it; never for security.
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// "in 89 days", "3 hours ago": how far `t` is from now.
pub fn relative(seconds: i64) -> String {
    let abs = seconds.unsigned_abs();
    let (n, unit) = if abs >= 2 * 86_400 {
        (abs / 86_400, "days")
    } else if abs >= 2 * 3600 {
        (abs / 3600, "hours")
    } else if abs >= 120 {
        (abs / 60, "minutes")
    } else {
        (abs, "seconds")
    };
    if seconds >= 0 {
        format!("in {n} {unit}")
    } else {
        format!("{n} {unit} ago")
    }
}

/// Wrap `text` to `width` columns; lines after the first start with `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut col = 0usize;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if col > 0 && col + 1 + len > width {
            out.push('\n');
            out.push_str(indent);
            col = indent.chars().count();
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
    }
    out
}
