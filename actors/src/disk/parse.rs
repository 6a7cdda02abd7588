//! The debugfs commands this module runs, and parsing their output.
//!
//! A batch (`debugfs -f -`) echoes `debugfs: <command>` before each
//! command's output, and every command here names its file by inode
//! (`<12>`) or by a fixed path, so echo lines never carry user data. Output
//! is parsed positionally, never by searching for text a file name could
//! contain:
//!
//! - `ls -p` prints `/ino/mode/uid/gid/name/size/` and a newline per entry;
//!   a name cannot contain `/`, so it is exactly the fifth field, whatever
//!   else it holds (spaces, newlines, invalid UTF-8, text that looks like
//!   an echo line);
//! - `cat` prints exactly the inode's size in bytes;
//! - `stat` of a fast symlink prints `Fast link dest: "` and then exactly
//!   the link's size in bytes;
//! - `ea_list` and `stat` of a device print only text debugfs generates,
//!   with non-printable bytes escaped, line by line.

use std::fmt;

/// File type bits of a mode.
const TYPE_MASK: u32 = 0o170_000;
/// A directory.
pub(super) const TYPE_DIR: u32 = 0o040_000;
/// A regular file.
pub(super) const TYPE_FILE: u32 = 0o100_000;
/// A symbolic link.
pub(super) const TYPE_SYMLINK: u32 = 0o120_000;
/// A character device (an overlayfs whiteout when it is 0:0).
pub(super) const TYPE_CHAR: u32 = 0o020_000;

/// Symlinks shorter than this keep their target in the inode ("fast").
const FAST_LINK_MAX: u64 = 60;

/// One directory entry, as `ls -p` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawEntry {
    /// The inode number.
    pub ino: u32,
    /// The full mode (type and permission bits).
    pub mode: u32,
    /// The name, as stored.
    pub name: Vec<u8>,
    /// The size in bytes (0 for directories).
    pub size: u64,
}

impl RawEntry {
    /// The file type bits (`TYPE_*`).
    pub(super) fn file_type(&self) -> u32 {
        self.mode & TYPE_MASK
    }
}

/// How a command names a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Spec {
    /// An inode number.
    Ino(u32),
    /// `/upper`, the overlay upper directory on the workspace disk.
    UpperRoot,
    /// A path on the image, looked up by debugfs (which follows symlinks in
    /// it: callers check the inode they get). It must pass [`quotable`].
    Path(String),
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ino(ino) => write!(f, "<{ino}>"),
            Self::UpperRoot => f.write_str("/upper"),
            // debugfs's parser reads `""` inside quotes as one `"`.
            Self::Path(path) => write!(f, "\"{}\"", path.replace('"', "\"\"")),
        }
    }
}

/// Whether a path can be named in a batch: a command is one line of at
/// most 8 KiB (debugfs also cuts a line at a carriage return).
pub(super) fn quotable(path: &str) -> bool {
    path.len() < 4096 && !path.contains(['\n', '\r'])
}

/// One debugfs command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Request {
    /// `ls -p`: a directory's entries.
    List(Spec),
    /// `ea_list`: an inode's extended attributes.
    Xattrs(Spec),
    /// `stat` of a device: its major and minor numbers.
    Device(u32),
    /// A symlink's target (`stat` for fast links, `cat` for the others).
    LinkTarget {
        /// The symlink's inode.
        ino: u32,
        /// Its size, the target's length.
        size: u64,
    },
}

impl Request {
    /// The command line.
    pub(super) fn command(&self) -> String {
        match self {
            Self::List(spec) => format!("ls -p {spec}"),
            Self::Xattrs(spec) => format!("ea_list {spec}"),
            Self::Device(ino) => format!("stat <{ino}>"),
            Self::LinkTarget { ino, size } if *size < FAST_LINK_MAX => format!("stat <{ino}>"),
            Self::LinkTarget { ino, .. } => format!("cat <{ino}>"),
        }
    }
}

/// One extended attribute, as `ea_list` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Xattr {
    /// The name, such as `trusted.overlay.opaque`.
    pub name: String,
    /// The value, when debugfs prints it (it omits values of 40 bytes or
    /// more).
    pub value: Option<Vec<u8>>,
}

/// A directory's entries, as `ls -p` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Listing {
    /// The directory's own inode (its `.` entry).
    pub ino: u32,
    /// The entries, without `.` and `..`.
    pub entries: Vec<RawEntry>,
}

/// What one command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reply {
    /// The listing; `None` when nothing was listed (the command failed:
    /// every directory has `.`).
    List(Option<Listing>),
    /// Extended attributes (empty when there are none).
    Xattrs(Vec<Xattr>),
    /// Major and minor numbers, `None` when debugfs printed none.
    Device(Option<(u32, u32)>),
    /// A symlink's target.
    LinkTarget(Vec<u8>),
}

