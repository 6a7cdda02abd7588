//! Step 3 of a build: the kernel modules the guest loads, and `modules.cpio`.
//!
//! The Debian package ships no `modules.dep`, so `depmod -b` generates it in the
//! extracted (scratch) tree. The load order is a depth-first topological sort
//! of that dependency graph starting from [`REQUIRED_GUEST_MODULES`]: every
//! transitive dependency is included and always comes before its users.
//! Modules built into the kernel (`modules.builtin`) are skipped.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::kernel::KernelPackage;
use super::tools::{self, FailureHint, ToolPaths, DEPMOD};
use crate::environment::cpio_archive::{write_newc_archive_file, ArchiveEntry};
use crate::environment::error::EnvironmentError;

/// The modules the guest needs, in a dependency-agnostic order: the virtio
/// MMIO transport and block device, vsock over virtio, and overlayfs.
pub const REQUIRED_GUEST_MODULES: [&str; 8] = [
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_blk",
    "vsock",
    "vmw_vsock_virtio_transport_common",
    "vmw_vsock_virtio_transport",
    "overlay",
];

/// Where modules live inside `modules.cpio` (and the guest's initramfs).
pub const ARCHIVE_MODULE_DIR: &str = "lib/modules";
/// The load-order file inside [`ARCHIVE_MODULE_DIR`].
pub const ARCHIVE_ORDER_FILE: &str = "order";

/// One loadable module from `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModuleRecord {
    /// Path as written in modules.dep (relative to `lib/modules/<kver>`).
    pub path: String,
    /// Names of the modules it depends on.
    pub dependencies: Vec<String>,
}

/// The dependency graph from `modules.dep`, keyed by normalized module name.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModuleGraph {
    modules: HashMap<String, ModuleRecord>,
}

/// A module's canonical name from its path: the file stem before `.ko`, with
/// dashes as underscores (the kernel treats them as the same).
pub(crate) fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.find(".ko").map_or(file, |end| &file[..end]);
    stem.replace('-', "_")
}

impl ModuleGraph {
    /// Parses `modules.dep` text (`path: dep-path dep-path ...` per line).
    pub(crate) fn parse(text: &str, source: &Path) -> Result<Self, EnvironmentError> {
        let mut modules = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax_error = || EnvironmentError::ModulesDepSyntax {
                path: source.to_path_buf(),
                line_number: index + 1,
            };
            let (path, dependencies) = line.split_once(':').ok_or_else(syntax_error)?;
            let path = path.trim();
            if path.is_empty() || !path.contains(".ko") {
                return Err(syntax_error());
            }
            modules.insert(
                module_name(path),
                ModuleRecord {
                    path: path.to_owned(),
                    dependencies: dependencies.split_whitespace().map(module_name).collect(),
                },
            );
        }
        Ok(Self { modules })
    }

    /// The record of a module, by canonical name.
    pub(crate) fn get(&self, name: &str) -> Option<&ModuleRecord> {
        self.modules.get(name)
    }
}

/// Canonical names of built-in modules, from `modules.builtin` text.
pub(crate) fn parse_builtin(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(module_name)
        .collect()
}

/// The load order for `required`: dependencies first, each module once,
/// built-in modules left out.
pub(crate) fn load_order(
    graph: &ModuleGraph,
    builtin: &HashSet<String>,
    required: &[&str],
    kernel_version: &str,
) -> Result<Vec<String>, EnvironmentError> {
    enum Visit {
        Enter(String, String),
        Leave(String),
    }
    let mut order: Vec<String> = Vec::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut in_progress: HashSet<String> = HashSet::new();
    for root in required {
        let mut stack = vec![Visit::Enter(module_name(root), "guest".to_owned())];
        while let Some(visit) = stack.pop() {
            match visit {
                Visit::Leave(name) => {
                    in_progress.remove(&name);
                    done.insert(name.clone());
                    order.push(name);
                }
                Visit::Enter(name, needed_by) => {
                    if done.contains(&name) {
                        continue;
                    }
                    if in_progress.contains(&name) {
                        return Err(EnvironmentError::ModuleCycle { module: name });
                    }
                    let Some(record) = graph.get(&name) else {
                        if builtin.contains(&name) {
                            tracing::debug!(module = %name, "built into the kernel");
                            done.insert(name);
                            continue;
                        }
                        return Err(EnvironmentError::ModuleMissing {
                            module: name,
                            needed_by,
                            kernel_version: kernel_version.to_owned(),
                        });
                    };
                    in_progress.insert(name.clone());
                    stack.push(Visit::Leave(name.clone()));
                    // Reversed so dependencies are visited in modules.dep order.
                    for dependency in record.dependencies.iter().rev() {
                        stack.push(Visit::Enter(dependency.clone(), name.clone()));
                    }
                }
            }
        }
    }
    Ok(order)
}

