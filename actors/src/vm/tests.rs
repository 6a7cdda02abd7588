//! VM actor tests against the fake backend: real actors, real wire protocol,
//! no guest.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use pyro_guest_protocol::{CommandLine, ExecRequest, OutputStream};

use super::fake::{FakeBoot, FakeVmm};
use super::*;
use crate::vsock::ExecEvent;

#[derive(Default)]
struct EventLog {
    events: Arc<Mutex<Vec<VmEvent>>>,
}

impl Actor for EventLog {
    type Context = Context<Self>;
}

impl Handler<VmEvent> for EventLog {
    type Result = ();
    fn handle(&mut self, msg: VmEvent, _ctx: &mut Self::Context) {
        self.events.lock().unwrap().push(msg);
    }
}

fn spec(dir: &tempfile::TempDir) -> VmSpec {
    VmSpec {
        vm_id: "0123456789ab".into(),
        vcpu_count: 1,
        mem_mib: 256,
        kernel: "/nonexistent/vmlinux".into(),
        initramfs: "/nonexistent/initramfs".into(),
        root_disk: "/nonexistent/rootfs.ext4".into(),
        data_disk: "/nonexistent/data.ext4".into(),
        run_dir: dir.path().join("vm"),
        hostname: "pyro".into(),
    }
}

fn start(vmm: &FakeVmm, dir: &tempfile::TempDir, timeout: Duration) -> Addr<VmActor> {
    VmActor::new(spec(dir), Arc::new(vmm.clone()), timeout).start()
}

async fn exec_echo(vm: &Addr<VmActor>, line: &str) -> (Vec<u8>, i32) {
    let conn = vm.send(OpenGuest).await.unwrap().unwrap();
    let mut stream = conn
        .exec(ExecRequest {
            command: CommandLine::Shell(line.into()),
            cwd: None,
            env: vec![],
            timeout_ms: None,
        })
        .await
        .unwrap();
    let mut stdout = Vec::new();
    loop {
        match stream.next().await.unwrap() {
            ExecEvent::Output(OutputStream::Stdout, data) => stdout.extend(data),
            ExecEvent::Output(OutputStream::Stderr, _) => {}
            ExecEvent::Exited(status) => return (stdout, status.exit_code),
        }
    }
}

#[actix_rt::test]
async fn boots_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Ready);
    let vm = start(&vmm, &dir, Duration::from_secs(5));
    let ready = vm.send(StartVm).await.unwrap().unwrap();
    assert!(!ready.agent_version.is_empty());
    assert_eq!(vm.send(GetVmInfo).await.unwrap().state, VmState::Running);

    assert_eq!(exec_echo(&vm, "hello").await, (b"hello\n".to_vec(), 0));
    assert_eq!(exec_echo(&vm, "exit 42").await.1, 42);

    vm.send(StopVm).await.unwrap().unwrap();
    assert_eq!(vmm.live_vms(), 0, "power-off ended the fake VMM");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!vm.connected(), "the actor ends after a stop");
    assert!(
        !dir.path().join("vm/v.sock_1025").exists(),
        "the ready socket is removed"
    );
}

#[actix_rt::test]
async fn a_second_start_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Ready);
    let vm = start(&vmm, &dir, Duration::from_secs(5));
    vm.send(StartVm).await.unwrap().unwrap();
    let err = vm.send(StartVm).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            ActorError::NotRunning {
                state: VmState::Running,
                ..
            }
        ),
        "{err}"
    );
    vm.send(StopVm).await.unwrap().unwrap();
}

