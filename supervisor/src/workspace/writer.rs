//! Persisting one workspace's record changes, in order.
//!
//! The workspace actor changes its record in memory, synchronously, and
//! queues each change here. One task per workspace hands the changes to the
//! store actor one after another, so a later state can never be overwritten
//! by an earlier one; callers that must not answer before the change is
//! durable await its acknowledgement.

use actix::Addr;
use tokio::sync::{mpsc, oneshot};

use crate::error::SupervisorError;
use crate::store::{CommandRecord, SnapshotRecord, StoreActor, WithStore, WorkspaceRecord};

/// One change to persist.
#[derive(Debug)]
pub enum StoreWrite {
    /// Insert a new workspace.
    Insert(WorkspaceRecord),
    /// Replace the workspace's record.
    Save(WorkspaceRecord),
    /// A finished command and the record counting it.
    Command(WorkspaceRecord, CommandRecord),
    /// Forget the history (reset) and save the record.
    ClearCommands(WorkspaceRecord),
    /// A new snapshot.
    InsertSnapshot(SnapshotRecord),
    /// A removed snapshot.
    DeleteSnapshot {
        /// The workspace.
        workspace_id: String,
        /// The snapshot.
        name: String,
    },
    /// Remove the workspace and everything recorded about it.
    Delete(String),
}

type Ack = oneshot::Sender<Result<(), SupervisorError>>;

/// The queue of one workspace's record changes.
#[derive(Debug, Clone)]
pub struct RecordWriter {
    tx: mpsc::UnboundedSender<(StoreWrite, Option<Ack>)>,
}

impl RecordWriter {
    /// Starts the writer task for one workspace.
    pub fn spawn(store: Addr<StoreActor>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(StoreWrite, Option<Ack>)>();
        actix::spawn(async move {
            while let Some((write, ack)) = rx.recv().await {
                let result = apply(&store, write).await;
                match ack {
                    Some(ack) => {
                        let _ = ack.send(result);
                    }
                    None => {
                        if let Err(err) = result {
                            tracing::error!(error = %err, "persisting a workspace record failed");
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Queues a change; failures are logged.
    pub fn write(&self, write: StoreWrite) {
        if self.tx.send((write, None)).is_err() {
            tracing::error!("the record writer is gone; a change was not persisted");
        }
    }

    /// Queues a change and waits until it is durable.
    pub async fn write_and_wait(&self, write: StoreWrite) -> Result<(), SupervisorError> {
        let (ack, done) = oneshot::channel();
        self.tx.send((write, Some(ack))).map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}

fn gone() -> SupervisorError {
    SupervisorError::ActorGone {
        what: "the record writer".to_owned(),
    }
}

async fn apply(store: &Addr<StoreActor>, write: StoreWrite) -> Result<(), SupervisorError> {
    let result = store
        .send(WithStore::new(move |store| match write {
            StoreWrite::Insert(record) => store.insert_workspace(&record),
            StoreWrite::Save(record) => store.update_workspace(&record),
            StoreWrite::Command(record, command) => store.record_command(&record, &command),
            StoreWrite::ClearCommands(record) => store.clear_commands(&record),
            StoreWrite::InsertSnapshot(snapshot) => store.insert_snapshot(&snapshot),
            StoreWrite::DeleteSnapshot { workspace_id, name } => {
                store.delete_snapshot(&workspace_id, &name).map(|_| ())
            }
            StoreWrite::Delete(id) => store.delete_workspace(&id).map(|_| ()),
        }))
        .await
        .map_err(|_| SupervisorError::ActorGone {
            what: "the record store".to_owned(),
        })?;
    result.map_err(SupervisorError::from)
}
