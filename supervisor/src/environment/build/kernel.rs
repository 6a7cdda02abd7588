//! Step 2 of a build: the guest kernel from Debian's cloud kernel package.
//!
//! The package is fetched with apt-get against a private apt state directory
//! (its own sources.list, lists and cache under the build's scratch dir), so it
//! neither depends on nor touches the host's apt lists, and it works unprivileged:
//! `apt-get update`, `apt-cache show` of `linux-image-cloud-amd64` to resolve the
//! versioned package, `apt-get download` of exactly that version, `dpkg-deb -x`.
//! The uncompressed ELF `vmlinux` (for PVH boot) is cut out of the bzImage: the
//! payload after the LZ4 legacy magic is piped through `lz4 -dc`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::rootfs::Mirrors;
use super::tools::{self, FailureHint, ToolPaths, APT_CACHE, APT_GET, DPKG_DEB, LZ4};
use crate::environment::error::EnvironmentError;

/// The metapackage that always depends on the current cloud kernel.
pub const KERNEL_METAPACKAGE: &str = "linux-image-cloud-amd64";

/// Start of an LZ4 legacy-format stream, as used by bzImage's LZ4 payload.
const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

/// A decompressed x86_64 kernel is never smaller than this.
const MIN_VMLINUX_BYTES: u64 = 4 * 1024 * 1024;

/// ELF note type of the PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY), which QEMU
/// needs to boot an uncompressed vmlinux.
const PVH_NOTE_TYPE: u32 = 18;

/// The extracted kernel package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KernelPackage {
    /// The versioned package, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub package: String,
    /// Its Debian version, e.g. `6.1.192-2`.
    pub package_version: String,
    /// The kernel release, e.g. `6.1.0-56-cloud-amd64`.
    pub kernel_version: String,
    /// Where the package was extracted (holds `boot/` and `lib/modules/`).
    pub root: PathBuf,
}

impl KernelPackage {
    /// The bzImage inside the extracted package.
    pub(crate) fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.kernel_version))
    }

    /// `lib/modules/<kver>` inside the extracted package.
    pub(crate) fn module_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.kernel_version)
    }
}

/// Private apt directories under a scratch dir.
struct AptSandbox {
    base: PathBuf,
}

impl AptSandbox {
    fn create(base: &Path, mirrors: &Mirrors) -> Result<Self, EnvironmentError> {
        for dir in [
            "sources.list.d",
            "preferences.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            let path = base.join(dir);
            fs::create_dir_all(&path)
                .map_err(|source| EnvironmentError::io("create directory", &path, source))?;
        }
        let sources = base.join("sources.list");
        let mut text = mirrors.sources().join("\n");
        text.push('\n');
        fs::write(&sources, text)
            .map_err(|source| EnvironmentError::io("write", &sources, source))?;
        let status = base.join("status");
        fs::write(&status, "").map_err(|source| EnvironmentError::io("write", &status, source))?;
        Ok(Self {
            base: base.to_path_buf(),
        })
    }

    /// `-o` options pointing apt at the private state, keeping the host's
    /// apt.conf (proxies) and trusted keys.
    fn options(&self) -> Vec<String> {
        let dir = |name: &str| self.base.join(name).to_string_lossy().into_owned();
        let mut options = vec![
            format!("Dir::Etc::SourceList={}", dir("sources.list")),
            format!("Dir::Etc::SourceParts={}", dir("sources.list.d")),
            format!("Dir::Etc::Preferences={}", dir("preferences")),
            format!("Dir::Etc::PreferencesParts={}", dir("preferences.d")),
            format!("Dir::State={}", dir("state")),
            format!("Dir::State::status={}", dir("status")),
            format!("Dir::Cache={}", dir("cache")),
            "Debug::NoLocking=true".to_owned(),
            "APT::Architecture=amd64".to_owned(),
            "APT::Architectures=amd64".to_owned(),
            "Acquire::Languages=none".to_owned(),
        ];
        if nix::unistd::geteuid().is_root() {
            // The scratch dir is private to root; the _apt sandbox user could not write there.
            options.push("APT::Sandbox::User=root".to_owned());
        }
        options
            .into_iter()
            .flat_map(|option| ["-o".to_owned(), option])
            .collect()
    }

