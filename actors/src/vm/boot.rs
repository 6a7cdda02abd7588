//! Booting one VM: from launch to a ready, answering guest agent.
//!
//! 1. Bind the ready socket (before anything starts, so the guest's call
//!    always finds a listener).
//! 2. Launch the backend's processes on a blocking thread.
//! 3. Wait for the first of: a ready notice, a boot-failure notice, the VMM
//!    exiting, or the boot timeout.
//! 4. Confirm with a real connection: hybrid `CONNECT`, hello, ping.
//!
//! On any failure the processes are killed and cleaned up before the error
//! is returned, with the guest console's last lines attached.
//!
//! A boot can be cancelled (the owner is stopping the VM, say because the
//! supervisor shuts down): the cancel signal is checked before the launch
//! and raced against every wait after it, and a cancelled boot tears its
//! processes down like a failed one before it answers.

use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyro_guest_protocol::GuestNotice;
use tokio::sync::watch;

use super::backend::{LaunchedVm, VmSpec, Vmm};
use crate::error::{ActorError, Result};
use crate::process::ProcessExit;
use crate::vsock::ready::ReadyListener;
use crate::vsock::GuestConnection;

/// Console lines attached to boot errors.
pub const CONSOLE_LINES: usize = 20;

/// How long a killed VMM gets to exit before we stop waiting.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// A VM whose agent answered.
#[derive(Debug)]
pub struct Booted {
    /// Its processes.
    pub launched: Arc<dyn LaunchedVm>,
    /// Becomes `Some` when the VMM exits.
    pub exit_rx: watch::Receiver<Option<ProcessExit>>,
    /// The ready socket, still listening (the agent calls again if it restarts).
    pub ready: ReadyListener,
    /// Launch to answering agent.
    pub boot_ms: u64,
    /// The agent's version.
    pub agent_version: String,
}

