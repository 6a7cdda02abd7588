//! Profiles: which tools a server offers.
//!
//! - `vm-run`: `vm_run` only (1 tool).
//! - `workspace-core` (the default): `vm_run` and the 15 everyday workspace
//!   tools (16 tools), as in the reference. Its `workspace_create` has no
//!   `network_policy` and no `secrets`, its `workspace_exec` no
//!   `secret_env`.
//! - `workspace-full`: everything (45 tools: the reference's 43, plus
//!   `shell_resize` and `shell_list`). Its `workspace_create` takes
//!   `network_policy` and `secrets`, its `workspace_exec` `secret_env`.
//!
//! Every tool is written once (`tools/`), and a profile's router is the
//! union of the tool groups with everything not in its list removed, so a
//! list naming a tool that does not exist fails the unit tests, and so does
//! a tool that no profile offers. Tools that differ between profiles (the
//! two `workspace_create`s and `workspace_exec`s) live in per-profile
//! groups.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::JsonObject;

use super::server::PyroMcp;

/// A set of tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// `vm_run` only.
    VmRun,
    /// `vm_run` plus the everyday workspace tools (the default).
    WorkspaceCore,
    /// Every tool: VMs, workspaces, disks, snapshots, shells, services, secrets.
    WorkspaceFull,
}

/// The `vm-run` tools.
pub const VM_RUN: &[&str] = &["vm_run"];

/// The `workspace-core` tools, in the reference's order.
pub const WORKSPACE_CORE: &[&str] = &[
    "vm_run",
    "workspace_create",
    "workspace_list",
    "workspace_update",
    "workspace_exec",
    "workspace_sync_push",
    "workspace_status",
    "workspace_logs",
    "workspace_export",
    "workspace_diff",
    "workspace_file_list",
    "workspace_file_read",
    "workspace_file_write",
    "workspace_patch_apply",
    "workspace_reset",
    "workspace_delete",
];

/// The `workspace-full` tools.
pub const WORKSPACE_FULL: &[&str] = &[
    "vm_run",
    "vm_list_environments",
    "vm_create",
    "vm_start",
    "vm_exec",
    "vm_stop",
    "vm_delete",
    "vm_status",
    "vm_network_info",
    "vm_reap_expired",
    "workspace_create",
    "workspace_list",
    "workspace_update",
    "workspace_exec",
    "workspace_sync_push",
    "workspace_status",
    "workspace_logs",
    "workspace_export",
    "workspace_diff",
    "workspace_file_list",
    "workspace_file_read",
    "workspace_file_write",
    "workspace_patch_apply",
    "workspace_disk_export",
    "workspace_disk_list",
    "workspace_disk_read",
    "workspace_reset",
    "workspace_delete",
    "workspace_stop",
    "workspace_start",
    "snapshot_create",
    "snapshot_list",
    "snapshot_delete",
    "shell_open",
    "shell_read",
    "shell_write",
    "shell_signal",
    "shell_close",
    "shell_resize",
    "shell_list",
    "service_start",
    "service_list",
    "service_status",
    "service_logs",
    "service_stop",
];

impl Profile {
    /// The tool names of this profile.
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Self::VmRun => VM_RUN,
            Self::WorkspaceCore => WORKSPACE_CORE,
            Self::WorkspaceFull => WORKSPACE_FULL,
        }
    }

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VmRun => "vm-run",
            Self::WorkspaceCore => "workspace-core",
            Self::WorkspaceFull => "workspace-full",
        }
    }

    /// The router serving exactly this profile's tools.
    pub fn router(self) -> ToolRouter<PyroMcp> {
        let mut router = PyroMcp::vm_tools()
            + PyroMcp::lifecycle_tools()
            + PyroMcp::file_tools()
            + PyroMcp::disk_tools()
            + PyroMcp::snapshot_tools()
            + PyroMcp::shell_tools()
            + PyroMcp::service_tools();
        match self {
            Self::WorkspaceFull => router.merge(PyroMcp::create_full() + PyroMcp::exec_full()),
            Self::VmRun | Self::WorkspaceCore => {
                router.merge(PyroMcp::create_core() + PyroMcp::exec_core());
            }
        }
        let keep = self.tools();
        router.map.retain(|name, _| keep.contains(&name.as_ref()));
        let schema = object_schema();
        for route in router.map.values_mut() {
            route.attr.output_schema = Some(schema.clone());
        }
        router
    }
}

