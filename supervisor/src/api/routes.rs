//! The API handlers. See `pyro_sdk::api` for the endpoint table.

use actix_web::{web, HttpRequest, HttpResponse, Scope};
use pyro_sdk::api::{
    EnvironmentInfo, EnvironmentList, EnvironmentRef, ErrorBody, ErrorCode, Health, PruneResult,
    PullEvent, PullProgress, RunRequest,
};
use tokio::sync::mpsc;

use super::{ndjson, ApiError, ApiState};
use crate::env_manager::{environment_info, EnsureEnvironment};
use crate::environment::lookup;
use crate::error::SupervisorError;
use crate::root::CountVms;
use crate::runner::{self, blocking};

type Reply<T> = Result<web::Json<T>, ApiError>;

/// Every `/v1` route.
pub fn scope() -> Scope {
    web::scope("/v1")
        .route("/health", web::get().to(health))
        .route("/doctor", web::get().to(doctor))
        .route("/environments", web::get().to(list_environments))
        .route("/environments/pull", web::post().to(pull_environment))
        .route("/environments/prune", web::post().to(prune_environments))
        .route("/environments/{name}", web::get().to(inspect_environment))
        .route("/run", web::post().to(run))
        .route("/shutdown", web::post().to(shutdown))
}

/// Unknown paths.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError(ErrorBody::new(
        ErrorCode::NotFound,
        format!("no such API endpoint: {} {}", req.method(), req.path()),
    )))
}

async fn health(state: web::Data<ApiState>) -> Reply<Health> {
    let running_vms = state.runtime.root.send(CountVms).await.unwrap_or(0);
    Ok(web::Json(Health {
        version: pyro_sdk::VERSION.to_owned(),
        pid: std::process::id(),
        socket: state.runtime.settings.paths.socket().display().to_string(),
        running_vms,
    }))
}

async fn doctor(state: web::Data<ApiState>) -> Reply<pyro_sdk::api::DoctorReport> {
    let runtime = state.runtime.clone();
    Ok(web::Json(
        blocking(move || crate::doctor::report(&runtime)).await?,
    ))
}

async fn list_environments(state: web::Data<ApiState>) -> Reply<EnvironmentList> {
    let cache = state.runtime.cache.clone();
    let environments = blocking(move || {
        cache
            .status()
            .iter()
            .map(|status| environment_info(status, &cache))
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(web::Json(EnvironmentList {
        catalog_version: pyro_sdk::VERSION.to_owned(),
        environments,
    }))
}

async fn inspect_environment(
    state: web::Data<ApiState>,
    name: web::Path<String>,
) -> Reply<EnvironmentInfo> {
    let entry = lookup(&name).map_err(SupervisorError::from)?;
    Ok(web::Json(environment_status(&state, entry.name).await?))
}

async fn environment_status(
    state: &ApiState,
    name: &'static str,
) -> Result<EnvironmentInfo, ApiError> {
    let cache = state.runtime.cache.clone();
    let info = blocking(move || {
        cache
            .status()
            .iter()
            .find(|status| status.entry.name == name)
            .map(|status| environment_info(status, &cache))
    })
    .await?;
    info.ok_or_else(|| {
        ApiError(ErrorBody::new(
            ErrorCode::UnknownEnvironment,
            format!("unknown environment '{name}'"),
        ))
    })
}

async fn pull_environment(
    state: web::Data<ApiState>,
    body: web::Json<EnvironmentRef>,
) -> Result<HttpResponse, ApiError> {
    let entry = lookup(&body.name).map_err(SupervisorError::from)?;
    let (tx, rx) = mpsc::channel::<PullEvent>(64);
    let state = state.into_inner();
    actix::spawn(async move {
        let (progress_tx, mut progress_rx) = mpsc::channel::<PullProgress>(32);
        let ensure = state.runtime.environments.send(EnsureEnvironment {
            name: entry.name.to_owned(),
            progress: Some(progress_tx),
        });
        tokio::pin!(ensure);
        let result = loop {
            tokio::select! {
                result = &mut ensure => break result,
                Some(progress) = progress_rx.recv() => {
                    let _ = tx.send(PullEvent::Progress(progress)).await;
                }
            }
        };
        while let Ok(progress) = progress_rx.try_recv() {
            let _ = tx.send(PullEvent::Progress(progress)).await;
        }
        let last = match result {
            Ok(Ok(_)) => match environment_status(&state, entry.name).await {
                Ok(info) => PullEvent::Result(Box::new(info)),
                Err(ApiError(body)) => PullEvent::Error(body),
            },
            Ok(Err(body)) => PullEvent::Error(body),
            Err(_) => PullEvent::Error(
                SupervisorError::ActorGone {
                    what: "the environment manager".to_owned(),
                }
                .to_body(),
            ),
        };
        let _ = tx.send(last).await;
    });
    Ok(ndjson::response(rx))
}

async fn prune_environments(state: web::Data<ApiState>) -> Reply<PruneResult> {
    let cache = state.runtime.cache.clone();
    let deleted = blocking(move || cache.prune())
        .await?
        .map_err(SupervisorError::from)?;
    Ok(web::Json(PruneResult {
        count: deleted.len(),
        deleted_environment_dirs: deleted,
    }))
}

async fn run(
    state: web::Data<ApiState>,
    body: web::Json<RunRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    request.validate().map_err(ApiError::invalid)?;
    Ok(ndjson::response(runner::start(
        state.runtime.clone(),
        request,
    )))
}

async fn shutdown(state: web::Data<ApiState>) -> Reply<serde_json::Value> {
    let _ = state.shutdown.try_send(());
    Ok(web::Json(serde_json::json!({})))
}
