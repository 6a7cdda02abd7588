//! The merged overlay view of the two images, the way the guest's
//! overlayfs shows it.
//!
//! A merged directory is an upper directory (under `/upper` on the
//! workspace disk), a lower directory (on the environment image), or both.
//! Its entries are the upper entries that are not whiteouts, then the lower
//! entries no upper entry (whiteouts included) has the name of; an upper
//! directory whose `trusted.overlay.opaque` is `y` hides the whole lower
//! directory. A whiteout is a character device 0:0, or a zero-size regular
//! file with a `trusted.overlay.whiteout` xattr. An upper directory merges
//! with a lower directory of the same name; any other pair is shadowed
//! (upper wins). `redirect` and `metacopy` xattrs are not interpreted: the
//! guest mounts overlayfs without those features.
//!
//! Reading directories takes two debugfs rounds, each running one process
//! per image side by side: `ls -p` (and `ea_list` of the upper directory),
//! then, when needed, whiteout checks and symlink targets. A recursive
//! listing reads a whole level of the tree per round. Looking a path up
//! lists every directory along it in one round, by path; each listing is
//! used only if its inode is the one the parent's listing names (debugfs
//! follows symlinks in paths, overlayfs rules differ), else that directory
//! is read again by inode.

use std::collections::{HashMap, HashSet};

use pyro_guest_protocol::EntryKind;

use super::debugfs::{Batch, Image};
use super::parse::{
    quotable, Listing, RawEntry, Reply, Request, Spec, Xattr, TYPE_CHAR, TYPE_DIR, TYPE_FILE,
    TYPE_SYMLINK,
};
use super::path::{substitute, GuestPath};
use super::DiskError;

/// Marks an upper directory that hides the lower one (value `y`).
const OPAQUE: &str = "trusted.overlay.opaque";
/// Marks a zero-size upper file as a whiteout.
const XATTR_WHITEOUT: &str = "trusted.overlay.whiteout";
/// The root directory's inode on any ext4 image.
const ROOT_INO: u32 = 2;
/// What debugfs says when the workspace disk has no `/upper` yet (a disk
/// that never booted): the upper layer is then empty.
const NO_UPPER: &str = "/upper: File not found by ext2_lookup";

/// Which image an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layer {
    /// The workspace disk.
    Upper,
    /// The environment image.
    Lower,
}

/// A directory of the merged view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MergedDir {
    upper: Option<Spec>,
    lower: Option<u32>,
}

impl MergedDir {
    /// The guest's `/`.
    fn root() -> Self {
        Self {
            upper: Some(Spec::UpperRoot),
            lower: Some(ROOT_INO),
        }
    }
}

/// An entry of the merged view.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// The top layer's entry: name, inode, mode, size.
    pub raw: RawEntry,
    /// Where `raw` comes from.
    pub layer: Layer,
    /// The merged directory, for directories.
    pub dir: Option<MergedDir>,
    /// The target, for symlinks.
    pub link_target: Option<Vec<u8>>,
}

impl Node {
    /// The entry's type.
    pub(super) fn kind(&self) -> EntryKind {
        match self.raw.file_type() {
            TYPE_DIR => EntryKind::Directory,
            TYPE_FILE => EntryKind::File,
            TYPE_SYMLINK => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }

    /// The symlink target as text (lossy).
    pub(super) fn target_text(&self) -> String {
        String::from_utf8_lossy(self.link_target.as_deref().unwrap_or_default()).into_owned()
    }
}

/// A merged directory's listings, before whiteouts and symlinks are looked
/// at.
#[derive(Debug, Default)]
pub(super) struct Fetched {
    upper: Option<Listing>,
    upper_xattrs: Vec<Xattr>,
    lower: Option<Listing>,
}

impl Fetched {
    /// Whether the upper directory is opaque.
    fn opaque(&self) -> bool {
        self.upper.is_some()
            && self
                .upper_xattrs
                .iter()
                .any(|x| x.name == OPAQUE && x.value.as_deref() == Some(b"y"))
    }

