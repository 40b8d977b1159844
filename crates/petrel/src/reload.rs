//! Reloading the config (SIGHUP, the API): files are read and tables built
//! without any lock that a health flip or a drain takes; only the swap is
//! ordered with them (by the publisher). Also the status of the serving
//! generation for the API and metrics.

use crate::sources;
use petrel_api::ReloadStatus;
use petrel_director::{Publisher, Reader};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

pub struct Reloader {
    publisher: Arc<Publisher>,
    config_path: PathBuf,
    /// One reload at a time, so that an older config never replaces a
    /// newer one; flips and drains do not take it.
    running: Mutex<()>,
    last: Mutex<Option<ReloadStatus>>,
    ok: AtomicU64,
    failed: AtomicU64,
    /// When each generation was published, for its age.
    published: Arc<Mutex<Instant>>,
    http: std::sync::OnceLock<Arc<crate::http::HttpFronts>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reloader {
    pub fn new(publisher: Arc<Publisher>, config_path: &Path) -> Arc<Reloader> {
        let published = Arc::new(Mutex::new(Instant::now()));
        let p = published.clone();
        publisher.subscribe(move |_, _| *p.lock().expect("publish clock") = Instant::now());
        Arc::new(Reloader {
            publisher,
            config_path: config_path.to_path_buf(),
            running: Mutex::new(()),
            last: Mutex::new(None),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            published,
            http: std::sync::OnceLock::new(),
        })
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn last(&self) -> Option<ReloadStatus> {
        self.last.lock().expect("reload status").clone()
    }

    pub fn generation_age(&self) -> f64 {
        self.published.lock().expect("publish clock").elapsed().as_secs_f64()
    }

    /// Re-read the config; on any error the serving generation stays.
    /// Blocking (it reads files and compiles): run it off the data path.
    pub fn reload(&self) -> Result<u64, Vec<String>> {
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        crate::sd_notify::reloading();
        let r = self.reload_now();
        let serving = self.publisher.load().id;
        crate::sd_notify::reloaded(&match &r {
            Ok(id) => format!("serving generation {id} (reloaded)"),
            Err(e) => format!(
                "serving generation {serving}; the reload failed with {} error(s)",
                e.len()
            ),
        });
        r
    }

    fn reload_now(&self) -> Result<u64, Vec<String>> {
        // Views published while this builds are taken in by the publisher.
        let bgp = self.publisher.load().built.bgp.clone();
        let result = sources::load(&self.config_path, bgp);
        let status = match result {
            Ok(built) => {
                let mut warnings = Vec::new();
                if self
                    .publisher
                    .load()
                    .config()
                    .server
                    .restart_needed(&built.config.server)
                {
                    warnings.push("[server] changed: listeners and limits take effect at the next restart".to_string());
                }
                // New HTTP listeners are bound before the config is
                // published: one that cannot be bound fails the reload.
                let http = self.http.get();
                let prepared = match http.map(|h| h.prepare(&built.config)).transpose() {
                    Ok(p) => p,
                    Err(errors) => return self.rejected(errors),
                };
                let config = built.config.clone();
                let id = self.publisher.reload(built);
                if let (Some(h), Some(p)) = (http, prepared) {
                    h.commit(p, &config);
                }
                // The previous generation was just released: hand its memory
                // back rather than leave it in the allocator's free lists.
                crate::memory::give_back();
                self.ok.fetch_add(1, Relaxed);
                for w in &warnings {
                    tracing::warn!(warning = %w, "reload");
                }
                tracing::info!(generation = id, "config reloaded");
                ReloadStatus {
                    ok: true,
                    at_unix: unix_now(),
                    generation: id,
                    errors: warnings,
                }
            }
            Err(errors) => return self.rejected(errors),
        };
        *self.last.lock().expect("reload status") = Some(status.clone());
        Ok(status.generation)
    }

    fn rejected(&self, errors: Vec<String>) -> Result<u64, Vec<String>> {
        self.failed.fetch_add(1, Relaxed);
        for e in &errors {
            tracing::error!(error = %e, "reload rejected; the previous generation keeps serving");
        }
        *self.last.lock().expect("reload status") = Some(ReloadStatus {
            ok: false,
            at_unix: unix_now(),
            generation: self.publisher.load().id,
            errors: errors.clone(),
        });
        Err(errors)
    }

    /// The HTTP fronts, whose listeners follow reloads.
    pub fn set_http(&self, h: Arc<crate::http::HttpFronts>) {
        let _ = self.http.set(h);
    }
}

/// Reloads, the serving generation and the POP states, at scrape time.
#[derive(Clone)]
pub struct GenerationCollector {
    pub reloader: Arc<Reloader>,
    pub reader: Reader,
}

impl std::fmt::Debug for GenerationCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GenerationCollector")
    }
}

impl Collector for GenerationCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = self.reader.load();
        {
            let mut me = enc.encode_descriptor(
                "petrel_pop_up",
                "1 if a POP is usable for new decisions, by state",
                None,
                ConstGauge::new(0i64).metric_type(),
            )?;
            for (i, p) in g.pops().iter().enumerate() {
                let st = g.states[i];
                let labels = vec![("pop", p.name.clone()), ("state", st.as_str().to_string())];
                ConstGauge::new(st.is_usable() as i64).encode(me.encode_family(&labels)?)?;
            }
        }
        let r = &self.reloader;
        for (name, help, v) in [
            ("petrel_reloads_ok", "Successful config reloads", r.ok.load(Relaxed)),
            (
                "petrel_reloads_failed",
                "Rejected config reloads (the previous generation kept serving)",
                r.failed.load(Relaxed),
            ),
        ] {
            let me = enc.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            ConstCounter::new(v).encode(me)?;
        }
        for (name, help, v) in [
            (
                "petrel_generation_age_seconds",
                "Seconds since the serving generation was published",
                r.generation_age(),
            ),
            ("petrel_generation_id", "Id of the serving generation", g.id as f64),
        ] {
            let me = enc.encode_descriptor(name, help, None, ConstGauge::new(0f64).metric_type())?;
            ConstGauge::new(v).encode(me)?;
        }
        Ok(())
    }
}
