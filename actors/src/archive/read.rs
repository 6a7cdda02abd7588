//! Reading sources into a validated tree: tar streams (plain or gzip, told
//! apart by their first bytes) and host directories.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use tar::EntryType;

use super::error::{ArchiveError, EntryProblem};
use super::tree::{Content, Member, RawKind, TreeBuilder};

const BLOCK: usize = 512;

/// How a byte stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFormat {
    Tar,
    Gzip,
}

/// Tells a tar, a gzip stream and other compressors apart by their first
/// bytes; anything else is [`ArchiveError::NotATar`].
pub(crate) fn sniff(head: &[u8]) -> Result<StreamFormat, ArchiveError> {
    let compressed = |format| Err(ArchiveError::UnsupportedCompression { format });
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(StreamFormat::Gzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        compressed("xz")
    } else if head.starts_with(b"BZh") {
        compressed("bzip2")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        compressed("zstd")
    } else if looks_like_tar_header(head) {
        Ok(StreamFormat::Tar)
    } else {
        Err(ArchiveError::NotATar)
    }
}

/// Whether `block` is a tar header (a valid checksum or the `ustar` magic)
/// or the all-zero block that ends an empty archive.
pub(crate) fn looks_like_tar_header(block: &[u8]) -> bool {
    if block.len() < BLOCK {
        return false;
    }
    let block = &block[..BLOCK];
    if block.iter().all(|&byte| byte == 0) || &block[257..262] == b"ustar" {
        return true;
    }
    let field = &block[148..156];
    let digits: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_digit(8))
        .collect();
    let Ok(stored) = u32::from_str_radix(&digits, 8) else {
        return false;
    };
    let unsigned: u32 = block
        .iter()
        .enumerate()
        .map(|(at, &byte)| {
            if (148..156).contains(&at) {
                32
            } else {
                u32::from(byte)
            }
        })
        .sum();
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(at, &byte)| {
            if (148..156).contains(&at) {
                32
            } else {
                i64::from(byte as i8)
            }
        })
        .sum();
    stored == unsigned || i64::from(stored) == signed
}

/// Reads up to `BLOCK` bytes (fewer only at the end of the stream).
pub(crate) fn read_head(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(BLOCK);
    input.take(BLOCK as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Opens a plain or gzip tar stream, checking that it is one.
fn open_tar_stream<'a>(mut input: impl Read + 'a) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    let read_failed = |source| ArchiveError::ReadTar { source };
    let head = read_head(&mut input).map_err(read_failed)?;
    match sniff(&head)? {
        StreamFormat::Tar => Ok(Box::new(Cursor::new(head).chain(input))),
        StreamFormat::Gzip => {
            let mut decoded = MultiGzDecoder::new(BufReader::new(Cursor::new(head).chain(input)));
            let tar_head = read_head(&mut decoded).map_err(read_failed)?;
            if !looks_like_tar_header(&tar_head) {
                return Err(ArchiveError::NotATar);
            }
            Ok(Box::new(Cursor::new(tar_head).chain(decoded)))
        }
    }
}

