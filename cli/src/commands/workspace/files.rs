//! `pyro workspace sync push|export|file list|file read|file write|patch apply`,
//! and the listing and read renderings shared with `disk`.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use pyro_sdk::api::workspace::{
    ExportRequest, ExportResult, FileEntry, ListRequest, ListResult, PatchRequest, PatchResult,
    ReadRequest, ReadResult, SyncPushRequest, SyncPushResult, WriteRequest, WriteResult,
    DEFAULT_READ_BYTES, MAX_READ_BYTES,
};
use pyro_sdk::Client;

use super::{field, terminated, text_input, write_raw};
use crate::output::{err, out, print_json, yes_no, CliError, Outcome};

/// `pyro workspace sync ...`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Copy a host directory or .tar/.tar.gz/.tgz archive into a started workspace.
    #[command(after_help = "Examples:
  pyro workspace sync push WORKSPACE_ID ./changes --dest src
  pyro workspace sync push WORKSPACE_ID ./changes.tar.gz

Files are written over what is there; nothing is deleted. A push is all or
nothing: the archive is checked on the host, staged in the guest and renamed
into place, and a push that fails partway leaves the tree as it was.")]
    Push(SyncPushArgs),
}

impl SyncCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::Push(args) => args.json,
        }
    }
}

/// `pyro workspace sync push` arguments.
#[derive(Debug, Args)]
pub struct SyncPushArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A host directory or .tar/.tar.gz/.tgz archive.
    pub source_path: String,
    /// Where in the workspace (default /workspace; relative paths are under it).
    #[arg(long, value_name = "PATH")]
    pub dest: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `pyro workspace export` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  pyro workspace export WORKSPACE_ID src/note.txt --output ./note.txt
  pyro workspace export WORKSPACE_ID src --output ./src-copy

The output path must not exist yet.")]
pub struct ExportArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A file, directory or symlink in the workspace (relative paths are under /workspace).
    pub path: String,
    /// A host path that does not exist yet.
    #[arg(long, value_name = "HOST_PATH")]
    pub output: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `pyro workspace file ...`.
#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// List a directory of a started workspace.
    #[command(after_help = "Examples:
  pyro workspace file list WORKSPACE_ID
  pyro workspace file list WORKSPACE_ID src --recursive")]
    List(ListArgs),
    /// Print (the start of) a file of a started workspace.
    #[command(after_help = "Examples:
  pyro workspace file read WORKSPACE_ID src/note.txt
  pyro workspace file read WORKSPACE_ID build.log --max-bytes 4096 --content-only

The content goes to stdout, the [workspace-file-read] summary to stderr
(--content-only prints the content alone, exactly).")]
    Read(ReadArgs),
    /// Write a text file in a started workspace (creating its parents).
    #[command(after_help = "Examples:
  pyro workspace file write WORKSPACE_ID src/note.txt --text 'hello'
  pyro workspace file write WORKSPACE_ID config.toml --text-file ./config.toml
  generate-config | pyro workspace file write WORKSPACE_ID config.toml --text-file -

The file gets exactly the given text (no newline is added), at most 1 MiB.")]
    Write(WriteArgs),
}

impl FileCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::List(args) => args.json,
            Self::Read(args) => args.json,
            Self::Write(args) => args.json,
        }
    }
}

/// `file list` and `disk list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A directory (default /workspace; relative paths are under it).
    pub path: Option<String>,
    /// Descend into directories.
    #[arg(long)]
    pub recursive: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `file read` and `disk read` arguments.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// A regular file (relative paths are under /workspace).
    pub path: String,
    /// Read at most this many bytes (1-16777216).
    #[arg(long, default_value_t = DEFAULT_READ_BYTES,
          value_parser = clap::value_parser!(u64).range(1..=MAX_READ_BYTES))]
    pub max_bytes: u64,
    /// Print only the content: no summary, no added newline.
    #[arg(long, conflicts_with = "json")]
    pub content_only: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl ReadArgs {
    /// The request.
    pub fn request(&self) -> ReadRequest {
        ReadRequest {
            path: self.path.clone(),
            max_bytes: self.max_bytes,
        }
    }
}

