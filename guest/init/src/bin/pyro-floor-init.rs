//! A trivial init for the boot benchmark's floor (`scripts/bench-boot`): it
//! powers the VM off the moment the kernel starts it. Booting it under the
//! exact flags pyro uses measures what the kernel and QEMU cost by themselves.

fn main() {
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    std::process::exit(1)
}
