//! Chain validation (RFC 5280 section 6). Owned by the validator work.