/// The ordered modules: canonical names and their files in the kernel tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderedModules {
    /// `(canonical name, file in the extracted tree)`, dependencies first.
    pub modules: Vec<(String, PathBuf)>,
}

impl OrderedModules {
    /// The canonical names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.modules.iter().map(|(name, _)| name.clone()).collect()
    }
}

/// Runs depmod on the extracted tree and computes the guest's module order.
pub(crate) fn resolve_guest_modules(
    tools: &ToolPaths,
    kernel: &KernelPackage,
) -> Result<OrderedModules, EnvironmentError> {
    tools::run(
        "depmod",
        tools
            .command(DEPMOD)
            .arg("-b")
            .arg(&kernel.root)
            .arg(&kernel.kernel_version),
        &FailureHint::Text("the kernel package's module tree could not be indexed"),
    )?;
    let module_dir = kernel.module_dir();
    let dep_path = module_dir.join("modules.dep");
    let dep_text = fs::read_to_string(&dep_path)
        .map_err(|source| EnvironmentError::io("read", &dep_path, source))?;
    let graph = ModuleGraph::parse(&dep_text, &dep_path)?;
    let builtin_path = module_dir.join("modules.builtin");
    let builtin = match fs::read_to_string(&builtin_path) {
        Ok(text) => parse_builtin(&text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
        Err(source) => return Err(EnvironmentError::io("read", &builtin_path, source)),
    };
    let names = load_order(
        &graph,
        &builtin,
        &REQUIRED_GUEST_MODULES,
        &kernel.kernel_version,
    )?;
    let mut modules = Vec::with_capacity(names.len());
    for name in names {
        let record = graph
            .get(&name)
            .ok_or_else(|| EnvironmentError::ModuleMissing {
                module: name.clone(),
                needed_by: "guest".to_owned(),
                kernel_version: kernel.kernel_version.clone(),
            })?;
        let file = if record.path.starts_with('/') {
            kernel.root.join(record.path.trim_start_matches('/'))
        } else {
            module_dir.join(&record.path)
        };
        modules.push((name, file));
    }
    Ok(OrderedModules { modules })
}

/// The archive entries for `modules.cpio`: `lib`, `lib/modules`, each module
/// flat as `lib/modules/<file>.ko` in load order, then `lib/modules/order`.
pub(crate) fn archive_entries(
    modules: &OrderedModules,
) -> Result<Vec<ArchiveEntry>, EnvironmentError> {
    let mut entries = vec![
        ArchiveEntry::directory("lib", 0o755),
        ArchiveEntry::directory(ARCHIVE_MODULE_DIR, 0o755),
    ];
    let mut order = String::new();
    let mut seen_files = HashSet::new();
    for (name, path) in &modules.modules {
        let file_name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".ko"))
            .ok_or_else(|| EnvironmentError::ArchiveEntryInvalid {
                name: name.clone(),
                reason: format!(
                    "{} is not an uncompressed .ko file, which the guest init needs",
                    path.display()
                ),
            })?;
        if !seen_files.insert(file_name.clone()) {
            return Err(EnvironmentError::ArchiveEntryInvalid {
                name: name.clone(),
                reason: format!("two modules share the file name {file_name}"),
            });
        }
        entries.push(ArchiveEntry::file_from_path(
            format!("{ARCHIVE_MODULE_DIR}/{file_name}"),
            0o644,
            path,
        ));
        order.push_str(&file_name);
        order.push('\n');
    }
    entries.push(ArchiveEntry::file_from_bytes(
        format!("{ARCHIVE_MODULE_DIR}/{ARCHIVE_ORDER_FILE}"),
        0o644,
        order.into_bytes(),
    ));
    Ok(entries)
}

