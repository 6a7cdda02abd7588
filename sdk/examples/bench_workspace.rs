//! Workspace benchmark, run by `scripts/bench-workspace`: one invocation on
//! a 10,000-file tree of about 100 MiB in a `debian:12` workspace, measuring
//! through the SDK (so through the supervisor, as the CLI and MCP do):
//!
//! - seed: creating a workspace seeded from the tree (boot included);
//! - snapshot: `snapshot create`, against the floor `tar c /workspace`
//!   timed inside the same guest (target <= 1.5x);
//! - diff: after changing 1% of the files (100 text files), `diff` against
//!   the baseline, against the floor `git diff --no-index` between a pristine
//!   copy of the tree and the changed one, inside the guest (target <= 1.5x);
//! - reset: restoring the baseline (disk recreated, guest rebooted);
//! - exec: the `exec -- true` round trip, against the guest's own
//!   fork+exec of `/bin/true` (target: less than 1 ms of overhead).
//!
//! The guest agent caches file hashes by (inode, size, mtime, ctime), so
//! snapshot and diff are each measured twice per run: cold (the cache
//! dropped first with `chmod -R u+r /workspace`, which moves ctimes and
//! changes nothing else, so every file is read, as the floors do; the
//! targets apply to these) and warm (right after, only changed files
//! read: what repeated snapshots and diffs cost).
//!
//! Floors run inside the guest through a workspace exec and time themselves
//! with `date +%s%N`, so the exec round trip is not in them, and emulation
//! (TCG) slows a floor and the operation it stands for alike. Floors and
//! operations are interleaved run by run. Everything is reported as medians
//! (min and max on the per-run lines, on stderr) with the ratio of the
//! medians, or for exec the difference.
//!
//! The snapshot floor writes the archive to a pipe (`tar -cf - workspace |
//! cat > /dev/null`): GNU tar notices an archive that *is* `/dev/null`
//! (`tar c /workspace > /dev/null`) and then skips reading file contents,
//! which would make the floor a directory walk rather than an archive. That
//! literal form is timed too and shown as a reference row, without a target.
//!
//! ```text
//! scripts/bench-workspace                          # 5 runs, 100 exec round trips
//! scripts/bench-workspace --reps 3 --exec-reps 50  # fewer
//! scripts/bench-workspace --json                   # the results as one JSON object
//! cargo run --release -p pyro-sdk --example bench_workspace -- --help
//! ```
//!
//! `PYRO_BENCH_REPS` and `PYRO_BENCH_EXEC_REPS` set the run counts too (the
//! arguments win). It connects like the CLI ([`ConnectOptions::from_env`]:
//! `PYRO_HOME`, `PYRO_CACHE_DIR`, starting the supervisor when none runs).
//! The tree is generated in a host temporary directory (deterministic
//! content, removed at the end); every workspace it creates is deleted on
//! the way out, after a failure or Ctrl-C too (a TTL of two hours is the
//! backstop if the process is killed outright).
//!
//! Exit code 0 when the benchmark ran (whether or not the targets are met,
//! which the last line says), 1 when it failed, 2 on bad arguments.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use pyro_sdk::api::workspace::{
    CreateEvent, CreateWorkspaceRequest, DiffRequest, DiffResult, ExecRequest, ResetRequest,
    SnapshotInfo, SnapshotRequest,
};
use pyro_sdk::api::{CommandSpec, ErrorCode};
use pyro_sdk::{Client, ConnectOptions, ExecOutput, SdkError};

