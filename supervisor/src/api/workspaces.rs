//! The `/v1/workspaces` handlers. The endpoint table is in
//! `pyro_sdk::api::workspace`.
//!
//! Each handler finds the workspace's actor and forwards one message; the
//! actor does the work without blocking anything else.

use actix::dev::ToEnvelope;
use actix::{Addr, Handler, Message};
use actix_web::{web, HttpResponse, Scope};
use pyro_sdk::api::workspace::{
    CreateWorkspaceRequest, DeleteResult, DiffRequest, DiffResult, DiskExportRequest,
    DiskExportResult, ExecEvent, ExecRequest, ExportRequest, ExportResult, ListRequest, ListResult,
    LogList, PatchRequest, PatchResult, ReadRequest, ReadResult, ResetRequest, ResetResult,
    SnapshotDeleted, SnapshotInfo, SnapshotList, SnapshotRequest, SyncPushRequest, SyncPushResult,
    UpdateWorkspaceRequest, WorkspaceInfo, WorkspaceList, WriteRequest, WriteResult,
};
use tokio::sync::mpsc;

use super::{ndjson, ApiError, ApiState};
use crate::error::SupervisorError;
use crate::ids::is_valid_id;
use crate::root::{AllWorkspaces, GetWorkspace};
use crate::workspace::messages::*;
use crate::workspace::{create, WorkspaceActor};

type Reply<T> = Result<web::Json<T>, ApiError>;

/// Every `/v1/workspaces` route.
pub fn scope() -> Scope {
    web::scope("/v1/workspaces")
        .route("", web::post().to(create_workspace))
        .route("", web::get().to(list))
        .route("/{id}", web::get().to(status))
        .route("/{id}", web::delete().to(delete))
        .route("/{id}/update", web::post().to(update))
        .route("/{id}/logs", web::get().to(logs))
        .route("/{id}/exec", web::post().to(exec))
        .route("/{id}/sync", web::post().to(sync_push))
        .route("/{id}/export", web::post().to(export))
        .route("/{id}/diff", web::post().to(diff))
        .route("/{id}/files/list", web::post().to(list_files))
        .route("/{id}/files/read", web::post().to(read_file))
        .route("/{id}/files/write", web::post().to(write_file))
        .route("/{id}/patch", web::post().to(patch))
        .route("/{id}/snapshots", web::post().to(create_snapshot))
        .route("/{id}/snapshots", web::get().to(list_snapshots))
        .route("/{id}/snapshots/{name}", web::delete().to(delete_snapshot))
        .route("/{id}/reset", web::post().to(reset))
        .route("/{id}/stop", web::post().to(stop))
        .route("/{id}/start", web::post().to(start))
        .route("/{id}/disk/export", web::post().to(disk_export))
        .route("/{id}/disk/list", web::post().to(disk_list))
        .route("/{id}/disk/read", web::post().to(disk_read))
}

/// The actor of workspace `id`.
async fn find(state: &ApiState, id: &str) -> Result<Addr<WorkspaceActor>, ApiError> {
    let unknown = || {
        ApiError::from(SupervisorError::UnknownWorkspace {
            workspace_id: id.to_owned(),
        })
    };
    if !is_valid_id(id) {
        return Err(unknown());
    }
    state
        .runtime
        .root
        .send(GetWorkspace {
            workspace_id: id.to_owned(),
        })
        .await
        .map_err(|_| gone())?
        .ok_or_else(unknown)
}

fn gone() -> ApiError {
    SupervisorError::ActorGone {
        what: "the supervision tree".to_owned(),
    }
    .into()
}

/// Sends `msg` to workspace `id` and answers with its result.
async fn ask<M, T>(state: &ApiState, id: &str, msg: M) -> Reply<T>
where
    M: Message<Result = Result<T, SupervisorError>> + Send + 'static,
    T: Send + 'static,
    WorkspaceActor: Handler<M>,
    <WorkspaceActor as actix::Actor>::Context: ToEnvelope<WorkspaceActor, M>,
{
    let addr = find(state, id).await?;
    let answer = addr.send(msg).await.map_err(|_| gone())?;
    Ok(web::Json(answer?))
}

async fn create_workspace(
    state: web::Data<ApiState>,
    body: web::Json<CreateWorkspaceRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    request.validate().map_err(ApiError::invalid)?;
    Ok(ndjson::response(create::start(
        state.runtime.clone(),
        request,
    )))
}

