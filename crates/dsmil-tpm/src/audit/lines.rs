//! Reading a log file line by line with bounded memory (a log can be many gigabytes), knowing
//! where each line starts; and reading one chunk's leaves back for a proof.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Take};
use std::path::Path;

use super::chunks::ChunkRead;
use super::merkle::Hash;
use super::record::{Line, body_bytes, entry_leaf};

/// One line read: where it starts, its number (from 1), its text without the newline, and
/// whether it ended in one (a last line without is a torn write).
pub(crate) struct RawLine<'a> {
    pub offset: u64,
    pub number: usize,
    pub bytes: &'a [u8],
    pub complete: bool,
}

/// Reads `file` line by line from its current position.
pub(crate) struct LineReader {
    reader: BufReader<Take<File>>,
    buf: Vec<u8>,
    offset: u64,
    number: usize,
}

impl LineReader {
    /// Reads from byte `offset` of `file`; line numbers count from `first_number`.
    pub fn new(file: File, offset: u64, first_number: usize) -> std::io::Result<Self> {
        Self::up_to(file, offset, u64::MAX, first_number)
    }

    /// Like [`LineReader::new`], reading no further than byte `end` — the part of a log known
    /// to be complete while its writer may be appending.
    pub fn up_to(
        mut file: File,
        offset: u64,
        end: u64,
        first_number: usize,
    ) -> std::io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            reader: BufReader::with_capacity(1 << 16, file.take(end.saturating_sub(offset))),
            buf: Vec::new(),
            offset,
            number: first_number,
        })
    }

    /// The next line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> std::io::Result<Option<RawLine<'_>>> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.offset;
        self.offset += n as u64;
        let number = self.number;
        self.number += 1;
        let complete = self.buf.last() == Some(&b'\n');
        let bytes = if complete {
            &self.buf[..n - 1]
        } else {
            &self.buf[..]
        };
        Ok(Some(RawLine {
            offset,
            number,
            bytes,
            complete,
        }))
    }
}

/// Why entries could not be read back for a proof.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadBackError {
    /// The file could not be read.
    #[error("cannot read the file")]
    Io(#[from] std::io::Error),
    /// A line is not a log record.
    #[error("the line at byte {offset} is not a record")]
    NotARecord {
        offset: u64,
        #[source]
        source: serde_json::Error,
    },
    /// The file is shorter than the index says.
    #[error("the file ends before entry {0}")]
    Ends(u64),
    /// An entry is not where the index put it.
    #[error("found entry {found} at byte {offset} where entry {expected} was")]
    Misplaced {
        found: u64,
        offset: u64,
        expected: u64,
    },
}

/// Reads the leaves `read` names back from the log at `path`: `read.count` entries from
/// `read.offset`, skipping checkpoint lines, checking their sequence numbers. The line of
/// entry `keep` (when it is among them) is returned too, as written.
pub(crate) fn read_leaves(
    path: &Path,
    read: &ChunkRead,
    keep: u64,
) -> Result<(Vec<Hash>, Option<String>), ReadBackError> {
    let file = File::open(path)?;
    let mut lines = LineReader::new(file, read.offset, 0)?;
    let mut leaves = Vec::with_capacity(read.count as usize);
    let mut kept = None;
    while (leaves.len() as u64) < read.count {
        let expected = read.first_seq + leaves.len() as u64;
        let Some(line) = lines.next_line()? else {
            return Err(ReadBackError::Ends(expected));
        };
        let parsed: Line =
            serde_json::from_slice(line.bytes).map_err(|source| ReadBackError::NotARecord {
                offset: line.offset,
                source,
            })?;
        if let Line::Entry(e) = parsed {
            if e.body.seq != expected {
                return Err(ReadBackError::Misplaced {
                    found: e.body.seq,
                    offset: line.offset,
                    expected,
                });
            }
            if expected == keep {
                kept = Some(String::from_utf8_lossy(line.bytes).into_owned());
            }
            leaves.push(entry_leaf(&body_bytes(&e.body)));
        }
    }
    Ok((leaves, kept))
}
