//! ACME administration as the API shows it: external account binding keys
//! (made, listed), and the accounts and orders ACME clients made.

use serde::{Deserialize, Serialize};

/// `POST /v1/acme/eab-keys`: an external account binding key for a
/// provisioner, optionally with the names its account may get.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEabKey {
    pub provisioner: String,
    /// When given, a policy statement (`acme-eab-KID`) lets the account made
    /// with this key get these names (the policy's `name_patterns` syntax).
    #[serde(default)]
    pub name_patterns: Vec<String>,
}

/// An EAB key as listed (its MAC key is shown only once, at creation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EabKey {
    pub key_id: String,
    pub provisioner: String,
    pub created_at: String,
    pub created_by: String,
    pub revoked: bool,
    /// The account made with it.
    pub account: Option<String>,
    pub policy_statement: Option<String>,
}

/// `POST /v1/acme/eab-keys`: the key and its MAC key (base64url), once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EabKeyCreated {
    pub key: EabKey,
    pub hmac_key: String,
    /// The provisioner's directory URL.
    pub directory: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EabKeyList {
    pub keys: Vec<EabKey>,
}

/// An ACME account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcmeAccount {
    pub id: String,
    pub provisioner: String,
    pub status: String,
    pub contact: Vec<String>,
    pub created_at: String,
    pub eab_key_id: Option<String>,
    /// The principal policies name it by.
    pub principal: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcmeAccountList {
    pub accounts: Vec<AcmeAccount>,
}

/// An ACME order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcmeOrder {
    pub id: String,
    pub status: String,
    pub identifiers: Vec<String>,
    pub created_at: String,
    pub expires: String,
    pub ca_id: Option<String>,
    pub serial: Option<String>,
    /// The problem document, when invalid.
    pub error: Option<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcmeOrderList {
    pub orders: Vec<AcmeOrder>,
}
