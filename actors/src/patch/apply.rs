//! Placing and applying the hunks of one file (see the module docs of
//! [`patch`](super) for the rules).

use super::{Hunk, HunkLine};

/// Applies `hunks` in order to `content`; on failure, the 0-based index of
/// the hunk that does not apply.
pub(super) fn apply_hunks(content: &[u8], hunks: &[Hunk]) -> Result<Vec<u8>, usize> {
    let lines: Vec<&[u8]> = content.split_inclusive(|&byte| byte == b'\n').collect();
    let mut out = Vec::with_capacity(content.len());
    // Lines before `cursor` are settled; `offset` is how far the previous
    // hunk landed from where its header said.
    let mut cursor = 0;
    let mut offset: isize = 0;
    for (index, hunk) in hunks.iter().enumerate() {
        let old: Vec<&[u8]> = hunk.old_lines().into_iter().map(str::as_bytes).collect();
        let new = hunk.new_lines();
        let stated = hunk.old_begin();
        let expected = usize::try_from(stated as isize + offset).unwrap_or(0);
        let position = place(hunk, &lines, &old, cursor, expected).ok_or(index)?;
        out.extend(lines[cursor..position].concat());
        for line in new {
            out.extend_from_slice(line.as_bytes());
        }
        cursor = position + old.len();
        offset = position as isize - stated as isize;
    }
    out.extend(lines[cursor..].concat());
    Ok(out)
}

/// Where the hunk's old lines are: the nearest exact match to `expected`
/// at or after `cursor`, anchored first when the hunk says so.
fn place(
    hunk: &Hunk,
    lines: &[&[u8]],
    old: &[&[u8]],
    cursor: usize,
    expected: usize,
) -> Option<usize> {
    let is_context = |line: &&HunkLine| matches!(line, HunkLine::Context(_));
    let leading = hunk.lines.iter().take_while(is_context).count();
    let trailing = hunk.lines.iter().rev().take_while(is_context).count();
    let ends_file = hunk
        .new_lines()
        .last()
        .is_some_and(|line| !line.ends_with('\n'));
    let fits = |position: usize, at_start: bool, at_end: bool| {
        let end = position + old.len();
        position >= cursor
            && end <= lines.len()
            && lines[position..end] == *old
            && (!at_start || position == 0)
            && (!(at_end || ends_file) || end == lines.len())
            // Nothing may be inserted after a last line without a newline.
            && !(old.is_empty()
                && position == lines.len()
                && lines.last().is_some_and(|line| !line.ends_with(b"\n")))
    };
    if old.is_empty() {
        return fits(expected, false, false).then_some(expected);
    }
    let anchor_start = hunk.old_start <= 1;
    let anchor_end = trailing == 0 && leading > 0;
    let mut passes = vec![(anchor_start, anchor_end)];
    if anchor_start || anchor_end {
        passes.push((false, false));
    }
    passes.into_iter().find_map(|(at_start, at_end)| {
        (0..=lines.len().max(expected)).find_map(|distance| {
            let after = expected + distance;
            let before = expected.checked_sub(distance);
            [Some(after), before]
                .into_iter()
                .flatten()
                .find(|&position| fits(position, at_start, at_end))
        })
    })
}
