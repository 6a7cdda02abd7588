//! The `pyro.*` parameters the host puts on the kernel command line.

/// Settings read from `/proc/cmdline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdline {
    /// `pyro.hostname=`: the guest's hostname.
    pub hostname: String,
    /// `pyro.root_serial=`: the virtio serial of the read-only root disk.
    pub root_serial: String,
    /// `pyro.data_serial=`: the virtio serial of the writable disk; when no
    /// disk carries it, the writable layer is a tmpfs.
    pub data_serial: String,
}

impl Default for Cmdline {
    fn default() -> Self {
        Self {
            hostname: "pyro".to_owned(),
            root_serial: "pyro-root".to_owned(),
            data_serial: "pyro-data".to_owned(),
        }
    }
}

impl Cmdline {
    /// Parses a kernel command line, ignoring everything that is not ours.
    pub fn parse(line: &str) -> Self {
        let mut parsed = Self::default();
        for word in line.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            match key {
                "pyro.hostname" => parsed.hostname = value.to_owned(),
                "pyro.root_serial" => parsed.root_serial = value.to_owned(),
                "pyro.data_serial" => parsed.data_serial = value.to_owned(),
                _ => {}
            }
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_keys_and_ignores_the_rest() {
        let line =
            "console=ttyS0 quiet pyro.hostname=ws-1 pyro.root_serial=r1 pyro.data_serial= foo\n";
        let parsed = Cmdline::parse(line);
        assert_eq!(parsed.hostname, "ws-1");
        assert_eq!(parsed.root_serial, "r1");
        assert_eq!(parsed.data_serial, "pyro-data");
    }
}