#[actix_rt::test]
async fn a_guest_boot_failure_is_reported_with_its_stage() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Fails("mount_root".into()));
    let vm = start(&vmm, &dir, Duration::from_secs(5));
    let err = vm.send(StartVm).await.unwrap().unwrap_err();
    match &err {
        ActorError::GuestBootFailed {
            stage,
            errno,
            console,
            ..
        } => {
            assert_eq!(stage, "mount_root");
            assert_eq!(*errno, Some(2));
            assert!(console.contains("fake console"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(vm.send(GetVmInfo).await.unwrap().state, VmState::Failed);
    assert_eq!(vmm.live_vms(), 0);
}

#[actix_rt::test]
async fn a_silent_guest_times_out_and_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Silent);
    let vm = start(&vmm, &dir, Duration::from_millis(200));
    let err = vm.send(StartVm).await.unwrap().unwrap_err();
    assert!(matches!(err, ActorError::BootTimeout { .. }), "{err}");
    assert_eq!(vmm.live_vms(), 0, "the timed-out VM was killed");
}

#[actix_rt::test]
async fn a_vmm_that_dies_during_boot_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Crashes);
    let vm = start(&vmm, &dir, Duration::from_secs(5));
    let err = vm.send(StartVm).await.unwrap().unwrap_err();
    assert!(matches!(err, ActorError::ExitedDuringBoot { .. }), "{err}");
}

#[actix_rt::test]
async fn a_crash_while_running_tells_the_owner_and_refuses_new_work() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Ready);
    let log = EventLog::default();
    let events = Arc::clone(&log.events);
    let owner = log.start();
    let vm = VmActor::new(spec(&dir), Arc::new(vmm.clone()), Duration::from_secs(5))
        .with_owner(owner.recipient())
        .start();
    vm.send(StartVm).await.unwrap().unwrap();

    vmm.crash_all();
    for _ in 0..100 {
        if !events.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert!(
        matches!(&events[0].kind, VmEventKind::ExitedUnexpectedly { exit, .. } if exit == "signal 9")
    );

    let info = vm.send(GetVmInfo).await.unwrap();
    assert_eq!(info.state, VmState::Stopped);
    let err = vm.send(OpenGuest).await.unwrap().unwrap_err();
    assert!(matches!(err, ActorError::NotRunning { .. }), "{err}");
    vm.send(StopVm).await.unwrap().unwrap();
}

#[actix_rt::test]
async fn a_stop_during_boot_cancels_it_and_answers_once_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Ready);
    let vm = start(&vmm, &dir, Duration::from_secs(5));
    let booting = vm.send(StartVm);
    let stop = vm.send(StopVm);
    let (booted, stopped) = tokio::join!(booting, stop);
    stopped.unwrap().unwrap();
    // The boot either lost the race (cancelled) or won it (then stopped);
    // either way nothing runs once the stop has answered.
    if let Err(err) = booted.unwrap() {
        assert!(matches!(err, ActorError::ActorGone { .. }), "{err}");
    }
    assert_eq!(
        vmm.live_vms(),
        0,
        "the stop answered before the VM was gone"
    );
}

#[actix_rt::test]
async fn a_stop_cancels_a_hanging_boot_without_waiting_for_the_boot_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Silent);
    let vm = start(&vmm, &dir, Duration::from_secs(600));
    let booting = vm.send(StartVm);
    // Let the launch happen, so there is a process to tear down.
    for _ in 0..200 {
        if vmm.launches() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(vmm.launches(), 1);
    assert_eq!(vmm.live_vms(), 1);
    let stopped = tokio::time::timeout(Duration::from_secs(10), vm.send(StopVm))
        .await
        .expect("the stop waited for the boot timeout");
    stopped.unwrap().unwrap();
    assert_eq!(vmm.live_vms(), 0, "the cancelled boot's VM still runs");
    let err = booting.await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "vm 0123456789ab is shutting down");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!vm.connected(), "the actor ends after the stop");
}

#[actix_rt::test]
async fn concurrent_stops_all_answer_after_the_vm_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let vmm = FakeVmm::new(FakeBoot::Ready);
    let vm = start(&vmm, &dir, Duration::from_secs(5));
    vm.send(StartVm).await.unwrap().unwrap();
    let (first, second) = tokio::join!(
        async {
            let answer = vm.send(StopVm).await;
            (answer, vmm.live_vms())
        },
        async {
            let answer = vm.send(StopVm).await;
            (answer, vmm.live_vms())
        }
    );
    for (answer, live) in [first, second] {
        answer.unwrap().unwrap();
        assert_eq!(live, 0, "a stop answered while the VM still ran");
    }
}
