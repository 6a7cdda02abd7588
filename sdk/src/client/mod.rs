//! The async client for the pyro supervisor.
//!
//! [`Client::connect`] finds the supervisor's socket, starts the supervisor
//! if nothing answers, and checks that both are the same version. Every other
//! method is one API call.

mod session;
mod spawn;
mod stop;
mod transport;
mod workspace;

use std::path::{Path, PathBuf};

use hyper::Method;
use serde::Serialize;

pub use stop::Stopped;
pub use transport::EventStream;
pub use workspace::ExecOutput;

use crate::api::{
    DoctorReport, EnvironmentInfo, EnvironmentList, EnvironmentRef, Health, PruneResult, PullEvent,
    RunEvent, RunRequest, RunSummary, StreamName,
};
use crate::error::SdkError;
use crate::paths::PyroPaths;

/// How to reach the supervisor.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The state directories (and so the socket).
    pub paths: PyroPaths,
    /// Start the supervisor when nothing answers (the default).
    pub autostart: bool,
    /// The supervisor binary to start; found automatically when `None`.
    pub supervisor_bin: Option<PathBuf>,
}

impl ConnectOptions {
    /// Options from the process environment (`PYRO_HOME` and friends).
    ///
    /// ```no_run
    /// let mut options = pyro_sdk::ConnectOptions::from_env()?;
    /// options.autostart = false; // fail instead of starting a supervisor
    /// # Ok::<(), pyro_sdk::SdkError>(())
    /// ```
    pub fn from_env() -> Result<Self, SdkError> {
        Ok(Self {
            paths: PyroPaths::from_env()?,
            autostart: true,
            supervisor_bin: None,
        })
    }
}

/// A connection to the pyro supervisor.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    paths: PyroPaths,
}

impl Client {
    /// Connects to the supervisor, starting it if needed.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), pyro_sdk::SdkError> {
    /// let client = pyro_sdk::Client::connect(pyro_sdk::ConnectOptions::from_env()?).await?;
    /// println!("supervisor {}", client.health().await?.version);
    /// # Ok(()) }
    /// ```
    pub async fn connect(options: ConnectOptions) -> Result<Self, SdkError> {
        let client = Self {
            socket: options.paths.socket(),
            paths: options.paths.clone(),
        };
        let health = match client.health().await {
            Ok(health) => health,
            Err(SdkError::Connect { .. }) if options.autostart => {
                let binary = spawn::find_supervisor(options.supervisor_bin.as_deref())?;
                spawn::start(&options.paths, &binary).await?;
                client.health().await?
            }
            Err(err) => return Err(err),
        };
        if health.version != crate::VERSION {
            return Err(SdkError::VersionMismatch {
                client: crate::VERSION.to_owned(),
                supervisor: health.version,
            });
        }
        Ok(client)
    }