/// Files in the tree.
const FILE_COUNT: usize = 10_000;
/// Every `MODIFIED_EVERY`th file is changed before the diff (1%).
const MODIFIED_EVERY: usize = 100;
/// Of those, the one at this offset (a text file, see [`is_binary`]).
const MODIFIED_OFFSET: usize = 7;
/// Smallest file; sizes are uniform in `[MIN_FILE_BYTES, MIN + SPREAD)`,
/// about 10 KiB on average, so about 100 MiB in all.
const MIN_FILE_BYTES: u64 = 2048;
/// See [`MIN_FILE_BYTES`].
const FILE_BYTES_SPREAD: u64 = 16_877;
/// The pristine copy for the diff floor (outside `/workspace`).
const PRISTINE: &str = "/tmp/bench-pristine";
/// fork+exec of `/bin/true` per floor round in the guest.
const TRUE_LOOP: u32 = 200;
/// Floor rounds for exec.
const TRUE_ROUNDS: usize = 5;
/// Timeout of the heavy guest commands.
const HEAVY_TIMEOUT_SECONDS: u64 = 1800;
/// Targets.
const SNAPSHOT_TARGET_RATIO: f64 = 1.5;
/// See [`SNAPSHOT_TARGET_RATIO`].
const DIFF_TARGET_RATIO: f64 = 1.5;
/// See [`SNAPSHOT_TARGET_RATIO`].
const EXEC_TARGET_OVERHEAD_MS: f64 = 1.0;

/// Words the text files are made of.
const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "fn", "let", "mut", "match", "impl",
    "struct", "enum", "return", "async", "await", "self", "where", "trait", "pub", "use", "mod",
    "if", "else", "loop", "while", "for", "in", "crate", "super", "const", "static", "type",
    "move", "ref", "box", "dyn", "unsafe", "extern", "true", "false", "as", "break", "continue",
];

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(Some(options)) => options,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("[error] {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str =
    "usage: bench_workspace [--reps N] [--exec-reps N] [--environment NAME] [--json]
  --reps N          runs of each heavy operation and its floor (default 5, or $PYRO_BENCH_REPS)
  --exec-reps N     exec round trips (default 100, or $PYRO_BENCH_EXEC_REPS)
  --environment E   the environment (default debian:12)
  --json            print the results as one JSON object instead of a table";

#[derive(Debug)]
struct Options {
    reps: usize,
    exec_reps: usize,
    environment: String,
    json: bool,
}

/// The options, or `None` after `--help`.
fn parse_options() -> Result<Option<Options>, String> {
    let mut options = Options {
        reps: count_from_env("PYRO_BENCH_REPS", 5)?,
        exec_reps: count_from_env("PYRO_BENCH_EXEC_REPS", 100)?,
        environment: "debian:12".to_owned(),
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => options.reps = parse_count("--reps", args.next())?,
            "--exec-reps" => options.exec_reps = parse_count("--exec-reps", args.next())?,
            "--environment" => {
                options.environment = args.next().ok_or("--environment needs a name")?;
            }
            "--json" => options.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}

fn count_from_env(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => parse_count(name, Some(value)),
        _ => Ok(default),
    }
}

fn parse_count(name: &str, value: Option<String>) -> Result<usize, String> {
    let value = value.ok_or_else(|| format!("{name} needs a number"))?;
    match value.trim().parse::<usize>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!(
            "{name} must be a whole number >= 1 (got {value:?})"
        )),
    }
}

/// Why the benchmark stopped.
#[derive(Debug)]
enum Failure {
    /// An SDK call failed (or the supervisor reported an error).
    Sdk(SdkError),
    /// Host-side I/O (generating the tree).
    Io(String, std::io::Error),
    /// A guest command or a result was not what the benchmark expects.
    Unexpected(String),
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
            Self::Io(what, err) => eprintln!("[error] {what}: {err}"),
            Self::Unexpected(message) => eprintln!("[error] {message}"),
            Self::Interrupted => eprintln!("[error] interrupted"),
        }
    }
}

/// Generates the tree, runs the benchmark, deletes what it created and
/// prints the results.
async fn run(options: &Options) -> Result<(), Failure> {
    let started = Instant::now();
    let tree = generate_tree()?;
    eprintln!(
        "[tree] {} files ({} binary), {:.1} MiB in {} ({:.1}s)",
        tree.files,
        tree.binary_files,
        mib(tree.bytes),
        tree.dir.path().display(),
        started.elapsed().as_secs_f64()
    );
    let client = Client::connect(ConnectOptions::from_env()?).await?;
    eprintln!(
        "[connect] socket={} | environment {} | {} runs each, {} exec round trips",
        client.socket().display(),
        options.environment,
        options.reps,
        options.exec_reps
    );

    let mut created = Vec::new();
    let result = tokio::select! {
        result = bench(&client, options, &tree, &mut created) => result,
        Ok(()) = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
    };
    let mut cleanup = Ok(());
    for id in &created {
        if let Err(err) = delete_workspace(&client, id).await {
            let failure = Failure::from(err);
            failure.report();
            cleanup = Err(failure);
        }
    }
    let results = result?;
    cleanup?;
    results.print(options, &tree);
    Ok(())
}

