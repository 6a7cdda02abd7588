//! `pyro workspace diff|snapshot create|snapshot list|snapshot delete|reset`.

use std::future::Future;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pyro_sdk::api::workspace::{
    is_simple_name, DiffEntry, DiffRequest, DiffResult, ResetRequest, ResetResult, SnapshotInfo,
    SnapshotRequest,
};
use pyro_sdk::Client;

use super::{terminated, write_raw};
use crate::output::{out, print_json, yes_no, CliError, Outcome};

/// The snapshot every workspace has: `/workspace` as created.
const BASELINE: &str = "baseline";

/// `pyro workspace diff` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pyro workspace diff WORKSPACE_ID
  pyro workspace diff WORKSPACE_ID --against checkpoint
  pyro workspace diff WORKSPACE_ID --json | jq -r .patch > changes.patch

Prints a [workspace-diff] summary line, the changes that have no text patch
(directories, symlinks, binary files, mode changes), then the unified patch
of the text files, which `pyro workspace patch apply` accepts.")]
pub struct DiffArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// Compare with this snapshot instead of the baseline.
    #[arg(long, value_name = "SNAPSHOT")]
    pub against: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `pyro workspace snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a named snapshot of /workspace.
    #[command(
        after_help = "Example:\n  pyro workspace snapshot create WORKSPACE_ID checkpoint

Names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$; `baseline` is the create-time
snapshot every workspace has. Restore one with `pyro workspace reset ID --snapshot NAME`."
    )]
    Create {
        /// The workspace id.
        workspace_id: String,
        /// The snapshot's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a workspace's snapshots: the baseline, then named ones newest first.
    #[command(after_help = "Example:\n  pyro workspace snapshot list WORKSPACE_ID")]
    List {
        /// The workspace id.
        workspace_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a named snapshot (the baseline cannot be deleted).
    #[command(after_help = "Example:\n  pyro workspace snapshot delete WORKSPACE_ID checkpoint")]
    Delete {
        /// The workspace id.
        workspace_id: String,
        /// The snapshot's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl SnapshotCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::Create { json, .. } | Self::List { json, .. } | Self::Delete { json, .. } => {
                *json
            }
        }
    }
}

/// `pyro workspace reset` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pyro workspace reset WORKSPACE_ID
  pyro workspace reset WORKSPACE_ID --snapshot checkpoint

The workspace's disk is recreated and /workspace restored from the snapshot;
the command history starts over. Snapshots are kept.")]
pub struct ResetArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The snapshot to restore [default: baseline].
    #[arg(long, value_name = "NAME")]
    pub snapshot: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Checks a new snapshot's name.
pub fn check_snapshot_name(name: &str) -> Result<(), CliError> {
    if name == BASELINE {
        return Err(CliError::invalid(
            "`baseline` is the create-time snapshot; choose another name",
        ));
    }
    if !is_simple_name(name) {
        return Err(CliError::invalid(format!(
            "snapshot name {name:?} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,63}}$"
        )));
    }
    Ok(())
}

/// Runs `pyro workspace diff`.
pub async fn diff(
    args: DiffArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let request = DiffRequest {
        against: args.against,
    };
    let result = connect
        .await?
        .diff_workspace(&args.workspace_id, &request)
        .await?;
    if args.json {
        print_json(&result);
        return Ok(ExitCode::SUCCESS);
    }
    for line in diff_lines(&result) {
        out(&line);
    }
    write_raw(
        &mut std::io::stdout().lock(),
        terminated(&result.patch).as_bytes(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace snapshot ...`.
