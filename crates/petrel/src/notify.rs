//! NOTIFY (RFC 1996) to the secondaries `[zone.transfer] notify` names,
//! whenever a generation brings a zone serial they have not been told of
//! (at start, and after a reload that changes it). Over UDP, retried every
//! 2 s up to 5 times until the secondary answers.

use petrel_director::{ChangeKind, Generation, Publisher};
use petrel_dns_auth::xfr::Notified;
use petrel_dnssec::tsig::TsigKey;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Follow the publisher: tell secondaries of new serials.
pub fn spawn(publisher: &Arc<Publisher>, rt: &tokio::runtime::Handle) {
    let notified: Arc<Mutex<Notified>> = Arc::default();
    let run = {
        let rt = rt.clone();
        move |g: &Arc<Generation>| {
            let due = notified.lock().expect("notified serials").due(g);
            for n in due {
                let key = n
                    .key
                    .and_then(|k| g.config().tsig.get(k))
                    .and_then(|k| TsigKey::new(&k.name, &k.algorithm, &k.secret).ok())
                    .map(Arc::new);
                for &to in &n.to {
                    rt.spawn(notify(g.clone(), n.zone, to, key.clone(), n.origin.clone(), n.serial));
                }
            }
        }
    };
    run(&publisher.load_full());
    publisher.subscribe(move |g, c| {
        if c.kind == ChangeKind::Reload {
            run(g);
        }
    });
}

async fn notify(g: Arc<Generation>, zone: u16, to: SocketAddr, key: Option<Arc<TsigKey>>, origin: String, serial: u32) {
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .expect("literal");
    let sock = match tokio::net::UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(zone = %origin, secondary = %to, error = %e, "cannot send NOTIFY");
            return;
        }
    };
    let id = (std::process::id() as u16) ^ (serial as u16) ^ to.port();
    let mut buf = [0u8; 4096];
    for attempt in 1..=5 {
        let now = crate::dns_cookie::unix_now() as u64;
        let Some(msg) = petrel_dns_auth::xfr::notify_message(&g, zone, id, key.as_deref(), now) else {
            return;
        };
        if let Err(e) = sock.send_to(&msg, to).await {
            tracing::warn!(zone = %origin, secondary = %to, error = %e, "cannot send NOTIFY");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            if from == to && petrel_dns_auth::xfr::is_notify_reply(&buf[..n], id) {
                tracing::info!(zone = %origin, secondary = %to, serial, attempt, "NOTIFY answered");
                return;
            }
        }
    }
    tracing::warn!(zone = %origin, secondary = %to, serial, "NOTIFY not answered after 5 tries");
}