/// One measured operation: pyro's samples and those of its floor.
#[derive(Debug)]
struct Row {
    operation: &'static str,
    floor_name: &'static str,
    pyro: Vec<Duration>,
    floor: Vec<Duration>,
    target: Target,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    /// Reported only.
    None,
    /// `pyro median / floor median <= x`.
    Ratio(f64),
    /// `pyro median - floor median < x` milliseconds.
    OverheadMs(f64),
}

impl Row {
    fn pyro_median(&self) -> Duration {
        median(&self.pyro)
    }

    fn floor_median(&self) -> Option<Duration> {
        (!self.floor.is_empty()).then(|| median(&self.floor))
    }

    fn ratio(&self) -> Option<f64> {
        let floor = self.floor_median()?.as_secs_f64();
        (floor > 0.0).then(|| self.pyro_median().as_secs_f64() / floor)
    }

    fn overhead_ms(&self) -> Option<f64> {
        let floor = self.floor_median()?.as_secs_f64();
        Some((self.pyro_median().as_secs_f64() - floor) * 1000.0)
    }

    /// Whether the target is met (`None` when there is none).
    fn met(&self) -> Option<bool> {
        match self.target {
            Target::None => None,
            Target::Ratio(max) => self.ratio().map(|ratio| ratio <= max),
            Target::OverheadMs(max) => self.overhead_ms().map(|ms| ms < max),
        }
    }
}

#[derive(Debug)]
struct Results {
    environment: String,
    workspace_id: String,
    rows: Vec<Row>,
    diff_changed: u64,
    diff_patch_bytes: usize,
    snapshot_bytes_stored: u64,
}