    /// These listings, if they are `dir`'s.
    fn of(self, dir: &MergedDir) -> Option<Self> {
        let upper_ok = match &dir.upper {
            Some(Spec::Ino(ino)) => self.upper.as_ref().map(|l| l.ino) == Some(*ino),
            _ => true,
        };
        let lower_ok = dir
            .lower
            .is_none_or(|ino| self.lower.as_ref().map(|l| l.ino) == Some(ino));
        (upper_ok && lower_ok).then(|| Self {
            upper: self.upper.filter(|_| dir.upper.is_some()),
            upper_xattrs: self.upper_xattrs,
            lower: self.lower.filter(|_| dir.lower.is_some()),
        })
    }
}

/// What a path names.
#[derive(Debug)]
pub(super) enum Found {
    /// A directory (the root included), with its listings.
    Dir(Fetched),
    /// Anything else.
    Entry(Node),
}

/// The two images seen as one tree.
#[derive(Debug, Clone, Copy)]
pub(super) struct View<'a> {
    /// The workspace disk.
    pub upper: Image<'a>,
    /// The environment image.
    pub lower: Image<'a>,
}

impl View<'_> {
    /// The image a layer lives on.
    pub(super) fn image(&self, layer: Layer) -> Image<'_> {
        match layer {
            Layer::Upper => self.upper,
            Layer::Lower => self.lower,
        }
    }

    /// Looks `path` up component by component. Symlinks are not followed:
    /// one in the middle is an error that names its target, one at the end
    /// is returned as itself.
    pub(super) fn resolve(&self, path: &GuestPath) -> Result<Found, DiskError> {
        let components = path.components();
        let mut prefetched = self.prefetch(path)?.into_iter();
        let mut dir = MergedDir::root();
        for (index, name) in components.iter().enumerate() {
            let fetched = self.fetched(&dir, prefetched.next())?;
            let node = self
                .finish(&[fetched], Some(name.as_bytes()))?
                .into_iter()
                .flatten()
                .next()
                .ok_or_else(|| DiskError::NotFound {
                    path: path.display(),
                    missing: path.prefix(index + 1),
                })?;
            let last = index + 1 == components.len();
            match (node.dir.clone(), node.kind()) {
                (Some(child), _) => dir = child,
                (None, _) if last => return Ok(Found::Entry(node)),
                (None, EntryKind::Symlink) => {
                    let target = node.target_text();
                    return Err(DiskError::SymlinkInPath {
                        path: path.display(),
                        prefix: path.prefix(index + 1),
                        suggestion: substitute(
                            &components[..=index],
                            &target,
                            &components[index + 1..],
                        ),
                        target,
                    });
                }
                (None, kind) => {
                    return Err(DiskError::NotADirectory {
                        path: path.display(),
                        prefix: path.prefix(index + 1),
                        kind: kind_name(kind),
                    })
                }
            }
        }
        Ok(Found::Dir(self.fetched(&dir, prefetched.next())?))
    }

    /// The merged entries of each of `dirs`, in no particular order, with
    /// the directories among them.
    pub(super) fn read_dirs(&self, dirs: &[MergedDir]) -> Result<Vec<Vec<Node>>, DiskError> {
        let fetched = self.fetch(dirs)?;
        self.finish(&fetched, None)
    }

    /// Merges listings (round 2); with `only`, just the entry of that name.
    pub(super) fn finish(
        &self,
        fetched: &[Fetched],
        only: Option<&[u8]>,
    ) -> Result<Vec<Vec<Node>>, DiskError> {
        // Round 2: whiteout checks and symlink targets.
        let mut upper_extra = Vec::new();
        let mut lower_extra = Vec::new();
        for f in fetched {
            let (upper, lower) = sides(f, only);
            let taken: HashSet<&[u8]> = upper.iter().map(|e| e.name.as_slice()).collect();
            for entry in upper {
                match entry.file_type() {
                    TYPE_CHAR => upper_extra.push(Request::Device(entry.ino)),
                    TYPE_FILE if entry.size == 0 => {
                        upper_extra.push(Request::Xattrs(Spec::Ino(entry.ino)));
                    }
                    TYPE_SYMLINK => upper_extra.push(link_request(entry)),
                    _ => {}
                }
            }
            for entry in lower {
                if entry.file_type() == TYPE_SYMLINK && !taken.contains(entry.name.as_slice()) {
                    lower_extra.push(link_request(entry));
                }
            }
        }
        dedup(&mut upper_extra);
        dedup(&mut lower_extra);
        let (upper_batch, lower_batch) = self.both(&upper_extra, &lower_extra)?;
        let upper_extra = self.extras(upper_extra, upper_batch, Layer::Upper)?;
        let lower_extra = self.extras(lower_extra, lower_batch, Layer::Lower)?;

        // Merge.
        let mut merged = Vec::with_capacity(fetched.len());
        for f in fetched {
            let (upper, lower) = sides(f, only);
            let lower_by_name: HashMap<&[u8], &RawEntry> =
                lower.iter().map(|e| (e.name.as_slice(), *e)).collect();
            let taken: HashSet<&[u8]> = upper.iter().map(|e| e.name.as_slice()).collect();
            let mut nodes = Vec::with_capacity(upper.len() + lower.len());
            for entry in upper {
                if is_whiteout(entry, &upper_extra) {
                    continue;
                }
                let dir = (entry.file_type() == TYPE_DIR).then(|| MergedDir {
                    upper: Some(Spec::Ino(entry.ino)),
                    lower: lower_by_name
                        .get(entry.name.as_slice())
                        .filter(|lower| lower.file_type() == TYPE_DIR)
                        .map(|lower| lower.ino),
                });
                nodes.push(node(entry, Layer::Upper, dir, &upper_extra));
            }
            for entry in lower {
                if taken.contains(entry.name.as_slice()) {
                    continue;
                }
                let dir = (entry.file_type() == TYPE_DIR).then_some(MergedDir {
                    upper: None,
                    lower: Some(entry.ino),
                });
                nodes.push(node(entry, Layer::Lower, dir, &lower_extra));
            }
            merged.push(nodes);
        }
        Ok(merged)
    }

    /// `dir`'s listings: the prefetched ones if they are its own, else
    /// fetched now.
    fn fetched(&self, dir: &MergedDir, prefetched: Option<Fetched>) -> Result<Fetched, DiskError> {
        if let Some(fetched) = prefetched.and_then(|f| f.of(dir)) {
            return Ok(fetched);
        }
        self.fetch(std::slice::from_ref(dir))?.pop().ok_or_else(|| {
            self.failure(Layer::Upper, "a directory read returned nothing".to_owned())
        })
    }

    /// Round 1 for `dirs`: their listings, and the upper sides' xattrs.
    fn fetch(&self, dirs: &[MergedDir]) -> Result<Vec<Fetched>, DiskError> {
        let upper_requests: Vec<Request> = dirs
            .iter()
            .filter_map(|dir| dir.upper.clone())
            .flat_map(|spec| [Request::List(spec.clone()), Request::Xattrs(spec)])
            .collect();
        let lower_requests: Vec<Request> = dirs
            .iter()
            .filter_map(|dir| dir.lower)
            .map(|ino| Request::List(Spec::Ino(ino)))
            .collect();
        let (upper_batch, lower_batch) = self.both(&upper_requests, &lower_requests)?;
        if !lower_batch.errors.is_empty() {
            return Err(self.failure(Layer::Lower, join(&lower_batch.errors)));
        }
        let mut no_upper = false;
        let mut upper_replies = upper_batch.replies.into_iter();
        let mut lower_replies = lower_batch.replies.into_iter();
        let mut fetched = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let mut f = Fetched::default();
            if let Some(spec) = &dir.upper {
                let (Some(Reply::List(listing)), Some(Reply::Xattrs(xattrs))) =
                    (upper_replies.next(), upper_replies.next())
                else {
                    return Err(self.mismatch(Layer::Upper));
                };
                match listing {
                    Some(listing) => f.upper = Some(listing),
                    None if *spec == Spec::UpperRoot => no_upper = true,
                    None => {
                        return Err(self.listing_failed(Layer::Upper, spec, &upper_batch.errors))
                    }
                }
                f.upper_xattrs = xattrs;
            }
            if let Some(ino) = dir.lower {
                match lower_replies.next() {
                    Some(Reply::List(Some(listing))) => f.lower = Some(listing),
                    Some(Reply::List(None)) => {
                        return Err(self.listing_failed(Layer::Lower, &Spec::Ino(ino), &[]))
                    }
                    _ => return Err(self.mismatch(Layer::Lower)),
                }
            }
            fetched.push(f);
        }
        let unexpected: Vec<String> = upper_batch
            .errors
            .into_iter()
            .filter(|line| !(no_upper && line == NO_UPPER))
            .collect();
        if !unexpected.is_empty() {
            return Err(self.failure(Layer::Upper, join(&unexpected)));
        }
        Ok(fetched)
    }

    /// Round 1 for every directory along `path` at once, by path: for `/`,
    /// then each leading part, then the whole path. Any of them may be
    /// missing or be some other inode; [`Fetched::of`] checks. Empty when
    /// the path cannot be named in a batch.
    fn prefetch(&self, path: &GuestPath) -> Result<Vec<Fetched>, DiskError> {
        let components = path.components();
        let prefixes: Vec<String> = (0..=components.len()).map(|n| path.prefix(n)).collect();
        if !prefixes.last().is_some_and(|p| quotable(p)) {
            return Ok(Vec::new());
        }
        let upper_spec = |prefix: &str| match prefix {
            "/" => Spec::UpperRoot,
            prefix => Spec::Path(format!("/upper{prefix}")),
        };
        let upper_requests: Vec<Request> = prefixes
            .iter()
            .flat_map(|p| [Request::List(upper_spec(p)), Request::Xattrs(upper_spec(p))])
            .collect();
        let lower_requests: Vec<Request> = prefixes
            .iter()
            .map(|p| Request::List(Spec::Path(p.clone())))
            .collect();
        // Lookup failures are expected here (most paths exist in one layer
        // only), so stderr is not looked at: inodes are checked instead.
        let (upper_batch, lower_batch) = self.both(&upper_requests, &lower_requests)?;
        let mut upper_replies = upper_batch.replies.into_iter();
        let mut lower_replies = lower_batch.replies.into_iter();
        let mut fetched = Vec::with_capacity(prefixes.len());
        for _ in &prefixes {
            let (Some(Reply::List(upper)), Some(Reply::Xattrs(upper_xattrs))) =
                (upper_replies.next(), upper_replies.next())
            else {
                return Err(self.mismatch(Layer::Upper));
            };
            let Some(Reply::List(lower)) = lower_replies.next() else {
                return Err(self.mismatch(Layer::Lower));
            };
            fetched.push(Fetched {
                upper,
                upper_xattrs,
                lower,
            });
        }
        Ok(fetched)
    }

    /// Runs a batch on each image at the same time.
    fn both(&self, upper: &[Request], lower: &[Request]) -> Result<(Batch, Batch), DiskError> {
        let (upper, lower) = std::thread::scope(|scope| {
            let lower_run = scope.spawn(|| self.lower.batch(lower));
            let upper = self.upper.batch(upper);
            let lower = lower_run.join().unwrap_or_else(|_| {
                Err(self.failure(Layer::Lower, "the debugfs worker thread failed".to_owned()))
            });
            (upper, lower)
        });
        Ok((upper?, lower?))
    }

    /// Round 2's replies by request.
    fn extras(
        &self,
        requests: Vec<Request>,
        batch: Batch,
        layer: Layer,
    ) -> Result<HashMap<Request, Reply>, DiskError> {
        if !batch.errors.is_empty() {
            return Err(self.failure(layer, join(&batch.errors)));
        }
        Ok(requests.into_iter().zip(batch.replies).collect())
    }

    fn listing_failed(&self, layer: Layer, spec: &Spec, errors: &[String]) -> DiskError {
        let said = if errors.is_empty() {
            "debugfs said nothing".to_owned()
        } else {
            join(errors)
        };
        self.failure(layer, format!("listing directory {spec} failed: {said}"))
    }

    fn mismatch(&self, layer: Layer) -> DiskError {
        self.failure(
            layer,
            "debugfs replies do not match the requests".to_owned(),
        )
    }

    fn failure(&self, layer: Layer, message: String) -> DiskError {
        let image = self.image(layer);
        DiskError::Debugfs {
            role: image.role,
            image: image.path.to_owned(),
            message,
        }
    }
}

