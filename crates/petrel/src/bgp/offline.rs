//! The routing views of an offline command (`petrel map`, `petrel
//! explain --config`): the config's MRT dumps, read by the same reader
//! into the same RIB as `serve` reads them, and taken once published.
//! Live sessions and BMP stations cannot be reached offline; their views
//! stay empty, and the command says so.

use super::board::BgpBoard;
use super::feed::RibMsg;
use super::{feed_limits, mrt_feed, ribs};
use petrel_director::{Overrides, Publisher};
use petrel_mapping::BgpData;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// The views the config's `[[bgp.mrt]]` dumps make; None without any.
pub fn views(config: &Path) -> Result<Option<Arc<BgpData>>, String> {
    // The config alone says whether there is anything to read.
    let parsed = crate::sources::load_config(config).map_err(|e| e.join("\n"))?;
    let Some(conf) = parsed.bgp else {
        return Ok(None);
    };
    if !conf.peers.is_empty() || !conf.bmp.is_empty() {
        eprintln!(
            "petrel: offline, only the MRT dumps are read: the views of BGP sessions and BMP stations are empty (ask a running server with --admin or --follow)"
        );
    }
    if conf.mrt.is_empty() {
        return Ok(None);
    }
    let built = crate::sources::load(config, None).map_err(|e| e.join("\n"))?;
    let pops: Vec<String> = built.config.pops.iter().map(|p| p.name.clone()).collect();
    let publisher = Arc::new(Publisher::new(built, Overrides::default()));
    // The RIB thread waits on this runtime's timers: a worker drives them.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .map_err(|e| e.to_string())?;
    let board = Arc::new(BgpBoard::default());
    let (tx, rx) = mpsc::channel(1024);
    let rib = ribs::spawn(
        publisher.clone(),
        board.clone(),
        pops.clone(),
        (0, None),
        rx,
        rt.handle().clone(),
    )
    .map_err(|e| e.to_string())?;
    let reader = mrt_feed::MrtReader::start().map_err(|e| e.to_string())?;
    let mut waits = Vec::new();
    for m in &conf.mrt {
        let pop = pops.get(m.pop.index()).cloned().unwrap_or_default();
        let (done, wait) = std::sync::mpsc::channel();
        let _handle = reader.load_then(
            m.clone(),
            pop,
            feed_limits(&conf, None),
            (tx.clone(), board.clone()),
            done,
        );
        waits.push((m.file.clone(), wait));
    }
    let mut errors = Vec::new();
    for (file, wait) in waits {
        match wait.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("{}: {e}", file.display())),
            Err(_) => errors.push(format!("{}: the MRT reader stopped", file.display())),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    // Every route is queued: what the RIB has not published yet, it
    // publishes now (it takes the queue in order).
    let (done, published) = oneshot::channel();
    tx.blocking_send(RibMsg::PublishNow(done))
        .map_err(|_| "the RIB stopped".to_string())?;
    published.blocking_recv().map_err(|_| "the RIB stopped".to_string())?;
    drop(tx);
    drop(reader);
    let data = publisher.load().built.bgp.clone();
    let _ = rib.join();
    Ok(data)
}