    fn command(&self, tools: &ToolPaths, tool: tools::Tool) -> Command {
        let mut command = tools.command(tool);
        command.args(self.options()).env("LC_ALL", "C.UTF-8");
        command
    }
}

/// Downloads and extracts the current cloud kernel into `scratch`.
pub(crate) fn fetch_kernel(
    tools: &ToolPaths,
    mirrors: &Mirrors,
    scratch: &Path,
    mut report: impl FnMut(String),
) -> Result<KernelPackage, EnvironmentError> {
    let apt = AptSandbox::create(&scratch.join("apt"), mirrors)?;
    report("downloading package indices".to_owned());
    tools::run(
        "apt-get update",
        apt.command(tools, APT_GET).args(["-q", "update"]),
        &mirrors.hint(),
    )?;

    let show = tools::run(
        "apt-cache show",
        apt.command(tools, APT_CACHE)
            .args(["show", "--no-all-versions", KERNEL_METAPACKAGE]),
        &FailureHint::Text("the Debian mirror has no linux-image-cloud-amd64 for bookworm"),
    )?;
    let (package, package_version) =
        versioned_kernel_dependency(&String::from_utf8_lossy(&show.stdout)).ok_or_else(|| {
            EnvironmentError::KernelUnusable {
                subject: KERNEL_METAPACKAGE.to_owned(),
                reason: "its Depends field names no versioned linux-image package".to_owned(),
            }
        })?;

    report(format!("downloading {package} {package_version}"));
    let download_dir = scratch.join("debs");
    fs::create_dir_all(&download_dir)
        .map_err(|source| EnvironmentError::io("create directory", &download_dir, source))?;
    tools::run(
        "apt-get download",
        apt.command(tools, APT_GET)
            .args(["-q", "download", &format!("{package}={package_version}")])
            .current_dir(&download_dir),
        &mirrors.hint(),
    )?;
    let deb = find_downloaded_deb(&download_dir, &package)?;

    report(format!("extracting {}", file_name(&deb)));
    let root = scratch.join("package");
    tools::run(
        "dpkg-deb -x",
        tools.command(DPKG_DEB).arg("-x").arg(&deb).arg(&root),
        &FailureHint::Text("the downloaded kernel package may be corrupt; retry the build"),
    )?;
    let kernel_version = kernel_version_of(&root)?;
    if package != format!("linux-image-{kernel_version}") {
        tracing::warn!(
            package,
            kernel_version,
            "kernel package name and release differ"
        );
    }
    let kernel = KernelPackage {
        package,
        package_version,
        kernel_version,
        root,
    };
    let module_dir = kernel.module_dir();
    if !module_dir.is_dir() {
        return Err(EnvironmentError::KernelUnusable {
            subject: kernel.package.clone(),
            reason: format!("it has no {}", module_dir.display()),
        });
    }
    // The .deb is no longer needed; the extracted tree is.
    fs::remove_dir_all(&download_dir)
        .map_err(|source| EnvironmentError::io("remove", &download_dir, source))?;
    Ok(kernel)
}

/// Parses `apt-cache show` output of the metapackage into the versioned
/// kernel package it depends on and the exact version, e.g.
/// `Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)`.
pub(crate) fn versioned_kernel_dependency(control: &str) -> Option<(String, String)> {
    let depends = control_field(control, "Depends")?;
    depends
        .split([',', '|'])
        .map(str::trim)
        .find_map(|relation| {
            let (name, rest) = relation.split_once(' ').unwrap_or((relation, ""));
            let versioned = name
                .strip_prefix("linux-image-")
                .is_some_and(|tail| tail.starts_with(|c: char| c.is_ascii_digit()));
            if !versioned {
                return None;
            }
            let version = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|r| r.trim().strip_prefix('='))
                .map(|v| v.trim().to_owned())?;
            Some((name.to_owned(), version))
        })
}

