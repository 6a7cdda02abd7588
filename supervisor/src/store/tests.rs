//! Store tests on an in-memory database and on a real file.

use std::collections::BTreeMap;

use pyro_sdk::api::workspace::{CommandSummary, FailurePolicy, SeedInfo, WorkspaceState};

use super::*;

fn workspace(id: &str, activity: i64) -> WorkspaceRecord {
    WorkspaceRecord {
        id: id.to_owned(),
        name: Some("demo".to_owned()),
        labels: BTreeMap::from([("team".to_owned(), "infra".to_owned())]),
        environment: "debian:12".to_owned(),
        environment_version: "1.0.0".to_owned(),
        vcpu_count: 1,
        mem_mib: 1024,
        disk_mib: 4096,
        ttl_seconds: 600,
        on_failure: FailurePolicy::Restart,
        state: WorkspaceState::Started,
        created_at_ms: 1000,
        last_activity_at_ms: activity,
        expires_at_ms: 1000 + 600_000,
        seed: SeedInfo {
            mode: "empty".to_owned(),
            seed_path: None,
            destination: "/workspace".to_owned(),
            entry_count: 0,
            bytes_written: 0,
        },
        secrets: Vec::new(),
        command_count: 0,
        last_command: None,
        reset_count: 0,
        last_reset_at_ms: None,
        last_error: None,
        current_vm: None,
        services: Vec::new(),
    }
}

fn command(id: &str, sequence: u64) -> CommandRecord {
    CommandRecord {
        workspace_id: id.to_owned(),
        sequence,
        command: format!("echo {sequence}"),
        cwd: "/workspace".to_owned(),
        exit_code: 0,
        duration_ms: 5,
        timed_out: false,
        recorded_at_ms: 2000 + sequence as i64,
        output_truncated: false,
    }
}

#[test]
fn workspaces_round_trip_and_list_by_activity() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .insert_workspace(&workspace("aaaaaaaaaaaa", 5))
        .unwrap();
    store
        .insert_workspace(&workspace("bbbbbbbbbbbb", 9))
        .unwrap();
    assert!(
        store
            .insert_workspace(&workspace("aaaaaaaaaaaa", 1))
            .is_err(),
        "ids are unique"
    );
    let list = store.workspaces().unwrap();
    assert_eq!(
        list.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["bbbbbbbbbbbb", "aaaaaaaaaaaa"]
    );

    let mut changed = workspace("aaaaaaaaaaaa", 20);
    changed.state = WorkspaceState::Stopped;
    changed.last_error = Some("vm died".to_owned());
    store.update_workspace(&changed).unwrap();
    assert_eq!(store.workspace("aaaaaaaaaaaa").unwrap(), Some(changed));
    assert_eq!(store.workspace("cccccccccccc").unwrap(), None);
}

#[test]
fn expiry_is_queried_by_time() {
    let mut store = Store::open_in_memory().unwrap();
    let mut soon = workspace("aaaaaaaaaaaa", 1);
    soon.expires_at_ms = 50;
    store.insert_workspace(&soon).unwrap();
    store
        .insert_workspace(&workspace("bbbbbbbbbbbb", 1))
        .unwrap();
    assert_eq!(store.expired_workspaces(49).unwrap(), Vec::<String>::new());
    assert_eq!(
        store.expired_workspaces(50).unwrap(),
        vec!["aaaaaaaaaaaa".to_owned()]
    );
}