/// Runs every measurement; the ids of the workspaces it creates go to
/// `created` as soon as they are known, for the caller to delete.
async fn bench(
    client: &Client,
    options: &Options,
    tree: &Tree,
    created: &mut Vec<String>,
) -> Result<Results, Failure> {
    let reps = options.reps;

    // Seed: the first workspace is the one measured from here on; the
    // others are deleted as soon as they are timed.
    let mut seed = Vec::new();
    let mut workspace_id = String::new();
    for run in 0..reps {
        let (id, took, entries) = create_seeded(client, options, tree.dir.path(), created).await?;
        eprintln!(
            "[seed] run {}/{reps}: {} ({entries} entries, workspace {id})",
            run + 1,
            secs(took)
        );
        seed.push(took);
        if run == 0 {
            workspace_id = id;
        } else {
            delete_workspace(client, &id).await?;
            created.retain(|other| *other != id);
        }
    }
    let ws = workspace_id.as_str();

    // Snapshot vs `tar c /workspace`, interleaved. The guest agent caches
    // file hashes by (inode, size, mtime, ctime), so each run first drops
    // that cache for the tree (`chmod -R u+r`: same modes, new ctimes) and
    // takes a cold snapshot, which reads every file as tar does, then a
    // warm one of the unchanged tree. A first untimed tar makes sure the
    // tree is in the guest's page cache for everything.
    let tar = "tar -C / -cf - workspace | cat > /dev/null";
    // The floor as the issue words it, for reference (see the module doc).
    let tar_literal = "tar c /workspace > /dev/null 2>&1";
    guest_timed(client, ws, tar).await?;
    let mut snapshot_cold = Vec::new();
    let mut snapshot_warm = Vec::new();
    let mut tar_floor = Vec::new();
    let mut tar_literal_floor = Vec::new();
    let mut bytes_stored = 0;
    for run in 0..reps {
        guest_ok(client, ws, INVALIDATE).await?;
        let floor = guest_timed(client, ws, tar).await?;
        let (cold, info) = timed_snapshot(client, ws, tree, &format!("bench-cold-{run}")).await?;
        let literal = guest_timed(client, ws, tar_literal).await?;
        let (warm, _) = timed_snapshot(client, ws, tree, &format!("bench-warm-{run}")).await?;
        bytes_stored = info.bytes_stored;
        eprintln!(
            "[snapshot] run {}/{reps}: cold {}  warm {}  floor tar {}  (tar > /dev/null {})  \
             ({} entries, {} bytes newly stored)",
            run + 1,
            secs(cold),
            secs(warm),
            secs(floor),
            secs(literal),
            info.entry_count,
            info.bytes_stored
        );
        snapshot_cold.push(cold);
        snapshot_warm.push(warm);
        tar_floor.push(floor);
        tar_literal_floor.push(literal);
    }

    // Diff: a pristine copy for the floor, then 1% of the files changed.
    guest_ok(
        client,
        ws,
        &format!("rm -rf {PRISTINE} && cp -a /workspace {PRISTINE}"),
    )
    .await?;
    let mut sed = vec![
        "sed".to_owned(),
        "-i".to_owned(),
        "3s/$/ [changed by bench_workspace]/".to_owned(),
    ];
    sed.extend(tree.modified.iter().cloned());
    let changed = client
        .exec_workspace_collect(ws, &heavy(CommandSpec::Argv(sed)))
        .await?;
    expect_exit(&changed, 0, "changing 1% of the files")?;
    // Cold (hash cache dropped, every file read) and warm (only the changed
    // files read again), as for snapshots.
    let git = format!("git diff --no-index --no-color {PRISTINE} /workspace > /dev/null");
    let mut diff_cold = Vec::new();
    let mut diff_warm = Vec::new();
    let mut git_floor = Vec::new();
    let mut diff_changed = 0;
    let mut diff_patch_bytes = 0;
    for run in 0..reps {
        guest_ok(client, ws, INVALIDATE).await?;
        // `git diff --no-index` exits 1 when the trees differ.
        let floor = guest_timed_status(client, ws, &git, 1).await?;
        let (cold, _) = timed_diff(client, ws, tree).await?;
        let (warm, result) = timed_diff(client, ws, tree).await?;
        diff_changed = result.summary.total;
        diff_patch_bytes = result.patch.len();
        eprintln!(
            "[diff] run {}/{reps}: cold {}  warm {}  floor git diff --no-index {}  \
             ({} modified, {} byte patch)",
            run + 1,
            secs(cold),
            secs(warm),
            secs(floor),
            result.summary.modified,
            result.patch.len()
        );
        diff_cold.push(cold);
        diff_warm.push(warm);
        git_floor.push(floor);
    }

    // Reset to the baseline.
    let mut reset = Vec::new();
    for run in 0..reps {
        let started = Instant::now();
        let result = client.reset_workspace(ws, &ResetRequest::default()).await?;
        let took = started.elapsed();
        eprintln!(
            "[reset] run {}/{reps}: {}  ({} entries restored, {} bytes)",
            run + 1,
            secs(took),
            result.workspace_reset.entry_count,
            result.workspace_reset.bytes_written
        );
        reset.push(took);
    }

    // `exec -- true` round trips vs the guest's own fork+exec of /bin/true.
    let truth = ExecRequest::new(CommandSpec::Argv(vec!["true".to_owned()]));
    for _ in 0..3 {
        expect_exit(&client.exec_workspace_collect(ws, &truth).await?, 0, "true")?;
    }
    let mut exec = Vec::with_capacity(options.exec_reps);
    for _ in 0..options.exec_reps {
        let started = Instant::now();
        let output = client.exec_workspace_collect(ws, &truth).await?;
        let took = started.elapsed();
        expect_exit(&output, 0, "true")?;
        exec.push(took);
    }
    let fork_exec = format!("i=0; while [ $i -lt {TRUE_LOOP} ]; do /bin/true; i=$((i + 1)); done");
    let mut true_floor = Vec::new();
    for _ in 0..TRUE_ROUNDS {
        true_floor.push(guest_timed(client, ws, &fork_exec).await? / TRUE_LOOP);
    }
    eprintln!(
        "[exec] {} round trips: median {} [min {}, max {}]  guest fork+exec median {}",
        exec.len(),
        millis(median(&exec)),
        millis(exec.iter().min().copied().unwrap_or_default()),
        millis(exec.iter().max().copied().unwrap_or_default()),
        millis(median(&true_floor))
    );

    let rows = vec![
        Row {
            operation: "seed (create, boot included)",
            floor_name: "-",
            pyro: seed,
            floor: Vec::new(),
            target: Target::None,
        },
        Row {
            operation: "snapshot create (cold)",
            floor_name: "tar c /workspace",
            pyro: snapshot_cold.clone(),
            floor: tar_floor.clone(),
            target: Target::Ratio(SNAPSHOT_TARGET_RATIO),
        },
        Row {
            operation: "snapshot create (warm)",
            floor_name: "tar c /workspace",
            pyro: snapshot_warm,
            floor: tar_floor,
            target: Target::None,
        },
        Row {
            operation: "snapshot create (cold)",
            floor_name: "tar c /workspace >/dev/null (reads no contents)",
            pyro: snapshot_cold,
            floor: tar_literal_floor,
            target: Target::None,
        },
        Row {
            operation: "diff, 1% changed (cold)",
            floor_name: "git diff --no-index",
            pyro: diff_cold,
            floor: git_floor.clone(),
            target: Target::Ratio(DIFF_TARGET_RATIO),
        },
        Row {
            operation: "diff, 1% changed (warm)",
            floor_name: "git diff --no-index",
            pyro: diff_warm,
            floor: git_floor,
            target: Target::None,
        },
        Row {
            operation: "reset (to the baseline)",
            floor_name: "-",
            pyro: reset,
            floor: Vec::new(),
            target: Target::None,
        },
        Row {
            operation: "exec -- true round trip",
            floor_name: "fork+exec /bin/true",
            pyro: exec,
            floor: true_floor,
            target: Target::OverheadMs(EXEC_TARGET_OVERHEAD_MS),
        },
    ];
    Ok(Results {
        environment: options.environment.clone(),
        workspace_id,
        rows,
        diff_changed,
        diff_patch_bytes,
        snapshot_bytes_stored: bytes_stored,
    })
}

