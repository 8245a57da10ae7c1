//! JSON Web Signatures as ACME uses them (RFC 8555 §6.2, RFC 7515 flattened
//! JSON serialisation): ES256, ES384, RS256 and EdDSA (Ed25519), the key as
//! a JWK or named by account URL, and JWK thumbprints (RFC 7638).

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Deserialize;
use serde_json::{json, Value};

use super::Problem;

/// The flattened JSON serialisation, as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

/// The protected header fields ACME uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Protected {
    pub alg: String,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub jwk: Option<Value>,
    #[serde(default)]
    pub kid: Option<String>,
}

/// A parsed, not yet verified JWS.
#[derive(Clone, Debug)]
pub struct Jws {
    pub protected: Protected,
    /// Empty for POST-as-GET.
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

pub fn b64(data: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(data)
}

pub fn unb64(text: &str, what: &str) -> Result<Vec<u8>, Problem> {
    Base64UrlUnpadded::decode_vec(text)
        .map_err(|_| Problem::malformed(format!("{what} is not unpadded base64url")))
}

impl Jws {
    pub fn parse(body: &[u8]) -> Result<Jws, Problem> {
        let f: Flattened = serde_json::from_slice(body)
            .map_err(|e| Problem::malformed(format!("the body is not a flattened JWS: {e}")))?;
        let header = unb64(&f.protected, "protected")?;
        let protected: Protected = serde_json::from_slice(&header)
            .map_err(|e| Problem::malformed(format!("the protected header: {e}")))?;
        let payload = unb64(&f.payload, "payload")?;
        let signature = unb64(&f.signature, "signature")?;
        let mut signing_input = f.protected.into_bytes();
        signing_input.push(b'.');
        signing_input.extend_from_slice(f.payload.as_bytes());
        Ok(Jws {
            protected,
            payload,
            signing_input,
            signature,
        })
    }

    /// The payload as JSON (`{}` stands for an empty object).
    pub fn payload_json<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Problem> {
        serde_json::from_slice(&self.payload)
            .map_err(|e| Problem::malformed(format!("the payload: {e}")))
    }

    /// Check an HS256/HS384/HS512 MAC with `key` (external account binding).
    pub fn verify_hmac(&self, key: &[u8]) -> Result<(), Problem> {
        use aws_lc_rs::hmac;
        let alg = match self.protected.alg.as_str() {
            "HS256" => hmac::HMAC_SHA256,
            "HS384" => hmac::HMAC_SHA384,
            "HS512" => hmac::HMAC_SHA512,
            other => {
                return Err(Problem::bad_signature_algorithm(format!(
                    "external account binding with {other:?}: HS256, HS384 or HS512"
                )))
            }
        };
        hmac::verify(
            &hmac::Key::new(alg, key),
            &self.signing_input,
            &self.signature,
        )
        .map_err(|_| Problem::unauthorized("the external account binding's MAC does not verify"))
    }

    /// Check the signature with `jwk` (whose kind must fit `alg`).
    pub fn verify(&self, jwk: &Value) -> Result<(), Problem> {
        verify(
            &self.protected.alg,
            jwk,
            &self.signing_input,
            &self.signature,
        )
    }
}

fn member<'a>(jwk: &'a Value, name: &str) -> Result<&'a str, Problem> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::malformed(format!("the JWK has no {name:?}")))
}

