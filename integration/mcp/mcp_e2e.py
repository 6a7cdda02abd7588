#!/usr/bin/env python3
"""End-to-end test of `pyro mcp serve` with a client that is not ours: the
official Python MCP SDK (pinned in requirements.txt).

It drives real servers (and so real guests) through both transports:

- stdio: the tool list of every profile (counts and names, also over the
  older initialize handshake), then a workspace-full session that calls
  every tool: vm_run with progress and the other vm_* tools,
  workspace_create seeded from a directory inside the allowed root,
  workspace_exec, file write, diff, snapshot_create, workspace_reset to the
  snapshot, the file, disk and snapshot tools, host paths outside the
  allowed roots refused, a long exec running while a file read completes,
  a cancelled exec killed in the guest, a cancelled create cleaned up,
  error codes, workspace_delete; then secrets (literal and file, redacted
  everywhere), shells and services;
- streamable HTTP with a bearer token: a request without the token is
  refused (401), then the workspace-core tool list, vm_run with progress, and
  the concurrent exec/read check again.

The pyro state (PYRO_HOME, PYRO_RUNTIME_DIR, ...) comes from the environment
this script runs in; `integration/tests/mcp.rs` sets it up. Run by hand:

    python3 integration/mcp/mcp_e2e.py --pyro target/release/pyro --workdir /tmp/mcp-e2e

Exit status 0 when every check passed; the first failure is printed with
what was seen, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

VM_RUN = ["vm_run"]
WORKSPACE_CORE = [
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
]
WORKSPACE_FULL = WORKSPACE_CORE + [
    "vm_list_environments",
    "vm_create",
    "vm_start",
    "vm_exec",
    "vm_stop",
    "vm_delete",
    "vm_status",
    "vm_network_info",
    "vm_reap_expired",
    "workspace_disk_export",
    "workspace_disk_list",
    "workspace_disk_read",
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
]
PROFILES = {"vm-run": VM_RUN, "workspace-core": WORKSPACE_CORE, "workspace-full": WORKSPACE_FULL}

ENVIRONMENT = "debian:12-base"


class CheckFailed(Exception):
    """A check did not hold."""


def check(condition: bool, what: str, seen: Any = None) -> None:
    if not condition:
        detail = "" if seen is None else f"\n  seen: {json.dumps(seen, default=str, indent=2)[:4000]}"
        raise CheckFailed(f"{what}{detail}")


def step(message: str) -> None:
    print(f"[mcp-e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Progress:
    """Collects the progress notifications of one call."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.events.append((progress, message))

    def check_increasing(self, what: str) -> None:
        values = [p for p, _ in self.events]
        check(values == sorted(values) and len(set(values)) == len(values), f"{what}: progress increases", self.events)


async def call(client: Client, tool: str, args: dict[str, Any], progress: Progress | None = None) -> dict[str, Any]:
    """Calls a tool that must succeed; returns its structured content."""
    result = await client.call_tool(tool, args, progress_callback=progress)
    text = result.content[0].text if result.content else ""
    check(not result.is_error, f"{tool} succeeded", {"args": args, "text": text})
    structured = result.structured_content
    check(isinstance(structured, dict), f"{tool} returned structured content", text)
    check(json.loads(text) == structured, f"{tool}: its text is the same JSON", text)
    return structured


