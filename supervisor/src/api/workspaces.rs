//! The `/v1/workspaces` handlers. The endpoint table is in
//! `pyro_sdk::api::workspace`.
//!
//! Each handler finds the workspace's actor and forwards one message; the
//! actor does the work without blocking anything else. Operations that need
//! the VM (or need it stopped) first wait, via
//! [`AwaitSettled`](crate::workspace::messages::AwaitSettled), for a start,
//! stop, reset or failure recovery under way to end, so a command right
//! after a supervisor restart waits for the workspace's boot instead of
//! failing; reads of the record answer at once.

use actix::dev::ToEnvelope;
use actix::{Addr, Handler, Message};
use actix_web::{web, HttpResponse, Scope};
use pyro_sdk::api::session::{
    ServiceLogEvent, ServiceLogsRequest, ServiceStartRequest, ShellOpenRequest, ShellReadRequest,
    ShellResizeRequest, ShellSignalRequest, ShellWriteRequest,
};
use pyro_sdk::api::workspace::{
    CreateWorkspaceRequest, DiffRequest, DiskExportRequest, ExecEvent, ExecRequest, ExportRequest,
    ListRequest, PatchRequest, ReadRequest, ResetRequest, SnapshotRequest, SyncPushRequest,
    UpdateWorkspaceRequest, WorkspaceInfo, WorkspaceList, WriteRequest,
};
use tokio::sync::mpsc;

use actix_web::http::StatusCode;
use pyro_actors::secrets::redactor::Redactor;

use super::error::status_for;
use super::{ndjson, ApiError, ApiState};
use crate::error::SupervisorError;
use crate::ids::is_valid_id;
use crate::root::{AllWorkspaces, GetWorkspace};
use crate::workspace::messages::*;
use crate::workspace::secrets::GetRedactor;
use crate::workspace::{create, WorkspaceActor};

type Reply = Result<HttpResponse, ApiError>;

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
        .route("/{id}/shells", web::post().to(open_shell))
        .route("/{id}/shells", web::get().to(list_shells))
        .route("/{id}/shells/{shell_id}/read", web::post().to(read_shell))
        .route("/{id}/shells/{shell_id}/write", web::post().to(write_shell))
        .route(
            "/{id}/shells/{shell_id}/signal",
            web::post().to(signal_shell),
        )
        .route(
            "/{id}/shells/{shell_id}/resize",
            web::post().to(resize_shell),
        )
        .route("/{id}/shells/{shell_id}", web::delete().to(close_shell))
        .route("/{id}/services", web::post().to(start_service))
        .route("/{id}/services", web::get().to(list_services))
        .route("/{id}/services/{name}", web::get().to(service_status))
        .route("/{id}/services/{name}/logs", web::post().to(service_logs))
        .route("/{id}/services/{name}/stop", web::post().to(stop_service))
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

/// Sends `msg` to workspace `id` and answers with its result, passed
/// through the workspace's redactor (values and errors alike).
async fn ask<M, T>(state: &ApiState, id: &str, msg: M) -> Result<HttpResponse, ApiError>
where
    M: Message<Result = Result<T, SupervisorError>> + Send + 'static,
    T: serde::Serialize + Send + 'static,
    WorkspaceActor: Handler<M>,
    <WorkspaceActor as actix::Actor>::Context: ToEnvelope<WorkspaceActor, M>,
{
    ask_when(state, id, msg, false).await
}

/// Like [`ask`], once no start, stop, reset or recovery runs.
async fn ask_settled<M, T>(state: &ApiState, id: &str, msg: M) -> Result<HttpResponse, ApiError>
where
    M: Message<Result = Result<T, SupervisorError>> + Send + 'static,
    T: serde::Serialize + Send + 'static,
    WorkspaceActor: Handler<M>,
    <WorkspaceActor as actix::Actor>::Context: ToEnvelope<WorkspaceActor, M>,
{
    ask_when(state, id, msg, true).await
}

