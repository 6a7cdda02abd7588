//! Loading the kernel modules shipped in the initramfs.
//!
//! The host writes the modules flat into `/lib/modules/` and their load order
//! (dependencies first) into `/lib/modules/order`, one file name per line.
//! The order is computed on the host from `modules.dep`, so the init needs no
//! dependency logic: it loads each file with `finit_module(2)`.

use std::ffi::CString;
use std::fs::File;
use std::path::Path;

use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use crate::failure::BootError;

/// Where the host puts the modules and the order file in the initramfs.
pub const MODULE_DIR: &str = "/lib/modules";

/// Loads every module named in `<dir>/order`, in order.
///
/// A module that is already loaded (or built in) is not an error.
pub fn load_all(dir: &Path) -> Result<usize, BootError> {
    let order_path = dir.join("order");
    let order = std::fs::read_to_string(&order_path).map_err(|err| {
        BootError::io(
            "load_modules",
            &err,
            format!("reading {}", order_path.display()),
        )
    })?;
    let params = CString::default();
    let mut loaded = 0;
    for name in order
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let path = dir.join(name);
        let file = File::open(&path).map_err(|err| {
            BootError::io("load_modules", &err, format!("opening {}", path.display()))
        })?;
        match finit_module(&file, &params, ModuleInitFlags::empty()) {
            Ok(()) => loaded += 1,
            Err(Errno::EEXIST) => {}
            Err(err) => {
                return Err(BootError::os(
                    "load_modules",
                    err,
                    format!("loading module {name}"),
                ))
            }
        }
    }
    Ok(loaded)
}