/// The value of a field in the first stanza of a Debian control text,
/// including continuation lines.
fn control_field(control: &str, field: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in control.lines() {
        if line.trim().is_empty() {
            break;
        }
        match (&mut value, line.starts_with([' ', '\t'])) {
            (Some(existing), true) => {
                existing.push(' ');
                existing.push_str(line.trim());
            }
            (Some(_), false) => break,
            (None, _) => {
                if let Some((name, rest)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case(field) {
                        value = Some(rest.trim().to_owned());
                    }
                }
            }
        }
    }
    value
}

fn find_downloaded_deb(dir: &Path, package: &str) -> Result<PathBuf, EnvironmentError> {
    let prefix = format!("{package}_");
    let entries = fs::read_dir(dir).map_err(|source| EnvironmentError::io("list", dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| EnvironmentError::io("list", dir, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(entry.path());
        }
    }
    Err(EnvironmentError::KernelUnusable {
        subject: package.to_owned(),
        reason: format!(
            "apt-get download left no {prefix}*.deb in {}",
            dir.display()
        ),
    })
}

/// The kernel release, from the single `boot/vmlinuz-<kver>` in the package.
fn kernel_version_of(root: &Path) -> Result<String, EnvironmentError> {
    let boot = root.join("boot");
    let entries =
        fs::read_dir(&boot).map_err(|source| EnvironmentError::io("list", &boot, source))?;
    let mut versions = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| EnvironmentError::io("list", &boot, source))?;
        if let Some(version) = entry.file_name().to_string_lossy().strip_prefix("vmlinuz-") {
            versions.push(version.to_owned());
        }
    }
    match versions.as_slice() {
        [version] => Ok(version.clone()),
        _ => Err(EnvironmentError::KernelUnusable {
            subject: boot.display().to_string(),
            reason: format!("expected exactly one vmlinuz-*, found {}", versions.len()),
        }),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Writes the uncompressed ELF kernel inside `vmlinuz` to `output`; returns its size.
pub(crate) fn extract_vmlinux(
    tools: &ToolPaths,
    vmlinuz: &Path,
    output: &Path,
) -> Result<u64, EnvironmentError> {
    let image =
        fs::read(vmlinuz).map_err(|source| EnvironmentError::io("read", vmlinuz, source))?;
    let unusable = |reason: String| EnvironmentError::KernelUnusable {
        subject: vmlinuz.display().to_string(),
        reason,
    };
    let offset = find_lz4_payload(&image).ok_or_else(|| {
        unusable("no LZ4 payload (magic 02 21 4c 18) found; only LZ4 bzImages are supported".into())
    })?;

    let out_file =
        File::create(output).map_err(|source| EnvironmentError::io("create", output, source))?;
    let mut child = tools
        .command(LZ4)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(out_file))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| EnvironmentError::CommandSpawn {
            command: "lz4".to_owned(),
            source,
        })?;
    let payload = image.get(offset..).unwrap_or_default();
    let stdin = child.stdin.take();
    let (feed_result, wait_result) = std::thread::scope(|scope| {
        let feeder = scope.spawn(move || feed(stdin, payload));
        let waited = child.wait_with_output();
        (feeder.join(), waited)
    });
    let lz4_output = wait_result.map_err(|source| EnvironmentError::CommandSpawn {
        command: "lz4".to_owned(),
        source,
    })?;
    match feed_result {
        Ok(Ok(())) => {}
        Ok(Err(source)) => return Err(EnvironmentError::io("write to lz4 for", output, source)),
        Err(_) => return Err(unusable("the thread feeding lz4 failed".into())),
    }
    // lz4 exits 1 ("Stream followed by undecodable data") on a good kernel, since
    // the bzImage continues after the LZ4 stream: judge the output instead.
    let stderr = String::from_utf8_lossy(&lz4_output.stderr);
    tracing::debug!(status = %tools::describe_status(lz4_output.status), stderr = %stderr.trim(), "lz4 finished");
    let size = fs::metadata(output)
        .map_err(|source| EnvironmentError::io("stat", output, source))?
        .len();
    let minimum = MIN_VMLINUX_BYTES.max(image.len() as u64);
    if size < minimum {
        return Err(unusable(format!(
            "lz4 produced {size} bytes, expected at least {minimum} (lz4 {}: {})",
            tools::describe_status(lz4_output.status),
            tools::stderr_tail(&stderr)
        )));
    }
    check_pvh_elf(output)
        .map_err(|reason| unusable(format!("the decompressed kernel {reason}")))?;
    File::open(output)
        .and_then(|file| file.sync_all())
        .map_err(|source| EnvironmentError::io("fsync", output, source))?;
    Ok(size)
}