    /// Connects only if a supervisor is already running; never starts one.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), pyro_sdk::SdkError> {
    /// let paths = pyro_sdk::PyroPaths::from_env()?;
    /// match pyro_sdk::Client::existing(&paths).await {
    ///     Some(client) => println!("running: {:?}", client.health().await?),
    ///     None => println!("not running"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn existing(paths: &PyroPaths) -> Option<Self> {
        let client = Self {
            socket: paths.socket(),
            paths: paths.clone(),
        };
        client.health().await.ok().map(|_| client)
    }

    /// The socket this client talks to.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) {
    /// println!("talking to {}", client.socket().display());
    /// # }
    /// ```
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The state directories.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) {
    /// println!("supervisor log: {}", client.paths().supervisor_log().display());
    /// # }
    /// ```
    pub fn paths(&self) -> &PyroPaths {
        &self.paths
    }

    /// The supervisor's version and load.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let health = client.health().await?;
    /// println!("{} VMs running", health.running_vms);
    /// # Ok(()) }
    /// ```
    pub async fn health(&self) -> Result<Health, SdkError> {
        self.get("/v1/health").await
    }

    /// Whether this host can run guests, and what to fix if not.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let report = client.doctor().await?;
    /// for issue in &report.issues {
    ///     println!("{}: {}", issue.problem, issue.fix);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn doctor(&self) -> Result<DoctorReport, SdkError> {
        self.get("/v1/doctor").await
    }

    /// Every catalog environment and whether it is installed.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// for env in client.list_environments().await?.environments {
    ///     println!("{} installed={}", env.name, env.installed);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_environments(&self) -> Result<EnvironmentList, SdkError> {
        self.get("/v1/environments").await
    }

    /// One environment.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let env = client.inspect_environment("debian:12").await?;
    /// println!("{:?}", env.rootfs_image);
    /// # Ok(()) }
    /// ```
    pub async fn inspect_environment(&self, name: &str) -> Result<EnvironmentInfo, SdkError> {
        self.get(&format!("/v1/environments/{}", transport::segment(name)))
            .await
    }

    /// Installs an environment (building it locally), streaming progress.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// let mut events = client.pull_environment("debian:12-base").await?;
    /// while let Some(event) = events.next().await {
    ///     println!("{:?}", event?);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn pull_environment(&self, name: &str) -> Result<EventStream<PullEvent>, SdkError> {
        transport::stream(
            &self.socket,
            "/v1/environments/pull",
            &EnvironmentRef {
                name: name.to_owned(),
            },
        )
        .await
    }

    /// Removes stale and incomplete environment installs.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// println!("removed {}", client.prune_environments().await?.count);
    /// # Ok(()) }
    /// ```
    pub async fn prune_environments(&self) -> Result<PruneResult, SdkError> {
        self.post("/v1/environments/prune", &serde_json::json!({}))
            .await
    }

    /// Runs one command in a fresh VM that is deleted afterwards, streaming
    /// phases and output as they happen.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::{CommandSpec, RunEvent, RunRequest};
    /// let request = RunRequest::new("debian:12", CommandSpec::Argv(vec!["git".into(), "--version".into()]));
    /// let mut events = client.run(&request).await?;
    /// while let Some(event) = events.next().await {
    ///     if let RunEvent::Result(summary) = event? {
    ///         println!("exit code {}", summary.exit_code);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run(&self, request: &RunRequest) -> Result<EventStream<RunEvent>, SdkError> {
        transport::stream(&self.socket, "/v1/run", request).await
    }

    /// Runs one command in a fresh VM and collects its output.
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use pyro_sdk::api::{CommandSpec, RunRequest};
    /// let output = client
    ///     .run_collect(&RunRequest::new("debian:12", CommandSpec::Shell("uname -r".into())))
    ///     .await?;
    /// println!("{}", String::from_utf8_lossy(&output.stdout));
    /// # Ok(()) }
    /// ```
    pub async fn run_collect(&self, request: &RunRequest) -> Result<RunOutput, SdkError> {
        let mut events = self.run(request).await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(event) = events.next().await {
            match event? {
                RunEvent::Output(chunk) => {
                    let bytes = chunk.bytes().unwrap_or_default();
                    match chunk.stream {
                        StreamName::Stdout => stdout.extend_from_slice(&bytes),
                        StreamName::Stderr => stderr.extend_from_slice(&bytes),
                    }
                }
                RunEvent::Result(summary) => {
                    return Ok(RunOutput {
                        summary,
                        stdout,
                        stderr,
                    })
                }
                RunEvent::Error(body) => return Err(SdkError::Api(body)),
                RunEvent::Phase(_) | RunEvent::Pull(_) => {}
            }
        }
        Err(SdkError::StreamEnded {
            path: events.path().to_owned(),
        })
    }

    /// Asks the supervisor to stop its VMs and exit, and returns at once
    /// (see [`Client::stop_supervisor`] to wait until it is gone).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// client.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> Result<(), SdkError> {
        let _: serde_json::Value = self.post("/v1/shutdown", &serde_json::json!({})).await?;
        Ok(())
    }

    /// Stops the supervisor and waits, at most `within`, until its process
    /// has exited (having stopped every VM and removed its socket and pid
    /// file). `waiting` hears the pid and the time waited now and then
    /// while it takes long (after 2 s, then every 5 s).
    ///
    /// ```no_run
    /// # async fn demo(client: pyro_sdk::Client) -> Result<(), pyro_sdk::SdkError> {
    /// use std::time::Duration;
    /// let stopped = client
    ///     .stop_supervisor(Duration::from_secs(60), |pid, waited| {
    ///         eprintln!("waiting for supervisor {pid} ({}s)", waited.as_secs());
    ///     })
    ///     .await?;
    /// println!("supervisor {} exited after {:?}", stopped.pid, stopped.waited);
    /// # Ok(()) }
    /// ```
    pub async fn stop_supervisor(
        &self,
        within: std::time::Duration,
        waiting: impl FnMut(u32, std::time::Duration),
    ) -> Result<Stopped, SdkError> {
        let pid = self.health().await?.pid;
        let watch = stop::ProcessWatch::open(pid);
        let started = std::time::Instant::now();
        if let Err(err) = self.shutdown().await {
            // It may have gone before it could answer; that is what we want.
            if !watch.exited() {
                return Err(err);
            }
        }
        stop::wait_for_exit(&watch, pid, started, within, &self.paths, waiting).await
    }

    /// Waits, at most `within`, for a supervisor that is shutting down (its
    /// socket already gone) to exit; `None` if none is shutting down.
    /// `waiting` is called as for [`Client::stop_supervisor`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), pyro_sdk::SdkError> {
    /// let paths = pyro_sdk::PyroPaths::from_env()?;
    /// let gone = pyro_sdk::Client::await_stopping_supervisor(
    ///     &paths,
    ///     std::time::Duration::from_secs(60),
    ///     |_, _| {},
    /// )
    /// .await?;
    /// println!("{}", if gone.is_some() { "it has exited" } else { "none was stopping" });
    /// # Ok(()) }
    /// ```
    pub async fn await_stopping_supervisor(
        paths: &PyroPaths,
        within: std::time::Duration,
        waiting: impl FnMut(u32, std::time::Duration),
    ) -> Result<Option<Stopped>, SdkError> {
        let Some(holder) = crate::SupervisorPidFile::read(&paths.supervisor_pid_file())
            .filter(|holder| holder.phase == crate::SupervisorPhase::Stopping)
        else {
            return Ok(None);
        };
        let watch = stop::ProcessWatch::open(holder.pid);
        if watch.exited() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        stop::wait_for_exit(&watch, holder.pid, started, within, paths, waiting)
            .await
            .map(Some)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, SdkError> {
        transport::call::<(), T>(&self.socket, Method::GET, path, None).await
    }

    async fn post<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, SdkError> {
        transport::call(&self.socket, Method::POST, path, Some(body)).await
    }
}

/// A finished run with its whole output.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Exit code, timing, cleanup.
    pub summary: RunSummary,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
}
