//! `ca-cli webhook` and `ca-cli events`: where the server POSTs its events,
//! and the events themselves (thin wrappers over `/v1/webhooks` and
//! `/v1/events`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ca_server::api::wire;
use clap::{Args, Subcommand};
use hyper::Method;

use crate::client::{Api, ConnArgs};
use crate::output::Out;

#[derive(Args, Debug)]
pub struct WebhookArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: WebhookCommand,
}

#[derive(Subcommand, Debug)]
pub enum WebhookCommand {
    /// POST events to a URL. Each body is signed: CA-Signature: t=UNIX,v1=HEX,
    /// HEX = HMAC-SHA256(secret, "UNIX." + body). The secret is printed once.
    Create {
        /// https://… (http:// only if the server sets events.allow_http).
        #[arg(long)]
        url: String,
        /// Event types to deliver (repeat or comma-separate); default all:
        /// CertificateIssued, CertificateRevoked, CertificateApproachingExpiration,
        /// CaApproachingExpiration, CrlPublished.
        #[arg(long = "event", value_delimiter = ',')]
        events: Vec<String>,
        /// Read the HMAC secret from this file (16 to 256 characters, trailing
        /// newline ignored) instead of letting the server make one.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Webhooks, and how their delivery goes.
    List,
    /// Stop delivering to a webhook.
    Delete { id: String },
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: EventsCommand,
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Recent events, oldest first.
    List {
        /// Only events numbered after this.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Only events of this type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

fn webhook_text(w: &wire::Webhook) -> String {
    let types = if w.event_types.is_empty() {
        "all events".to_string()
    } else {
        w.event_types.join(",")
    };
    let mut t = format!(
        "{}  {}  ({types})\n  delivered up to event {}, {} pending; {} delivered, {} failed attempts, {} skipped since the server started\n",
        w.id, w.url, w.delivered_seq, w.pending, w.delivery.delivered, w.delivery.failed_attempts, w.delivery.skipped
    );
    if let Some(e) = &w.delivery.last_error {
        t.push_str(&format!("  last error: {e}\n"));
    }
    if let Some(r) = &w.delivery.next_retry {
        t.push_str(&format!("  next retry: {r}\n"));
    }
    t
}

pub fn run_webhook(a: &WebhookArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    match &a.command {
        WebhookCommand::Create {
            url,
            events,
            secret_file,
        } => {
            let secret = match secret_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading the secret from {}", p.display()))?
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                ),
                None => None,
            };
            let body = wire::CreateWebhook {
                url: url.clone(),
                event_types: events.clone(),
                secret,
            };
            let v: wire::WebhookCreated = api.call(Method::POST, "/v1/webhooks", Some(&body))?;
            out.emit(&v, || {
                let mut t = webhook_text(&v.webhook);
                if secret_file.is_none() {
                    t.push_str(&format!(
                        "secret: {}\n  (shown this once: give it to the receiver to check CA-Signature)\n",
                        v.secret
                    ));
                }
                t
            });
        }
        WebhookCommand::List => {
            let v: wire::WebhookList = api.get("/v1/webhooks")?;
            out.emit(&v, || {
                if v.webhooks.is_empty() {
                    "no webhooks\n".into()
                } else {
                    v.webhooks.iter().map(webhook_text).collect()
                }
            });
        }
        WebhookCommand::Delete { id } => {
            let v: wire::WebhookDeleted = api.call::<(), _>(
                Method::DELETE,
                &format!("/v1/webhooks/{}", crate::admin::enc(id)),
                None,
            )?;
            out.emit(&v, || format!("deleted {}\n", v.deleted));
        }
    }
    Ok(())
}

pub fn run_events(a: &EventsArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    match &a.command {
        EventsCommand::List {
            after,
            event_type,
            limit,
        } => {
            let mut path = format!("/v1/events?after={after}&limit={limit}");
            if let Some(t) = event_type {
                path.push_str(&format!("&type={}", crate::admin::enc(t)));
            }
            let v: wire::EventPage = api.get(&path)?;
            out.emit(&v, || {
                let mut t = String::new();
                for e in &v.events {
                    let d = &e.detail;
                    let what = match (&d.serial, d.crl_number) {
                        (Some(s), _) => format!("serial {s}"),
                        (None, Some(n)) => format!("CRL {n}"),
                        _ => d.subject.clone().unwrap_or_default(),
                    };
                    let days = d
                        .days_to_expiry
                        .map(|n| format!(", {n} days left"))
                        .unwrap_or_default();
                    t.push_str(&format!(
                        "{:>6}  {}  {:<33} {}  {what}{days}\n",
                        e.seq, e.time, e.event_type, e.ca_id
                    ));
                }
                if let Some(c) = &v.next_cursor {
                    t.push_str(&format!("more: --after {c}\n"));
                }
                if t.is_empty() {
                    t.push_str("no events\n");
                }
                t
            });
        }
    }
    Ok(())
}