pub async fn snapshot(
    command: SnapshotCommand,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    match command {
        SnapshotCommand::Create {
            workspace_id,
            name,
            json,
        } => {
            check_snapshot_name(&name)?;
            let snapshot = connect
                .await?
                .create_snapshot(&workspace_id, &SnapshotRequest { name })
                .await?;
            if json {
                print_json(&snapshot);
            } else {
                out(&snapshot_created_line(&snapshot));
            }
        }
        SnapshotCommand::List { workspace_id, json } => {
            let list = connect.await?.list_snapshots(&workspace_id).await?;
            if json {
                print_json(&list);
            } else {
                for snapshot in &list.snapshots {
                    out(&snapshot_line(snapshot));
                }
            }
        }
        SnapshotCommand::Delete {
            workspace_id,
            name,
            json,
        } => {
            let deleted = connect.await?.delete_snapshot(&workspace_id, &name).await?;
            if json {
                print_json(&deleted);
            } else {
                out(&format!(
                    "Deleted workspace snapshot: {}",
                    deleted.snapshot_name
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace reset`.
pub async fn reset(
    args: ResetArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let request = ResetRequest {
        snapshot: args.snapshot,
    };
    let result = connect
        .await?
        .reset_workspace(&args.workspace_id, &request)
        .await?;
    if args.json {
        print_json(&result);
    } else {
        for line in reset_lines(&result) {
            out(&line);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines before the patch: `No workspace changes.`, or the
/// `[workspace-diff]` summary and one line per change without a text patch.
pub fn diff_lines(result: &DiffResult) -> Vec<String> {
    let baseline = result.against == BASELINE;
    if !result.changed {
        return vec![if baseline {
            "No workspace changes.".to_owned()
        } else {
            format!("No workspace changes since snapshot {}.", result.against)
        }];
    }
    let s = &result.summary;
    let mut header = format!(
        "[workspace-diff] workspace_id={} total={} added={} modified={} deleted={} type_changed={} text_patched={} non_text={}",
        result.workspace_id, s.total, s.added, s.modified, s.deleted, s.type_changed, s.text_patched, s.non_text
    );
    if s.mode_changed > 0 {
        header.push_str(&format!(" mode_changed={}", s.mode_changed));
    }
    if !baseline {
        header.push_str(&format!(" against={}", result.against));
    }
    let mut lines = vec![header];
    lines.extend(
        result
            .entries
            .iter()
            .filter(|entry| entry.text_patch.is_none())
            .map(non_text_line),
    );
    lines
}

/// `STATUS [TYPE] PATH[ (OLD -> NEW)]` for a change without a text patch.
pub fn non_text_line(entry: &DiffEntry) -> String {
    let mut line = format!("{} [{}] {}", entry.status, entry.artifact_type, entry.path);
    if let Some((old, new)) = &entry.mode_change {
        line.push_str(&format!(" ({old} -> {new})"));
    }
    line
}

/// `[workspace-snapshot-create] snapshot_name=... kind=... entry_count=... bytes_written=...`.
pub fn snapshot_created_line(snapshot: &SnapshotInfo) -> String {
    format!(
        "[workspace-snapshot-create] snapshot_name={} kind={} entry_count={} bytes_written={}",
        snapshot.snapshot_name, snapshot.kind, snapshot.entry_count, snapshot.bytes_written
    )
}

/// `NAME [kind] created_at=... entry_count=... bytes_written=... bytes_stored=... deletable=yes|no`.
pub fn snapshot_line(snapshot: &SnapshotInfo) -> String {
    format!(
        "{} [{}] created_at={} entry_count={} bytes_written={} bytes_stored={} deletable={}",
        snapshot.snapshot_name,
        snapshot.kind,
        snapshot.created_at,
        snapshot.entry_count,
        snapshot.bytes_written,
        snapshot.bytes_stored,
        yes_no(snapshot.deletable)
    )
}

/// The reset block of the first-run transcript.
pub fn reset_lines(result: &ResetResult) -> Vec<String> {
    let reset = &result.workspace_reset;
    let info = &result.workspace;
    vec![
        format!(
            "Workspace reset from snapshot: {} ({})",
            reset.snapshot_name, reset.kind
        ),
        format!(
            "[workspace-reset] destination={} entry_count={} bytes_written={}",
            reset.destination, reset.entry_count, reset.bytes_written
        ),
        format!("Workspace ID: {}", info.workspace_id),
        format!("State: {}", info.state.as_str()),
        format!("Command count: {}", info.command_count),
        format!("Reset count: {}", info.reset_count),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::workspace::lifecycle::tests::sample_info;
    use crate::commands::workspace::tests::parse;
    use crate::commands::workspace::WorkspaceCommand;
    use pyro_sdk::api::workspace::{DiffSummary, ResetInfo};

    fn snapshot() -> SnapshotInfo {
        SnapshotInfo {
            workspace_id: "0123456789ab".into(),
            snapshot_name: "checkpoint".into(),
            kind: "named".into(),
            created_at: "2026-01-02T03:04:05.000Z".into(),
            entry_count: 4,
            bytes_written: 70,
            bytes_stored: 28,
            deletable: true,
        }
    }

    fn diff_result() -> DiffResult {
        DiffResult {
            workspace_id: "0123456789ab".into(),
            against: "baseline".into(),
            changed: true,
            summary: DiffSummary {
                total: 3,
                added: 1,
                modified: 1,
                deleted: 0,
                type_changed: 0,
                mode_changed: 1,
                text_patched: 1,
                non_text: 2,
            },
            entries: vec![
                DiffEntry {
                    path: "bin".into(),
                    status: "added".into(),
                    artifact_type: "directory".into(),
                    mode_change: None,
                    text_patch: None,
                },
                DiffEntry {
                    path: "run.sh".into(),
                    status: "mode_changed".into(),
                    artifact_type: "file".into(),
                    mode_change: Some(("0644".into(), "0755".into())),
                    text_patch: None,
                },
                DiffEntry {
                    path: "src/note.txt".into(),
                    status: "modified".into(),
                    artifact_type: "file".into(),
                    mode_change: None,
                    text_patch: Some("--- a/src/note.txt\n+++ b/src/note.txt\n".into()),
                },
            ],
            patch: "--- a/src/note.txt\n+++ b/src/note.txt\n@@ -1 +1 @@\n-a\n+b\n".into(),
        }
    }

    #[test]
    fn diff_header_matches_the_transcript() {
        let mut result = diff_result();
        result.summary.mode_changed = 0;
        result.entries.retain(|e| e.text_patch.is_some());
        assert_eq!(
            diff_lines(&result),
            ["[workspace-diff] workspace_id=0123456789ab total=3 added=1 modified=1 deleted=0 type_changed=0 text_patched=1 non_text=2"]
        );
    }

    #[test]
    fn diff_lists_non_text_changes_and_the_snapshot() {
        let mut result = diff_result();
        result.against = "checkpoint".into();
        let lines = diff_lines(&result);
        assert!(
            lines[0].ends_with(" non_text=2 mode_changed=1 against=checkpoint"),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1..],
            [
                "added [directory] bin",
                "mode_changed [file] run.sh (0644 -> 0755)"
            ]
        );
    }

    #[test]
    fn unchanged_diffs() {
        let mut result = diff_result();
        result.changed = false;
        assert_eq!(diff_lines(&result), ["No workspace changes."]);
        result.against = "checkpoint".into();
        assert_eq!(
            diff_lines(&result),
            ["No workspace changes since snapshot checkpoint."]
        );
    }

    #[test]
    fn snapshot_lines() {
        assert_eq!(
            snapshot_created_line(&snapshot()),
            "[workspace-snapshot-create] snapshot_name=checkpoint kind=named entry_count=4 bytes_written=70"
        );
        let mut baseline = snapshot();
        baseline.snapshot_name = "baseline".into();
        baseline.kind = "baseline".into();
        baseline.deletable = false;
        assert_eq!(
            snapshot_line(&baseline),
            "baseline [baseline] created_at=2026-01-02T03:04:05.000Z entry_count=4 bytes_written=70 bytes_stored=28 deletable=no"
        );
    }

    #[test]
    fn reset_block_matches_the_transcript() {
        let mut workspace = sample_info();
        workspace.reset_count = 1;
        let result = ResetResult {
            workspace,
            workspace_reset: ResetInfo {
                snapshot_name: "checkpoint".into(),
                kind: "named".into(),
                destination: "/workspace".into(),
                entry_count: 4,
                bytes_written: 70,
            },
        };
        assert_eq!(
            reset_lines(&result),
            [
                "Workspace reset from snapshot: checkpoint (named)",
                "[workspace-reset] destination=/workspace entry_count=4 bytes_written=70",
                "Workspace ID: 0123456789ab",
                "State: started",
                "Command count: 0",
                "Reset count: 1",
            ]
        );
    }

    #[test]
    fn snapshot_names_are_checked() {
        assert!(check_snapshot_name("checkpoint-1").is_ok());
        assert!(check_snapshot_name("baseline").is_err());
        assert!(check_snapshot_name("-x").is_err());
        assert!(check_snapshot_name("a b").is_err());
    }

    #[test]
    fn reset_and_diff_flags() {
        let parsed = parse(&["workspace", "reset", "w", "--snapshot", "checkpoint"]).unwrap();
        let WorkspaceCommand::Reset(args) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(args.snapshot.as_deref(), Some("checkpoint"));
        let parsed = parse(&[
            "workspace",
            "diff",
            "w",
            "--against",
            "checkpoint",
            "--json",
        ])
        .unwrap();
        let WorkspaceCommand::Diff(args) = parsed else {
            panic!("{parsed:?}");
        };
        assert_eq!(args.against.as_deref(), Some("checkpoint"));
        assert!(args.json);
    }
}
