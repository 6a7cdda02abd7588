//! A tour of one pyro workspace through the SDK: create it seeded from a
//! host directory, run a command in it (streaming the output as it comes),
//! diff it against its baseline, and delete it.
//!
//! ```text
//! cargo run -p pyro-sdk --example workspace_tour
//! cargo run -p pyro-sdk --example workspace_tour -- 'sed -i s/host/guest/ hello.txt'
//! ```
//!
//! It connects the way the `pyro` CLI does ([`ConnectOptions::from_env`]:
//! `PYRO_HOME` and friends, starting the supervisor when none runs), so it
//! needs an installed pyro (`scripts/setup`), and it boots a real
//! `debian:12` guest. The seed is a temporary directory holding
//! `hello.txt`; the optional argument replaces the shell command run in
//! `/workspace`, and a command that exits non-zero fails the tour.
//!
//! Once the workspace exists it is deleted whatever happens next: a failed
//! step or Ctrl-C (which waits for a creation in progress to finish, since
//! the supervisor completes it anyway) still ends with the delete, and the
//! workspace's TTL is the backstop if the process is killed outright.
//!
//! Exit code 0 when every step worked, 1 otherwise. Errors are printed with
//! their stable code, message chain and hint ([`SdkError::code`],
//! [`SdkError::to_body`], [`SdkError::hint`]).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use pyro_sdk::api::workspace::{
    CreateEvent, CreateWorkspaceRequest, DiffRequest, ExecEvent, ExecRequest, WorkspaceInfo,
};
use pyro_sdk::api::{CommandSpec, StreamName};
use pyro_sdk::{Client, ConnectOptions, SdkError};

/// What runs in the workspace unless an argument replaces it.
const DEFAULT_COMMAND: &str = "echo 'changed in the guest' >> hello.txt && cat hello.txt";

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_COMMAND.to_owned());
    match tour(&command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::FAILURE
        }
    }
}

/// Why the tour stopped.
#[derive(Debug)]
enum Failure {
    /// An SDK call failed (or the supervisor reported an error).
    Sdk(SdkError),
    /// Preparing the seed directory on the host failed.
    Seed(std::io::Error),
    /// The command ran and exited non-zero.
    Command(i32),
    /// Ctrl-C.
    Interrupted,
}

impl From<SdkError> for Failure {
    fn from(err: SdkError) -> Self {
        Self::Sdk(err)
    }
}

impl Failure {
    /// Prints the failure on stderr: `[error] code=... chain`, then the hint.
    fn report(&self) {
        match self {
            Self::Sdk(err) => {
                let body = err.to_body();
                eprintln!("[error] code={} {}", err.code(), body.chain());
                if let Some(detail) = &body.detail {
                    eprintln!("{detail}");
                }
                if let Some(hint) = err.hint() {
                    eprintln!("[hint] {hint}");
                }
            }
            Self::Seed(err) => eprintln!("[error] preparing the seed directory failed: {err}"),
            Self::Command(code) => eprintln!("[error] the command exited with code {code}"),
            Self::Interrupted => eprintln!("[error] interrupted"),
        }
    }
}

async fn tour(command: &str) -> Result<(), Failure> {
    let seed = seed_dir().map_err(Failure::Seed)?;
    let client = Client::connect(ConnectOptions::from_env()?).await?;
    println!("[connect] socket={}", client.socket().display());

    let workspace = create(&client, seed.path()).await?;
    let id = workspace.workspace_id.as_str();
    // From here on the workspace exists: every way out goes through delete.
    let result = tokio::select! {
        result = exec_and_diff(&client, id, command) => result,
        Ok(()) = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
    };
    let deleted = delete(&client, id).await;
    if let (Err(_), Err(failure)) = (&result, &deleted) {
        // Both failed: report the delete too, the step's error follows.
        failure.report();
    }
    result.and(deleted)
}

/// A temporary host directory holding `hello.txt` (removed on drop).
fn seed_dir() -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix("pyro-tour-").tempdir()?;
    std::fs::write(dir.path().join("hello.txt"), "hello from the host\n")?;
    Ok(dir)
}

