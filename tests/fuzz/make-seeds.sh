#!/usr/bin/env bash
# Makes the committed seed corpus in seeds/<target>/: small valid inputs the
# fuzzer mutates from. Needs openssl. Rerun to regenerate; the files are
# committed so the smoke run needs nothing but the toolchain.
set -euo pipefail
cd "$(dirname "$0")"
# Crash inputs kept as regression seeds (crash-*) were added by hand: keep them.
find seeds -type f ! -name 'crash-*' -delete 2>/dev/null || true
mkdir -p seeds/{csr,pem,ocsp_request,crl,chain,lean_decode,api_json,api_query,names,store_records}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# CSRs: the fixtures (openssl-made), DER and PEM.
for f in ../../fixtures/csr/*.csr; do
    cp "$f" "seeds/csr/$(basename "$f")"
    openssl req -in "$f" -outform DER -out "seeds/csr/$(basename "$f" .csr).der" 2>/dev/null || true
done

# A CA, a leaf and a CRL listing it, made by openssl.
cat >"$tmp/ca.cnf" <<'CNF'
[ca]
default_ca = fuzz
[fuzz]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = 7
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:leaf.example
authorityKeyIdentifier = keyid
CNF
(
    cd "$tmp"
    : >index.txt
    echo 01 >crlnumber
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -subj /CN=Fuzz\ Seed\ CA -days 30 -config ca.cnf -extensions v3_ca -out ca.pem 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key \
        -subj /CN=leaf.example -out leaf.csr 2>/dev/null
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -set_serial 0x1234 -days 7 \
        -extfile ca.cnf -extensions v3_leaf -out leaf.pem 2>/dev/null
    openssl ca -config ca.cnf -keyfile ca.key -cert ca.pem -revoke leaf.pem \
        -crl_reason keyCompromise 2>/dev/null
    openssl ca -config ca.cnf -keyfile ca.key -cert ca.pem -gencrl -out ca.crl 2>/dev/null
    openssl crl -in ca.crl -outform DER -out ca.crl.der
    openssl x509 -in leaf.pem -outform DER -out leaf.der
    openssl x509 -in ca.pem -outform DER -out ca.der
    openssl ocsp -issuer ca.pem -cert leaf.pem -no_nonce -reqout ocsp.der 2>/dev/null
    openssl ocsp -issuer ca.pem -cert leaf.pem -nonce -reqout ocsp-nonce.der 2>/dev/null
)
cp "$tmp/ca.crl" seeds/crl/ca.crl.pem
cp "$tmp/ca.crl.der" seeds/crl/ca.crl.der
cp "$tmp/ca.pem" seeds/pem/ca.pem
cat "$tmp/leaf.pem" "$tmp/ca.pem" >seeds/pem/bundle.pem
cp "$tmp/ocsp.der" "$tmp/ocsp-nonce.der" seeds/ocsp_request/
base64 -w0 "$tmp/ocsp.der" >seeds/ocsp_request/get-path.txt
# chain: split byte (leaf share), leaf, intermediate, CRL.
{ printf '\x80'; cat "$tmp/leaf.der" "$tmp/ca.der" "$tmp/ca.crl.der"; } >seeds/chain/leaf-ca-crl
{ printf '\xff'; cat "$tmp/leaf.der"; } >seeds/chain/leaf-only
# lean_decode: a kind byte (0 certificate, 1 basicConstraints, 2
# authorityKeyIdentifier, 3 extKeyUsage, 4 RSA key, 5 subjectAltName), then
# the bytes.
{ printf '\x00'; cat "$tmp/leaf.der"; } >seeds/lean_decode/leaf
{ printf '\x00'; cat "$tmp/ca.der"; } >seeds/lean_decode/ca
printf '\x01\x30\x06\x01\x01\xff\x02\x01\x00' >seeds/lean_decode/basic-constraints
printf '\x02\x30\x06\x80\x04\x01\x02\x03\x04' >seeds/lean_decode/authority-key-id
printf '\x03\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x03\x01' >seeds/lean_decode/ext-key-usage
openssl genrsa 2048 2>/dev/null | openssl rsa -RSAPublicKey_out -outform DER 2>/dev/null >"$tmp/rsa.der"
{ printf '\x04'; cat "$tmp/rsa.der"; } >seeds/lean_decode/rsa-key
# dNSName www.example, iPAddress 10.0.0.1, rfc822Name a@b.example
printf '\x05\x30\x20\x82\x0bwww.example\x87\x04\x0a\x00\x00\x01\x81\x0ba@b.example' >seeds/lean_decode/subject-alt-name
# store_records: a mode byte, then the bytes. Mode 3 packs the second half
# against the first (certificates of one CA); modes 0-2 decode a certificate
# record, an audit entry, an event: their first bytes, to grow from.
{ printf '\x03'; cat "$tmp/leaf.der" "$tmp/leaf.der"; } >seeds/store_records/pack-leaf-leaf
{ printf '\x03'; cat "$tmp/ca.der" "$tmp/leaf.der"; } >seeds/store_records/pack-ca-leaf
printf '\x00\x01' >seeds/store_records/certificate
printf '\x01\x01' >seeds/store_records/audit
printf '\x02\x01' >seeds/store_records/event
printf '\x02\x02\x01\x00\x04evt-\x01\xab\x01' >seeds/store_records/event-ref

# API bodies, as the README shows them.
printf '%s' '{"csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n", "profile": "tls-server", "validity_days": 30, "idempotency_token": "t-1"}' >seeds/api_json/issue.json
printf '%s' '{"names": ["www.example", "10.0.0.1"], "passphrase": "correct horse", "key_algorithm": "ec-p256", "subject": "CN=www.example,O=Example"}' >seeds/api_json/request.json
printf '%s' '{"reason": "KEY_COMPROMISE"}' >seeds/api_json/revoke.json
printf '%s' '{"type": "SUBORDINATE", "subject": "CN=Issuing B", "parent_ca_id": "ca-0123456789abcdef", "path_len": 0}' >seeds/api_json/create-ca.json
printf '%s' '{"effect": "deny", "principals": [{"subject": "CN=web-*"}, {"fingerprint": "00ff"}], "actions": ["issue"], "cas": ["issuing"], "conditions": {"name_patterns": ["*.secret.example"], "ip_ranges": ["10.0.0.0/8"], "max_validity_days": 30}}' >seeds/api_json/policy.json

printf '%s' 'ca_id=ca-0123456789abcdef&status=ISSUED&expiring_before=2027-01-01T00:00:00Z&limit=10&cursor=abc' >seeds/api_query/certificates.txt
printf '%s' 'since=2026-01-01T00:00:00Z&until=2026-12-31T23:59:59%2B01:00&identity=CN%3Dadmin&action=IssueCertificate' >seeds/api_query/audit.txt

for n in 'DNS:www.example.com' 'IP:10.0.0.1' '2001:db8::1' 'email:a@b.example' '*.svc.example' 'xn--bcher-kva.example'; do
    printf '%s' "$n" >"seeds/names/$(printf '%s' "$n" | tr -c 'a-zA-Z0-9.' '_')"
done
printf '%s' 'CN=web,OU=ops+O=Example\, Inc.,C=DE' >seeds/names/subject.txt
echo "seeds: $(find seeds -type f | wc -l) files"
