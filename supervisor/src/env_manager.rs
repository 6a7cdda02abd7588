//! The environment manager actor: installs environments on demand, one
//! install per environment at a time.
//!
//! A request for an environment that is being installed joins the running
//! install: it receives the same progress and the same result. The build
//! itself (minutes of mmdebstrap and mkfs) runs on a blocking thread; its
//! progress reaches subscribers through bounded channels, and a subscriber
//! that cannot keep up loses progress lines, never the result.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use pyro_sdk::api::{EnvironmentInfo, ErrorBody, PullProgress};
use tokio::sync::{mpsc, oneshot};

use crate::environment::{
    lookup, BuildProgress, EnvironmentCache, EnvironmentStatus, InstalledEnvironment,
};
use crate::error::SupervisorError;

/// Install `name` if needed; answers with the installed environment.
#[derive(Debug, Message)]
#[rtype(result = "Result<InstalledEnvironment, ErrorBody>")]
pub struct EnsureEnvironment {
    /// Catalog name.
    pub name: String,
    /// Where progress lines go, if anywhere.
    pub progress: Option<mpsc::Sender<PullProgress>>,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct JobProgress {
    name: &'static str,
    progress: PullProgress,
}

#[derive(Debug, Message)]
#[rtype(result = "()")]
struct JobFinished {
    name: &'static str,
    result: Result<InstalledEnvironment, ErrorBody>,
}

#[derive(Debug, Default)]
struct InstallJob {
    waiters: Vec<oneshot::Sender<Result<InstalledEnvironment, ErrorBody>>>,
    subscribers: Vec<mpsc::Sender<PullProgress>>,
}

/// Installs environments.
#[derive(Debug)]
pub struct EnvironmentManager {
    cache: Arc<EnvironmentCache>,
    jobs: HashMap<&'static str, InstallJob>,
}

impl EnvironmentManager {
    /// A manager over `cache`.
    pub fn new(cache: Arc<EnvironmentCache>) -> Self {
        Self {
            cache,
            jobs: HashMap::new(),
        }
    }
}

impl Actor for EnvironmentManager {
    type Context = Context<Self>;
}

impl Handler<EnsureEnvironment> for EnvironmentManager {
    type Result = ResponseFuture<Result<InstalledEnvironment, ErrorBody>>;

    fn handle(&mut self, msg: EnsureEnvironment, ctx: &mut Self::Context) -> Self::Result {
        let entry = match lookup(&msg.name) {
            Ok(entry) => entry,
            Err(err) => {
                let body = SupervisorError::from(err).to_body();
                return Box::pin(async move { Err(body) });
            }
        };
        let (tx, rx) = oneshot::channel();
        let job_exists = self.jobs.contains_key(entry.name);
        let job = self.jobs.entry(entry.name).or_default();
        job.waiters.push(tx);
        if let Some(progress) = msg.progress {
            job.subscribers.push(progress);
        }
        if !job_exists {
            start_install(Arc::clone(&self.cache), entry, ctx.address());
        }
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(SupervisorError::ActorGone {
                    what: "the environment manager".to_owned(),
                }
                .to_body())
            })
        })
    }
}

fn start_install(
    cache: Arc<EnvironmentCache>,
    entry: &'static crate::environment::CatalogEntry,
    manager: Addr<EnvironmentManager>,
) {
    let (progress_tx, mut progress_rx) = mpsc::channel::<BuildProgress>(64);
    let forward_to = manager.clone();
    actix::spawn(async move {
        while let Some(progress) = progress_rx.recv().await {
            let message = JobProgress {
                name: entry.name,
                progress: PullProgress {
                    phase: progress.phase.as_str().to_owned(),
                    environment: entry.name.to_owned(),
                    detail: Some(progress.detail).filter(|d| !d.is_empty()),
                },
            };
            if forward_to.send(message).await.is_err() {
                break;
            }
        }
    });
    actix::spawn(async move {
        let build = tokio::task::spawn_blocking(move || {
            if cache.installed(entry).is_some() {
                return cache.ensure_installed(entry, &mut |_| {});
            }
            tracing::info!(environment = entry.name, "installing environment");
            let _ = progress_tx.blocking_send(BuildProgress {
                phase: crate::environment::BuildPhase::Waiting,
                detail: String::new(),
            });
            cache.ensure_installed(entry, &mut |progress| {
                let _ = progress_tx.blocking_send(progress);
            })
        })
        .await;
        let result = match build {
            Ok(Ok(installed)) => {
                tracing::info!(environment = entry.name, dir = %installed.dir.display(), "environment ready");
                Ok(installed)
            }
            Ok(Err(err)) => {
                tracing::error!(environment = entry.name, error = %err, "environment install failed");
                Err(SupervisorError::from(err).to_body())
            }
            Err(join) => Err(SupervisorError::ActorGone {
                what: format!("the install of {} ({join})", entry.name),
            }
            .to_body()),
        };
        let _ = manager
            .send(JobFinished {
                name: entry.name,
                result,
            })
            .await;
    });
}

impl Handler<JobProgress> for EnvironmentManager {
    type Result = ();

    fn handle(&mut self, msg: JobProgress, _ctx: &mut Self::Context) {
        let mut progress = msg.progress;
        // The first line of an install reads like the reference's.
        if progress.phase == "waiting" && progress.detail.is_none() {
            progress.phase = "install".to_owned();
        }
        if let Some(job) = self.jobs.get_mut(msg.name) {
            job.subscribers
                .retain(|subscriber| match subscriber.try_send(progress.clone()) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                });
        }
    }
}

impl Handler<JobFinished> for EnvironmentManager {
    type Result = ();

    fn handle(&mut self, msg: JobFinished, _ctx: &mut Self::Context) {
        if let Some(job) = self.jobs.remove(msg.name) {
            for waiter in job.waiters {
                let _ = waiter.send(msg.result.clone());
            }
        }
    }
}

/// The API view of one environment's status.
pub fn environment_info(status: &EnvironmentStatus, cache: &EnvironmentCache) -> EnvironmentInfo {
    let entry = status.entry;
    let installed = status.installed.as_ref();
    let path = |p: &std::path::Path| p.display().to_string();
    EnvironmentInfo {
        name: entry.name.to_owned(),
        version: entry.version.to_owned(),
        description: entry.description.to_owned(),
        default_packages: entry
            .default_packages
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
        distribution: entry.distribution.to_owned(),
        distribution_version: entry.distribution_version.to_owned(),
        platform: crate::environment::PLATFORM.to_owned(),
        installed: installed.is_some(),
        cache_dir: path(&cache.platform_dir()),
        install_dir: path(&status.install_dir),
        install_manifest: installed.map(|i| path(&i.manifest_path)),
        kernel_image: installed.map(|i| path(&i.vmlinux)),
        rootfs_image: installed.map(|i| path(&i.rootfs)),
        kernel_version: installed.map(|i| i.manifest.kernel_version.clone()),
        source: installed.map(|i| i.manifest.source.clone()),
        built_at: installed.map(|i| i.manifest.built_at.clone()),
    }
}
