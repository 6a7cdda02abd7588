//! Durable records: one SQLite database (WAL) in the data directory.
//!
//! It holds workspaces, their snapshots and their command history. Every
//! change is one transaction; bulk data (disks, snapshot contents, command
//! output) lives in files beside it, written to a temporary name, fsynced and
//! renamed (see `workspace::files`). Only the supervisor opens it.
//!
//! [`Store`] is plain synchronous code, tested directly; [`StoreActor`] runs it
//! on its own thread (an actix `SyncArbiter`) so no arbiter ever waits on disk.
//! Callers send it a closure with [`WithStore`].
//!
//! Schema changes bump `SCHEMA_VERSION` and add a step to `migrate`.

mod records;

use std::path::Path;

use actix::prelude::*;
use rusqlite::{params, Connection, OptionalExtension, Row};

pub use records::{CommandRecord, ServiceRecord, SnapshotKind, SnapshotRecord, WorkspaceRecord};

/// The schema version this build writes.
const SCHEMA_VERSION: i64 = 1;

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("the record database failed while {action}")]
    Sqlite {
        /// What was being done.
        action: &'static str,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A JSON column did not parse (the database was edited or is corrupt).
    #[error("the record of {what} is corrupt")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The database was written by a newer pyro.
    #[error("the record database has schema version {found}, newer than this pyro's {supported}; upgrade pyro")]
    TooNew {
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { action, source }
}

/// The record database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(sql("opening the database"))?;
        Self::prepare(conn)
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(sql("opening the database"))?;
        Self::prepare(conn)
    }

    fn prepare(conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql("enabling foreign keys"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql("setting the busy timeout"))?;
        let mut store = Self { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(sql("reading the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            let tx = self.conn.transaction().map_err(sql("migrating"))?;
            tx.execute_batch(
                "CREATE TABLE workspaces (
                    id TEXT PRIMARY KEY,
                    record TEXT NOT NULL,
                    state TEXT NOT NULL,
                    expires_at_ms INTEGER NOT NULL,
                    last_activity_at_ms INTEGER NOT NULL
                 );
                 CREATE TABLE snapshots (
                    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    record TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    PRIMARY KEY (workspace_id, name)
                 );
                 CREATE TABLE commands (
                    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
                    sequence INTEGER NOT NULL,
                    record TEXT NOT NULL,
                    PRIMARY KEY (workspace_id, sequence)
                 );
                 PRAGMA user_version = 1;",
            )
            .map_err(sql("creating the schema"))?;
            tx.commit().map_err(sql("migrating"))?;
        }
        Ok(())
    }

    /// Adds a new workspace.
    pub fn insert_workspace(&mut self, record: &WorkspaceRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO workspaces (id, record, state, expires_at_ms, last_activity_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    record.id,
                    encode(record),
                    record.state.as_str(),
                    record.expires_at_ms,
                    record.last_activity_at_ms
                ],
            )
            .map_err(sql("adding a workspace"))?;
        Ok(())
    }

    /// Replaces a workspace's record.
    pub fn update_workspace(&mut self, record: &WorkspaceRecord) -> Result<()> {
        self.conn
            .execute(
                "UPDATE workspaces SET record = ?2, state = ?3, expires_at_ms = ?4, last_activity_at_ms = ?5 WHERE id = ?1",
                params![
                    record.id,
                    encode(record),
                    record.state.as_str(),
                    record.expires_at_ms,
                    record.last_activity_at_ms
                ],
            )
            .map_err(sql("updating a workspace"))?;
        Ok(())
    }

    /// One workspace.
    pub fn workspace(&self, id: &str) -> Result<Option<WorkspaceRecord>> {
        self.conn
            .query_row(
                "SELECT id, record FROM workspaces WHERE id = ?1",
                params![id],
                decode_row,
            )
            .optional()
            .map_err(sql("reading a workspace"))?
            .transpose()
    }

    /// Every workspace, most recently active first.
    pub fn workspaces(&self) -> Result<Vec<WorkspaceRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, record FROM workspaces ORDER BY last_activity_at_ms DESC, id")
            .map_err(sql("listing workspaces"))?;
        let rows = stmt
            .query_map([], decode_row)
            .map_err(sql("listing workspaces"))?;
        rows.map(|row| row.map_err(sql("listing workspaces"))?)
            .collect()
    }

    /// Ids of workspaces whose time to live has passed.
    pub fn expired_workspaces(&self, now_ms: i64) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM workspaces WHERE expires_at_ms <= ?1 ORDER BY expires_at_ms")
            .map_err(sql("finding expired workspaces"))?;
        let rows = stmt
            .query_map(params![now_ms], |row| row.get::<_, String>(0))
            .map_err(sql("finding expired workspaces"))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(sql("finding expired workspaces"))
    }

    /// Removes a workspace with its snapshots and history.
    pub fn delete_workspace(&mut self, id: &str) -> Result<bool> {
        let removed = self
            .conn
            .execute("DELETE FROM workspaces WHERE id = ?1", params![id])
            .map_err(sql("deleting a workspace"))?;
        Ok(removed > 0)
    }

    /// Adds a snapshot.
    pub fn insert_snapshot(&mut self, record: &SnapshotRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO snapshots (workspace_id, name, record, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![record.workspace_id, record.name, encode(record), record.created_at_ms],
            )
            .map_err(sql("adding a snapshot"))?;
        Ok(())
    }

    /// One snapshot.
    pub fn snapshot(&self, workspace_id: &str, name: &str) -> Result<Option<SnapshotRecord>> {
        self.conn
            .query_row(
                "SELECT name, record FROM snapshots WHERE workspace_id = ?1 AND name = ?2",
                params![workspace_id, name],
                decode_row,
            )
            .optional()
            .map_err(sql("reading a snapshot"))?
            .transpose()
    }

    /// A workspace's snapshots: baseline first, then newest first.
    pub fn snapshots(&self, workspace_id: &str) -> Result<Vec<SnapshotRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, record FROM snapshots WHERE workspace_id = ?1
                 ORDER BY (name = 'baseline') DESC, created_at_ms DESC, name",
            )
            .map_err(sql("listing snapshots"))?;
        let rows = stmt
            .query_map(params![workspace_id], decode_row)
            .map_err(sql("listing snapshots"))?;
        rows.map(|row| row.map_err(sql("listing snapshots"))?)
            .collect()
    }

    /// Removes a snapshot record.
    pub fn delete_snapshot(&mut self, workspace_id: &str, name: &str) -> Result<bool> {
        let removed = self
            .conn
            .execute(
                "DELETE FROM snapshots WHERE workspace_id = ?1 AND name = ?2",
                params![workspace_id, name],
            )
            .map_err(sql("deleting a snapshot"))?;
        Ok(removed > 0)
    }

    /// Records a finished command and the workspace's new counters, in one
    /// transaction.
    pub fn record_command(
        &mut self,
        workspace: &WorkspaceRecord,
        command: &CommandRecord,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction()
            .map_err(sql("recording a command"))?;
        tx.execute(
            "INSERT INTO commands (workspace_id, sequence, record) VALUES (?1, ?2, ?3)",
            params![
                command.workspace_id,
                command.sequence as i64,
                encode(command)
            ],
        )
        .map_err(sql("recording a command"))?;
        tx.execute(
            "UPDATE workspaces SET record = ?2, state = ?3, expires_at_ms = ?4, last_activity_at_ms = ?5 WHERE id = ?1",
            params![
                workspace.id,
                encode(workspace),
                workspace.state.as_str(),
                workspace.expires_at_ms,
                workspace.last_activity_at_ms
            ],
        )
        .map_err(sql("recording a command"))?;
        tx.commit().map_err(sql("recording a command"))
    }

    /// A workspace's command history, oldest first.
    pub fn commands(&self, workspace_id: &str) -> Result<Vec<CommandRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sequence, record FROM commands WHERE workspace_id = ?1 ORDER BY sequence",
            )
            .map_err(sql("listing commands"))?;
        let rows = stmt
            .query_map(params![workspace_id], decode_row)
            .map_err(sql("listing commands"))?;
        rows.map(|row| row.map_err(sql("listing commands"))?)
            .collect()
    }

    /// Forgets a workspace's command history (reset) and saves its record.
    pub fn clear_commands(&mut self, workspace: &WorkspaceRecord) -> Result<()> {
        let tx = self.conn.transaction().map_err(sql("clearing commands"))?;
        tx.execute(
            "DELETE FROM commands WHERE workspace_id = ?1",
            params![workspace.id],
        )
        .map_err(sql("clearing commands"))?;
        tx.execute(
            "UPDATE workspaces SET record = ?2, state = ?3, expires_at_ms = ?4, last_activity_at_ms = ?5 WHERE id = ?1",
            params![
                workspace.id,
                encode(workspace),
                workspace.state.as_str(),
                workspace.expires_at_ms,
                workspace.last_activity_at_ms
            ],
        )
        .map_err(sql("clearing commands"))?;
        tx.commit().map_err(sql("clearing commands"))
    }
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    // Records are plain data; serializing them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// Reads `(key, record JSON)` into a record.
fn decode_row<T: serde::de::DeserializeOwned>(row: &Row<'_>) -> rusqlite::Result<Result<T>> {
    let key: String = match row.get_ref(0)? {
        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
        _ => row.get(0)?,
    };
    let json: String = row.get(1)?;
    Ok(serde_json::from_str(&json).map_err(|source| StoreError::Corrupt { what: key, source }))
}