/// Verify `sig` over `input` with the JWK, for `alg`.
pub fn verify(alg: &str, jwk: &Value, input: &[u8], sig: &[u8]) -> Result<(), Problem> {
    let kty = member(jwk, "kty")?;
    let bad = || Problem::malformed("the JWS signature does not verify with its key");
    match (alg, kty) {
        ("ES256" | "ES384", "EC") => {
            let (crv, len, alg_impl) = match alg {
                "ES256" => ("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED),
                _ => ("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED),
            };
            if member(jwk, "crv")? != crv {
                return Err(Problem::bad_signature_algorithm(format!(
                    "{alg} needs a {crv} key"
                )));
            }
            let x = unb64(member(jwk, "x")?, "the JWK's x")?;
            let y = unb64(member(jwk, "y")?, "the JWK's y")?;
            if x.len() != len || y.len() != len {
                return Err(Problem::malformed(
                    "the JWK's coordinates have the wrong length",
                ));
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(alg_impl, &point)
                .verify(input, sig)
                .map_err(|_| bad())
        }
        ("RS256", "RSA") => {
            let n = unb64(member(jwk, "n")?, "the JWK's n")?;
            let e = unb64(member(jwk, "e")?, "the JWK's e")?;
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, sig)
                .map_err(|_| bad())
        }
        ("EdDSA", "OKP") => {
            if member(jwk, "crv")? != "Ed25519" {
                return Err(Problem::bad_signature_algorithm(
                    "EdDSA needs an Ed25519 key",
                ));
            }
            let x = unb64(member(jwk, "x")?, "the JWK's x")?;
            UnparsedPublicKey::new(&signature::ED25519, &x)
                .verify(input, sig)
                .map_err(|_| bad())
        }
        ("ES256" | "ES384" | "RS256" | "EdDSA", _) => Err(Problem::bad_signature_algorithm(
            format!("{alg} does not fit a {kty} key"),
        )),
        _ => Err(Problem::bad_signature_algorithm(format!(
            "{alg} is not supported (ES256, ES384, RS256, EdDSA are)"
        ))),
    }
}

/// The JWK with only its required members (what the thumbprint and the
/// store keep).
pub fn canonical(jwk: &Value) -> Result<Value, Problem> {
    Ok(match member(jwk, "kty")? {
        "EC" => {
            json!({"crv": member(jwk, "crv")?, "kty": "EC", "x": member(jwk, "x")?, "y": member(jwk, "y")?})
        }
        "RSA" => json!({"e": member(jwk, "e")?, "kty": "RSA", "n": member(jwk, "n")?}),
        "OKP" => json!({"crv": member(jwk, "crv")?, "kty": "OKP", "x": member(jwk, "x")?}),
        other => {
            return Err(Problem::bad_public_key(format!(
                "key type {other:?} is not supported"
            )))
        }
    })
}

/// RFC 7638 thumbprint, base64url: SHA-256 over the required members in
/// lexicographic order, no white space (serde_json keeps map keys sorted).
pub fn thumbprint(jwk: &Value) -> Result<String, Problem> {
    let text = serde_json::to_string(&canonical(jwk)?)
        .map_err(|e| Problem::server(format!("thumbprint: {e}")))?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    Ok(b64(d.as_ref()))
}

/// Whether a JWK is the key of a DER SubjectPublicKeyInfo (revocation
/// signed with the certificate's own key).
pub fn jwk_matches_spki(jwk: &Value, spki_der: &[u8]) -> Result<bool, Problem> {
    use der::Decode;
    let c = canonical(jwk)?;
    let info = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| Problem::malformed(format!("the certificate's key: {e}")))?;
    let Some(raw) = info.subject_public_key.as_bytes() else {
        return Ok(false);
    };
    let oid = info.algorithm.oid;
    Ok(match member(&c, "kty")? {
        "EC" if oid == ca_core::oids::EC_PUBLIC_KEY => {
            let mut point = vec![4u8];
            point.extend_from_slice(&unb64(member(&c, "x")?, "x")?);
            point.extend_from_slice(&unb64(member(&c, "y")?, "y")?);
            raw == point.as_slice()
        }
        "OKP" if oid == ca_core::oids::ED25519 => raw == unb64(member(&c, "x")?, "x")?.as_slice(),
        "RSA" => {
            #[derive(der::Sequence)]
            struct RsaKey<'a> {
                n: der::asn1::UintRef<'a>,
                e: der::asn1::UintRef<'a>,
            }
            let Ok(k) = RsaKey::from_der(raw) else {
                return Ok(false);
            };
            let trim = |b: Vec<u8>| -> Vec<u8> {
                let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                b[start..].to_vec()
            };
            trim(unb64(member(&c, "n")?, "n")?) == k.n.as_bytes()
                && trim(unb64(member(&c, "e")?, "e")?) == k.e.as_bytes()
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

    /// A flattened JWS signed by `sign` with `alg` and `jwk` in its header.
    fn jws(alg: &str, jwk: &Value, sign: &dyn Fn(&[u8]) -> Vec<u8>) -> Jws {
        let protected = b64(json!({"alg": alg, "jwk": jwk, "nonce": "n", "url": "u"})
            .to_string()
            .as_bytes());
        let payload = b64(b"{}");
        let sig = sign(format!("{protected}.{payload}").as_bytes());
        let body = json!({"protected": protected, "payload": payload, "signature": b64(&sig)});
        Jws::parse(body.to_string().as_bytes()).expect("parse")
    }

    fn ec(
        alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
        crv: &str,
        n: usize,
    ) -> (EcdsaKeyPair, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("key");
        let k = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("key");
        let p = k.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": crv, "x": b64(&p[1..1 + n]), "y": b64(&p[1 + n..])});
        (k, jwk)
    }

    #[test]
    fn every_supported_algorithm_verifies_and_a_swapped_key_does_not() {
        let rng = SystemRandom::new();
        let (k256, j256) = ec(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            "P-256",
            32,
        );
        let (k384, j384) = ec(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            "P-384",
            48,
        );
        let ed = Ed25519KeyPair::generate().expect("ed25519");
        let jed = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())});
        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
        let (n, e) = {
            use aws_lc_rs::rsa::PublicKeyComponents;
            let c: PublicKeyComponents<Vec<u8>> = rsa.public_key().into();
            (c.n, c.e)
        };
        let jrsa = json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)});
        type Signer<'a> = Box<dyn Fn(&[u8]) -> Vec<u8> + 'a>;
        let cases: Vec<(&str, &Value, Signer)> = vec![
            (
                "ES256",
                &j256,
                Box::new(|m| k256.sign(&rng, m).expect("sign").as_ref().to_vec()),
            ),
            (
                "ES384",
                &j384,
                Box::new(|m| k384.sign(&rng, m).expect("sign").as_ref().to_vec()),
            ),
            ("EdDSA", &jed, Box::new(|m| ed.sign(m).as_ref().to_vec())),
            (
                "RS256",
                &jrsa,
                Box::new(|m| {
                    let mut s = vec![0u8; rsa.public_modulus_len()];
                    rsa.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, m, &mut s)
                        .expect("sign");
                    s
                }),
            ),
        ];
        for (alg, jwk, sign) in &cases {
            let j = jws(alg, jwk, sign.as_ref());
            assert!(j.verify(jwk).is_ok(), "{alg}");
            // The same signature under another key of the same kind fails;
            // a key of another kind is the wrong algorithm.
            let other = if *alg == "ES256" { &j384 } else { &j256 };
            assert!(j.verify(other).is_err(), "{alg} with another key");
            assert_eq!(thumbprint(jwk).expect("thumbprint").len(), 43);
        }
        // RFC 7638's own example thumbprint.
        let rfc = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
        assert_eq!(
            thumbprint(&rfc).expect("thumbprint"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
