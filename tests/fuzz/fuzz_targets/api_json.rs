//! The management API's JSON bodies: every request type, and policy
//! statements with their validation.
#![no_main]

use ca_server::api::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<wire::CreateCa>(data);
    let _ = serde_json::from_slice::<wire::UpdateCaStatus>(data);
    let _ = serde_json::from_slice::<wire::ImportCaCertificate>(data);
    let _ = serde_json::from_slice::<wire::IssueCertificate>(data);
    let _ = serde_json::from_slice::<wire::RequestCertificate>(data);
    let _ = serde_json::from_slice::<wire::RenewCertificate>(data);
    let _ = serde_json::from_slice::<wire::RevokeCertificate>(data);
    let _ = serde_json::from_slice::<wire::SetAlias>(data);
    if let Ok(dto) = serde_json::from_slice::<ca_server::policy::StatementDto>(data) {
        if let Ok(statement) = dto.to_statement("fuzz") {
            let _ = statement.validate();
        }
    }
});