async def call_error(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """Calls a tool that must fail with a tool error; returns the error body."""
    result = await client.call_tool(tool, args)
    text = result.content[0].text if result.content else ""
    check(result.is_error, f"{tool} failed as a tool error", {"args": args, "text": text})
    error = (result.structured_content or {}).get("error")
    check(isinstance(error, dict) and "code" in error and "messages" in error, f"{tool}: error has code and messages", result.structured_content)
    check(text.startswith(f"error [{error['code']}]: "), f"{tool}: error text names the code", text)
    return error


async def check_tool_list(client: Client, profile: str) -> None:
    tools = (await client.list_tools()).tools
    names = sorted(t.name for t in tools)
    check(names == sorted(PROFILES[profile]), f"profile {profile} lists its {len(PROFILES[profile])} tools", names)
    by_name = {t.name: t for t in tools}
    run = by_name["vm_run"].input_schema
    check(run["required"] == ["environment", "command"], "vm_run requires environment and command", run)
    for field, default in [("vcpu_count", 1), ("mem_mib", 1024), ("timeout_seconds", 30), ("ttl_seconds", 600), ("network", False)]:
        check(run["properties"][field].get("default") == default, f"vm_run {field} defaults to {default}", run["properties"][field])
    if "workspace_create" in by_name:
        props = by_name["workspace_create"].input_schema["properties"]
        check(("network_policy" in props) == (profile == "workspace-full"), f"{profile}: workspace_create network_policy", sorted(props))


def server_env() -> dict[str, str]:
    return dict(os.environ)


async def profile_lists(pyro: str, allowed: Path) -> None:
    for profile in PROFILES:
        params = StdioServerParameters(
            command=pyro,
            args=["mcp", "serve", "--profile", profile, "--allow-path", str(allowed)],
            env=server_env(),
        )
        async with Client(params) as client:
            check(client.server_info is None or client.server_info.name == "pyro", "server is pyro", str(client.server_info))
            await check_tool_list(client, profile)
        step(f"profile {profile}: {len(PROFILES[profile])} tools")
    # The default profile is workspace-core.
    params = StdioServerParameters(command=pyro, args=["mcp", "serve", "--allow-path", str(allowed)], env=server_env())
    async with Client(params) as client:
        await check_tool_list(client, "workspace-core")
        modern = client.protocol_version
    step(f"default profile: workspace-core (protocol {modern})")
    # Clients of the initialize-handshake era (most agents today) work too.
    async with Client(params, mode="legacy") as client:
        await check_tool_list(client, "workspace-core")
        listed = await call(client, "workspace_list", {})
        check(isinstance(listed["workspaces"], list), "workspace_list over a legacy session", listed)
        legacy = client.protocol_version
    check(legacy != modern, "the legacy session negotiated an older protocol", [legacy, modern])
    step(f"legacy handshake: protocol {legacy}")


async def vm_run(client: Client) -> None:
    progress = Progress()
    run = await call(client, "vm_run", {"environment": ENVIRONMENT, "command": "echo hello from $(uname -s); echo oops >&2; exit 3"}, progress)
    check(run["exit_code"] == 3, "vm_run exit code", run)
    check(run["stdout"] == "hello from Linux\n", "vm_run stdout", run)
    check(run["stderr"] == "oops\n", "vm_run stderr", run)
    check(run["execution_mode"] == "guest_vsock" and run["cleanup"]["deleted"], "vm_run ran in a guest and cleaned up", run)
    messages = [m or "" for _, m in progress.events]
    check(any(m.startswith("execute") for m in messages), "vm_run reported its phases", progress.events)
    progress.check_increasing("vm_run")
    step(f"vm_run: exit 3, {len(progress.events)} progress notifications")


async def concurrent_exec_and_read(client: Client, workspace_id: str, path: str) -> None:
    """A long exec must not stall a file read."""
    done: dict[str, float] = {}
    started = time.monotonic()

    async def long_exec() -> None:
        result = await call(client, "workspace_exec", {"workspace_id": workspace_id, "command": "sleep 6; echo slept"})
        check(result["stdout"] == "slept\n", "long exec output", result)
        done["exec"] = time.monotonic() - started

    async with anyio.create_task_group() as tg:
        tg.start_soon(long_exec)
        await anyio.sleep(1.0)
        read = await call(client, "workspace_file_read", {"workspace_id": workspace_id, "path": path})
        done["read"] = time.monotonic() - started
        check("exec" not in done, "the file read finished while the long exec still ran", done)
        check(read["content"] != "", "the concurrent read returned content", read)
    check(done["read"] < done["exec"], "read before exec", done)
    step(f"concurrency: read done at {done['read']:.1f}s, long exec at {done['exec']:.1f}s")


async def cancelled_exec(client: Client, workspace_id: str) -> None:
    """Cancelling an exec kills the command in the guest."""
    marker = f"cancel-me-{os.getpid()}"
    command = f"i=0; while true; do echo {marker} $i; i=$((i+1)); sleep 0.2; done"
    progress = Progress()
    with anyio.move_on_after(4.0) as scope:
        await client.call_tool("workspace_exec", {"workspace_id": workspace_id, "command": command, "timeout_seconds": 120}, progress_callback=progress)
    check(scope.cancelled_caught, "the endless exec was still running when cancelled")
    check(len(progress.events) >= 2, "the endless exec reported progress before the cancel", progress.events)
    deadline = time.monotonic() + 30
    entry = None
    while time.monotonic() < deadline:
        logs = await call(client, "workspace_logs", {"workspace_id": workspace_id})
        entry = next((e for e in logs["entries"] if marker in e["command"]), None)
        if entry is not None:
            break
        await anyio.sleep(0.5)
    check(entry is not None and entry["exit_code"] == 130, "the cancelled command was killed (history: exit 130)", entry)
    ps = await call(client, "workspace_exec", {"workspace_id": workspace_id, "command": f"ps -eo args | grep -c '[e]cho {marker}' || true"})
    check(ps["stdout"].strip() == "0", "no trace of the cancelled command in the guest", ps)
    step(f"cancellation: command killed (exit 130) after {len(progress.events)} progress notifications")


async def more_workspace_tools(client: Client, workspace_id: str, allowed: Path) -> None:
    """The rest of the workspace-full tools, briefly."""
    updated = await call(client, "workspace_update", {"workspace_id": workspace_id, "name": "renamed", "labels": {"team": "e2e"}, "ttl_seconds": 1800})
    check(updated["name"] == "renamed" and updated["labels"] == {"team": "e2e"} and updated["ttl_seconds"] == 1800, "workspace_update", updated)
    status = await call(client, "workspace_status", {"workspace_id": workspace_id})
    check(status["name"] == "renamed", "workspace_status", status)
    (allowed / "changes").mkdir(exist_ok=True)
    (allowed / "changes" / "added.txt").write_text("pushed\n")
    pushed = await call(client, "workspace_sync_push", {"workspace_id": workspace_id, "source_path": "changes", "dest": "src"}, Progress())
    check(pushed["destination"] == "/workspace/src" and pushed["workspace_sync"]["entry_count"] >= 1, "workspace_sync_push", pushed)
    listed = await call(client, "workspace_file_list", {"workspace_id": workspace_id, "recursive": True})
    check("/workspace/src/added.txt" in [e["path"] for e in listed["entries"]], "workspace_file_list", listed)
    patch = "--- a/src/added.txt\n+++ b/src/added.txt\n@@ -1 +1 @@\n-pushed\n+patched\n"
    patched = await call(client, "workspace_patch_apply", {"workspace_id": workspace_id, "patch": patch})
    check(patched["summary"]["modified"] == 1, "workspace_patch_apply", patched)
    read = await call(client, "workspace_file_read", {"workspace_id": workspace_id, "path": "src/added.txt"})
    check(read["content"] == "patched\n" and read["execution_mode"] == "guest_vsock", "workspace_file_read", read)
    await call(client, "snapshot_create", {"workspace_id": workspace_id, "snapshot_name": "scratch"})
    snapshots = await call(client, "snapshot_list", {"workspace_id": workspace_id})
    check([x["snapshot_name"] for x in snapshots["snapshots"]][:1] == ["baseline"] and snapshots["count"] == 3, "snapshot_list", snapshots)
    gone = await call(client, "snapshot_delete", {"workspace_id": workspace_id, "snapshot_name": "scratch"})
    check(gone["deleted"] is True, "snapshot_delete", gone)
    step("workspace_update/status, sync push, file list/read, patch apply, snapshot list/delete")

    stopped = await call(client, "workspace_stop", {"workspace_id": workspace_id}, Progress())
    check(stopped["state"] == "stopped", "workspace_stop", stopped)
    disk = await call(client, "workspace_disk_list", {"workspace_id": workspace_id, "path": "src"})
    check([e["path"] for e in disk["entries"]] == ["/workspace/src/added.txt"], "workspace_disk_list", disk)
    disk_read = await call(client, "workspace_disk_read", {"workspace_id": workspace_id, "path": "src/added.txt"})
    check(disk_read["content"] == "patched\n", "workspace_disk_read", disk_read)
    image = await call(client, "workspace_disk_export", {"workspace_id": workspace_id, "output_path": "disk.ext4"})
    check(image["disk_format"] == "ext4" and (allowed / "disk.ext4").is_file(), "workspace_disk_export", image)
    (allowed / "disk.ext4").unlink()
    started = await call(client, "workspace_start", {"workspace_id": workspace_id}, Progress())
    check(started["state"] == "started", "workspace_start", started)
    step("workspace_stop, disk list/read/export, workspace_start")


async def vm_tools(client: Client) -> None:
    """The vm_* tools: VMs are workspaces labelled pyro.kind=vm."""
    environments = await call(client, "vm_list_environments", {})
    names = [e["name"] for e in environments["environments"]]
    check(ENVIRONMENT in names and environments["result"] == environments["environments"], "vm_list_environments", names)
    vm = await call(client, "vm_create", {"environment": ENVIRONMENT, "mem_mib": 512}, Progress())
    vm_id = vm["vm_id"]
    check(vm["state"] == "started" and vm["network_enabled"] is False and vm["mem_mib"] == 512, "vm_create", vm)
    listed = await call(client, "workspace_list", {})
    check(all(w["workspace_id"] != vm_id for w in listed["workspaces"]), "workspace_list leaves VMs out", listed)
    status = await call(client, "vm_status", {"vm_id": vm_id})
    check(status["vm_id"] == vm_id, "vm_status", status)
    network = await call(client, "vm_network_info", {"vm_id": vm_id})
    check(network["network_enabled"] is False and network["outbound_connectivity_expected"] is False, "vm_network_info", network)
    check((await call(client, "vm_stop", {"vm_id": vm_id}))["state"] == "stopped", "vm_stop")
    check((await call(client, "vm_start", {"vm_id": vm_id}))["state"] == "started", "vm_start")
    executed = await call(client, "vm_exec", {"vm_id": vm_id, "command": "echo from-vm"})
    check(executed["stdout"] == "from-vm\n" and executed["cleanup"]["deleted"] is True, "vm_exec deletes the VM afterwards", executed)
    error = await call_error(client, "vm_status", {"vm_id": vm_id})
    check(error["code"] == "unknown_vm", "the VM is gone after vm_exec", error)
    error = await call_error(client, "vm_delete", {"vm_id": vm_id})
    check(error["code"] == "unknown_vm", "vm_delete of a gone VM", error)
    error = await call_error(client, "vm_run", {"environment": ENVIRONMENT, "command": "true", "network": True})
    check(error["code"] == "invalid_argument" and "network" in error["message"], "network=true is refused", error)
    reaped = await call(client, "vm_reap_expired", {})
    check(reaped["count"] == len(reaped["deleted_vm_ids"]), "vm_reap_expired", reaped)
    step("vm_list_environments, vm_create/status/network_info/stop/start/exec, vm_reap_expired")


async def secrets_shells_services(client: Client, allowed: Path, outside: Path) -> None:
    """Secrets reach commands, shells and services, and never come back."""
    secret = "s3cr3t-" + os.urandom(6).hex()
    file_secret = "f1le-" + os.urandom(6).hex()
    (allowed / "token.txt").write_text(file_secret)
    error = await call_error(client, "workspace_create", {"environment": ENVIRONMENT, "secrets": [{"name": "X", "file_path": str(outside / "secret.txt")}]})
    check(error["code"] == "invalid_argument" and "outside the allowed roots" in error["message"], "a secret file outside the roots is refused", error)
    created = await call(client, "workspace_create", {
        "environment": ENVIRONMENT,
        "secrets": [{"name": "API_TOKEN", "value": secret}, {"name": "PIP_TOKEN", "file_path": "token.txt"}],
    })
    workspace_id = created["workspace_id"]
    seen: list[dict[str, Any]] = [created]
    try:
        check(sorted(s["name"] for s in created["secrets"]) == ["API_TOKEN", "PIP_TOKEN"], "secrets listed by name", created["secrets"])
        executed = await call(client, "workspace_exec", {
            "workspace_id": workspace_id,
            "command": 'test "$TOKEN" = "$(cat /run/pyro-secrets/API_TOKEN)" && echo match; echo "$TOKEN"; cat /run/pyro-secrets/PIP_TOKEN',
            "secret_env": {"API_TOKEN": "TOKEN"},
        })
        seen.append(executed)
        check(executed["stdout"].startswith("match\n") and "[REDACTED]" in executed["stdout"], "secret_env reaches the command, output redacted", executed)
        step("secrets: literal and file secrets, secret_env, redacted output")

        shell = await call(client, "shell_open", {"workspace_id": workspace_id, "secret_env": {"API_TOKEN": "TOKEN"}})
        shell_id = shell["shell_id"]
        check(shell["state"] == "running" and shell["cols"] == 120 and shell["rows"] == 30, "shell_open", shell)
        wrote = await call(client, "shell_write", {"workspace_id": workspace_id, "shell_id": shell_id, "input": "echo shell-$((6*7)) $TOKEN"})
        check(wrote["input_length"] == len("echo shell-$((6*7)) $TOKEN") and wrote["append_newline"] is True, "shell_write", wrote)
        output, cursor = "", 0
        for _ in range(20):
            read = await call(client, "shell_read", {"workspace_id": workspace_id, "shell_id": shell_id, "cursor": cursor, "plain": True, "wait_for_idle_ms": 300})
            seen.append(read)
            output += read["output"]
            cursor = read["next_cursor"]
            if "shell-42 [REDACTED]" in output:
                break
        check("shell-42 [REDACTED]" in output, "the shell ran the input, secret redacted", output)
        check(read["shell_id"] == shell_id and read["shell"]["shell_id"] == shell_id, "shell_read has the shell fields", read)
        resized = await call(client, "shell_resize", {"workspace_id": workspace_id, "shell_id": shell_id, "cols": 100, "rows": 40})
        check((resized["cols"], resized["rows"]) == (100, 40), "shell_resize", resized)
        shells = await call(client, "shell_list", {"workspace_id": workspace_id})
        check(shells["count"] == 1, "shell_list", shells)
        signalled = await call(client, "shell_signal", {"workspace_id": workspace_id, "shell_id": shell_id})
        check(signalled["signal"] == "INT", "shell_signal defaults to INT", signalled)
        closed = await call(client, "shell_close", {"workspace_id": workspace_id, "shell_id": shell_id})
        check(closed["closed"] is True and closed["state"] == "stopped", "shell_close", closed)
        step("shells: open, write, read, resize, list, signal, close")

        error = await call_error(client, "service_start", {"workspace_id": workspace_id, "service_name": "web", "command": "sleep 60", "ready_file": "a", "ready_command": "true"})
        check(error["code"] == "invalid_argument" and "at most one" in error["message"], "two readiness checks are refused", error)
        started = await call(client, "service_start", {
            "workspace_id": workspace_id,
            "service_name": "web",
            "command": 'echo started; echo "token=$TOKEN"; touch .ready; exec sleep 300',
            "ready_file": ".ready",
            "secret_env": {"API_TOKEN": "TOKEN"},
        }, Progress())
        check(started["state"] == "running" and started["readiness"]["type"] == "file" and started["ready_at"], "service_start waits until ready", started)
        services = await call(client, "service_list", {"workspace_id": workspace_id})
        check(services["count"] == 1 and services["running_count"] == 1, "service_list", services)
        status = await call(client, "service_status", {"workspace_id": workspace_id, "service_name": "web"})
        check(status["state"] == "running", "service_status", status)
        logs = await call(client, "service_logs", {"workspace_id": workspace_id, "service_name": "web"})
        seen.append(logs)
        check("started" in logs["stdout"] and "token=[REDACTED]" in logs["stdout"] and logs["service_name"] == "web", "service_logs, redacted", logs)
        stopped = await call(client, "service_stop", {"workspace_id": workspace_id, "service_name": "web"})
        check(stopped["state"] != "running", "service_stop", stopped)
        step("services: start (ready_file), list, status, logs, stop")
        seen.append(await call(client, "workspace_status", {"workspace_id": workspace_id}))
        seen.append(await call(client, "workspace_logs", {"workspace_id": workspace_id}))
        everything = json.dumps(seen)
        check(secret not in everything and file_secret not in everything, "no secret value in any result", None)
    finally:
        await call(client, "workspace_delete", {"workspace_id": workspace_id})


async def cancelled_create(client: Client) -> None:
    """Cancelling a create during boot leaves no workspace behind."""
    booting = anyio.Event()
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")
        if (message or "").startswith("boot"):
            booting.set()

    async with anyio.create_task_group() as tg:

        async def create() -> None:
            await client.call_tool("workspace_create", {"environment": ENVIRONMENT, "name": "cancelled"}, progress_callback=on_progress)

        tg.start_soon(create)
        with anyio.fail_after(300):
            await booting.wait()
        tg.cancel_scope.cancel()
    found = re.search(r"\(workspace ([0-9a-f]+)\)", "\n".join(messages))
    check(found is not None, "create progress names the workspace", messages)
    workspace_id = found.group(1)
    deadline = time.monotonic() + 120
    while True:
        result = await client.call_tool("workspace_status", {"workspace_id": workspace_id})
        if result.is_error and result.structured_content["error"]["code"] == "unknown_workspace":
            break
        check(time.monotonic() < deadline, "the cancelled create's workspace is deleted", result.structured_content)
        await anyio.sleep(0.5)
    step(f"cancelled create: workspace {workspace_id} deleted once created")


async def workspace_flow(client: Client, allowed: Path, outside: Path) -> None:
    progress = Progress()
    created = await call(client, "workspace_create", {"environment": ENVIRONMENT, "seed_path": "repo", "name": "mcp-e2e"}, progress)
    workspace_id = created["workspace_id"]
    check(created["state"] == "started", "workspace started", created)
    seed = created["workspace_seed"]
    check(seed["mode"] == "directory" and seed["seed_path"] == str((allowed / "repo").resolve()), "seeded from the allowed directory", seed)
    check(any("boot" in (m or "") for _, m in progress.events), "create reported its phases", progress.events)
    progress.check_increasing("workspace_create")
    step(f"workspace_create: {workspace_id}, {len(progress.events)} progress notifications")
    try:
        listed = await call(client, "workspace_list", {})
        check(any(w["workspace_id"] == workspace_id for w in listed["workspaces"]), "workspace_list shows it", listed)

        executed = await call(client, "workspace_exec", {"workspace_id": workspace_id, "command": "cat note.txt && pwd"})
        check(executed["stdout"] == "seeded\n/workspace\n" and executed["exit_code"] == 0, "exec sees the seed in /workspace", executed)
        check(executed["sequence"] == 1, "first command has sequence 1", executed)

        await call(client, "workspace_file_write", {"workspace_id": workspace_id, "path": "note.txt", "text": "checkpointed\n"})
        diff = await call(client, "workspace_diff", {"workspace_id": workspace_id})
        check(diff["changed"] and diff["summary"]["modified"] == 1, "diff shows the modified file", diff)
        check("+checkpointed" in diff["patch"], "diff patch", diff)
        step("workspace_exec, workspace_file_write, workspace_diff")

        snapshot = await call(client, "snapshot_create", {"workspace_id": workspace_id, "snapshot_name": "checkpoint"})
        check(snapshot["snapshot_name"] == "checkpoint" and snapshot["snapshot"]["snapshot_name"] == "checkpoint", "snapshot created", snapshot)
        await call(client, "workspace_exec", {"workspace_id": workspace_id, "command": "echo later >> note.txt; touch extra"})
        reset = await call(client, "workspace_reset", {"workspace_id": workspace_id, "snapshot": "checkpoint"}, Progress())
        check(reset["workspace_reset"]["snapshot_name"] == "checkpoint" and reset["workspace_id"] == workspace_id, "reset to the snapshot", reset)
        after = await call(client, "workspace_exec", {"workspace_id": workspace_id, "command": "cat note.txt; ls"})
        check(after["stdout"] == "checkpointed\nnote.txt\n", "reset restored the snapshot", after)
        step("snapshot_create, workspace_reset")

        await more_workspace_tools(client, workspace_id, allowed)

        # Host paths outside the allowed roots are refused, naming the path and the roots.
        for tool, args, arg in [
            ("workspace_sync_push", {"workspace_id": workspace_id, "source_path": str(outside)}, "source_path"),
            ("workspace_export", {"workspace_id": workspace_id, "path": "note.txt", "output_path": "../escaped.txt"}, "output_path"),
            ("workspace_export", {"workspace_id": workspace_id, "path": "note.txt", "output_path": "link-out/escaped.txt"}, "output_path"),
            ("workspace_create", {"environment": ENVIRONMENT, "seed_path": str(outside)}, "seed_path"),
        ]:
            error = await call_error(client, tool, args)
            check(error["code"] == "invalid_argument" and "outside the allowed roots" in error["message"], f"{tool} refuses {arg} outside the roots", error)
            check(str(allowed.resolve()) in error["message"], f"{tool}: the error names the allowed roots", error)
        check(not (allowed.parent / "escaped.txt").exists(), "nothing was written outside the roots")
        exported = await call(client, "workspace_export", {"workspace_id": workspace_id, "path": "note.txt", "output_path": "exported/note.txt"})
        check((allowed / "exported/note.txt").read_text() == "checkpointed\n", "export inside the root works", exported)
        step("paths outside the allowed roots refused; export inside works")

        # Errors carry the stable code and the hint.
        error = await call_error(client, "workspace_status", {"workspace_id": "000000000000"})
        check(error["code"] == "unknown_workspace", "unknown workspace code", error)
        error = await call_error(client, "workspace_exec", {"workspace_id": workspace_id, "command": "true", "timeout_seconds": 0})
        check(error["code"] == "invalid_argument" and error["message"].startswith("timeout_seconds"), "bad argument code", error)
        error = await call_error(client, "workspace_exec", {"workspace_id": workspace_id, "command": "true", "bogus": 1})
        check(error["code"] == "invalid_argument" and "bogus" in error["message"], "unknown argument refused", error)
        step("error codes")

        await concurrent_exec_and_read(client, workspace_id, "note.txt")
        await cancelled_exec(client, workspace_id)
    finally:
        deleted = await call(client, "workspace_delete", {"workspace_id": workspace_id})
    check(deleted["deleted"] is True, "workspace deleted", deleted)
    step("workspace_delete")


async def stdio_session(pyro: str, allowed: Path, outside: Path) -> None:
    params = StdioServerParameters(
        command=pyro,
        args=["mcp", "serve", "--profile", "workspace-full", "--allow-path", str(allowed)],
        env=server_env(),
        cwd=str(allowed.parent),
    )
    async with Client(params, read_timeout_seconds=600) as client:
        await vm_run(client)
        await vm_tools(client)
        await workspace_flow(client, allowed, outside)
        await cancelled_create(client)
        await secrets_shells_services(client, allowed, outside)


def start_http_server(pyro: str, allowed: Path, token: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = server_env()
    env["PYRO_MCP_TOKEN"] = token
    stderr = log.open("wb")
    server = subprocess.Popen(
        [pyro, "mcp", "serve", "--http", "127.0.0.1:0", "--allow-path", str(allowed)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = re.search(r"url=(http://\S+/mcp)", text)
        if found:
            check("auth=bearer" in text, "the HTTP server requires the token", text)
            return server, found.group(1)
        if server.poll() is not None:
            break
        time.sleep(0.1)
    server.kill()
    raise CheckFailed(f"the HTTP server did not start:\n{log.read_text(errors='replace')}")


async def http_session(pyro: str, allowed: Path, workdir: Path) -> None:
    token = "e2e-" + os.urandom(8).hex()
    server, url = start_http_server(pyro, allowed, token, workdir / "http-server.log")
    try:
        step(f"HTTP server at {url}")
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}},
        }
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        async with httpx2.AsyncClient() as raw:
            refused = await raw.post(url, json=initialize, headers=headers)
            check(refused.status_code == 401, "a request without the token is refused", refused.status_code)
            check(refused.headers.get("www-authenticate") == "Bearer", "401 names the Bearer scheme", dict(refused.headers))
            wrong = await raw.post(url, json=initialize, headers={**headers, "Authorization": "Bearer nope"})
            check(wrong.status_code == 401, "a request with a wrong token is refused", wrong.status_code)
        step("HTTP: requests without the right token get 401")

        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=600)) as http:
            async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=600) as client:
                await check_tool_list(client, "workspace-core")
                step("HTTP: workspace-core tools listed")
                await vm_run(client)
                created = await call(client, "workspace_create", {"environment": ENVIRONMENT, "seed_path": "repo"})
                workspace_id = created["workspace_id"]
                try:
                    await concurrent_exec_and_read(client, workspace_id, "note.txt")
                    await cancelled_exec(client, workspace_id)
                finally:
                    await call(client, "workspace_delete", {"workspace_id": workspace_id})
                step("HTTP: workspace create, concurrent exec and read, cancellation, delete")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            raise CheckFailed("the HTTP server did not stop on SIGTERM")


def prepare(workdir: Path) -> tuple[Path, Path]:
    if workdir.exists():
        shutil.rmtree(workdir)
    allowed = workdir / "allowed"
    outside = workdir / "outside"
    (allowed / "repo").mkdir(parents=True)
    outside.mkdir()
    (allowed / "repo" / "note.txt").write_text("seeded\n")
    (outside / "secret.txt").write_text("not for guests\n")
    (allowed / "link-out").symlink_to(outside)
    return allowed, outside


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pyro", required=True, help="the pyro binary")
    parser.add_argument("--workdir", required=True, type=Path, help="scratch directory (recreated)")
    parser.add_argument("--transport", choices=["stdio", "http", "all"], default="all")
    args = parser.parse_args()
    allowed, outside = prepare(args.workdir.resolve())
    pyro = str(Path(args.pyro).resolve())
    started = time.monotonic()
    try:
        if args.transport in ("stdio", "all"):
            await profile_lists(pyro, allowed)
            await stdio_session(pyro, allowed, outside)
        if args.transport in ("http", "all"):
            await http_session(pyro, allowed, args.workdir.resolve())
    except CheckFailed as failure:
        print(f"[mcp-e2e] FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    step(f"all checks passed in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
