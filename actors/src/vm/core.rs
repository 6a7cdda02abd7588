//! The VM lifecycle as plain, synchronously testable state.
//!
//! ```text
//! Created --begin_boot--> Booting --boot_succeeded--> Running --begin_stop--> Stopping --> Stopped
//!                            |                           |
//!                            '--boot_failed--> Failed    '--process_exited (unexpected)--> Stopped
//! ```
//!
//! A stop asked for while booting is remembered (the actor cancels the boot)
//! and carried out as soon as the boot settles, either way.

use serde::Serialize;

use crate::error::{ActorError, Result};
use crate::process::ProcessExit;

/// Where a VM is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// Not started yet.
    Created,
    /// Processes started; waiting for the guest agent.
    Booting,
    /// The guest agent answers.
    Running,
    /// Powering off.
    Stopping,
    /// The VMM has exited.
    Stopped,
    /// The boot failed.
    Failed,
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Booting => "booting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        })
    }
}

/// What a stop request should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPlan {
    /// The VM is booting: stop it when the boot settles.
    Deferred,
    /// Power the guest off (then kill it if it does not go).
    PowerOff,
    /// Another stop is under way.
    InProgress,
    /// Nothing runs.
    AlreadyStopped,
}

/// Whether an exit of the VMM was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitDisposition {
    /// We were stopping it.
    Expected,
    /// It died on its own (crash, kill, guest power-off).
    Unexpected,
    /// It exited during boot; the boot reports that itself.
    DuringBoot,
}

/// A snapshot of a VM for status calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmInfo {
    /// The VM.
    pub vm_id: String,
    /// Its state.
    pub state: VmState,
    /// Milliseconds from launch to a ready agent.
    pub boot_ms: Option<u64>,
    /// The agent's version.
    pub agent_version: Option<String>,
    /// How the VMM ended, once it has.
    pub exit: Option<String>,
    /// The console tail captured when it ended unexpectedly or failed.
    pub console_tail: Option<String>,
}

/// The lifecycle of one VM.
#[derive(Debug)]
pub struct VmCore {
    info: VmInfo,
    stop_requested: bool,
}

impl VmCore {
    /// A VM that has not been started.
    pub fn new(vm_id: impl Into<String>) -> Self {
        Self {
            info: VmInfo {
                vm_id: vm_id.into(),
                state: VmState::Created,
                boot_ms: None,
                agent_version: None,
                exit: None,
                console_tail: None,
            },
            stop_requested: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> VmState {
        self.info.state
    }

    /// The VM's id.
    pub fn vm_id(&self) -> &str {
        &self.info.vm_id
    }

    /// A copy of the status.
    pub fn info(&self) -> VmInfo {
        self.info.clone()
    }

    /// Created -> Booting.
    pub fn begin_boot(&mut self) -> Result<()> {
        if self.info.state != VmState::Created {
            return Err(ActorError::NotRunning {
                vm_id: self.info.vm_id.clone(),
                state: self.info.state,
            });
        }
        self.info.state = VmState::Booting;
        Ok(())
    }

    /// Booting -> Running. Returns whether a stop was asked for meanwhile.
    pub fn boot_succeeded(&mut self, boot_ms: u64, agent_version: String) -> bool {
        self.info.state = VmState::Running;
        self.info.boot_ms = Some(boot_ms);
        self.info.agent_version = Some(agent_version);
        self.stop_requested
    }

    /// Booting -> Failed.
    pub fn boot_failed(&mut self, console_tail: Option<String>) {
        self.info.state = VmState::Failed;
        self.info.console_tail = console_tail;
    }

    /// Errors unless the VM is running.
    pub fn require_running(&self) -> Result<()> {
        if self.info.state == VmState::Running {
            Ok(())
        } else {
            Err(ActorError::NotRunning {
                vm_id: self.info.vm_id.clone(),
                state: self.info.state,
            })
        }
    }

    /// Decides what a stop request does, and moves Running -> Stopping.
    pub fn begin_stop(&mut self) -> StopPlan {
        match self.info.state {
            VmState::Booting => {
                self.stop_requested = true;
                StopPlan::Deferred
            }
            VmState::Running => {
                self.info.state = VmState::Stopping;
                StopPlan::PowerOff
            }
            VmState::Stopping => StopPlan::InProgress,
            VmState::Created | VmState::Stopped | VmState::Failed => StopPlan::AlreadyStopped,
        }
    }

    /// Records that the VMM exited, and says whether that was expected.
    pub fn process_exited(
        &mut self,
        exit: &ProcessExit,
        console_tail: Option<String>,
    ) -> ExitDisposition {
        let disposition = match self.info.state {
            VmState::Stopping | VmState::Stopped => ExitDisposition::Expected,
            VmState::Created | VmState::Booting | VmState::Failed => ExitDisposition::DuringBoot,
            VmState::Running => ExitDisposition::Unexpected,
        };
        if disposition != ExitDisposition::DuringBoot {
            self.info.state = VmState::Stopped;
            self.info.exit = Some(exit.to_string());
        }
        if disposition == ExitDisposition::Unexpected {
            self.info.console_tail = console_tail;
        }
        disposition
    }

    /// Stopping -> Stopped, once the processes are gone.
    pub fn stop_finished(&mut self) {
        self.info.state = VmState::Stopped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_life() {
        let mut core = VmCore::new("abc");
        assert!(core.require_running().is_err());
        core.begin_boot().unwrap();
        assert!(core.begin_boot().is_err(), "booting twice is refused");
        assert!(!core.boot_succeeded(2500, "0.1.0".into()));
        core.require_running().unwrap();
        assert_eq!(core.begin_stop(), StopPlan::PowerOff);
        assert_eq!(core.begin_stop(), StopPlan::InProgress);
        assert_eq!(
            core.process_exited(&ProcessExit::Code(0), None),
            ExitDisposition::Expected
        );
        core.stop_finished();
        assert_eq!(core.state(), VmState::Stopped);
        assert_eq!(core.begin_stop(), StopPlan::AlreadyStopped);
    }

    #[test]
    fn stop_during_boot_is_deferred() {
        let mut core = VmCore::new("abc");
        core.begin_boot().unwrap();
        assert_eq!(core.begin_stop(), StopPlan::Deferred);
        assert!(
            core.boot_succeeded(10, "v".into()),
            "the deferred stop is reported"
        );
    }

    #[test]
    fn a_crash_while_running_is_unexpected_and_keeps_the_console() {
        let mut core = VmCore::new("abc");
        core.begin_boot().unwrap();
        core.boot_succeeded(10, "v".into());
        let disposition = core.process_exited(&ProcessExit::Signal(9), Some("last line".into()));
        assert_eq!(disposition, ExitDisposition::Unexpected);
        let info = core.info();
        assert_eq!(info.state, VmState::Stopped);
        assert_eq!(info.exit.as_deref(), Some("signal 9"));
        assert_eq!(info.console_tail.as_deref(), Some("last line"));
        let err = core.require_running().unwrap_err();
        assert_eq!(err.to_string(), "vm abc is stopped, not running");
    }

    #[test]
    fn exits_during_boot_are_left_to_the_boot() {
        let mut core = VmCore::new("abc");
        core.begin_boot().unwrap();
        assert_eq!(
            core.process_exited(&ProcessExit::Code(1), None),
            ExitDisposition::DuringBoot
        );
        assert_eq!(core.state(), VmState::Booting);
        core.boot_failed(Some("panic".into()));
        assert_eq!(core.state(), VmState::Failed);
    }
}
