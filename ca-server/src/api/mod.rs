//! What a client of the management API needs, in one place for the server
//! and `ca-cli` alike: the request and answer types ([`wire`]) and the mTLS
//! client with its `profile.toml` ([`client`]). Nothing here touches the store
//! or a CA key, so depending on it costs a client nothing but the types.

pub mod client;
pub mod wire;
