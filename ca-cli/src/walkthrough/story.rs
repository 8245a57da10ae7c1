//! The story itself, step by step: the CA, Bob's keys and certificates, Alice's
//! checks, encryption, signatures, Mallory's tries and revocation.

use anyhow::{Context, Result};
use ca_core::cert::{
    create_root, issue, CaCertificate, CertificateRequest, Issuer, IssuerUrls, RootParams,
};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::{Profile, SanEntry, Serial};
use der::{Decode, Encode};
use serde_json::{json, Value};
use spki::SubjectPublicKeyInfoRef;
use time::OffsetDateTime;

use super::backend::CaBackend;
use super::{
    alice_verifies, name, serial_of_cert, spki_of_cert, subject_of_cert, Keeper, Narrator, Variant,
    WalkthroughArgs, BOB,
};
use crate::output::{colon_hex, hex, sha256};
use crate::verify::{explanation_json, explanation_text};

/// One of Mallory's tries: an id, what it is, the leaf and the chain she sends.
type Attempt = (&'static str, &'static str, Vec<u8>, Vec<Vec<u8>>);

pub(super) fn story(
    a: &WalkthroughArgs,
    ca: &mut dyn CaBackend,
    n: &mut Narrator,
    keep: &Keeper,
) -> Result<()> {
    // Step 1: the CA.
    let mut s = n.begin(
        1,
        "A certificate authority is created; Alice trusts only its root",
    );
    let (root, inter) = ca.create(n)?;
    let root_cert = CaCertificate::parse(&root).context("the root does not parse")?;
    let inter_cert = CaCertificate::parse(&inter).context("the intermediate does not parse")?;
    let signed = inter_cert.is_signed_by(&root_cert);
    n.show(
        "root",
        format!("{} ({})", root_cert.subject(), root_cert.key_kind),
    );
    n.show("root SHA-256", colon_hex(&sha256(&root)));
    n.show(
        "intermediate",
        format!("{} ({})", inter_cert.subject(), inter_cert.key_kind),
    );
    n.show("intermediate signed by the root", signed);
    s.fact("root_subject", root_cert.subject().to_string());
    s.fact("root_key", root_cert.key_kind.to_string());
    s.fact("root_sha256", hex(&sha256(&root)));
    s.fact("intermediate_subject", inter_cert.subject().to_string());
    s.fact("intermediate_key", inter_cert.key_kind.to_string());
    s.fact("intermediate_signed_by_root", signed);
    s.fact("alice_trusts", vec![root_cert.subject().to_string()]);
    s.expect(signed, "the intermediate is signed by the root");
    keep.pem("root.pem", "CERTIFICATE", &[&root])?;
    keep.pem("intermediate.pem", "CERTIFICATE", &[&inter])?;
    n.say("Alice installs the root certificate, and only it, as her trust anchor.");
    n.why("the root's public key is the one thing Alice must get by a trusted route (an OS trust store, \
           an admin). Everything else she will check with it. The root's private key stays offline; \
           the intermediate does the daily signing, so a compromise there can be revoked without \
           replacing every trust store.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 2: Bob's keys.
    let mut s = n.begin(
        2,
        "Bob generates his key pairs; the private keys never leave him",
    );
    n.say("Bob makes two key pairs, to show both families: RSA-2048 and ECDSA P-256.");
    let mut variants = Vec::new();
    let mut keys_json = Vec::new();
    for (id, alg) in [
        ("rsa", KeyAlgorithm::Rsa2048),
        ("p256", KeyAlgorithm::EcdsaP256),
    ] {
        let key = SoftwareKey::generate(alg)?;
        let fp = sha256(key.public_key_der());
        n.show(
            &format!("{id} public key"),
            format!("{} (SHA-256 {})", key.kind(), colon_hex(&fp[..8])),
        );
        keys_json.push(json!({
            "variant": id,
            "key": key.kind().to_string(),
            "bits": match key.kind() { ca_core::PublicKeyKind::Rsa { bits } => bits, _ => 256 },
            "spki_sha256": hex(&fp),
        }));
        keep.write(
            &format!("bob-{id}.key"),
            key.to_pkcs8_pem().as_bytes(),
            true,
        )?;
        variants.push(Variant {
            id,
            key,
            csr: Vec::new(),
            leaf: Vec::new(),
            chain: Vec::new(),
        });
    }
    s.fact("bob_keys", keys_json);
    n.why("a key pair is two halves: the public key can be told to anyone; whatever it encrypts only \
           the private key opens, and whatever the private key signs the public key verifies. \
           But a bare public key says nothing about whose it is: that is the CA's job.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 3: CSR and issuance.
    let mut s = n.begin(
        3,
        "Bob asks the CA to certify his public key (a CSR); the CA checks and signs",
    );
    n.say(&format!(
        "Bob writes a certificate signing request for {BOB} and signs it with his private key."
    ));
    let subject = name(&format!("CN={BOB},O=Bob's Bakery"))?;
    let mut issued = Vec::new();
    for v in &mut variants {
        v.csr = ca_core::create_csr(&v.key, &subject, &[SanEntry::Dns(BOB.into())])?;
        keep.pem(
            &format!("bob-{}.csr", v.id),
            "CERTIFICATE REQUEST",
            &[&v.csr],
        )?;
        // Show what the CA's check catches: the same CSR with Mallory's public
        // key put in place of Bob's no longer matches its own signature.
        let mallory = SoftwareKey::generate(match v.key.kind() {
            ca_core::PublicKeyKind::Rsa { .. } => KeyAlgorithm::Rsa2048,
            _ => KeyAlgorithm::EcdsaP256,
        })?;
        let tampered = swap_csr_key(&v.csr, mallory.public_key_der())
            .context("building the CSR with a swapped key")?;
        let tampered_refusal = match ca.issue(&tampered) {
            Ok(_) => None,
            Err(e) => Some(format!("{e:#}")),
        };
        let pop = ca_core::parse_csr(&v.csr).is_ok();
        let (leaf, chain) = ca
            .issue(&v.csr)
            .with_context(|| format!("issuing Bob's {} certificate", v.id))?;
        let serial = serial_of_cert(&leaf)?;
        let facts = crate::inspect::cert_facts(&leaf);
        n.show(
            &format!("{} certificate", v.id),
            format!(
                "serial {serial}, issued by {}",
                facts.get("issuer").and_then(Value::as_str).unwrap_or("")
            ),
        );
        if let Some(r) = &tampered_refusal {
            n.ok(&format!("a copy with a swapped public key is refused: {r}"));
        }
        issued.push(json!({
            "variant": v.id,
            "csr_sha256": hex(&sha256(&v.csr)),
            "proof_of_possession_verified": pop,
            "tampered_csr_rejected": tampered_refusal.is_some(),
            "tampered_csr_reason": tampered_refusal,
            "serial": serial,
            "subject": facts.get("subject").cloned().unwrap_or(Value::Null),
            "issuer": facts.get("issuer").cloned().unwrap_or(Value::Null),
            "not_after": facts.get("validity").and_then(|v| v.get("not_after")).cloned().unwrap_or(Value::Null),
            "sans": [format!("DNS:{BOB}")],
        }));
        s.expect(
            pop,
            format!("Bob's {} CSR proves possession of the key", v.id),
        );
        s.expect(
            tampered_refusal.is_some(),
            format!("a CSR with a swapped {} key is refused", v.id),
        );
        let mut all: Vec<&[u8]> = vec![&leaf];
        all.extend(chain.iter().map(Vec::as_slice));
        keep.pem(&format!("bob-{}.pem", v.id), "CERTIFICATE", &all)?;
        v.leaf = leaf;
        v.chain = chain;
    }
    s.fact("certificates", issued);
    n.ok("the CA verified each CSR's signature with the public key inside it (proof of possession) and issued a certificate");
    n.why(
        "the certificate is the CA's signature over \"this public key belongs to bob.example\". \
           The CSR's own signature shows the requester holds the matching private key, so nobody \
           can get a certificate for a key they do not control.",
    );
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 4: Alice verifies.
    let mut s = n.begin(
        4,
        "Bob sends his certificate and chain; Alice verifies them with the CA's public key",
    );
    for v in &variants {
        let verdict = alice_verifies(&v.leaf, &v.chain, &root, vec![]);
        n.say(&format!("Alice checks Bob's {} certificate:", v.id));
        if !n.out.is_json() {
            crate::output::print(&explanation_text(verdict.explanation(), n.out));
        }
        let path: Vec<String> = verdict
            .explanation()
            .certs
            .iter()
            .map(|c| c.subject.clone())
            .collect();
        let checks: usize = verdict
            .explanation()
            .certs
            .iter()
            .map(|c| c.checks.len())
            .sum();
        s.fact(
            v.id,
            json!({
                "chain_valid": verdict.valid(),
                "reason": verdict.reason(),
                "path": path,
                "checks": checks,
                "name": BOB,
                "explanation": explanation_json(verdict.explanation()),
            }),
        );
        s.expect(
            verdict.valid(),
            format!("Alice accepts Bob's {} certificate", v.id),
        );
        if verdict.valid() {
            n.ok(&format!("valid for {BOB}: signatures, chain to her root, validity dates and the name all check out"));
        }
    }
    n.why("Alice never met Bob, yet she now knows this public key is his: the intermediate's signature \
           on his certificate verifies with the intermediate's key, whose certificate verifies with the \
           root key she trusts; each certificate is within its dates; and the name is the one she meant to reach.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 5: encryption.
    let mut s = n.begin(
        5,
        "Alice encrypts a message to Bob with the key from his certificate; Bob decrypts it",
    );
    let plaintext = a.message.as_bytes();
    let mut all_match = true;
    for v in &variants {
        // Alice uses only what she verified: the public key in Bob's certificate.
        let spki = spki_of_cert(&v.leaf)?;
        let sealed = crate::crypto::seal(&spki, plaintext)?;
        let opened = crate::crypto::open(&v.key.to_pkcs8_der(), &sealed)?;
        let matches = opened == plaintext;
        all_match &= matches;
        // Someone with another key (Mallory) gets nothing out of the ciphertext.
        let other = SoftwareKey::generate(if v.id == "rsa" {
            KeyAlgorithm::Rsa2048
        } else {
            KeyAlgorithm::EcdsaP256
        })?;
        let others_fail = crate::crypto::open(&other.to_pkcs8_der(), &sealed).is_err();
        n.show(&format!("{} scheme", v.id), sealed.scheme);
        n.show(
            &format!("{} ciphertext", v.id),
            format!(
                "{} bytes + {} bytes of key envelope",
                sealed.ciphertext.len(),
                sealed.key_envelope.len()
            ),
        );
        if matches {
            n.ok(&format!(
                "Bob decrypted: \"{}\"",
                String::from_utf8_lossy(&opened)
            ));
        }
        s.fact(
            v.id,
            json!({
                "scheme": sealed.scheme,
                "plaintext_bytes": plaintext.len(),
                "ciphertext_bytes": sealed.ciphertext.len(),
                "key_envelope_bytes": sealed.key_envelope.len(),
                "decrypted_matches": matches,
                "other_key_cannot_decrypt": others_fail,
            }),
        );
        s.expect(
            matches,
            format!("Bob's {} decryption equals Alice's plaintext", v.id),
        );
        s.expect(others_fail, format!("another {} key cannot decrypt", v.id));
    }
    s.fact("decrypted_matches", all_match);
    n.why("public-key operations only handle a few dozen bytes, so Alice encrypts the message with a \
           fresh AES-256-GCM key and sends that key sealed to Bob: with RSA-OAEP for the RSA key, or \
           with an ephemeral ECDH agreement plus HKDF for the P-256 key (strictly, a P-256 key used this \
           way should carry keyUsage keyAgreement; the demo reuses Bob's TLS key to keep one certificate). \
           Only Bob's private key recovers the AES key, and GCM detects any tampering.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 6: signatures.
    let mut s = n.begin(
        6,
        "Bob signs a reply; Alice verifies it against his certificate",
    );
    let reply = b"Noon works. -- Bob".as_slice();
    let mut all_valid = true;
    for v in &variants {
        let sig = v.key.sign(reply)?;
        let alg = v.key.signature_algorithm();
        let spki_der = spki_of_cert(&v.leaf)?;
        let spki = SubjectPublicKeyInfoRef::from_der(&spki_der).context("certificate key")?;
        let valid = ca_core::signature::verify_with(&spki, alg, reply, &sig).is_ok();
        let forged =
            ca_core::signature::verify_with(&spki, alg, b"Midnight works. -- Bob", &sig).is_err();
        all_valid &= valid;
        n.show(
            &format!("{} signature", v.id),
            format!("{alg:?}, {} bytes", sig.len()),
        );
        if valid && forged {
            n.ok("valid for the reply; the same signature on an altered reply fails");
        }
        s.fact(
            v.id,
            json!({
                "algorithm": format!("{alg:?}"),
                "signature_bytes": sig.len(),
                "signature_valid": valid,
                "altered_reply_rejected": forged,
            }),
        );
        s.expect(valid, format!("Bob's {} signature verifies", v.id));
        s.expect(
            forged,
            format!("an altered reply fails Bob's {} signature", v.id),
        );
    }
    s.fact("signature_valid", all_valid);
    n.why("only Bob's private key could have made a signature that his certificate's public key \
           verifies, and it covers exactly these bytes: Alice knows the reply is Bob's and unaltered.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 7: Mallory.
    let mut s = n.begin(7, "Mallory, in the middle, substitutes her own key");
    n.say("Mallory intercepts Bob's certificate and sends Alice one with her own key instead.");
    let mallory_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let now = OffsetDateTime::now_utc();
    let bob_name = name(&format!("CN={BOB},O=Bob's Bakery"))?;
    let mallory_request = CertificateRequest {
        subject: bob_name.clone(),
        spki_der: mallory_key.public_key_der().to_vec(),
        sans: vec![SanEntry::Dns(BOB.into())],
        profile: Profile::TlsServer,
        validity_days: Some(30),
        name_constraints: None,
    };
    // (a) a certificate she signed herself, claiming Bob's name.
    let self_signed = create_root(&mallory_key, &RootParams::new(bob_name.clone()), now)?;
    // (b) a certificate from a CA of her own, which Alice does not trust.
    let m_root_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let m_root = create_root(
        &m_root_key,
        &RootParams::new(name("CN=Totally Legit Root CA,O=Mallory")?),
        now,
    )?;
    let m_issuer = Issuer::new(m_root.clone(), vec![], IssuerUrls::default());
    let m_leaf = issue(&m_issuer, &m_root_key, &mallory_request, now)?;
    // (c) a CA of her own that copies the real intermediate's name exactly.
    let fake_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let fake = create_root(
        &fake_key,
        &RootParams::new(inter_cert.subject().clone()),
        now,
    )?;
    let fake_issuer = Issuer::new(fake.clone(), vec![], IssuerUrls::default());
    let forged_leaf = issue(&fake_issuer, &fake_key, &mallory_request, now)?;
    let real_chain = variants
        .first()
        .map(|v| v.chain.clone())
        .unwrap_or_default();
    let attempts: [Attempt; 3] = [
        (
            "self_signed",
            "a self-signed certificate claiming bob.example",
            self_signed.der.clone(),
            vec![],
        ),
        (
            "own_ca",
            "a certificate from Mallory's own CA (chain included)",
            m_leaf.der.clone(),
            vec![m_root.der.clone()],
        ),
        (
            "forged_issuer",
            "a certificate whose issuer name copies the real intermediate",
            forged_leaf.der.clone(),
            real_chain,
        ),
    ];
    for (id, what, leaf, chain) in attempts {
        let verdict = alice_verifies(&leaf, &chain, &root, vec![]);
        let reason = verdict.reason().unwrap_or_default();
        if verdict.valid() {
            n.bad(&format!("{what}: ACCEPTED"));
        } else {
            n.ok(&format!("{what}: refused — {reason}"));
        }
        s.fact(
            id,
            json!({
                "subject": subject_of_cert(&leaf),
                "rejected": !verdict.valid(),
                "reason": reason,
            }),
        );
        s.expect(!verdict.valid(), format!("Mallory's {what} is refused"));
        let file = format!("mallory-{}.pem", id.replace('_', "-"));
        let mut all: Vec<&[u8]> = vec![&leaf];
        all.extend(chain.iter().map(Vec::as_slice));
        keep.pem(&file, "CERTIFICATE", &all)?;
    }
    n.why("Mallory can write any name into a certificate, but she cannot make Alice's root (or the \
           intermediate it vouches for) sign her key. Had Alice taken a bare public key on trust, she \
           would have encrypted to Mallory; the chain check is what stops the man in the middle.");
    n.end(s);
    if n.quit {
        return Ok(());
    }

    // Step 8: revocation.
    let mut s = n.begin(
        8,
        "The CA revokes Bob's certificate; Alice's check now refuses it",
    );
    let target = variants.last().context("no certificate to revoke")?;
    let serial = serial_of_cert(&target.leaf)?;
    s.fact("revoked_serial", serial.clone());
    match ca.crl(&target.leaf) {
        Ok(crl_before) => {
            let before = alice_verifies(&target.leaf, &target.chain, &root, vec![crl_before]);
            n.say(&format!(
                "With the CA's current CRL, Bob's {} certificate is still fine: {}.",
                target.id,
                if before.valid() { "valid" } else { "NOT valid" }
            ));
            n.say(&format!(
                "Bob reports his {} key stolen; the CA revokes serial {serial} (reason: key compromise).",
                target.id
            ));
            ca.revoke(&serial)?;
            // An online CA signs its next CRL shortly after the revocation and
            // serves the previous one until then: wait for it (up to 10 s).
            let wanted = Serial::from_hex(&serial)?;
            let mut crl_after = ca.crl(&target.leaf)?;
            for _ in 0..100 {
                if ca_core::crl::parse_crl(&crl_after).is_ok_and(|c| c.is_revoked(&wanted)) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
                crl_after = ca.crl(&target.leaf)?;
            }
            keep.pem("crl.pem", "X509 CRL", &[&crl_after])?;
            let crl_view =
                crate::inspect::describe(&crate::inspect::Object::Crl(crl_after.clone()))?;
            let listed = crl_view
                .get("revoked")
                .and_then(Value::as_array)
                .is_some_and(|r| {
                    r.iter()
                        .any(|e| e.get("serial").and_then(Value::as_str) == Some(serial.as_str()))
                });
            n.show("new CRL lists the serial", listed);
            let after = alice_verifies(&target.leaf, &target.chain, &root, vec![crl_after]);
            let reason = after.reason().unwrap_or_default();
            if after.valid() {
                n.bad("Alice still accepts the revoked certificate");
            } else {
                n.ok(&format!("Alice refuses it: {reason}"));
            }
            s.fact("valid_before_revocation", before.valid());
            s.fact("crl_lists_serial", listed);
            s.fact("refused_after_revocation", !after.valid());
            s.fact("reason", reason.clone());
            s.fact("revocation_source", "CRL");
            s.expect(
                before.valid(),
                "Bob's certificate is valid before revocation",
            );
            s.expect(listed, "the CRL lists the revoked serial");
            s.expect(
                !after.valid() && reason.contains("revo"),
                "Alice refuses the revoked certificate because it is revoked",
            );
        }
        Err(e) => {
            // Only online, against a server that does not publish CRLs (yet):
            // say so, and fall back on the CA's own record of the revocation.
            let why = format!("{e:#}");
            n.say(&format!("The CA's CRL could not be fetched ({why})."));
            n.say(&format!(
                "Bob reports his {} key stolen; the CA revokes serial {serial}.",
                target.id
            ));
            ca.revoke(&serial)?;
            let status = ca.status(&serial)?.unwrap_or_default();
            let refused = status == "REVOKED";
            if refused {
                n.ok(&format!("the CA now reports {serial} as {status}; a relying party asking it refuses the certificate"));
            } else {
                n.bad(&format!("the CA reports {serial} as {status}"));
            }
            s.fact("revocation_source", "CA status (no CRL available)");
            s.fact("crl_unavailable", why);
            s.fact("status_after_revocation", status.clone());
            s.fact("refused_after_revocation", refused);
            s.fact(
                "reason",
                format!("the CA reports the certificate as {status}"),
            );
            s.expect(refused, "the CA reports the certificate as REVOKED");
        }
    }
    n.why("a certificate is a promise made for its whole lifetime; when the key behind it is lost, \
           the CA publishes a signed list of broken promises (a CRL, or an OCSP answer), and relying \
           parties who check it stop trusting the key before the certificate expires.");
    n.end(s);
    Ok(())
}

/// The CSR with another (valid) public key in place of its own, its
/// signature unchanged: what an attacker who swaps keys in transit sends.
fn swap_csr_key(csr_der: &[u8], spki_der: &[u8]) -> Result<Vec<u8>> {
    let mut req = x509_cert::request::CertReq::from_der(csr_der)?;
    req.info.public_key = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki_der)?;
    Ok(req.to_der()?)
}