/// Writes `modules.cpio` for the ordered modules.
pub(crate) fn write_modules_archive(
    modules: &OrderedModules,
    output: &Path,
) -> Result<(), EnvironmentError> {
    write_newc_archive_file(&archive_entries(modules)?, output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::cpio_archive::tests::read_archive;

    /// An excerpt of the real modules.dep of 6.1.0-56-cloud-amd64, lines reordered.
    const SAMPLE_MODULES_DEP: &str = "\
kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/net/vmw_vsock/vsock.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
";

    fn graph(text: &str) -> ModuleGraph {
        ModuleGraph::parse(text, Path::new("modules.dep")).unwrap()
    }

    /// Asserts every module comes after all of its (transitive) dependencies.
    fn assert_dependencies_first(graph: &ModuleGraph, order: &[String]) {
        for (position, name) in order.iter().enumerate() {
            for dependency in &graph.get(name).unwrap().dependencies {
                let dep_position = order.iter().position(|n| n == dependency);
                assert!(
                    dep_position.is_some_and(|p| p < position),
                    "{dependency} must load before {name}: {order:?}"
                );
            }
        }
    }

    #[test]
    fn names_are_normalized_from_paths() {
        assert_eq!(
            module_name("kernel/drivers/char/hw_random/virtio-rng.ko"),
            "virtio_rng"
        );
        assert_eq!(module_name("kernel/fs/overlayfs/overlay.ko.xz"), "overlay");
        assert_eq!(module_name("virtio_ring"), "virtio_ring");
    }

    #[test]
    fn the_guest_set_orders_dependencies_first() {
        let graph = graph(SAMPLE_MODULES_DEP);
        let order = load_order(&graph, &HashSet::new(), &REQUIRED_GUEST_MODULES, "k").unwrap();
        assert_eq!(
            order,
            [
                "virtio_ring",
                "virtio",
                "virtio_mmio",
                "virtio_blk",
                "vsock",
                "vmw_vsock_virtio_transport_common",
                "vmw_vsock_virtio_transport",
                "overlay",
            ]
        );
        assert_dependencies_first(&graph, &order);
    }

    #[test]
    fn transitive_dependencies_are_included_even_when_not_requested() {
        // modules.dep lists only the direct dependency here; the sort must follow it.
        let text = "a.ko: b.ko\nb.ko: c-d.ko\nc-d.ko:\nunrelated.ko:\n";
        let graph = graph(text);
        let order = load_order(&graph, &HashSet::new(), &["a"], "k").unwrap();
        assert_eq!(order, ["c_d", "b", "a"]);

        let graph = self::graph(SAMPLE_MODULES_DEP);
        let order =
            load_order(&graph, &HashSet::new(), &["virtio_net", "virtio_rng"], "k").unwrap();
        assert_eq!(
            order,
            [
                "failover",
                "net_failover",
                "virtio_ring",
                "virtio",
                "virtio_net",
                "virtio_rng"
            ]
        );
        assert_dependencies_first(&graph, &order);
    }

    #[test]
    fn built_in_modules_are_skipped_and_missing_ones_are_errors() {
        let graph = graph("virtio_blk.ko: virtio.ko\n");
        let builtin = parse_builtin("kernel/drivers/virtio/virtio.ko\n");
        let order = load_order(&graph, &builtin, &["virtio_blk"], "k").unwrap();
        assert_eq!(order, ["virtio_blk"]);

        let err = load_order(&graph, &HashSet::new(), &["virtio_blk"], "6.1.0-test").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel 6.1.0-test has no module 'virtio' (needed by 'virtio_blk')"
        );
        let err = load_order(&graph, &HashSet::new(), &["vsock"], "6.1.0-test").unwrap_err();
        assert!(err.to_string().contains("needed by 'guest'"), "{err}");
    }

    #[test]
    fn cycles_and_malformed_lines_are_errors() {
        let graph = graph("a.ko: b.ko\nb.ko: a.ko\n");
        assert!(matches!(
            load_order(&graph, &HashSet::new(), &["a"], "k"),
            Err(EnvironmentError::ModuleCycle { .. })
        ));
        let err =
            ModuleGraph::parse("a.ko:\nno colon here\n", Path::new("/x/modules.dep")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/x/modules.dep:2: malformed modules.dep line"
        );
    }

    #[test]
    fn the_archive_has_dirs_first_flat_modules_and_an_order_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut modules = Vec::new();
        for name in ["virtio_ring", "virtio", "virtio_blk"] {
            let sub = dir.path().join("kernel").join(name);
            fs::create_dir_all(&sub).unwrap();
            let path = sub.join(format!("{name}.ko"));
            fs::write(&path, format!("module {name}")).unwrap();
            modules.push((name.to_owned(), path));
        }
        let output = dir.path().join("modules.cpio");
        write_modules_archive(&OrderedModules { modules }, &output).unwrap();

        let entries = read_archive(&fs::read(&output).unwrap());
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "lib",
                "lib/modules",
                "lib/modules/virtio_ring.ko",
                "lib/modules/virtio.ko",
                "lib/modules/virtio_blk.ko",
                "lib/modules/order",
            ]
        );
        assert_eq!(entries[0].mode, 0o040755);
        assert_eq!(entries[2].mode, 0o100644);
        assert_eq!(entries[3].data, b"module virtio");
        assert_eq!(
            entries[5].data,
            b"virtio_ring.ko\nvirtio.ko\nvirtio_blk.ko\n"
        );
    }

    #[test]
    fn compressed_modules_are_rejected() {
        let modules = OrderedModules {
            modules: vec![("overlay".to_owned(), PathBuf::from("/k/overlay.ko.xz"))],
        };
        let err = archive_entries(&modules).unwrap_err();
        assert!(err.to_string().contains("not an uncompressed .ko"), "{err}");
    }
}