async fn ask_when<M, T>(
    state: &ApiState,
    id: &str,
    msg: M,
    settled: bool,
) -> Result<HttpResponse, ApiError>
where
    M: Message<Result = Result<T, SupervisorError>> + Send + 'static,
    T: serde::Serialize + Send + 'static,
    WorkspaceActor: Handler<M>,
    <WorkspaceActor as actix::Actor>::Context: ToEnvelope<WorkspaceActor, M>,
{
    let addr = find(state, id).await?;
    let redactor = redactor_of(&addr).await?;
    let answer = if settled {
        match await_settled(&addr).await {
            Ok(()) => addr.send(msg).await.map_err(|_| gone())?,
            Err(err) => Err(err),
        }
    } else {
        addr.send(msg).await.map_err(|_| gone())?
    };
    match answer {
        Ok(value) => Ok(redacted(&redactor, StatusCode::OK, &value)),
        Err(err) => {
            let body = err.to_body();
            Ok(redacted(&redactor, status_for(body.code), &body))
        }
    }
}

/// Waits until no start, stop, reset or recovery of the workspace runs.
async fn await_settled(addr: &Addr<WorkspaceActor>) -> Result<(), SupervisorError> {
    addr.send(AwaitSettled)
        .await
        .map_err(|_| SupervisorError::ActorGone {
            what: "the workspace".to_owned(),
        })?
}

/// The workspace's redactor.
async fn redactor_of(addr: &Addr<WorkspaceActor>) -> Result<Redactor, ApiError> {
    addr.send(GetRedactor).await.map_err(|_| gone())
}

