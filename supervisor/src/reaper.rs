//! The reaper: deletes workspaces whose time to live has passed.
//!
//! It looks every few seconds, in the background, rather than lazily inside
//! other calls, so an expired workspace stops costing memory and disk at
//! once even when nobody calls the API.

use std::time::Duration;

use actix::prelude::*;

use crate::root::GetWorkspace;
use crate::runtime::Runtime;
use crate::store::WithStore;
use crate::workspace::core::now_ms;
use crate::workspace::messages::Delete;

/// How often the reaper looks.
pub const REAP_INTERVAL: Duration = Duration::from_secs(5);

/// Deletes expired workspaces.
#[derive(Debug)]
pub struct Reaper {
    runtime: Runtime,
    busy: bool,
}

impl Reaper {
    /// A reaper over the runtime's records.
    pub fn new(runtime: Runtime) -> Self {
        Self {
            runtime,
            busy: false,
        }
    }

    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let runtime = self.runtime.clone();
        let sweep = async move {
            let now = now_ms();
            let expired = runtime
                .store
                .send(WithStore::new(move |store| store.expired_workspaces(now)))
                .await;
            let Ok(Ok(expired)) = expired else {
                return;
            };
            for workspace_id in expired {
                let addr = runtime
                    .root
                    .send(GetWorkspace {
                        workspace_id: workspace_id.clone(),
                    })
                    .await;
                if let Ok(Some(addr)) = addr {
                    tracing::info!(%workspace_id, "time to live passed; deleting the workspace");
                    match addr
                        .send(Delete {
                            reason: "ttl_expired",
                        })
                        .await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => {
                            tracing::warn!(%workspace_id, error = %err, "reaping failed; retrying later");
                        }
                        Err(_) => {}
                    }
                }
            }
        };
        ctx.spawn(sweep.into_actor(self).map(|(), act, _ctx| act.busy = false));
    }
}

impl Actor for Reaper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(REAP_INTERVAL, |act, ctx| act.sweep(ctx));
    }
}