/// The entries of `fetched` that show (before whiteouts are taken out):
/// upper, and lower unless the upper directory is opaque; with `only`, just
/// those of that name.
fn sides<'a>(fetched: &'a Fetched, only: Option<&[u8]>) -> (Vec<&'a RawEntry>, Vec<&'a RawEntry>) {
    let wanted = |entry: &&RawEntry| only.is_none_or(|name| entry.name == name);
    let upper = fetched
        .upper
        .iter()
        .flat_map(|l| &l.entries)
        .filter(wanted)
        .collect();
    let lower = if fetched.opaque() {
        Vec::new()
    } else {
        fetched
            .lower
            .iter()
            .flat_map(|l| &l.entries)
            .filter(wanted)
            .collect()
    };
    (upper, lower)
}

/// How to read a symlink's target.
fn link_request(entry: &RawEntry) -> Request {
    Request::LinkTarget {
        ino: entry.ino,
        size: entry.size,
    }
}

/// Whether an upper entry is a whiteout, given round 2's replies.
fn is_whiteout(entry: &RawEntry, extra: &HashMap<Request, Reply>) -> bool {
    match entry.file_type() {
        TYPE_CHAR => matches!(
            extra.get(&Request::Device(entry.ino)),
            Some(Reply::Device(Some((0, 0))))
        ),
        TYPE_FILE if entry.size == 0 => matches!(
            extra.get(&Request::Xattrs(Spec::Ino(entry.ino))),
            Some(Reply::Xattrs(xattrs)) if xattrs.iter().any(|x| x.name == XATTR_WHITEOUT)
        ),
        _ => false,
    }
}