#[test]
fn commands_and_counters_commit_together_and_delete_cascades() {
    let mut store = Store::open_in_memory().unwrap();
    let mut ws = workspace("aaaaaaaaaaaa", 1);
    store.insert_workspace(&ws).unwrap();
    for sequence in 1..=3 {
        ws.command_count = sequence;
        ws.last_command = Some(CommandSummary {
            sequence,
            command: format!("echo {sequence}"),
            cwd: "/workspace".to_owned(),
            exit_code: 0,
            duration_ms: 5,
        });
        store
            .record_command(&ws, &command(&ws.id, sequence))
            .unwrap();
    }
    assert_eq!(store.commands(&ws.id).unwrap().len(), 3);
    assert_eq!(store.workspace(&ws.id).unwrap().unwrap().command_count, 3);
    // A duplicate sequence fails and leaves the counters alone.
    let mut bumped = ws.clone();
    bumped.command_count = 99;
    assert!(store.record_command(&bumped, &command(&ws.id, 2)).is_err());
    assert_eq!(store.workspace(&ws.id).unwrap().unwrap().command_count, 3);

    ws.command_count = 0;
    store.clear_commands(&ws).unwrap();
    assert!(store.commands(&ws.id).unwrap().is_empty());

    store
        .insert_snapshot(&SnapshotRecord {
            workspace_id: ws.id.clone(),
            name: "baseline".to_owned(),
            kind: SnapshotKind::Baseline,
            created_at_ms: 1,
            entry_count: 0,
            bytes_total: 0,
            bytes_stored: 0,
        })
        .unwrap();
    store.record_command(&ws, &command(&ws.id, 1)).unwrap();
    assert!(store.delete_workspace(&ws.id).unwrap());
    assert!(store.snapshots(&ws.id).unwrap().is_empty());
    assert!(store.commands(&ws.id).unwrap().is_empty());
    assert!(!store.delete_workspace(&ws.id).unwrap());
}

#[test]
fn snapshots_list_baseline_first_then_newest() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .insert_workspace(&workspace("aaaaaaaaaaaa", 1))
        .unwrap();
    for (name, kind, at) in [
        ("old", SnapshotKind::Named, 10),
        ("baseline", SnapshotKind::Baseline, 1),
        ("new", SnapshotKind::Named, 20),
    ] {
        store
            .insert_snapshot(&SnapshotRecord {
                workspace_id: "aaaaaaaaaaaa".to_owned(),
                name: name.to_owned(),
                kind,
                created_at_ms: at,
                entry_count: 1,
                bytes_total: 2,
                bytes_stored: 2,
            })
            .unwrap();
    }
    let names: Vec<String> = store
        .snapshots("aaaaaaaaaaaa")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["baseline", "new", "old"]);
    assert!(store.delete_snapshot("aaaaaaaaaaaa", "old").unwrap());
    assert!(store.snapshot("aaaaaaaaaaaa", "old").unwrap().is_none());
}

#[test]
fn a_file_database_survives_reopening_and_refuses_newer_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pyro.db");
    {
        let mut store = Store::open(&path).unwrap();
        store
            .insert_workspace(&workspace("aaaaaaaaaaaa", 1))
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.workspaces().unwrap().len(), 1);
    drop(store);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn a_corrupt_record_is_reported_not_panicked_on() {
    let store = Store::open_in_memory().unwrap();
    store
        .conn
        .execute(
            "INSERT INTO workspaces (id, record, state, expires_at_ms, last_activity_at_ms) VALUES ('x', '{oops', 'started', 0, 0)",
            [],
        )
        .unwrap();
    assert!(matches!(
        store.workspace("x").unwrap_err(),
        StoreError::Corrupt { .. }
    ));
}

#[test]
fn service_definitions_are_kept_without_their_secret_mapping() {
    use pyro_sdk::api::session::{RestartPolicy, ServiceStartRequest};
    use pyro_sdk::api::CommandSpec;

    let mut request = ServiceStartRequest::new("web", CommandSpec::Shell("serve".into()));
    request.restart = RestartPolicy::Always;
    request.env.insert("PORT".into(), "8080".into());
    request
        .secret_env
        .insert("API_TOKEN".into(), "TOKEN_ENV".into());
    let kept = ServiceRecord::of(&request);
    assert!(kept.used_secret_env);
    assert!(kept.request.secret_env.is_empty());
    assert_eq!(kept.request.env["PORT"], "8080");

    let mut store = Store::open_in_memory().unwrap();
    let mut record = workspace("cccccccccccc", 1);
    record.services.push(kept.clone());
    store.insert_workspace(&record).unwrap();
    let loaded = store.workspace("cccccccccccc").unwrap().unwrap();
    assert_eq!(loaded.services, vec![kept]);
    let text = serde_json::to_string(&loaded).unwrap();
    assert!(!text.contains("API_TOKEN"), "{text}");
}
