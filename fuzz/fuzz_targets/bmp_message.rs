//! Any bytes as a BMP stream from a router: framing, every message type and
//! the UPDATE inside Route Monitoring, decoded with whatever the stream's
//! Peer Up messages negotiated, must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_bgp_wire::bmp;

fuzz_target!(|bytes: &[u8]| {
    let mut monitor = bmp::Monitor::default();
    // As a station decodes: into one batch, reused.
    let mut batch = petrel_bgp_wire::UpdateBatch::default();
    for m in bmp::messages(bytes) {
        match m {
            Ok(bmp::Message::PeerUp(u)) => monitor.peer_up(&u),
            Ok(bmp::Message::PeerDown { peer, .. }) => monitor.peer_down(&peer.key()),
            Ok(bmp::Message::RouteMonitoring { peer, bgp }) => {
                let _ = monitor.update_into(&peer, bgp, &mut batch);
                if batch.len() >= 4 {
                    batch.recycle();
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // A header that claims any type over the rest of the input.
    if let Some((&kind, rest)) = bytes.split_first() {
        let mut m = vec![bmp::VERSION, 0, 0, 0, 0, kind];
        m.extend_from_slice(rest);
        let n = m.len() as u32;
        m[1..5].copy_from_slice(&n.to_be_bytes());
        if let Ok(bmp::Message::RouteMonitoring { peer, bgp }) = bmp::parse(&m) {
            let _ = monitor.update_into(&peer, bgp, &mut batch);
        }
    }
});
