use super::*;

#[test]
fn roca_moduli_are_recognised_and_ordinary_ones_are_not() {
    // M, the product of the primes; N = 2^1800 · M + 65537^2 is, modulo
    // each prime, 65537^2: the shape RSALib's moduli have.
    let m: BigUint = ROCA_PRIMES.iter().product();
    let vulnerable: BigUint = (m << 1800) + 65537u64 * 65537;
    assert!(vulnerable.bits() > 2000);
    assert!(rsa_modulus_has_roca_fingerprint(&vulnerable.to_bytes_be()));
    // One more and the residues stop being powers of 65537.
    let next = (vulnerable + 1u8).to_bytes_be();
    assert!(!rsa_modulus_has_roca_fingerprint(&next));
    // Moduli aws-lc makes are not fingerprinted.
    use crate::keys::Signer;
    for _ in 0..3 {
        let key =
            crate::keys::SoftwareKey::generate(crate::keys::KeyAlgorithm::Rsa2048).expect("key");
        let spki = SubjectPublicKeyInfoRef::from_der(key.public_key_der()).expect("spki");
        assert_eq!(refuse_known_weak_key(&spki), Ok(()));
    }
}

/// A 2048-bit odd number: 2^2047 + 2^k + 1 style seeds for the Fermat tests.
fn big(bits: usize, low: &[u8]) -> BigUint {
    (BigUint::from(1u8) << (bits - 1)) + BigUint::from_bytes_be(low)
}

#[test]
fn close_primes_are_found_and_distant_factors_are_not() {
    // n = p·q with q - p = 2^201: (q - p)² = 2^402 is far below 8√n ≈
    // 2^1026, so Fermat's first round finds it. (Primality does not
    // matter to the method, only the distance.)
    let p = big(1024, &[0x0f]);
    let q: BigUint = &p + (BigUint::from(1u8) << 201);
    let close = (&p * &q).to_bytes_be();
    assert!(rsa_modulus_factors_by_fermat(&close, 1));
    // A distance needing about 50 rounds: found by 100, not by 10.
    let q: BigUint = &p + (BigUint::from(1u8) << 513) * 7u8;
    let later = (&p * &q).to_bytes_be();
    assert!(rsa_modulus_factors_by_fermat(&later, FERMAT_ROUNDS));
    assert!(!rsa_modulus_factors_by_fermat(&later, 10));
    // Factors of different sizes are out of Fermat's reach.
    let far = (big(1000, &[0x0f]) * big(1048, &[0x35])).to_bytes_be();
    assert!(!rsa_modulus_factors_by_fermat(&far, FERMAT_ROUNDS));
    // A perfect square (p = q) is broken too; tiny inputs are not keys.
    assert!(rsa_modulus_factors_by_fermat(&(&p * &p).to_bytes_be(), 1));
    assert!(!rsa_modulus_factors_by_fermat(&[3], FERMAT_ROUNDS));
    assert!(!rsa_modulus_factors_by_fermat(&[], FERMAT_ROUNDS));
}

#[test]
fn a_close_prime_key_is_refused_where_keys_are_certified() {
    let p = big(1024, &[0x0f]);
    let q: BigUint = &p + (BigUint::from(1u8) << 300);
    let spki = rsa_spki(&(&p * &q).to_bytes_be());
    let spki = SubjectPublicKeyInfoRef::from_der(&spki).expect("spki");
    assert_eq!(refuse_known_weak_key(&spki), Err(KeyError::CloseRsaPrimes));
}

/// A DER SubjectPublicKeyInfo for an RSA modulus with exponent 65537.
fn rsa_spki(modulus: &[u8]) -> Vec<u8> {
    use der::Encode;
    let key = RsaPublicKeyRef {
        modulus: der::asn1::UintRef::new(modulus).expect("modulus"),
        public_exponent: der::asn1::UintRef::new(&[1, 0, 1]).expect("exponent"),
    };
    let key = key.to_der().expect("pkcs1");
    spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: oids::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: der::asn1::BitString::from_bytes(&key).expect("bits"),
    }
    .to_der()
    .expect("spki")
}

#[test]
fn a_listed_key_is_found_by_its_modulus_fingerprint() {
    let modulus = big(2048, &[0x01, 0x23]).to_bytes_be();
    let fingerprint = crate::hex::encode(&modulus_fingerprint(&modulus));
    let mut list = WeakKeyList::default();
    let text = format!("# comment\n\n{}\n{fingerprint}\n", "0".repeat(20));
    assert_eq!(list.extend_from_text(&text), Ok(2));
    assert!(list.lists_spki(&rsa_spki(&modulus)));
    let other = big(2048, &[0x01, 0x25]).to_bytes_be();
    assert!(!list.lists_spki(&rsa_spki(&other)));
    // Not RSA, or not a key: never listed.
    assert!(!list.lists_spki(b"not a key"));
    // The fingerprint is of the text openssl prints, upper case.
    let line = format!(
        "Modulus={}\n",
        crate::hex::encode(&modulus).to_ascii_uppercase()
    );
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, line.as_bytes());
    assert_eq!(modulus_fingerprint(&modulus), sha1.as_ref()[10..20]);
}

#[test]
fn a_malformed_list_adds_nothing() {
    let mut list = WeakKeyList::default();
    let bad = format!("{}\nnot-hex-at-all-here!\n", "1".repeat(20));
    assert_eq!(list.extend_from_text(&bad).map_err(|e| e.line), Err(2));
    assert!(list.is_empty());
    assert_eq!(list.extend_from_text("abcd\n").map_err(|e| e.line), Err(1));
}
