//! Command lines, and the limits shared by every VM-creating request.

use serde::{Deserialize, Serialize};

/// A command to run in a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandSpec {
    /// Executed directly, looked up on the guest's `PATH`.
    Argv(Vec<String>),
    /// Run with `/bin/sh -lc`.
    Shell(String),
}

impl CommandSpec {
    /// The command as one shell-quoted line, for records and summaries.
    ///
    /// ```
    /// use pyro_sdk::api::CommandSpec;
    /// let argv = CommandSpec::Argv(vec!["sh".into(), "-c".into(), "echo hi".into()]);
    /// assert_eq!(argv.display(), "sh -c 'echo hi'");
    /// assert_eq!(CommandSpec::Shell("make test".into()).display(), "make test");
    /// ```
    pub fn display(&self) -> String {
        match self {
            Self::Argv(argv) => {
                shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
            }
            Self::Shell(line) => line.clone(),
        }
    }

    /// Rejects an empty command.
    ///
    /// ```
    /// use pyro_sdk::api::CommandSpec;
    /// assert!(CommandSpec::Argv(vec!["true".into()]).validate().is_ok());
    /// assert!(CommandSpec::Shell("  ".into()).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        let empty = match self {
            Self::Argv(argv) => argv.first().is_none_or(|a| a.is_empty()),
            Self::Shell(line) => line.trim().is_empty(),
        };
        if empty {
            return Err("the command is empty; give it after `--`".to_owned());
        }
        if self.display().contains('\0') {
            return Err("the command contains a NUL byte".to_owned());
        }
        Ok(())
    }
}

/// Limits for VM sizes and lifetimes, checked by the CLI, the SDK, MCP and
/// the supervisor alike.
pub mod limits {
    /// vCPUs per VM.
    pub const VCPU: std::ops::RangeInclusive<u8> = 1..=8;
    /// Guest memory in MiB.
    pub const MEM_MIB: std::ops::RangeInclusive<u32> = 256..=32768;
    /// Time to live in seconds (up to a week).
    pub const TTL_SECONDS: std::ops::RangeInclusive<u64> = 60..=604_800;
    /// Command timeout in seconds (up to a day).
    pub const TIMEOUT_SECONDS: std::ops::RangeInclusive<u64> = 1..=86_400;

    /// Default vCPUs.
    pub const DEFAULT_VCPU: u8 = 1;
    /// Default memory.
    pub const DEFAULT_MEM_MIB: u32 = 1024;
    /// Default command timeout.
    pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
    /// Default time to live.
    pub const DEFAULT_TTL_SECONDS: u64 = 600;

    /// Checks `value` against `range`, naming the field in the error.
    ///
    /// ```
    /// use pyro_sdk::api::limits;
    /// assert!(limits::check("mem_mib", 2048u32, &limits::MEM_MIB).is_ok());
    /// assert_eq!(
    ///     limits::check("vcpu_count", 9u8, &limits::VCPU).unwrap_err(),
    ///     "vcpu_count must be between 1 and 8 (got 9)"
    /// );
    /// ```
    pub fn check<T: PartialOrd + std::fmt::Display + Copy>(
        field: &str,
        value: T,
        range: &std::ops::RangeInclusive<T>,
    ) -> Result<(), String> {
        if range.contains(&value) {
            Ok(())
        } else {
            Err(format!(
                "{field} must be between {} and {} (got {value})",
                range.start(),
                range.end()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_argv_shell_quoted() {
        let cmd = CommandSpec::Argv(vec!["sh".into(), "-c".into(), "echo hi; exit 3".into()]);
        assert_eq!(cmd.display(), "sh -c 'echo hi; exit 3'");
        assert_eq!(CommandSpec::Shell("a | b".into()).display(), "a | b");
    }

    #[test]
    fn refuses_empty_commands() {
        assert!(CommandSpec::Argv(vec![]).validate().is_err());
        assert!(CommandSpec::Argv(vec![String::new()]).validate().is_err());
        assert!(CommandSpec::Shell("  ".into()).validate().is_err());
        assert!(CommandSpec::Argv(vec!["true".into()]).validate().is_ok());
    }

    #[test]
    fn range_errors_name_the_field() {
        let err = limits::check("vcpu_count", 9u8, &limits::VCPU).unwrap_err();
        assert_eq!(err, "vcpu_count must be between 1 and 8 (got 9)");
        assert!(limits::check("mem_mib", 1024u32, &limits::MEM_MIB).is_ok());
    }
}