/// Parses the stdout of `debugfs -f -` run with `requests`, one reply per
/// request. The error says where parsing stopped.
pub(super) fn parse_batch(out: &[u8], requests: &[Request]) -> Result<Vec<Reply>, String> {
    let mut cursor = Cursor { out, pos: 0 };
    let echoes: Vec<Vec<u8>> = requests
        .iter()
        .map(|request| format!("debugfs: {}\n", request.command()).into_bytes())
        .collect();
    let mut replies = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        cursor.skip_newlines();
        if !cursor.eat(&echoes[index]) {
            return Err(format!(
                "expected the echo of `{}` at byte {}",
                request.command(),
                cursor.pos
            ));
        }
        let next = echoes.get(index + 1).map(Vec::as_slice);
        let reply = match request {
            Request::List(_) => Reply::List(cursor.list()?),
            Request::Xattrs(_) => Reply::Xattrs(
                cursor
                    .lines(next)
                    .iter()
                    .filter_map(|line| xattr(line))
                    .collect(),
            ),
            Request::Device(_) => {
                Reply::Device(cursor.lines(next).iter().find_map(|line| device(line)))
            }
            &Request::LinkTarget { size, .. } if size < FAST_LINK_MAX => {
                Reply::LinkTarget(cursor.fast_link(size, next)?)
            }
            &Request::LinkTarget { size, .. } => {
                let target = cursor.take(size).ok_or_else(|| {
                    format!("`{}` printed fewer than {size} bytes", request.command())
                })?;
                if !cursor.at_end() && !cursor.at(next.unwrap_or_default()) {
                    return Err(format!(
                        "`{}` printed more than {size} bytes",
                        request.command()
                    ));
                }
                Reply::LinkTarget(target.to_vec())
            }
        };
        replies.push(reply);
    }
    Ok(replies)
}

/// A read position in debugfs output.
struct Cursor<'a> {
    out: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        self.out.get(self.pos..).unwrap_or_default()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.out.len()
    }

    fn at(&self, prefix: &[u8]) -> bool {
        !prefix.is_empty() && self.rest().starts_with(prefix)
    }

    fn eat(&mut self, prefix: &[u8]) -> bool {
        let found = self.at(prefix);
        if found {
            self.pos += prefix.len();
        }
        found
    }

    fn skip_newlines(&mut self) {
        while self.rest().first() == Some(&b'\n') {
            self.pos += 1;
        }
    }

    fn take(&mut self, len: u64) -> Option<&'a [u8]> {
        let len = usize::try_from(len).ok()?;
        let bytes = self.rest().get(..len)?;
        self.pos += len;
        Some(bytes)
    }

    /// Up to and including the next `byte`, without it.
    fn field(&mut self, byte: u8) -> Option<&'a [u8]> {
        let rest = self.rest();
        let end = rest.iter().position(|&b| b == byte)?;
        self.pos += end + 1;
        rest.get(..end)
    }

    /// The lines up to the next echo line (or the end).
    fn lines(&mut self, next_echo: Option<&[u8]>) -> Vec<&'a [u8]> {
        let mut lines = Vec::new();
        while !self.at_end() && !next_echo.is_some_and(|echo| self.at(echo)) {
            let rest = self.rest();
            let end = rest.iter().position(|&b| b == b'\n');
            let line = rest.get(..end.unwrap_or(rest.len())).unwrap_or_default();
            self.pos += end.map_or(rest.len(), |end| end + 1);
            lines.push(line);
        }
        lines
    }

    /// `ls -p` records.
    fn list(&mut self) -> Result<Option<Listing>, String> {
        let mut entries = Vec::new();
        let mut own = None;
        let mut listed = false;
        while self.eat(b"/") {
            let start = self.pos;
            let entry = self
                .record()
                .ok_or_else(|| format!("cannot parse the `ls -p` record at byte {start}"))?;
            listed = true;
            if entry.name == b"." {
                own = Some(entry.ino);
            } else if entry.name != b".." {
                entries.push(entry);
            }
        }
        Ok(listed.then(|| Listing {
            ino: own.unwrap_or(0),
            entries,
        }))
    }

    /// One `ls -p` record after its leading `/`.
    fn record(&mut self) -> Option<RawEntry> {
        let ino = number(self.field(b'/')?, 10)?;
        let mode = number(self.field(b'/')?, 8)?;
        self.field(b'/')?; // uid
        self.field(b'/')?; // gid
        let name = self.field(b'/')?.to_vec();
        let size = self.field(b'/')?;
        let size = if size.is_empty() {
            0
        } else {
            std::str::from_utf8(size).ok()?.parse().ok()?
        };
        if !self.eat(b"\n") {
            return None;
        }
        Some(RawEntry {
            ino: u32::try_from(ino).ok()?,
            mode: u32::try_from(mode).ok()?,
            name,
            size,
        })
    }

    /// A fast symlink's target from `stat` output.
    fn fast_link(&mut self, size: u64, next_echo: Option<&[u8]>) -> Result<Vec<u8>, String> {
        const MARK: &[u8] = b"Fast link dest: \"";
        loop {
            if self.at_end() || next_echo.is_some_and(|echo| self.at(echo)) {
                return Err("`stat` of a symlink printed no `Fast link dest`".to_owned());
            }
            if self.eat(MARK) {
                break;
            }
            if self.field(b'\n').is_none() {
                self.pos = self.out.len();
            }
        }
        let target = self
            .take(size)
            .ok_or_else(|| format!("a fast symlink target is shorter than {size} bytes"))?
            .to_vec();
        if !self.eat(b"\"") {
            return Err(format!("a fast symlink target is longer than {size} bytes"));
        }
        // The rest of the line and anything after it (nothing, in 1.47).
        self.lines(next_echo);
        Ok(target)
    }
}

