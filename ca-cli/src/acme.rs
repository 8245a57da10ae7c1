//! `ca-cli acme`: ACME as operators see it (external account binding keys,
//! accounts and their orders), over `/v1/acme/...`.

use anyhow::Result;
use ca_server::api::wire;
use clap::{Args, Subcommand};
use hyper::Method;

use crate::client::{Api, ConnArgs};
use crate::output::Out;

#[derive(Args, Debug)]
pub struct AcmeArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: AcmeCommand,
}

#[derive(Subcommand, Debug)]
pub enum AcmeCommand {
    /// External account binding keys (create, list, revoke).
    #[command(subcommand)]
    Eab(EabCommand),
    /// ACME accounts.
    Accounts,
    /// An account's orders.
    Orders { account: String },
}

#[derive(Subcommand, Debug)]
pub enum EabCommand {
    /// A key for a provisioner; its MAC key is printed once. With
    /// --name-pattern, a policy statement lets its account get those names.
    Create {
        #[arg(long, default_value = "default")]
        provisioner: String,
        /// Names the account may get (repeat), e.g. '*.svc.example'.
        #[arg(long = "name-pattern")]
        name_patterns: Vec<String>,
    },
    List,
    /// Revoke a key: no new account, and its account can no longer order.
    Revoke {
        key_id: String,
    },
}

fn eab_text(k: &wire::EabKey) -> String {
    format!(
        "{}  {}  {}{}\n",
        k.key_id,
        k.provisioner,
        if k.revoked { "REVOKED" } else { "active" },
        k.account
            .as_deref()
            .map(|a| format!(", bound to {a}"))
            .unwrap_or_default()
    )
}

pub fn run(a: &AcmeArgs, out: &Out) -> Result<()> {
    let api = Api::new(a.conn.resolve()?)?;
    match &a.command {
        AcmeCommand::Eab(EabCommand::Create {
            provisioner,
            name_patterns,
        }) => {
            let body = wire::CreateEabKey {
                provisioner: provisioner.clone(),
                name_patterns: name_patterns.clone(),
            };
            let v: wire::EabKeyCreated =
                api.call(Method::POST, "/v1/acme/eab-keys", Some(&body))?;
            out.emit(&v, || {
                format!(
                    "key id:    {}\nMAC key:   {}\n  (shown this once)\ndirectory: {}\n{}e.g. lego --server {} --eab --kid {} --hmac {} ...\n",
                    v.key.key_id,
                    v.hmac_key,
                    v.directory,
                    v.key
                        .policy_statement
                        .as_deref()
                        .map(|s| format!("policy:    {s}\n"))
                        .unwrap_or_default(),
                    v.directory,
                    v.key.key_id,
                    v.hmac_key
                )
            });
        }
        AcmeCommand::Eab(EabCommand::List) => {
            let v: wire::EabKeyList = api.get("/v1/acme/eab-keys")?;
            out.emit(&v, || {
                if v.keys.is_empty() {
                    "no EAB keys\n".into()
                } else {
                    v.keys.iter().map(eab_text).collect()
                }
            });
        }
        AcmeCommand::Eab(EabCommand::Revoke { key_id }) => {
            let v: wire::EabKey = api.call::<(), _>(
                Method::DELETE,
                &format!("/v1/acme/eab-keys/{}", crate::admin::enc(key_id)),
                None,
            )?;
            out.emit(&v, || eab_text(&v));
        }
        AcmeCommand::Accounts => {
            let v: wire::AcmeAccountList = api.get("/v1/acme/accounts")?;
            out.emit(&v, || {
                if v.accounts.is_empty() {
                    return "no ACME accounts\n".into();
                }
                v.accounts
                    .iter()
                    .map(|a| {
                        format!(
                            "{}  {}  {}  {}  {}\n",
                            a.id,
                            a.provisioner,
                            a.status,
                            a.created_at,
                            a.contact.join(",")
                        )
                    })
                    .collect()
            });
        }
        AcmeCommand::Orders { account } => {
            let v: wire::AcmeOrderList = api.get(&format!(
                "/v1/acme/accounts/{}/orders",
                crate::admin::enc(account)
            ))?;
            out.emit(&v, || {
                if v.orders.is_empty() {
                    return "no orders\n".into();
                }
                v.orders
                    .iter()
                    .map(|o| {
                        format!(
                            "{}  {:<10} {}  {}\n",
                            o.id,
                            o.status,
                            o.identifiers.join(","),
                            o.serial.as_deref().unwrap_or("-")
                        )
                    })
                    .collect()
            });
        }
    }
    Ok(())
}