/// Resolves once `cancel` turns `true`; never, if it cannot any more.
pub async fn cancelled(mut cancel: watch::Receiver<bool>) {
    if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The error a cancelled boot answers with ("vm X is shutting down").
pub fn cancelled_error(vm_id: &str) -> ActorError {
    ActorError::ActorGone {
        what: format!("vm {vm_id}"),
    }
}

/// Boots `spec` with `vmm`, giving up after `timeout` or once `cancel`
/// turns `true`.
pub async fn boot(
    vmm: Arc<dyn Vmm>,
    spec: VmSpec,
    timeout: Duration,
    cancel: watch::Receiver<bool>,
) -> Result<Booted> {
    let started = Instant::now();
    if *cancel.borrow() {
        return Err(cancelled_error(&spec.vm_id));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&spec.run_dir)
        .map_err(|err| ActorError::host_io("creating", &spec.run_dir, err))?;
    let ready = ReadyListener::bind(&spec.ready_socket())?;
    let launch_spec = spec.clone();
    let launched: Arc<dyn LaunchedVm> =
        tokio::task::spawn_blocking(move || vmm.launch(&launch_spec))
            .await
            .map_err(|err| ActorError::Spawn {
                program: "the VM launcher".to_owned(),
                source: std::io::Error::other(err.to_string()),
            })??
            .into();

    let (exit_tx, exit_rx) = watch::channel(None);
    let waiter = Arc::clone(&launched);
    tokio::spawn(async move {
        let exit = waiter.wait_exit().await;
        let _ = exit_tx.send(Some(exit));
    });

    let waited = tokio::select! {
        ready = await_ready(&spec, &launched, &ready, exit_rx.clone(), timeout) => ready,
        () = cancelled(cancel) => Err(cancelled_error(&spec.vm_id)),
    };
    match waited {
        Ok(agent_version) => Ok(Booted {
            launched,
            exit_rx,
            ready,
            boot_ms: started.elapsed().as_millis() as u64,
            agent_version,
        }),
        Err(err) => {
            tear_down(&launched, exit_rx).await;
            Err(err)
        }
    }
}

async fn await_ready(
    spec: &VmSpec,
    launched: &Arc<dyn LaunchedVm>,
    ready: &ReadyListener,
    mut exit_rx: watch::Receiver<Option<ProcessExit>>,
    timeout: Duration,
) -> Result<String> {
    let vm_id = spec.vm_id.clone();
    let console = || launched.console_tail(CONSOLE_LINES);
    let notice = tokio::select! {
        notice = ready.next_notice() => notice?,
        exit = exit_rx.wait_for(Option::is_some) => {
            let exit = exit.map(|e| e.clone().unwrap_or(ProcessExit::Unknown)).unwrap_or(ProcessExit::Unknown);
            return Err(ActorError::ExitedDuringBoot { vm_id, exit, console: console() });
        }
        () = tokio::time::sleep(timeout) => {
            return Err(ActorError::BootTimeout { vm_id, seconds: timeout.as_secs(), console: console() });
        }
    };
    match notice {
        GuestNotice::Ready(_) => {}
        GuestNotice::BootFailed(failure) => {
            return Err(ActorError::GuestBootFailed {
                vm_id,
                stage: failure.stage,
                errno: failure.errno,
                message: failure.message,
                console: console(),
            })
        }
    }
    // The notice proves the agent listens; a real round trip proves the
    // channel works end to end.
    let conn = GuestConnection::connect(&spec.vsock_socket()).await?;
    let agent_version = conn.agent_version().to_owned();
    conn.ping().await?;
    Ok(agent_version)
}

/// Takes over a VM a previous supervisor launched: reopens its processes,
/// listens on its ready socket again, and checks the agent answers (unless
/// `cancel` turns `true` first).
pub async fn adopt(
    vmm: Arc<dyn Vmm>,
    spec: VmSpec,
    cancel: watch::Receiver<bool>,
) -> Result<Booted> {
    let started = Instant::now();
    if *cancel.borrow() {
        return Err(cancelled_error(&spec.vm_id));
    }
    let adopt_spec = spec.clone();
    let launched: Arc<dyn LaunchedVm> = tokio::task::spawn_blocking(move || vmm.adopt(&adopt_spec))
        .await
        .map_err(|err| ActorError::Spawn {
            program: "the VM adopter".to_owned(),
            source: std::io::Error::other(err.to_string()),
        })??
        .into();
    let (exit_tx, exit_rx) = watch::channel(None);
    let waiter = Arc::clone(&launched);
    tokio::spawn(async move {
        let exit = waiter.wait_exit().await;
        let _ = exit_tx.send(Some(exit));
    });
    let checked = async {
        let ready = ReadyListener::bind(&spec.ready_socket())?;
        let conn = GuestConnection::connect(&spec.vsock_socket()).await?;
        let agent_version = conn.agent_version().to_owned();
        conn.ping().await?;
        Ok::<_, ActorError>((ready, agent_version))
    };
    let checked = tokio::select! {
        checked = checked => checked,
        () = cancelled(cancel) => Err(cancelled_error(&spec.vm_id)),
    };
    match checked {
        Ok((ready, agent_version)) => Ok(Booted {
            launched,
            exit_rx,
            ready,
            boot_ms: started.elapsed().as_millis() as u64,
            agent_version,
        }),
        Err(err) => {
            tear_down(&launched, exit_rx).await;
            Err(err)
        }
    }
}

/// Kills the VM, waits (bounded) for it to exit, and cleans up.
pub async fn tear_down(
    launched: &Arc<dyn LaunchedVm>,
    mut exit_rx: watch::Receiver<Option<ProcessExit>>,
) {
    launched.kill();
    let _ = tokio::time::timeout(KILL_WAIT, exit_rx.wait_for(Option::is_some)).await;
    let cleanup = Arc::clone(launched);
    let _ = tokio::task::spawn_blocking(move || cleanup.cleanup()).await;
}