/// `pyro workspace file write` arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["text", "text_file"])))]
pub struct WriteArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The file (relative paths are under /workspace).
    pub path: String,
    /// The new contents.
    #[arg(long)]
    pub text: Option<String>,
    /// A host UTF-8 file with the new contents (`-` reads stdin).
    #[arg(long, value_name = "PATH")]
    pub text_file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `pyro workspace patch ...`.
#[derive(Debug, Subcommand)]
pub enum PatchCommand {
    /// Apply a unified diff (`git diff` output works) to a started workspace, all or nothing.
    #[command(after_help = "Examples:
  pyro workspace patch apply WORKSPACE_ID --patch-file ./fix.patch
  git diff | pyro workspace patch apply WORKSPACE_ID --patch-file -
  pyro workspace patch apply WORKSPACE_ID --patch \"$(pyro workspace diff OTHER_ID --json | jq -r .patch)\"

Paths in the patch are relative to /workspace (a/ and b/ prefixes are fine).")]
    Apply(PatchArgs),
}

impl PatchCommand {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match self {
            Self::Apply(args) => args.json,
        }
    }
}

/// `pyro workspace patch apply` arguments.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["patch", "patch_file"])))]
pub struct PatchArgs {
    /// The workspace id.
    pub workspace_id: String,
    /// The patch text.
    #[arg(long)]
    pub patch: Option<String>,
    /// A host file with the patch (`-` reads stdin).
    #[arg(long, value_name = "PATH")]
    pub patch_file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The write request, with the text read and checked.
pub fn write_request(args: WriteArgs) -> Result<(String, WriteRequest), CliError> {
    let text = text_input(
        args.text,
        args.text_file.as_deref(),
        "--text",
        "--text-file",
    )?;
    Ok((
        args.workspace_id,
        WriteRequest {
            path: args.path,
            text,
        },
    ))
}

/// The patch request, with the patch read and checked.
pub fn patch_request(args: PatchArgs) -> Result<(String, PatchRequest), CliError> {
    let patch = text_input(
        args.patch,
        args.patch_file.as_deref(),
        "--patch",
        "--patch-file",
    )?;
    if patch.trim().is_empty() {
        return Err(CliError::invalid("the patch is empty"));
    }
    Ok((args.workspace_id, PatchRequest { patch }))
}

/// Runs `pyro workspace sync push`.
pub async fn sync(
    command: SyncCommand,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let SyncCommand::Push(args) = command;
    let request = SyncPushRequest {
        source_path: args.source_path,
        dest: args.dest,
    };
    let result = connect
        .await?
        .sync_push(&args.workspace_id, &request)
        .await?;
    if args.json {
        print_json(&result);
    } else {
        out(&sync_line(&result));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace export`.
pub async fn export(
    args: ExportArgs,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let request = ExportRequest {
        path: args.path,
        output_path: args.output,
    };
    let result = connect
        .await?
        .export_workspace(&args.workspace_id, &request)
        .await?;
    if args.json {
        print_json(&result);
    } else {
        out(&export_line(&result));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace file ...`.
pub async fn file(
    command: FileCommand,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    match command {
        FileCommand::List(args) => {
            let request = ListRequest {
                path: args.path,
                recursive: args.recursive,
            };
            let result = connect
                .await?
                .list_workspace_files(&args.workspace_id, &request)
                .await?;
            if args.json {
                print_json(&result);
            } else {
                for line in listing_lines("Workspace path", &result) {
                    out(&line);
                }
            }
        }
        FileCommand::Read(args) => {
            let result = connect
                .await?
                .read_workspace_file(&args.workspace_id, &args.request())
                .await?;
            print_read(&result, &args, "workspace-file-read");
        }
        FileCommand::Write(args) => {
            let json = args.json;
            let (workspace_id, request) = write_request(args)?;
            let result = connect
                .await?
                .write_workspace_file(&workspace_id, &request)
                .await?;
            if json {
                print_json(&result);
            } else {
                out(&write_line(&result));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `pyro workspace patch apply`.
pub async fn patch(
    command: PatchCommand,
    connect: impl Future<Output = Result<Client, CliError>>,
) -> Outcome {
    let PatchCommand::Apply(args) = command;
    let json = args.json;
    let (workspace_id, request) = patch_request(args)?;
    let result = connect
        .await?
        .apply_workspace_patch(&workspace_id, &request)
        .await?;
    if json {
        print_json(&result);
    } else {
        out(&patch_line(&result));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a read result: JSON; the content alone; or the content (ending
/// with a newline) on stdout and the `[PREFIX]` summary on stderr.
pub fn print_read(result: &ReadResult, args: &ReadArgs, prefix: &str) {
    if args.json {
        print_json(result);
    } else if args.content_only {
        write_raw(&mut std::io::stdout().lock(), result.content.as_bytes());
    } else {
        write_raw(
            &mut std::io::stdout().lock(),
            terminated(&result.content).as_bytes(),
        );
        err(&read_footer(prefix, result));
    }
}

/// `[workspace-sync] workspace_id=... mode=... source=... destination=... entry_count=... bytes_written=... execution_mode=...`.
pub fn sync_line(result: &SyncPushResult) -> String {
    format!(
        "[workspace-sync] workspace_id={} mode={} source={} destination={} entry_count={} bytes_written={} execution_mode={}",
        result.workspace_id,
        result.mode,
        field(&result.source_path),
        field(&result.destination),
        result.entry_count,
        result.bytes_written,
        result.execution_mode
    )
}

/// `[workspace-export] workspace_id=... workspace_path=... output_path=... artifact_type=... entry_count=... bytes_written=... execution_mode=...`.
pub fn export_line(result: &ExportResult) -> String {
    format!(
        "[workspace-export] workspace_id={} workspace_path={} output_path={} artifact_type={} entry_count={} bytes_written={} execution_mode={}",
        result.workspace_id,
        field(&result.workspace_path),
        field(&result.output_path),
        result.artifact_type,
        result.entry_count,
        result.bytes_written,
        result.execution_mode
    )
}

/// `TITLE: PATH (recursive=yes|no)`, then one line per entry (or
/// `No workspace entries found.`).
pub fn listing_lines(title: &str, result: &ListResult) -> Vec<String> {
    let mut lines = vec![format!(
        "{title}: {} (recursive={})",
        result.path,
        yes_no(result.recursive)
    )];
    if result.entries.is_empty() {
        lines.push("No workspace entries found.".to_owned());
    }
    lines.extend(result.entries.iter().map(entry_line));
    lines
}

/// `PATH [type] size=N mode=MODE[ -> TARGET]`.
pub fn entry_line(entry: &FileEntry) -> String {
    let mut line = format!(
        "{} [{}] size={} mode={}",
        entry.path, entry.artifact_type, entry.size_bytes, entry.mode
    );
    if let Some(target) = &entry.link_target {
        line.push_str(&format!(" -> {target}"));
    }
    line
}

/// `[PREFIX] workspace_id=... path=... size_bytes=... truncated=yes|no`.
pub fn read_footer(prefix: &str, result: &ReadResult) -> String {
    format!(
        "[{prefix}] workspace_id={} path={} size_bytes={} truncated={}",
        result.workspace_id,
        field(&result.path),
        result.size_bytes,
        yes_no(result.truncated)
    )
}

/// `[workspace-file-write] workspace_id=... path=... bytes_written=... execution_mode=...`.
pub fn write_line(result: &WriteResult) -> String {
    format!(
        "[workspace-file-write] workspace_id={} path={} bytes_written={} execution_mode={}",
        result.workspace_id,
        field(&result.path),
        result.bytes_written,
        result.execution_mode
    )
}

/// `[workspace-patch] workspace_id=... total=... added=... modified=... deleted=... execution_mode=...`.
pub fn patch_line(result: &PatchResult) -> String {
    let s = &result.summary;
    format!(
        "[workspace-patch] workspace_id={} total={} added={} modified={} deleted={} execution_mode={}",
        result.workspace_id, s.total, s.added, s.modified, s.deleted, result.execution_mode
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::workspace::tests::parse;
    use crate::commands::workspace::WorkspaceCommand;
    use clap::error::ErrorKind;
    use pyro_sdk::api::workspace::{PatchEntry, PatchSummary};

    fn write_args(args: &[&str]) -> Result<WriteArgs, clap::Error> {
        let mut words = vec!["workspace", "file", "write"];
        words.extend_from_slice(args);
        match parse(&words)? {
            WorkspaceCommand::File {
                command: FileCommand::Write(args),
            } => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    fn patch_args(args: &[&str]) -> Result<PatchArgs, clap::Error> {
        let mut words = vec!["workspace", "patch", "apply"];
        words.extend_from_slice(args);
        match parse(&words)? {
            WorkspaceCommand::Patch {
                command: PatchCommand::Apply(args),
            } => Ok(args),
            other => panic!("{other:?}"),
        }
    }

    fn read_result() -> ReadResult {
        ReadResult {
            workspace_id: "0123456789ab".into(),
            path: "/workspace/src/note.txt".into(),
            size_bytes: 28,
            max_bytes: 65536,
            content: "hello from synced workspace\n".into(),
            content_base64: String::new(),
            truncated: false,
        }
    }

    #[test]
    fn sync_line_matches_the_transcript() {
        let result = SyncPushResult {
            workspace_id: "0123456789ab".into(),
            mode: "directory".into(),
            source_path: "/home/you/changes".into(),
            destination: "/workspace/src".into(),
            entry_count: 2,
            bytes_written: 28,
            execution_mode: "guest_vsock".into(),
        };
        assert_eq!(
            sync_line(&result),
            "[workspace-sync] workspace_id=0123456789ab mode=directory source=/home/you/changes \
             destination=/workspace/src entry_count=2 bytes_written=28 execution_mode=guest_vsock"
        );
    }

    #[test]
    fn export_line_matches_the_transcript() {
        let result = ExportResult {
            workspace_id: "0123456789ab".into(),
            workspace_path: "/workspace/src/note.txt".into(),
            output_path: "/home/you/my notes/note.txt".into(),
            artifact_type: "file".into(),
            entry_count: 1,
            bytes_written: 28,
            execution_mode: "guest_vsock".into(),
        };
        assert_eq!(
            export_line(&result),
            "[workspace-export] workspace_id=0123456789ab workspace_path=/workspace/src/note.txt \
             output_path='/home/you/my notes/note.txt' artifact_type=file entry_count=1 bytes_written=28 \
             execution_mode=guest_vsock"
        );
    }

    #[test]
    fn listings() {
        let mut result = ListResult {
            workspace_id: "0123456789ab".into(),
            path: "/workspace".into(),
            recursive: false,
            entries: vec![],
        };
        assert_eq!(
            listing_lines("Workspace path", &result),
            [
                "Workspace path: /workspace (recursive=no)",
                "No workspace entries found."
            ]
        );
        result.recursive = true;
        result.entries = vec![
            FileEntry {
                path: "/workspace/src".into(),
                artifact_type: "directory".into(),
                size_bytes: 0,
                mode: "0755".into(),
                link_target: None,
            },
            FileEntry {
                path: "/workspace/latest".into(),
                artifact_type: "symlink".into(),
                size_bytes: 12,
                mode: "0777".into(),
                link_target: Some("src/note.txt".into()),
            },
        ];
        assert_eq!(
            listing_lines("Workspace disk path", &result),
            [
                "Workspace disk path: /workspace (recursive=yes)",
                "/workspace/src [directory] size=0 mode=0755",
                "/workspace/latest [symlink] size=12 mode=0777 -> src/note.txt",
            ]
        );
    }

    #[test]
    fn read_footers() {
        let mut result = read_result();
        assert_eq!(
            read_footer("workspace-file-read", &result),
            "[workspace-file-read] workspace_id=0123456789ab path=/workspace/src/note.txt size_bytes=28 truncated=no"
        );
        result.truncated = true;
        assert!(read_footer("workspace-disk-read", &result)
            .starts_with("[workspace-disk-read] workspace_id=0123456789ab"));
        assert!(read_footer("workspace-disk-read", &result).ends_with("truncated=yes"));
    }

    #[test]
    fn write_and_patch_lines() {
        let write = WriteResult {
            workspace_id: "0123456789ab".into(),
            path: "/workspace/src/note.txt".into(),
            bytes_written: 6,
            execution_mode: "guest_vsock".into(),
        };
        assert_eq!(
            write_line(&write),
            "[workspace-file-write] workspace_id=0123456789ab path=/workspace/src/note.txt bytes_written=6 execution_mode=guest_vsock"
        );
        let patch = PatchResult {
            workspace_id: "0123456789ab".into(),
            changed: true,
            summary: PatchSummary {
                total: 2,
                added: 1,
                modified: 1,
                deleted: 0,
            },
            entries: vec![PatchEntry {
                path: "a.txt".into(),
                status: "added".into(),
            }],
            execution_mode: "guest_vsock".into(),
        };
        assert_eq!(
            patch_line(&patch),
            "[workspace-patch] workspace_id=0123456789ab total=2 added=1 modified=1 deleted=0 execution_mode=guest_vsock"
        );
    }

    #[test]
    fn write_needs_exactly_one_source() {
        let err = write_args(&["w", "f", "--text", "a", "--text-file", "x"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let err = write_args(&["w", "f"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let (id, request) = write_request(write_args(&["w", "f", "--text", ""]).unwrap()).unwrap();
        assert_eq!(
            (id.as_str(), request.path.as_str(), request.text.as_str()),
            ("w", "f", "")
        );
        let missing = write_args(&["w", "f", "--text-file", "/nonexistent/pyro/x"]).unwrap();
        let message = write_request(missing).unwrap_err().0.message;
        assert!(
            message.starts_with("cannot read --text-file /nonexistent/pyro/x: "),
            "{message}"
        );
    }

    #[test]
    fn patch_needs_exactly_one_source() {
        let err = patch_args(&["w", "--patch", "p", "--patch-file", "x"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let err = patch_args(&["w"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let empty = patch_args(&["w", "--patch", "  \n"]).unwrap();
        assert_eq!(
            patch_request(empty).unwrap_err().0.message,
            "the patch is empty"
        );
        let missing = patch_args(&["w", "--patch-file", "/nonexistent/pyro/p"]).unwrap();
        let message = patch_request(missing).unwrap_err().0.message;
        assert!(
            message.starts_with("cannot read --patch-file /nonexistent/pyro/p: "),
            "{message}"
        );
    }

    #[test]
    fn read_flags() {
        let parsed = parse(&["workspace", "file", "read", "w", "src/note.txt"]).unwrap();
        let WorkspaceCommand::File {
            command: FileCommand::Read(args),
        } = parsed
        else {
            panic!("{parsed:?}");
        };
        assert_eq!(args.request().max_bytes, DEFAULT_READ_BYTES);
        let conflict = parse(&[
            "workspace",
            "file",
            "read",
            "w",
            "f",
            "--json",
            "--content-only",
        ]);
        assert_eq!(conflict.unwrap_err().kind(), ErrorKind::ArgumentConflict);
        let zero = parse(&["workspace", "file", "read", "w", "f", "--max-bytes", "0"]);
        assert_eq!(zero.unwrap_err().kind(), ErrorKind::ValueValidation);
        let huge = parse(&[
            "workspace",
            "disk",
            "read",
            "w",
            "f",
            "--max-bytes",
            "99999999999",
        ]);
        assert_eq!(huge.unwrap_err().kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn export_needs_an_output() {
        let err = parse(&["workspace", "export", "w", "src/note.txt"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let parsed = parse(&[
            "workspace",
            "export",
            "w",
            "src/note.txt",
            "--output",
            "./note.txt",
        ]);
        assert!(matches!(parsed, Ok(WorkspaceCommand::Export(_))));
    }
}
