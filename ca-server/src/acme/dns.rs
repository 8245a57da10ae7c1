//! The one DNS question `dns-01` asks: the TXT records of a name, from a
//! configured resolver (`acme.dns_resolver`) or the system's (the first
//! `nameserver` of /etc/resolv.conf), over UDP, and over TCP when the answer
//! is truncated. Answers are parsed with bounds checks: a hostile resolver
//! gets an error, not a panic.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TXT: u16 = 16;
const CLASS_IN: u16 = 1;

/// The resolver to ask: the configured one, else the system's.
pub fn resolver(configured: Option<&str>) -> Result<SocketAddr, String> {
    if let Some(c) = configured {
        return c
            .parse()
            .map_err(|_| format!("acme.dns_resolver {c:?} is not IP:port"));
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("reading /etc/resolv.conf: {e}"))?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .ok_or_else(|| "no nameserver in /etc/resolv.conf".into())
}

/// The query for `name`'s TXT records, with `id`.
fn query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TXT.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| "the DNS answer is cut short".into())
}

/// The position after the (possibly compressed) name at `at`.
fn skip_name(b: &[u8], mut at: usize) -> Result<usize, String> {
    for _ in 0..128 {
        let len = *b.get(at).ok_or("the DNS answer is cut short")?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xC0 == 0xC0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
    Err("a DNS name with too many labels".into())
}

/// The TXT strings of each TXT record in the answer to query `id`; `Err`
/// with `truncated` when the answer must be asked again over TCP.
fn parse(b: &[u8], id: u16) -> Result<(Vec<String>, bool), String> {
    if u16_at(b, 0)? != id {
        return Err("the DNS answer is for another question".into());
    }
    let flags = u16_at(b, 2)?;
    if flags & 0x8000 == 0 {
        return Err("the DNS message is not an answer".into());
    }
    let truncated = flags & 0x0200 != 0;
    match flags & 0x000F {
        0 => {}
        3 => return Ok((Vec::new(), truncated)),
        rcode => return Err(format!("the resolver answered with error code {rcode}")),
    }
    let (qd, an) = (u16_at(b, 4)?, u16_at(b, 6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(b, at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        at = skip_name(b, at)?;
        let kind = u16_at(b, at)?;
        let len = usize::from(u16_at(b, at + 8)?);
        let data = b
            .get(at + 10..at + 10 + len)
            .ok_or("the DNS answer is cut short")?;
        at += 10 + len;
        if kind != TXT {
            continue;
        }
        let mut value = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let l = usize::from(data[i]);
            value.extend_from_slice(
                data.get(i + 1..i + 1 + l)
                    .ok_or("a TXT string is cut short")?,
            );
            i += 1 + l;
        }
        out.push(String::from_utf8_lossy(&value).into_owned());
    }
    Ok((out, truncated))
}

/// The TXT records of `name`.
pub async fn txt_records(
    resolver: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let mut idb = [0u8; 2];
    getrandom::getrandom(&mut idb).map_err(|e| format!("randomness: {e}"))?;
    let id = u16::from_be_bytes(idb);
    let q = query(id, name)?;
    let ask = async {
        let bind: SocketAddr = if resolver.is_ipv4() {
            "0.0.0.0:0".parse().map_err(|_| "bind address")?
        } else {
            "[::]:0".parse().map_err(|_| "bind address")?
        };
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("DNS socket: {e}"))?;
        sock.connect(resolver)
            .await
            .map_err(|e| format!("DNS resolver {resolver}: {e}"))?;
        sock.send(&q)
            .await
            .map_err(|e| format!("asking {resolver}: {e}"))?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock
                .recv(&mut buf)
                .await
                .map_err(|e| format!("DNS answer from {resolver}: {e}"))?;
            // Answers to other questions (spoofed, late) are ignored.
            match parse(&buf[..n], id) {
                Ok((records, false)) => return Ok(records),
                Ok((_, true)) => break,
                Err(e) if e.contains("another question") => continue,
                Err(e) => return Err(e),
            }
        }
        // Truncated: ask again over TCP.
        let mut tcp = tokio::net::TcpStream::connect(resolver)
            .await
            .map_err(|e| format!("DNS over TCP to {resolver}: {e}"))?;
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        tcp.write_all(&framed)
            .await
            .map_err(|e| format!("DNS over TCP: {e}"))?;
        let len = tcp
            .read_u16()
            .await
            .map_err(|e| format!("DNS over TCP: {e}"))?;
        let mut answer = vec![0u8; usize::from(len)];
        tcp.read_exact(&mut answer)
            .await
            .map_err(|e| format!("DNS over TCP: {e}"))?;
        parse(&answer, id).map(|(r, _)| r)
    };
    tokio::time::timeout(timeout, ask)
        .await
        .unwrap_or_else(|_| Err(format!("no DNS answer from {resolver} within {timeout:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_and_garbage_does_not_panic() {
        // An answer with one TXT record of two strings, the name compressed.
        let q = query(7, "_acme-challenge.a.example").expect("query");
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 1;
        a.extend_from_slice(&[
            0xC0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 8, 3, b'a', b'b', b'c', 3, b'd', b'e', b'f',
        ]);
        assert_eq!(parse(&a, 7).expect("parse").0, vec!["abcdef".to_string()]);
        assert!(parse(&a, 8).is_err(), "another question");
        // Every prefix of it, and random bytes, are errors or empty, never panics.
        for n in 0..a.len() {
            let _ = parse(&a[..n], 7);
        }
        let mut b = a.clone();
        b[a.len() - 9] = 200;
        let _ = parse(&b, 7);
        for seed in 0u8..=255 {
            let junk: Vec<u8> = (0..64)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i))
                .collect();
            let _ = parse(&junk, u16_at(&junk, 0).unwrap_or(0));
        }
    }
}