fn feed(stdin: Option<std::process::ChildStdin>, payload: &[u8]) -> io::Result<()> {
    let Some(mut stdin) = stdin else {
        return Ok(());
    };
    match stdin.write_all(payload) {
        // lz4 stops reading where the LZ4 stream ends, before the input does.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Offset of the first LZ4 legacy magic in a bzImage.
pub(crate) fn find_lz4_payload(image: &[u8]) -> Option<usize> {
    image
        .windows(LZ4_LEGACY_MAGIC.len())
        .position(|window| window == LZ4_LEGACY_MAGIC)
}

/// Checks that `path` is an x86_64 ELF64 with a PVH entry note.
pub(crate) fn check_pvh_elf(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|err| format!("cannot be opened: {err}"))?;
    let read = |offset: u64, length: usize| -> Result<Vec<u8>, String> {
        let mut buffer = vec![0; length];
        file.read_exact_at(&mut buffer, offset)
            .map_err(|err| format!("is truncated at offset {offset}: {err}"))?;
        Ok(buffer)
    };
    let header = read(0, 64)?;
    if header[..4] != b"\x7fELF"[..] {
        return Err("is not an ELF file".to_owned());
    }
    if header[4] != 2 || header[5] != 1 || u16_at(&header, 18) != Some(0x3e) {
        return Err("is not a little-endian x86_64 ELF64 file".to_owned());
    }
    let program_headers = u64_at(&header, 32).unwrap_or(0);
    let entry_size = u64::from(u16_at(&header, 54).unwrap_or(0));
    let entry_count = u64::from(u16_at(&header, 56).unwrap_or(0));
    for index in 0..entry_count {
        let program_header = read(program_headers + index * entry_size, 56)?;
        if u32_at(&program_header, 0) != Some(4) {
            continue; // not PT_NOTE
        }
        let offset = u64_at(&program_header, 8).unwrap_or(0);
        let size = u64_at(&program_header, 32).unwrap_or(0);
        let notes = read(offset, usize::try_from(size.min(1 << 20)).unwrap_or(0))?;
        if has_note(&notes, b"Xen", PVH_NOTE_TYPE) {
            return Ok(());
        }
    }
    Err("has no PVH entry note (CONFIG_PVH), so QEMU cannot boot it directly".to_owned())
}

/// Whether an ELF note segment has a note with this owner name and type.
fn has_note(mut notes: &[u8], owner: &[u8], note_type: u32) -> bool {
    let align = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let (Some(name_size), Some(desc_size), Some(kind)) =
            (u32_at(notes, 0), u32_at(notes, 4), u32_at(notes, 8))
        else {
            return false;
        };
        let (name_size, desc_size) = (name_size as usize, desc_size as usize);
        let name = notes.get(12..12 + name_size).unwrap_or_default();
        if kind == note_type && name.strip_suffix(b"\0").unwrap_or(name) == owner {
            return true;
        }
        let next = 12 + align(name_size) + align(desc_size);
        notes = notes.get(next..).unwrap_or_default();
    }
    false
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(offset..offset + 8)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versioned_dependency_and_exact_version_are_parsed() {
        let show = "Package: linux-image-cloud-amd64\nSource: linux-signed-amd64 (6.1.192+2)\n\
                    Version: 6.1.192-2\nDepends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n\
                    Description: Linux for x86-64 cloud\n\n\
                    Package: linux-image-cloud-amd64\nVersion: 6.1.100-1\n\
                    Depends: linux-image-6.1.0-30-cloud-amd64 (= 6.1.100-1)\n";
        assert_eq!(
            versioned_kernel_dependency(show),
            Some((
                "linux-image-6.1.0-56-cloud-amd64".to_owned(),
                "6.1.192-2".to_owned()
            ))
        );
    }

    #[test]
    fn continuation_lines_and_other_relations_are_handled() {
        let show = "Package: linux-image-cloud-amd64\nDepends: linux-base,\n \
                    linux-image-6.2.0-1-cloud-amd64 (= 6.2.1-1)\nVersion: 6.2.1-1\n";
        assert_eq!(
            versioned_kernel_dependency(show),
            Some((
                "linux-image-6.2.0-1-cloud-amd64".to_owned(),
                "6.2.1-1".to_owned()
            ))
        );
        assert_eq!(
            versioned_kernel_dependency("Package: x\nDepends: linux-base\n"),
            None
        );
        assert_eq!(versioned_kernel_dependency("Package: x\n"), None);
        let unversioned = "Depends: linux-image-6.1.0-56-cloud-amd64\n";
        assert_eq!(versioned_kernel_dependency(unversioned), None);
    }

    #[test]
    fn the_lz4_payload_is_found_at_the_first_magic() {
        let mut image = vec![0u8; 100];
        image.extend_from_slice(&LZ4_LEGACY_MAGIC);
        image.extend_from_slice(&[9; 10]);
        image.extend_from_slice(&LZ4_LEGACY_MAGIC);
        assert_eq!(find_lz4_payload(&image), Some(100));
        assert_eq!(find_lz4_payload(&[0; 100]), None);
    }

    fn note(owner: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(owner.len() as u32 + 1).to_le_bytes());
        bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(owner);
        bytes.push(0);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes.extend_from_slice(desc);
        while bytes.len() % 4 != 0 {
            bytes.push(0);
        }
        bytes
    }

    /// A minimal ELF64 x86_64 file with one PT_NOTE segment holding `notes`.
    fn elf_with_notes(notes: &[u8]) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[18..20].copy_from_slice(&0x3eu16.to_le_bytes());
        elf[32..40].copy_from_slice(&64u64.to_le_bytes());
        elf[54..56].copy_from_slice(&56u16.to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        let program_header = &mut elf[64..120];
        program_header[..4].copy_from_slice(&4u32.to_le_bytes());
        program_header[8..16].copy_from_slice(&120u64.to_le_bytes());
        program_header[32..40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        elf.extend_from_slice(notes);
        elf
    }

    #[test]
    fn pvh_notes_are_recognised_and_their_absence_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinux");
        let mut notes = note(b"GNU", 3, &[1; 20]);
        notes.extend(note(b"Xen", PVH_NOTE_TYPE, &[0; 4]));
        fs::write(&path, elf_with_notes(&notes)).unwrap();
        check_pvh_elf(&path).unwrap();

        fs::write(&path, elf_with_notes(&note(b"Xen", 1, &[0; 8]))).unwrap();
        assert!(check_pvh_elf(&path).unwrap_err().contains("PVH"));

        fs::write(&path, [b'M'; 128]).unwrap();
        assert_eq!(check_pvh_elf(&path).unwrap_err(), "is not an ELF file");
    }
}