/// Drops the guest agent's hash cache for the tree without changing it:
/// `chmod` moves every ctime (modes stay the same).
const INVALIDATE: &str = "chmod -R u+r /workspace";

/// Takes snapshot `name` (timed), checks it and deletes it (untimed).
async fn timed_snapshot(
    client: &Client,
    ws: &str,
    tree: &Tree,
    name: &str,
) -> Result<(Duration, SnapshotInfo), Failure> {
    let started = Instant::now();
    let info = client
        .create_snapshot(
            ws,
            &SnapshotRequest {
                name: name.to_owned(),
            },
        )
        .await?;
    let took = started.elapsed();
    client.delete_snapshot(ws, name).await?;
    if info.entry_count < tree.files {
        return Err(Failure::Unexpected(format!(
            "snapshot {name} has {} entries, expected at least {}",
            info.entry_count, tree.files
        )));
    }
    Ok((took, info))
}

/// Diffs against the baseline (timed) and checks that exactly the changed
/// files show up as modified.
async fn timed_diff(
    client: &Client,
    ws: &str,
    tree: &Tree,
) -> Result<(Duration, DiffResult), Failure> {
    let started = Instant::now();
    let result = client.diff_workspace(ws, &DiffRequest::default()).await?;
    let took = started.elapsed();
    let expected = tree.modified.len() as u64;
    if result.summary.total != expected || result.summary.modified != expected {
        return Err(Failure::Unexpected(format!(
            "the diff reports {} changed paths ({} modified), expected {expected} modified",
            result.summary.total, result.summary.modified
        )));
    }
    Ok((took, result))
}

