//! Accepting connections within limits: a cap on open connections per
//! listener, and a cap per client address, so one client cannot take every
//! slot (and with them the revocation service relying parties depend on).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Pause after a failed accept: errors such as EMFILE persist until some
/// connection closes, and retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits of one listener.
pub struct ConnectionLimits {
    total: Arc<Semaphore>,
    per_ip_max: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionLimits {
    /// `total` open connections, at most `per_ip` of them from one address.
    pub fn new(total: usize, per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_ip_max: per_ip.max(1),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    fn take_ip(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.per_ip_max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            limits: self.clone(),
        })
    }
}

struct IpSlot {
    ip: IpAddr,
    limits: Arc<ConnectionLimits>,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A connection's hold on its listener's limits, released when dropped.
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _ip: IpSlot,
}

/// Accept connections on `listener` forever, each with a slot that `on_conn`
/// keeps for the connection's lifetime. With every slot taken it stops
/// accepting (new connections wait in the kernel's backlog) rather than
/// accepting and dropping them; a connection from an address that already
/// holds its share is closed at once.
pub async fn accept_loop<F>(
    listener: &TcpListener,
    limits: Arc<ConnectionLimits>,
    name: &'static str,
    mut on_conn: F,
) where
    F: FnMut(TcpStream, SocketAddr, ConnectionSlot),
{
    let mut full_logged = false;
    let mut ip_full_logged: Option<IpAddr> = None;
    loop {
        let permit = match limits.total.clone().try_acquire_owned() {
            Ok(p) => {
                full_logged = false;
                p
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                if !full_logged {
                    tracing::warn!(
                        listener = name,
                        "connection limit reached; waiting for a connection to close"
                    );
                    full_logged = true;
                }
                match limits.total.clone().acquire_owned().await {
                    Ok(p) => p,
                    // Never closed by this module; stop accepting if it ever is.
                    Err(_) => return,
                }
            }
            Err(tokio::sync::TryAcquireError::Closed) => return,
        };
        match listener.accept().await {
            Ok((tcp, peer)) => match limits.take_ip(peer.ip()) {
                Some(ip) => on_conn(
                    tcp,
                    peer,
                    ConnectionSlot {
                        _permit: permit,
                        _ip: ip,
                    },
                ),
                None => {
                    if ip_full_logged != Some(peer.ip()) {
                        tracing::warn!(listener = name, client = %peer.ip(), max = limits.per_ip_max, "per-address connection limit reached; closing its new connections");
                        ip_full_logged = Some(peer.ip());
                    }
                    drop(tcp);
                }
            },
            Err(e) => {
                tracing::warn!(listener = name, error = %e, "accept failed");
                drop(permit);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn accept_loop_stops_accepting_while_all_slots_are_held() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnectionLimits::new(2, 100);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            accept_loop(&listener, limits, "test", move |tcp, _, slot| {
                let _ = tx.send((tcp, slot));
            })
            .await
        });
        // From four addresses, so only the total limit applies.
        let mut clients = Vec::new();
        for i in 1..=4u8 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from(([127, 0, 0, i], 0))).unwrap();
            clients.push(socket.connect(addr).await.unwrap());
        }
        let wait = Duration::from_secs(5);
        let first = tokio::time::timeout(wait, rx.recv()).await.unwrap();
        let second = tokio::time::timeout(wait, rx.recv()).await.unwrap();
        assert!(first.is_some() && second.is_some());
        // Both slots are held: the third connection waits in the backlog.
        let short = Duration::from_millis(300);
        assert!(tokio::time::timeout(short, rx.recv()).await.is_err());
        // A connection ends (its slot with it): the next one is accepted.
        drop(first);
        let third = tokio::time::timeout(wait, rx.recv()).await.unwrap();
        assert!(third.is_some());
        assert!(tokio::time::timeout(short, rx.recv()).await.is_err());
        drop((second, third));
        let fourth = tokio::time::timeout(wait, rx.recv()).await.unwrap();
        assert!(fourth.is_some());
        task.abort();
    }

    #[tokio::test]
    async fn one_address_gets_its_share_and_no_more() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ConnectionLimits::new(100, 2);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            accept_loop(&listener, limits, "test", move |tcp, _, slot| {
                let _ = tx.send((tcp, slot));
            })
            .await
        });
        let wait = Duration::from_secs(5);
        let mut held = Vec::new();
        for _ in 0..2 {
            let client = TcpStream::connect(addr).await.unwrap();
            held.push((client, tokio::time::timeout(wait, rx.recv()).await.unwrap()));
        }
        // The third from the same address is closed at once, not queued.
        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(wait, third.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(rx.try_recv().is_err());
        // One of the two ends: the address may connect again.
        held.pop();
        let _again = TcpStream::connect(addr).await.unwrap();
        assert!(tokio::time::timeout(wait, rx.recv())
            .await
            .unwrap()
            .is_some());
        task.abort();
    }
}