fn node(
    entry: &RawEntry,
    layer: Layer,
    dir: Option<MergedDir>,
    extra: &HashMap<Request, Reply>,
) -> Node {
    let link_target = match extra.get(&link_request(entry)) {
        Some(Reply::LinkTarget(target)) if entry.file_type() == TYPE_SYMLINK => {
            Some(target.clone())
        }
        _ => None,
    };
    Node {
        raw: entry.clone(),
        layer,
        dir,
        link_target,
    }
}

/// Drops repeated requests (hard links), keeping the first.
fn dedup(requests: &mut Vec<Request>) {
    let mut seen = HashSet::new();
    requests.retain(|request| seen.insert(request.clone()));
}

fn join(lines: &[String]) -> String {
    lines.join("; ")
}

/// A type's name in messages.
pub(super) fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "regular file",
        EntryKind::Directory => "directory",
        EntryKind::Symlink => "symbolic link",
        EntryKind::Other => "special file (device, fifo or socket)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(ino: u32) -> Option<Listing> {
        Some(Listing {
            ino,
            entries: Vec::new(),
        })
    }

    #[test]
    fn prefetched_listings_are_used_only_for_their_own_directory() {
        let fetched = || Fetched {
            upper: listing(20),
            upper_xattrs: Vec::new(),
            lower: listing(30),
        };
        let dir = |upper: Option<u32>, lower: Option<u32>| MergedDir {
            upper: upper.map(Spec::Ino),
            lower,
        };
        let both = fetched().of(&dir(Some(20), Some(30))).unwrap();
        assert_eq!((both.upper.unwrap().ino, both.lower.unwrap().ino), (20, 30));
        assert!(fetched().of(&dir(Some(21), Some(30))).is_none());
        assert!(fetched().of(&dir(Some(20), Some(31))).is_none());
        // A side the directory does not have is dropped, whatever was found.
        let lower_only = fetched().of(&dir(None, Some(30))).unwrap();
        assert!(lower_only.upper.is_none());
        let upper_only = fetched().of(&dir(Some(20), None)).unwrap();
        assert!(upper_only.lower.is_none());
        let missing = Fetched::default();
        assert!(missing.of(&dir(Some(20), None)).is_none());
        // The root's upper side may be missing (a disk that never booted).
        let root = Fetched {
            upper: None,
            upper_xattrs: Vec::new(),
            lower: listing(2),
        };
        assert!(root.of(&MergedDir::root()).is_some());
    }

    #[test]
    fn only_y_makes_an_upper_directory_opaque() {
        let with = |value: &[u8], upper: Option<Listing>| Fetched {
            upper,
            upper_xattrs: vec![Xattr {
                name: OPAQUE.to_owned(),
                value: Some(value.to_vec()),
            }],
            lower: listing(3),
        };
        assert!(with(b"y", listing(2)).opaque());
        assert!(!with(b"x", listing(2)).opaque());
        assert!(!with(b"y", None).opaque());
    }
}