/// Creates a workspace seeded from `seed`, recording its id in `created` as
/// soon as the supervisor names it; returns the id, the time the creation
/// took and the seed's entry count.
async fn create_seeded(
    client: &Client,
    options: &Options,
    seed: &Path,
    created: &mut Vec<String>,
) -> Result<(String, Duration, u64), Failure> {
    let mut request = CreateWorkspaceRequest::new(options.environment.clone());
    request.name = Some("bench_workspace".to_owned());
    request
        .labels
        .insert("example".to_owned(), "bench_workspace".to_owned());
    request.seed_path = Some(seed.to_string_lossy().into_owned());
    request.ttl_seconds = 2 * 3600;
    let started = Instant::now();
    let mut events = client.create_workspace(&request).await?;
    loop {
        let Some(event) = events.next().await else {
            return Err(SdkError::StreamEnded {
                path: events.path().to_owned(),
            }
            .into());
        };
        match event? {
            CreateEvent::Phase { workspace_id, .. } => {
                if !created.contains(&workspace_id) {
                    created.push(workspace_id);
                }
            }
            CreateEvent::Pull(progress) => eprintln!(
                "[create] environment={} install={} {}",
                progress.environment,
                progress.phase,
                progress.detail.unwrap_or_default()
            ),
            CreateEvent::Result(info) => {
                let took = started.elapsed();
                if !created.contains(&info.workspace_id) {
                    created.push(info.workspace_id.clone());
                }
                return Ok((info.workspace_id, took, info.workspace_seed.entry_count));
            }
            CreateEvent::Error(body) => return Err(SdkError::Api(body).into()),
        }
    }
}

/// Deletes a workspace; one already gone counts as deleted, and a conflict
/// (an operation still under way) is retried for a while.
async fn delete_workspace(client: &Client, id: &str) -> Result<(), SdkError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match client.delete_workspace(id).await {
            Ok(result) => {
                eprintln!("[delete] workspace_id={id} deleted={}", result.deleted);
                return Ok(());
            }
            Err(err) if err.code() == ErrorCode::UnknownWorkspace => return Ok(()),
            Err(err) if err.code() == ErrorCode::Conflict && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// An exec request for `sh -c script` with a long timeout.
fn heavy(command: CommandSpec) -> ExecRequest {
    let mut request = ExecRequest::new(command);
    request.timeout_seconds = HEAVY_TIMEOUT_SECONDS;
    request
}

fn sh(script: &str) -> CommandSpec {
    CommandSpec::Argv(vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()])
}

fn expect_exit(output: &ExecOutput, expected: i32, what: &str) -> Result<(), Failure> {
    if output.summary.exit_code == expected {
        return Ok(());
    }
    Err(Failure::Unexpected(format!(
        "{what}: exit code {} (expected {expected}){}{}",
        output.summary.exit_code,
        if output.summary.timed_out {
            " after timing out"
        } else {
            ""
        },
        tail(&output.stderr)
    )))
}

/// The end of a command's stderr, for error messages.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text
        .char_indices()
        .rev()
        .nth(400)
        .map_or(0, |(index, _)| index);
    format!(": {}", &text[start..])
}

/// Runs a shell script in the guest that must exit 0.
async fn guest_ok(client: &Client, ws: &str, script: &str) -> Result<(), Failure> {
    let output = client
        .exec_workspace_collect(ws, &heavy(sh(script)))
        .await?;
    expect_exit(&output, 0, script)
}

/// Times `script` inside the guest (it must exit 0).
async fn guest_timed(client: &Client, ws: &str, script: &str) -> Result<Duration, Failure> {
    guest_timed_status(client, ws, script, 0).await
}