/// Reads a tar stream into a validated tree, copying file contents into
/// `spool`; nothing else is written.
pub(crate) fn read_tar(input: impl Read, spool: &File) -> Result<Vec<Member>, ArchiveError> {
    let read_failed = |source| ArchiveError::ReadTar { source };
    let mut archive = tar::Archive::new(open_tar_stream(input)?);
    let mut spool_writer = BufWriter::new(spool);
    let mut spooled: u64 = 0;
    let mut tree = TreeBuilder::default();
    for entry in archive.entries().map_err(read_failed)? {
        let mut entry = entry.map_err(read_failed)?;
        let name = entry.path_bytes().into_owned();
        let header = entry.header();
        let type_flag = header.entry_type();
        let mode = header.mode().map_err(read_failed)?;
        let mtime = header.mtime().map_err(read_failed)?;
        let link_target = entry.link_name_bytes().map(|target| target.into_owned());
        let refuse = |problem| {
            ArchiveError::unsafe_entry(String::from_utf8_lossy(&name).into_owned(), problem)
        };
        let kind = match type_flag {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let len = io::copy(&mut entry, &mut spool_writer).map_err(read_failed)?;
                let content = Content::Spooled {
                    offset: spooled,
                    len,
                };
                spooled += len;
                RawKind::File(content)
            }
            EntryType::Directory => RawKind::Directory,
            EntryType::Symlink => RawKind::Symlink {
                target: link_target.unwrap_or_default(),
            },
            EntryType::Link => RawKind::HardLink {
                target: link_target.unwrap_or_default(),
            },
            EntryType::Char => {
                return Err(refuse(EntryProblem::Special {
                    kind: "character device",
                }))
            }
            EntryType::Block => {
                return Err(refuse(EntryProblem::Special {
                    kind: "block device",
                }))
            }
            EntryType::Fifo => return Err(refuse(EntryProblem::Special { kind: "fifo" })),
            // Archive-wide pax metadata (such as a comment) names no entry.
            EntryType::XGlobalHeader => continue,
            other => {
                return Err(refuse(EntryProblem::UnsupportedType {
                    type_flag: other.as_byte(),
                }))
            }
        };
        tree.add(&name, kind, mode, mtime)?;
    }
    spool_writer
        .flush()
        .map_err(|source| ArchiveError::ReadTar { source })?;
    tree.finish()
}

/// Walks a host directory (not following symlinks, in name order) into a
/// validated tree; file contents stay in place and are read when the tar is
/// written. Hard-linked files become independent copies.
pub(crate) fn read_directory(root: &Path) -> Result<Vec<Member>, ArchiveError> {
    let mut tree = TreeBuilder::default();
    let mut pending: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, relative)) = pending.pop() {
        let listing = fs::read_dir(&dir).map_err(|e| ArchiveError::io("listing", &dir, e))?;
        let mut children = listing
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ArchiveError::io("listing", &dir, e))?;
        children.sort_by_key(|child| child.file_name());
        for child in children {
            let path = child.path();
            let Some(name) = child.file_name().to_str().map(str::to_owned) else {
                return Err(ArchiveError::NonUtf8Path { path });
            };
            let member = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            let meta = fs::symlink_metadata(&path)
                .map_err(|e| ArchiveError::io("inspecting", &path, e))?;
            let file_type = meta.file_type();
            let kind = if file_type.is_dir() {
                pending.push((path.clone(), member.clone()));
                RawKind::Directory
            } else if file_type.is_file() {
                RawKind::File(Content::Host {
                    path: path.clone(),
                    len: meta.len(),
                })
            } else if file_type.is_symlink() {
                let target =
                    fs::read_link(&path).map_err(|e| ArchiveError::io("reading", &path, e))?;
                let Some(target) = target.to_str() else {
                    return Err(ArchiveError::NonUtf8Path { path });
                };
                RawKind::Symlink {
                    target: target.as_bytes().to_vec(),
                }
            } else {
                let kind = if file_type.is_fifo() {
                    "fifo"
                } else if file_type.is_socket() {
                    "socket"
                } else if file_type.is_char_device() {
                    "character device"
                } else {
                    "block device"
                };
                return Err(ArchiveError::SpecialFile { path, kind });
            };
            let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
            tree.add(member.as_bytes(), kind, meta.mode(), mtime)?;
        }
    }
    tree.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_tells_formats_apart() {
        let mut header = tar::Header::new_gnu();
        header.set_path("x").unwrap();
        header.set_cksum();
        assert_eq!(sniff(header.as_bytes()).unwrap(), StreamFormat::Tar);
        assert_eq!(sniff(&[0u8; 512]).unwrap(), StreamFormat::Tar);
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]).unwrap(), StreamFormat::Gzip);
        assert!(matches!(
            sniff(b"\xfd7zXZ\0rest"),
            Err(ArchiveError::UnsupportedCompression { format: "xz" })
        ));
        assert!(matches!(
            sniff(b"PK\x03\x04zip"),
            Err(ArchiveError::NotATar)
        ));
        assert!(matches!(sniff(b""), Err(ArchiveError::NotATar)));
        let mut corrupt = *header.as_bytes();
        corrupt[0] ^= 1;
        corrupt[257..262].copy_from_slice(b"xxxxx");
        assert!(!looks_like_tar_header(&corrupt));
    }
}