/// The store on its own thread.
#[derive(Debug)]
pub struct StoreActor {
    store: Option<Store>,
    path: std::path::PathBuf,
}

impl StoreActor {
    /// Wraps an open store; `path` is where to reopen it if the thread ever
    /// restarts.
    pub fn new(store: Option<Store>, path: &Path) -> Self {
        Self {
            store,
            path: path.to_owned(),
        }
    }
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}

/// Work to run on the store's thread.
type StoreWork<T> = Box<dyn FnOnce(&mut Store) -> Result<T> + Send>;

/// Runs a closure against the store, on the store's thread.
pub struct WithStore<T: Send + 'static> {
    work: StoreWork<T>,
}

impl<T: Send + 'static> WithStore<T> {
    /// Wraps `work`.
    pub fn new(work: impl FnOnce(&mut Store) -> Result<T> + Send + 'static) -> Self {
        Self {
            work: Box::new(work),
        }
    }
}

impl<T: Send + 'static> std::fmt::Debug for WithStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WithStore")
    }
}

impl<T: Send + 'static> Message for WithStore<T> {
    type Result = Result<T>;
}

impl<T: Send + 'static> Handler<WithStore<T>> for StoreActor {
    type Result = Result<T>;

    fn handle(&mut self, msg: WithStore<T>, _ctx: &mut Self::Context) -> Self::Result {
        if self.store.is_none() {
            self.store = Some(Store::open(&self.path)?);
        }
        match self.store.as_mut() {
            Some(store) => (msg.work)(store),
            None => Err(StoreError::Sqlite {
                action: "reopening the database",
                source: rusqlite::Error::InvalidPath(self.path.clone()),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