/// Times `script` inside the guest with `date +%s%N` around it, so the exec
/// round trip is not counted; the script must exit with `expected`.
async fn guest_timed_status(
    client: &Client,
    ws: &str,
    script: &str,
    expected: i32,
) -> Result<Duration, Failure> {
    let wrapped = format!(
        "start=$(date +%s%N)\n{script}\nstatus=$?\nend=$(date +%s%N)\n\
         echo \"$((end - start)) $status\""
    );
    let output = client
        .exec_workspace_collect(ws, &heavy(sh(&wrapped)))
        .await?;
    expect_exit(&output, 0, script)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut fields = stdout.split_whitespace();
    let nanos = fields.next().and_then(|v| v.parse::<u64>().ok());
    let status = fields.next().and_then(|v| v.parse::<i32>().ok());
    match (nanos, status) {
        (Some(nanos), Some(status)) if status == expected => Ok(Duration::from_nanos(nanos)),
        (Some(_), Some(status)) => Err(Failure::Unexpected(format!(
            "`{script}` exited with {status} in the guest (expected {expected}){}",
            tail(&output.stderr)
        ))),
        _ => Err(Failure::Unexpected(format!(
            "cannot read the guest timing of `{script}` from {:?}",
            stdout.trim()
        ))),
    }
}

/// The generated seed tree.
#[derive(Debug)]
struct Tree {
    dir: tempfile::TempDir,
    files: u64,
    binary_files: u64,
    bytes: u64,
    /// Paths (relative to `/workspace`) of the files changed before the diff.
    modified: Vec<String>,
}

/// Deterministic pseudo-random numbers (SplitMix64).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Every 50th file is binary; the rest (and every changed file) is text.
fn is_binary(index: usize) -> bool {
    index % 50 == 49
}

/// `src/dNN/mNN/` with 100 files each: 10 x 10 x 100 = 10,000 files.
fn relative_path(index: usize) -> PathBuf {
    let top = index / 1000;
    let mid = (index / 100) % 10;
    let ext = if is_binary(index) { "bin" } else { "txt" };
    PathBuf::from(format!("src/d{top:02}/m{mid:02}/f{index:05}.{ext}"))
}

/// Writes the tree: 10,000 files of 2-18.5 KiB (about 100 MiB), 98% text
/// lines of words (so diffs have patches), 2% random bytes.
fn generate_tree() -> Result<Tree, Failure> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |err| Failure::Io(what, err)
    };
    let dir = tempfile::Builder::new()
        .prefix("pyro-bench-ws-")
        .tempdir()
        .map_err(io("creating the tree's temporary directory"))?;
    let mut tree = Tree {
        dir,
        files: 0,
        binary_files: 0,
        bytes: 0,
        modified: Vec::new(),
    };
    for index in 0..FILE_COUNT {
        let relative = relative_path(index);
        let path = tree.dir.path().join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating the tree's directories"))?;
        }
        let mut rng = Rng(index as u64);
        let size = MIN_FILE_BYTES + rng.below(FILE_BYTES_SPREAD);
        let content = if is_binary(index) {
            tree.binary_files += 1;
            binary_content(&mut rng, size)
        } else {
            text_content(&mut rng, size)
        };
        std::fs::write(&path, &content).map_err(io("writing the tree"))?;
        tree.files += 1;
        tree.bytes += content.len() as u64;
        if index % MODIFIED_EVERY == MODIFIED_OFFSET {
            tree.modified.push(relative.to_string_lossy().into_owned());
        }
    }
    Ok(tree)
}

fn text_content(rng: &mut Rng, size: u64) -> Vec<u8> {
    let mut text = String::new();
    let mut line = 1;
    while (text.len() as u64) < size {
        let _ = write!(text, "{line:5}:");
        for _ in 0..6 + rng.below(8) {
            let word = WORDS.get(rng.below(WORDS.len() as u64) as usize).copied();
            text.push(' ');
            text.push_str(word.unwrap_or("word"));
        }
        let _ = writeln!(text, " {}", rng.below(100_000));
        line += 1;
    }
    text.into_bytes()
}