/// Creates the workspace, printing its phases as they happen.
///
/// A dropped create stream does not stop the supervisor, which finishes the
/// workspace anyway; so Ctrl-C here waits for the result and deletes it.
async fn create(client: &Client, seed: &Path) -> Result<WorkspaceInfo, Failure> {
    let mut request = CreateWorkspaceRequest::new("debian:12");
    request.name = Some("workspace tour".to_owned());
    request
        .labels
        .insert("example".to_owned(), "workspace_tour".to_owned());
    request.seed_path = Some(seed.to_string_lossy().into_owned());

    let mut events = client.create_workspace(&request).await?;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut listening = true;
    let mut interrupted = false;
    let info = loop {
        let event = tokio::select! {
            event = events.next() => event,
            signal = &mut ctrl_c, if listening => {
                listening = false;
                interrupted = signal.is_ok();
                if interrupted {
                    eprintln!("[interrupt] waiting for the workspace to be created, to delete it");
                }
                continue;
            }
        };
        match event {
            None => {
                return Err(SdkError::StreamEnded {
                    path: events.path().to_owned(),
                }
                .into())
            }
            Some(event) => match event? {
                CreateEvent::Phase {
                    phase,
                    workspace_id,
                } => {
                    println!("[create] workspace_id={workspace_id} phase={phase}");
                }
                CreateEvent::Pull(progress) => println!(
                    "[create] environment={} install={} {}",
                    progress.environment,
                    progress.phase,
                    progress.detail.unwrap_or_default()
                ),
                CreateEvent::Result(info) => break *info,
                // Creating failed and the supervisor removed what it made.
                CreateEvent::Error(body) => return Err(SdkError::Api(body).into()),
            },
        }
    };
    println!(
        "[create] workspace_id={} state={} environment={} seed_entries={}",
        info.workspace_id,
        info.state.as_str(),
        info.environment,
        info.workspace_seed.entry_count
    );
    if interrupted {
        delete(client, &info.workspace_id).await?;
        return Err(Failure::Interrupted);
    }
    Ok(info)
}

/// Runs `command` in `/workspace`, streaming its output, then prints the
/// diff against the baseline.
async fn exec_and_diff(client: &Client, id: &str, command: &str) -> Result<(), Failure> {
    println!("[exec] $ {command}");
    let request = ExecRequest::new(CommandSpec::Shell(command.to_owned()));
    let mut events = client.exec_workspace(id, &request).await?;
    let summary = loop {
        let Some(event) = events.next().await else {
            return Err(SdkError::StreamEnded {
                path: events.path().to_owned(),
            }
            .into());
        };
        match event? {
            ExecEvent::Output(chunk) => {
                // Output is bytes (base64 on the wire); write them as they come.
                let bytes = chunk.bytes().unwrap_or_default();
                let written = match chunk.stream {
                    StreamName::Stdout => write_now(&mut std::io::stdout().lock(), &bytes),
                    StreamName::Stderr => write_now(&mut std::io::stderr().lock(), &bytes),
                };
                if let Err(err) = written {
                    eprintln!("[exec] cannot print output: {err}");
                }
            }
            ExecEvent::Result(summary) => break summary,
            ExecEvent::Error(body) => return Err(SdkError::Api(body).into()),
        }
    };
    println!(
        "[exec] sequence={} exit_code={} duration_ms={} timed_out={}",
        summary.sequence, summary.exit_code, summary.duration_ms, summary.timed_out
    );
    if summary.exit_code != 0 {
        return Err(Failure::Command(summary.exit_code));
    }

    let diff = client.diff_workspace(id, &DiffRequest::default()).await?;
    let s = &diff.summary;
    println!(
        "[diff] against={} changed={} total={} added={} modified={} deleted={}",
        diff.against, diff.changed, s.total, s.added, s.modified, s.deleted
    );
    for entry in &diff.entries {
        println!("[diff] {} {}", entry.status, entry.path);
    }
    print!("{}", diff.patch);
    Ok(())
}

/// Writes and flushes, so streamed output shows up at once.
fn write_now(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}

/// Deletes the workspace: its VM, disk, snapshots and records.
async fn delete(client: &Client, id: &str) -> Result<(), Failure> {
    let result = client.delete_workspace(id).await?;
    println!(
        "[delete] workspace_id={} deleted={} reason={}",
        result.workspace_id, result.deleted, result.reason
    );
    Ok(())
}