/// The output schema of every tool: a JSON object (as the reference
/// declares), derived from `serde_json::Map`; the shapes are the SDK's
/// types, documented there.
fn object_schema() -> Arc<JsonObject> {
    rmcp::handler::server::tool::schema_for_output::<JsonObject>()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;

    use super::*;

    fn names(profile: Profile) -> BTreeSet<String> {
        profile
            .router()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect()
    }

    #[test]
    fn profiles_have_the_reference_counts_and_names() {
        assert_eq!(names(Profile::VmRun), BTreeSet::from(["vm_run".to_owned()]));
        let core = names(Profile::WorkspaceCore);
        assert_eq!(core.len(), 16);
        assert_eq!(
            core,
            WORKSPACE_CORE.iter().map(|s| (*s).to_owned()).collect()
        );
        let full = names(Profile::WorkspaceFull);
        assert_eq!(full.len(), 45);
        assert_eq!(
            full,
            WORKSPACE_FULL.iter().map(|s| (*s).to_owned()).collect()
        );
        assert!(core.is_subset(&full));
        assert_eq!(WORKSPACE_FULL.iter().collect::<BTreeSet<_>>().len(), 45);
    }

    #[test]
    fn every_written_tool_is_in_a_profile() {
        let all = PyroMcp::vm_tools()
            + PyroMcp::lifecycle_tools()
            + PyroMcp::file_tools()
            + PyroMcp::disk_tools()
            + PyroMcp::snapshot_tools()
            + PyroMcp::shell_tools()
            + PyroMcp::service_tools()
            + PyroMcp::create_core()
            + PyroMcp::exec_core()
            + PyroMcp::create_full()
            + PyroMcp::exec_full();
        for tool in all.list_all() {
            assert!(
                WORKSPACE_FULL.contains(&tool.name.as_ref()),
                "{} is in no profile",
                tool.name
            );
        }
    }

    fn schema(profile: Profile, tool: &str) -> serde_json::Value {
        let router = profile.router();
        let tool = router.get(tool).unwrap();
        serde_json::Value::Object(tool.input_schema.as_ref().clone())
    }

    #[test]
    fn workspace_create_differs_between_core_and_full() {
        let core = schema(Profile::WorkspaceCore, "workspace_create");
        let full = schema(Profile::WorkspaceFull, "workspace_create");
        assert!(core["properties"].get("network_policy").is_none());
        assert!(core["properties"].get("secrets").is_none());
        assert_eq!(full["properties"]["network_policy"]["default"], "off");
        assert_eq!(
            full["properties"]["secrets"]["type"],
            serde_json::json!(["array", "null"])
        );
        let core_exec = schema(Profile::WorkspaceCore, "workspace_exec");
        let full_exec = schema(Profile::WorkspaceFull, "workspace_exec");
        assert!(core_exec["properties"].get("secret_env").is_none());
        assert!(full_exec["properties"].get("secret_env").is_some());
        for s in [&core, &full] {
            assert_eq!(s["required"], serde_json::json!(["environment"]));
            assert_eq!(s["properties"]["vcpu_count"]["default"], 1);
            assert_eq!(s["properties"]["mem_mib"]["default"], 1024);
            assert_eq!(s["properties"]["ttl_seconds"]["default"], 600);
            assert_eq!(s["additionalProperties"], false);
        }
    }

    #[test]
    fn schemas_show_the_reference_defaults() {
        let run = schema(Profile::VmRun, "vm_run");
        assert_eq!(
            run["required"],
            serde_json::json!(["environment", "command"])
        );
        for (field, default) in [
            ("vcpu_count", serde_json::json!(1)),
            ("mem_mib", serde_json::json!(1024)),
            ("timeout_seconds", serde_json::json!(30)),
            ("ttl_seconds", serde_json::json!(600)),
            ("network", serde_json::json!(false)),
            ("allow_host_compat", serde_json::json!(false)),
        ] {
            assert_eq!(run["properties"][field]["default"], default, "{field}");
        }
        let read = schema(Profile::WorkspaceCore, "workspace_file_read");
        assert_eq!(read["properties"]["max_bytes"]["default"], 65536);
        let list = schema(Profile::WorkspaceCore, "workspace_file_list");
        assert_eq!(list["properties"]["path"]["default"], "/workspace");
        assert_eq!(list["properties"]["recursive"]["default"], false);
        let reset = schema(Profile::WorkspaceCore, "workspace_reset");
        assert_eq!(reset["properties"]["snapshot"]["default"], "baseline");
        let sync = schema(Profile::WorkspaceCore, "workspace_sync_push");
        assert_eq!(sync["properties"]["dest"]["default"], "/workspace");
        let tool = Profile::WorkspaceFull.router();
        let tool = tool.get("vm_list_environments").unwrap();
        assert_eq!(tool.input_schema["type"], "object");
        assert_eq!(
            tool.output_schema.as_ref().unwrap()["type"],
            serde_json::json!("object")
        );
    }

    #[test]
    fn every_tool_has_a_description() {
        for tool in Profile::WorkspaceFull.router().list_all() {
            let description = tool.description.unwrap_or_default();
            assert!(description.len() > 20, "{}: {description:?}", tool.name);
        }
    }
}