/// Parses an unsigned number in `radix`.
fn number(field: &[u8], radix: u32) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(field).ok()?, radix).ok()
}

/// Parses an `ea_list` line: `  name (len) = "value"`, `  name (len) = 01 02 `
/// or `  name (len)`.
fn xattr(line: &[u8]) -> Option<Xattr> {
    let line = std::str::from_utf8(line).ok()?.strip_prefix("  ")?;
    let open = line.find(" (")?;
    let name = &line[..open];
    let after = &line[open + 2..];
    let close = after.find(')')?;
    let len = after[..close].parse::<u64>().ok()?;
    let rest = &after[close + 1..];
    let value = match rest.strip_prefix(" = ") {
        None => (rest.is_empty() && len == 0).then(Vec::new),
        Some(quoted) if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
            Some(unescape(&quoted[1..quoted.len() - 1]))
        }
        Some(hex) => hex
            .split_whitespace()
            .map(|byte| u8::from_str_radix(byte, 16).ok())
            .collect(),
    };
    Some(Xattr {
        name: name.to_owned(),
        value,
    })
}

/// Undoes debugfs's `\ooo` escapes of non-printable bytes.
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes
            .get(index + 1..index + 4)
            .filter(|digits| {
                bytes[index] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d))
            })
            .and_then(|digits| number(digits, 8))
            .and_then(|value| u8::try_from(value).ok());
        match octal {
            Some(value) => {
                out.push(value);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    out
}

/// Parses `... Device major/minor number: 00:00 (hex 00:00)`.
fn device(line: &[u8]) -> Option<(u32, u32)> {
    let line = std::str::from_utf8(line).ok()?;
    let numbers = line.split("Device major/minor number: ").nth(1)?;
    let numbers = numbers.split_whitespace().next()?;
    let (major, minor) = numbers.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u32, mode: u32, name: &[u8], size: u64) -> RawEntry {
        RawEntry {
            ino,
            mode,
            name: name.to_vec(),
            size,
        }
    }

    #[test]
    fn ls_records_keep_odd_names_whole() {
        let requests = [Request::List(Spec::Ino(14)), Request::List(Spec::Ino(20))];
        let out = b"debugfs: ls -p <14>\n/14/040755/0/0/.//\n/12/040755/0/0/..//\n\
/15/100754/1000/1000/a b.txt/6/\n/18/100644/0/0/new\nline/0/\n\
/19/100644/0/0/x\ndebugfs: ls -p <20>\n/0/\n/16/020644/0/0/gone/0/\n/22/040700/0/0/d//\n\n\
debugfs: ls -p <20>\n\n";
        let replies = parse_batch(out, &requests).unwrap();
        assert_eq!(
            replies,
            [
                Reply::List(Some(Listing {
                    ino: 14,
                    entries: vec![
                        entry(15, 0o100754, b"a b.txt", 6),
                        entry(18, 0o100644, b"new\nline", 0),
                        entry(19, 0o100644, b"x\ndebugfs: ls -p <20>\n", 0),
                        entry(16, 0o020644, b"gone", 0),
                        entry(22, 0o040700, b"d", 0),
                    ]
                })),
                Reply::List(None),
            ]
        );
        assert_eq!(replies.len(), 2);
    }

    #[test]
    fn ls_of_an_empty_directory_is_not_a_failure() {
        let out = b"debugfs: ls -p /upper\n/12/040755/0/0/.//\n/2/040755/0/0/..//\n\n";
        let replies = parse_batch(out, &[Request::List(Spec::UpperRoot)]).unwrap();
        assert_eq!(
            replies,
            [Reply::List(Some(Listing {
                ino: 12,
                entries: Vec::new()
            }))]
        );
    }

    #[test]
    fn paths_are_quoted_for_debugfs() {
        let spec = Spec::Path("/upper/a \"b\" c".to_owned());
        assert_eq!(
            Request::List(spec).command(),
            "ls -p \"/upper/a \"\"b\"\" c\""
        );
        assert!(quotable("/a b/\"c\"/ünï"));
        assert!(!quotable("/a\nb"));
        assert!(!quotable("/a\rb"));
        assert!(!quotable(&"/x".repeat(3000)));
    }

    #[test]
    fn truncated_or_foreign_output_is_an_error() {
        let requests = [Request::List(Spec::Ino(2))];
        assert!(parse_batch(b"debugfs: ls -p <2>\n/2/040755/0/0/.", &requests).is_err());
        assert!(parse_batch(b"debugfs: ls -p <2>\n/2/04x/0/0/.//\n", &requests).is_err());
        assert!(parse_batch(b"debugfs: ls -p <3>\n", &requests).is_err());
        assert!(parse_batch(b"", &requests).is_err());
    }

    #[test]
    fn xattrs_decode_quoted_hex_and_omitted_values() {
        let requests = [
            Request::Xattrs(Spec::Ino(19)),
            Request::Xattrs(Spec::Ino(20)),
            Request::Xattrs(Spec::UpperRoot),
        ];
        let out = concat!(
            "debugfs: ea_list <19>\n",
            "Extended attributes:\n",
            "  trusted.overlay.opaque (1) = \"y\"\n",
            "  user.esc (3) = \"a\\012b\"\n",
            "debugfs: ea_list <20>\n",
            "debugfs: ea_list /upper\n",
            "Extended attributes:\n",
            "  user.hex (3) = 01 02 03 \n",
            "  trusted.overlay.whiteout (0)\n",
            "  user.long (46)\n",
        )
        .as_bytes();
        let replies = parse_batch(out, &requests).unwrap();
        let xattr = |name: &str, value: Option<&[u8]>| Xattr {
            name: name.to_owned(),
            value: value.map(<[u8]>::to_vec),
        };
        assert_eq!(
            replies,
            [
                Reply::Xattrs(vec![
                    xattr("trusted.overlay.opaque", Some(b"y")),
                    xattr("user.esc", Some(b"a\nb")),
                ]),
                Reply::Xattrs(Vec::new()),
                Reply::Xattrs(vec![
                    xattr("user.hex", Some(&[1, 2, 3])),
                    xattr("trusted.overlay.whiteout", Some(b"")),
                    xattr("user.long", None),
                ]),
            ]
        );
    }

    #[test]
    fn devices_and_link_targets() {
        let requests = [
            Request::Device(16),
            Request::LinkTarget { ino: 17, size: 9 },
            Request::LinkTarget { ino: 18, size: 64 },
            Request::Device(19),
        ];
        assert_eq!(requests[1].command(), "stat <17>");
        assert_eq!(requests[2].command(), "cat <18>");
        let long = [b'x'; 64];
        let mut out = b"debugfs: stat <16>\nInode: 16   Type: character special\n\
(New-style) Device major/minor number: 00:00 (hex 00:00)\ndebugfs: stat <17>\nInode: 17   Type: symlink\n\
Inode checksum: 0x8764c5f1\nFast link dest: \"a\"\nb\"c/..\"\ndebugfs: cat <18>\n"
            .to_vec();
        out.extend_from_slice(&long);
        out.extend_from_slice(b"debugfs: stat <19>\nInode: 19   Type: regular\n");
        let replies = parse_batch(&out, &requests).unwrap();
        assert_eq!(
            replies,
            [
                Reply::Device(Some((0, 0))),
                Reply::LinkTarget(b"a\"\nb\"c/..".to_vec()),
                Reply::LinkTarget(long.to_vec()),
                Reply::Device(None),
            ]
        );
    }

    #[test]
    fn a_failed_cat_is_not_mistaken_for_data() {
        let requests = [
            Request::LinkTarget { ino: 18, size: 64 },
            Request::List(Spec::Ino(2)),
        ];
        let out =
            b"debugfs: cat <18>\ndebugfs: ls -p <2>\n/2/040755/0/0/.//\n/2/040755/0/0/..//\n\n";
        assert!(parse_batch(out, &requests).is_err());
        let requests = [Request::LinkTarget { ino: 17, size: 3 }];
        assert!(parse_batch(b"debugfs: stat <17>\nInode: 17\n", &requests).is_err());
    }
}