fn binary_content(rng: &mut Rng, size: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    while (bytes.len() as u64) < size {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes
}

impl Results {
    fn targets_met(&self) -> bool {
        self.rows.iter().all(|row| row.met() != Some(false))
    }

    fn print(&self, options: &Options, tree: &Tree) {
        if options.json {
            println!("{}", self.to_json(options, tree));
            return;
        }
        println!();
        println!(
            "workspace benchmark | {} | {} files, {:.1} MiB | medians of {} runs ({} for exec)",
            self.environment,
            tree.files,
            mib(tree.bytes),
            options.reps,
            options.exec_reps
        );
        let header = [
            "operation",
            "pyro median",
            "floor",
            "floor median",
            "ratio / overhead",
            "target",
            "met",
        ];
        let mut lines = vec![header.map(str::to_owned).to_vec()];
        for row in &self.rows {
            let (measure, target) = match row.target {
                Target::None => (
                    row.ratio()
                        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x")),
                    "-".to_owned(),
                ),
                Target::Ratio(max) => (
                    row.ratio()
                        .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x")),
                    format!("<= {max:.1}x"),
                ),
                Target::OverheadMs(max) => (
                    row.overhead_ms()
                        .map_or_else(|| "-".to_owned(), |ms| format!("+{ms:.2} ms")),
                    format!("< +{max:.0} ms"),
                ),
            };
            lines.push(vec![
                row.operation.to_owned(),
                human(row.pyro_median()),
                row.floor_name.to_owned(),
                row.floor_median().map_or_else(|| "-".to_owned(), human),
                measure,
                target,
                match row.met() {
                    None => "-".to_owned(),
                    Some(true) => "yes".to_owned(),
                    Some(false) => "NO".to_owned(),
                },
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|column| {
                lines
                    .iter()
                    .map(|line| line.get(column).map_or(0, String::len))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for line in &lines {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("{}", cells.join("  ").trim_end());
        }
        println!(
            "diff: {} paths, {} byte patch | snapshot: {} bytes newly stored per run",
            self.diff_changed, self.diff_patch_bytes, self.snapshot_bytes_stored
        );
        let missed: Vec<&str> = self
            .rows
            .iter()
            .filter(|row| row.met() == Some(false))
            .map(|row| row.operation)
            .collect();
        if missed.is_empty() {
            println!("targets met: yes");
        } else {
            println!("targets met: no (missed: {})", missed.join("; "));
        }
    }

    fn to_json(&self, options: &Options, tree: &Tree) -> serde_json::Value {
        let seconds = |d: Duration| d.as_secs_f64();
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                let (target_kind, target) = match row.target {
                    Target::None => (None, None),
                    Target::Ratio(max) => (Some("max_ratio"), Some(max)),
                    Target::OverheadMs(max) => (Some("max_overhead_ms"), Some(max)),
                };
                serde_json::json!({
                    "operation": row.operation,
                    "runs": row.pyro.len(),
                    "pyro_median_s": seconds(row.pyro_median()),
                    "pyro_min_s": row.pyro.iter().min().copied().map(seconds),
                    "pyro_max_s": row.pyro.iter().max().copied().map(seconds),
                    "pyro_samples_s": row.pyro.iter().copied().map(seconds).collect::<Vec<_>>(),
                    "floor": (row.floor_name != "-").then_some(row.floor_name),
                    "floor_median_s": row.floor_median().map(seconds),
                    "floor_samples_s": row.floor.iter().copied().map(seconds).collect::<Vec<_>>(),
                    "ratio": row.ratio(),
                    "overhead_ms": row.overhead_ms(),
                    "target": target_kind.map(|kind| serde_json::json!({ kind: target })),
                    "met": row.met(),
                })
            })
            .collect();
        serde_json::json!({
            "environment": self.environment,
            "workspace_id": self.workspace_id,
            "tree": {
                "files": tree.files,
                "binary_files": tree.binary_files,
                "bytes": tree.bytes,
                "modified_files": tree.modified.len(),
            },
            "reps": options.reps,
            "exec_reps": options.exec_reps,
            "results": rows,
            "diff": { "changed": self.diff_changed, "patch_bytes": self.diff_patch_bytes },
            "snapshot_bytes_stored": self.snapshot_bytes_stored,
            "targets_met": self.targets_met(),
        })
    }
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    match (
        sorted.get(mid),
        mid.checked_sub(1).and_then(|i| sorted.get(i)),
    ) {
        (Some(&upper), Some(&lower)) if sorted.len() % 2 == 0 => (lower + upper) / 2,
        (Some(&middle), _) => middle,
        _ => Duration::ZERO,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Seconds from one second up, milliseconds below.
fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        secs(d)
    } else {
        millis(d)
    }
}
