//! Reading the end of a guest console log for error reports.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// At most this many bytes are read from the end of the log.
const TAIL_BYTES: u64 = 16 * 1024;

/// The last `lines` non-empty lines of `path`, with control characters
/// removed, joined by newlines. Empty when the file is missing.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .is_err()
    {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    tail_of(&String::from_utf8_lossy(&bytes), lines)
}

/// The last `lines` non-empty lines of `text`, cleaned.
pub fn tail_of(text: &str, lines: usize) -> String {
    let cleaned: Vec<String> = text
        .split(['\n', '\r'])
        .map(|line| {
            line.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
        })
        .map(|line| line.trim_end().to_owned())
        .filter(|line| !line.is_empty())
        .collect();
    let start = cleaned.len().saturating_sub(lines);
    cleaned[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_without_control_characters() {
        let text = "one\r\ntwo\n\n\x1b[0mthree\x07\nfour\n";
        assert_eq!(tail_of(text, 2), "[0mthree\nfour");
        assert_eq!(tail_of("", 3), "");
    }

    #[test]
    fn missing_file_is_empty() {
        assert_eq!(tail(Path::new("/nonexistent/console.log"), 5), "");
    }
}