/// `value` as JSON, with every secret of the workspace replaced.
fn redacted<T: serde::Serialize>(
    redactor: &Redactor,
    status: StatusCode,
    value: &T,
) -> HttpResponse {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    HttpResponse::build(status)
        .content_type("application/json")
        .body(redactor.redact_str(&json))
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

async fn list(state: web::Data<ApiState>) -> Reply {
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
    Ok(HttpResponse::Ok().json(WorkspaceList {
        count: workspaces.len(),
        workspaces,
    }))
}

async fn status(state: web::Data<ApiState>, id: web::Path<String>) -> Reply {
    let addr = find(&state, &id).await?;
    let redactor = redactor_of(&addr).await?;
    let info = addr.send(GetInfo).await.map_err(|_| gone())?;
    Ok(redacted(&redactor, StatusCode::OK, &info))
}

async fn delete(state: web::Data<ApiState>, id: web::Path<String>) -> Reply {
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
) -> Reply {
    ask(&state, &id, Update(body.into_inner())).await
}

async fn logs(state: web::Data<ApiState>, id: web::Path<String>) -> Reply {
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
    let redactor = redactor_of(&addr).await?;
    let (events, rx) = mpsc::channel::<ExecEvent>(crate::runner::EVENT_BUFFER);
    match await_settled(&addr).await {
        Ok(()) => addr
            .send(Exec { request, events })
            .await
            .map_err(|_| gone())?,
        Err(err) => {
            actix::spawn(async move {
                let _ = events.send(ExecEvent::Error(err.to_body())).await;
            });
        }
    }
    Ok(ndjson::redacted_response(rx, redactor))
}

async fn sync_push(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<SyncPushRequest>,
) -> Reply {
    ask_settled(&state, &id, SyncPush(body.into_inner())).await
}

async fn export(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ExportRequest>,
) -> Reply {
    ask_settled(&state, &id, Export(body.into_inner())).await
}

async fn diff(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<DiffRequest>,
) -> Reply {
    ask_settled(&state, &id, Diff(body.into_inner())).await
}

async fn list_files(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ListRequest>,
) -> Reply {
    ask_settled(&state, &id, ListFiles(body.into_inner())).await
}

async fn read_file(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ReadRequest>,
) -> Reply {
    ask_settled(&state, &id, ReadFile(body.into_inner())).await
}

async fn write_file(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<WriteRequest>,
) -> Reply {
    ask_settled(&state, &id, WriteFile(body.into_inner())).await
}

async fn patch(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<PatchRequest>,
) -> Reply {
    ask_settled(&state, &id, ApplyPatch(body.into_inner())).await
}

async fn create_snapshot(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<SnapshotRequest>,
) -> Reply {
    ask_settled(&state, &id, CreateSnapshot(body.into_inner())).await
}

async fn list_snapshots(state: web::Data<ApiState>, id: web::Path<String>) -> Reply {
    ask(&state, &id, ListSnapshots).await
}

async fn delete_snapshot(state: web::Data<ApiState>, path: web::Path<(String, String)>) -> Reply {
    let (id, name) = path.into_inner();
    ask(&state, &id, DeleteSnapshot(name)).await
}

async fn reset(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ResetRequest>,
) -> Reply {
    ask_settled(&state, &id, Reset(body.into_inner())).await
}

async fn stop(state: web::Data<ApiState>, id: web::Path<String>) -> Reply {
    ask_settled(&state, &id, Stop).await
}

async fn start(state: web::Data<ApiState>, id: web::Path<String>) -> Reply {
    ask_settled(&state, &id, Start).await
}

async fn disk_export(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<DiskExportRequest>,
) -> Reply {
    ask_settled(&state, &id, DiskExport(body.into_inner())).await
}

async fn disk_list(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ListRequest>,
) -> Reply {
    ask_settled(&state, &id, DiskList(body.into_inner())).await
}

async fn disk_read(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ReadRequest>,
) -> Reply {
    ask_settled(&state, &id, DiskRead(body.into_inner())).await
}

async fn open_shell(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ShellOpenRequest>,
) -> Reply {
    ask_settled(&state, &id, OpenShell(body.into_inner())).await
}

async fn list_shells(state: web::Data<ApiState>, id: web::Path<String>) -> Reply {
    ask(&state, &id, ListShells).await
}

async fn read_shell(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    body: web::Json<ShellReadRequest>,
) -> Reply {
    let (id, shell_id) = path.into_inner();
    ask(
        &state,
        &id,
        ReadShellOutput {
            shell_id,
            request: body.into_inner(),
        },
    )
    .await
}

async fn shell_op(state: &ApiState, path: (String, String), command: ShellCommand) -> Reply {
    let (id, shell_id) = path;
    ask_settled(state, &id, ShellOp { shell_id, command }).await
}

async fn write_shell(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    body: web::Json<ShellWriteRequest>,
) -> Reply {
    shell_op(
        &state,
        path.into_inner(),
        ShellCommand::Write(body.into_inner()),
    )
    .await
}

async fn signal_shell(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    body: web::Json<ShellSignalRequest>,
) -> Reply {
    shell_op(
        &state,
        path.into_inner(),
        ShellCommand::Signal(body.into_inner()),
    )
    .await
}

async fn resize_shell(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    body: web::Json<ShellResizeRequest>,
) -> Reply {
    shell_op(
        &state,
        path.into_inner(),
        ShellCommand::Resize(body.into_inner()),
    )
    .await
}

async fn close_shell(state: web::Data<ApiState>, path: web::Path<(String, String)>) -> Reply {
    shell_op(&state, path.into_inner(), ShellCommand::Close).await
}

async fn start_service(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    body: web::Json<ServiceStartRequest>,
) -> Reply {
    let request = body.into_inner();
    request.validate().map_err(ApiError::invalid)?;
    ask_settled(&state, &id, StartServiceCall(request)).await
}

async fn list_services(state: web::Data<ApiState>, id: web::Path<String>) -> Reply {
    ask(&state, &id, ListServicesCall).await
}

async fn service_status(state: web::Data<ApiState>, path: web::Path<(String, String)>) -> Reply {
    let (id, name) = path.into_inner();
    ask(&state, &id, ServiceStatusCall(name)).await
}

async fn stop_service(state: web::Data<ApiState>, path: web::Path<(String, String)>) -> Reply {
    let (id, name) = path.into_inner();
    ask_settled(&state, &id, StopServiceCall(name)).await
}

async fn service_logs(
    state: web::Data<ApiState>,
    path: web::Path<(String, String)>,
    body: web::Json<ServiceLogsRequest>,
) -> Reply {
    let (id, name) = path.into_inner();
    let request = body.into_inner();
    if !request.follow {
        return ask(&state, &id, ServiceLogsCall { name, request }).await;
    }
    let addr = find(&state, &id).await?;
    let redactor = redactor_of(&addr).await?;
    let (events, rx) = mpsc::channel::<ServiceLogEvent>(crate::runner::EVENT_BUFFER);
    match addr
        .send(FollowServiceLogsCall {
            name,
            request,
            events,
        })
        .await
        .map_err(|_| gone())?
    {
        Ok(()) => Ok(ndjson::redacted_response(rx, redactor)),
        Err(err) => {
            let body = err.to_body();
            Ok(redacted(&redactor, status_for(body.code), &body))
        }
    }
}
