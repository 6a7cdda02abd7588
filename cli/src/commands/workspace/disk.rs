//! `pyro workspace disk export|list|read`: a stopped workspace's disk,
//! inspected without booting it.

use std::future::Future;
use std::process::ExitCode;

use clap::Subcommand;
use pyro_sdk::api::workspace::{DiskExportRequest, DiskExportResult, ListRequest};
use pyro_sdk::Client;

use super::field;
use super::files::{listing_lines, print_read, ListArgs, ReadArgs};
use crate::output::{out, print_json, CliError, Outcome};

/// `pyro workspace disk ...`.
#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Copy a stopped workspace's disk to a new host file (an ext4 image).
    #[command(after_help = "Example:
  pyro workspace stop WORKSPACE_ID
  pyro workspace disk export WORKSPACE_ID --output ./workspace.ext4

The output path must not exist yet. The image is sparse.")]
    Export {
        /// The workspace id.
        workspace_id: String,
        /// A host path that does not exist yet.
        #[arg(long, value_name = "HOST_PATH")]
        output: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a directory on a stopped workspace's disk.
    #[command(after_help = "Examples:
  pyro workspace disk list WORKSPACE_ID
  pyro workspace disk list WORKSPACE_ID src --recursive")]
    List(ListArgs),
    /// Print (the start of) a file on a stopped workspace's disk.
    #[command(after_help = "Examples:
  pyro workspace disk read WORKSPACE_ID src/note.txt
  pyro workspace disk read WORKSPACE_ID build.log --max-bytes 4096 --content-only

The content goes to stdout, the [workspace-disk-read] summary to stderr
(--content-only prints the content alone, exactly).")]
    Read(ReadArgs),
}

impl DiskCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::Export { json, .. } => *json,
            Self::List(args) => args.json,
            Self::Read(args) => args.json,
        }
    }
}

/// Runs `pyro workspace disk ...`.
pub async fn disk(
    command: DiskCommand,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    match command {
        DiskCommand::Export {
            workspace_id,
            output,
            json,
        } => {
            let request = DiskExportRequest {
                output_path: output,
            };
            let result = connect
                .await?
                .export_workspace_disk(&workspace_id, &request)
                .await?;
            if json {
                print_json(&result);
            } else {
                out(&disk_export_line(&result));
            }
        }
        DiskCommand::List(args) => {
            let request = ListRequest {
                path: args.path,
                recursive: args.recursive,
            };
            let result = connect
                .await?
                .list_workspace_disk(&args.workspace_id, &request)
                .await?;
            if args.json {
                print_json(&result);
            } else {
                for line in listing_lines("Workspace disk path", &result) {
                    out(&line);
                }
            }
        }
        DiskCommand::Read(args) => {
            let result = connect
                .await?
                .read_workspace_disk(&args.workspace_id, &args.request())
                .await?;
            print_read(&result, &args, "workspace-disk-read");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `[workspace-disk-export] workspace_id=... output_path=... disk_format=... bytes_written=...`.
pub fn disk_export_line(result: &DiskExportResult) -> String {
    format!(
        "[workspace-disk-export] workspace_id={} output_path={} disk_format={} bytes_written={}",
        result.workspace_id,
        field(&result.output_path),
        result.disk_format,
        result.bytes_written
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::workspace::tests::parse;
    use crate::commands::workspace::WorkspaceCommand;

    #[test]
    fn export_line() {
        let result = DiskExportResult {
            workspace_id: "0123456789ab".into(),
            output_path: "/home/you/ws.ext4".into(),
            disk_format: "ext4".into(),
            bytes_written: 4_294_967_296,
        };
        assert_eq!(
            disk_export_line(&result),
            "[workspace-disk-export] workspace_id=0123456789ab output_path=/home/you/ws.ext4 disk_format=ext4 bytes_written=4294967296"
        );
    }

    #[test]
    fn disk_flags() {
        let err = parse(&["workspace", "disk", "export", "w"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let parsed = parse(&["workspace", "disk", "list", "w", "src", "--recursive"]).unwrap();
        let WorkspaceCommand::Disk {
            command: DiskCommand::List(args),
        } = parsed
        else {
            panic!("{parsed:?}");
        };
        assert_eq!(args.path.as_deref(), Some("src"));
        assert!(args.recursive && !args.json);
    }
}