async fn list(state: web::Data<ApiState>) -> Reply<WorkspaceList> {
    let actors = state
        .runtime
        .root
        .send(AllWorkspaces)
        .await
        .map_err(|_| gone())?;
    let infos = futures_util::future::join_all(actors.iter().map(|addr| addr.send(GetInfo))).await;
    let mut workspaces: Vec<WorkspaceInfo> = infos.into_iter().filter_map(Result::ok).collect();
    workspaces.sort_by(|a, b| {
        b.last_activity_at
            .cmp(&a.last_activity_at)
            .then_with(|| b.created_at.cmp(&a.created_at))
            .then_with(|| a.workspace_id.cmp(&b.workspace_id))
    });
    Ok(web::Json(WorkspaceList {
        count: workspaces.len(),
        workspaces,
    }))
}

async fn status(state: web::Data<ApiState>, id: web::Path<String>) -> Reply<WorkspaceInfo> {
    let addr = find(&state, &id).await?;
    Ok(web::Json(addr.send(GetInfo).await.map_err(|_| gone())?))
}

async fn delete(state: web::Data<ApiState>, id: web::Path<String>) -> Reply<DeleteResult> {
    ask(
        &state,
        &id,
        Delete {
            reason: "explicit_delete",
        },
    )
    .await
}

async fn update(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<UpdateWorkspaceRequest>,
) -> Reply<WorkspaceInfo> {
    ask(&state, &id, Update(body.into_inner())).await
}

async fn logs(state: web::Data<ApiState>, id: web::Path<String>) -> Reply<LogList> {
    ask(&state, &id, Logs).await
}

async fn exec(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ExecRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    request.validate().map_err(ApiError::invalid)?;
    let addr = find(&state, &id).await?;
    let (events, rx) = mpsc::channel::<ExecEvent>(crate::runner::EVENT_BUFFER);
    addr.send(Exec { request, events })
        .await
        .map_err(|_| gone())?;
    Ok(ndjson::response(rx))
}

async fn sync_push(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<SyncPushRequest>,
) -> Reply<SyncPushResult> {
    ask(&state, &id, SyncPush(body.into_inner())).await
}

async fn export(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ExportRequest>,
) -> Reply<ExportResult> {
    ask(&state, &id, Export(body.into_inner())).await
}

async fn diff(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<DiffRequest>,
) -> Reply<DiffResult> {
    ask(&state, &id, Diff(body.into_inner())).await
}

async fn list_files(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ListRequest>,
) -> Reply<ListResult> {
    ask(&state, &id, ListFiles(body.into_inner())).await
}

async fn read_file(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ReadRequest>,
) -> Reply<ReadResult> {
    ask(&state, &id, ReadFile(body.into_inner())).await
}

async fn write_file(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<WriteRequest>,
) -> Reply<WriteResult> {
    ask(&state, &id, WriteFile(body.into_inner())).await
}

async fn patch(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<PatchRequest>,
) -> Reply<PatchResult> {
    ask(&state, &id, ApplyPatch(body.into_inner())).await
}

async fn create_snapshot(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<SnapshotRequest>,
) -> Reply<SnapshotInfo> {
    ask(&state, &id, CreateSnapshot(body.into_inner())).await
}

async fn list_snapshots(state: web::Data<ApiState>, id: web::Path<String>) -> Reply<SnapshotList> {
    ask(&state, &id, ListSnapshots).await
}

async fn delete_snapshot(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Reply<SnapshotDeleted> {
    let (id, name) = path.into_inner();
    ask(&state, &id, DeleteSnapshot(name)).await
}

async fn reset(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ResetRequest>,
) -> Reply<ResetResult> {
    ask(&state, &id, Reset(body.into_inner())).await
}

async fn stop(state: web::Data<ApiState>, id: web::Path<String>) -> Reply<WorkspaceInfo> {
    ask(&state, &id, Stop).await
}

async fn start(state: web::Data<ApiState>, id: web::Path<String>) -> Reply<WorkspaceInfo> {
    ask(&state, &id, Start).await
}

async fn disk_export(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<DiskExportRequest>,
) -> Reply<DiskExportResult> {
    ask(&state, &id, DiskExport(body.into_inner())).await
}

async fn disk_list(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ListRequest>,
) -> Reply<ListResult> {
    ask(&state, &id, DiskList(body.into_inner())).await
}

async fn disk_read(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ReadRequest>,
) -> Reply<ReadResult> {
    ask(&state, &id, DiskRead(body.into_inner())).await
}
