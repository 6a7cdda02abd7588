//! `pyro-guest-agent` entry point: listen, say ready, serve.

use pyro_guest_agent::{log, notify_ready, server, vsock::VsockListener};
use pyro_guest_protocol::AGENT_PORT;

fn main() {
    pyro_guest_agent::adopt_data_mount();
    let listener = match VsockListener::bind(AGENT_PORT) {
        Ok(listener) => listener,
        Err(err) => {
            log(&format!("cannot listen on vsock port {AGENT_PORT}: {err}"));
            std::process::exit(1);
        }
    };
    if !notify_ready() {
        log("the host did not take the ready notice; serving anyway");
    }
    server::serve(&listener)
}
