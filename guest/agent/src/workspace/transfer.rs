//! Bulk data over the connection: uploads from the host in, data chunks
//! to the host out.
//!
//! - [`Reply`] is where an operation sends its frames (a connection, or a
//!   vector in tests).
//! - [`DataWriter`] is an `io::Write` that cuts bytes into
//!   [`Response::Data`] frames of at most [`CHUNK_BYTES`].
//! - [`UploadSource`] is an `io::Read` over an upload that also tells
//!   whether the upload ended properly; [`UploadReader`] implements it on
//!   [`Upload`] frames.

use std::io::{self, Read, Write};

use pyro_guest_protocol::{read_frame, ProtocolError, Response, Upload, CHUNK_BYTES};

use super::Failure;
use crate::server::{Channel, Connection};

/// Where an operation sends its frames.
pub trait Reply {
    /// Sends one frame.
    fn send(&mut self, response: &Response) -> io::Result<()>;
}

impl<S: Channel> Reply for Connection<S> {
    fn send(&mut self, response: &Response) -> io::Result<()> {
        Connection::send(self, response)
    }
}

#[cfg(test)]
impl Reply for Vec<Response> {
    fn send(&mut self, response: &Response) -> io::Result<()> {
        self.push(response.clone());
        Ok(())
    }
}

/// Sends `data` as [`Response::Data`] frames.
pub fn send_data<R: Reply>(reply: &mut R, data: &[u8]) -> Result<(), Failure> {
    for chunk in data.chunks(CHUNK_BYTES) {
        reply
            .send(&Response::Data(chunk.to_vec()))
            .map_err(Failure::Channel)?;
    }
    Ok(())
}

/// An `io::Write` that sends what is written as [`Response::Data`] chunks.
#[derive(Debug)]
pub struct DataWriter<'a, R: Reply> {
    reply: &'a mut R,
    buffer: Vec<u8>,
    sent: u64,
    broken: Option<io::Error>,
    abandoned: bool,
}

impl<'a, R: Reply> DataWriter<'a, R> {
    /// A writer sending on `reply`.
    pub fn new(reply: &'a mut R) -> Self {
        Self {
            reply,
            buffer: Vec::with_capacity(CHUNK_BYTES),
            sent: 0,
            broken: None,
            abandoned: false,
        }
    }

    /// Takes the channel error that made a write fail, if one did.
    pub fn take_channel_error(&mut self) -> Option<io::Error> {
        self.broken.take()
    }

    /// Drops anything written from now on (the stream is ending with an
    /// error frame instead).
    pub fn abandon(&mut self) {
        self.abandoned = true;
        self.buffer.clear();
    }

    /// Sends what is buffered.
    pub fn finish(&mut self) -> Result<u64, Failure> {
        self.send_buffer().map_err(Failure::Channel)?;
        Ok(self.sent)
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() || self.abandoned {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK_BYTES));
        let len = chunk.len() as u64;
        match self.reply.send(&Response::Data(chunk)) {
            Ok(()) => {
                self.sent += len;
                Ok(())
            }
            Err(err) => {
                let kind = err.kind();
                self.broken = Some(err);
                Err(io::Error::new(kind, "the host channel broke"))
            }
        }
    }
}

impl<R: Reply> Write for DataWriter<'_, R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.abandoned {
            return Ok(buf.len());
        }
        if let Some(err) = &self.broken {
            return Err(io::Error::new(err.kind(), "the host channel broke"));
        }
        let room = CHUNK_BYTES - self.buffer.len();
        let take = room.min(buf.len());
        self.buffer.extend_from_slice(&buf[..take]);
        if self.buffer.len() == CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An upload being read: the bytes, then whether it ended properly.
pub trait UploadSource: Read {
    /// Reads (and discards) up to the end of the upload; returns how many
    /// bytes were discarded. An error means the upload did not end
    /// properly and nothing may be committed.
    fn finish(&mut self) -> Result<u64, Failure>;
}

#[cfg(test)]
impl UploadSource for &[u8] {
    fn finish(&mut self) -> Result<u64, Failure> {
        let rest = self.len() as u64;
        *self = &[];
        Ok(rest)
    }
}

/// How an upload ended.
#[derive(Debug)]
pub enum UploadEnd {
    /// [`Upload::End`] arrived.
    Complete,
    /// The connection closed or failed before [`Upload::End`].
    HostGone(io::Error),
    /// The host sent something that is not an upload frame.
    Malformed(String),
}

#[derive(Debug)]
enum State {
    Open,
    Ended,
    Gone(io::ErrorKind, String),
    Malformed(String),
}

/// Reads the [`Upload`] frames that follow a request.
#[derive(Debug)]
pub struct UploadReader<'a, S: Read> {
    stream: &'a mut S,
    chunk: Vec<u8>,
    position: usize,
    state: State,
}

impl<'a, S: Read> UploadReader<'a, S> {
    /// A reader of the upload arriving on `stream`.
    pub fn new(stream: &'a mut S) -> Self {
        Self {
            stream,
            chunk: Vec::new(),
            position: 0,
            state: State::Open,
        }
    }

    /// Reads the rest of the upload, discarding it, and says how it ended.
    pub fn drain(mut self) -> UploadEnd {
        while matches!(self.state, State::Open) {
            self.next_frame();
        }
        match self.state {
            State::Open | State::Ended => UploadEnd::Complete,
            State::Gone(kind, message) => UploadEnd::HostGone(io::Error::new(kind, message)),
            State::Malformed(message) => UploadEnd::Malformed(message),
        }
    }

    fn next_frame(&mut self) {
        match read_frame::<_, Upload>(self.stream) {
            Ok(Upload::Chunk(data)) if data.len() > CHUNK_BYTES => {
                self.state = State::Malformed(format!(
                    "upload chunk of {} bytes exceeds the limit of {CHUNK_BYTES}",
                    data.len()
                ));
            }
            Ok(Upload::Chunk(data)) => {
                self.chunk = data;
                self.position = 0;
            }
            Ok(Upload::End) => self.state = State::Ended,
            Err(ProtocolError::Io(err)) => {
                self.state = State::Gone(err.kind(), format!("reading the upload failed: {err}"));
            }
            Err(ProtocolError::Closed | ProtocolError::Truncated { .. }) => {
                self.state = State::Gone(
                    io::ErrorKind::UnexpectedEof,
                    "the host closed the connection before the end of the upload".to_owned(),
                );
            }
            Err(err) => self.state = State::Malformed(format!("unreadable upload frame: {err}")),
        }
    }

    fn state_error(&self) -> io::Error {
        match &self.state {
            State::Gone(kind, message) => io::Error::new(*kind, message.clone()),
            State::Malformed(message) => {
                io::Error::new(io::ErrorKind::InvalidData, message.clone())
            }
            State::Open | State::Ended => io::Error::other("upload state"),
        }
    }
}

impl<S: Read> Read for UploadReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.position < self.chunk.len() {
                let take = (self.chunk.len() - self.position).min(buf.len());
                buf[..take].copy_from_slice(&self.chunk[self.position..self.position + take]);
                self.position += take;
                return Ok(take);
            }
            match self.state {
                State::Open => self.next_frame(),
                State::Ended => return Ok(0),
                State::Gone(..) | State::Malformed(_) => return Err(self.state_error()),
            }
        }
    }
}

impl<S: Read> UploadSource for UploadReader<'_, S> {
    fn finish(&mut self) -> Result<u64, Failure> {
        let mut discarded = (self.chunk.len() - self.position) as u64;
        self.chunk.clear();
        self.position = 0;
        while matches!(self.state, State::Open) {
            self.next_frame();
            discarded += self.chunk.len() as u64;
            self.chunk.clear();
        }
        match &self.state {
            State::Open | State::Ended => Ok(discarded),
            State::Gone(kind, message) => {
                Err(Failure::Channel(io::Error::new(*kind, message.clone())))
            }
            State::Malformed(message) => Err(super::invalid(message.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_guest_protocol::encode;

    fn frames(uploads: &[Upload]) -> Vec<u8> {
        uploads.iter().flat_map(|u| encode(u).unwrap()).collect()
    }

    #[test]
    fn upload_reader_concatenates_chunks_until_end() {
        let bytes = frames(&[
            Upload::Chunk(b"hello ".to_vec()),
            Upload::Chunk(Vec::new()),
            Upload::Chunk(b"world".to_vec()),
            Upload::End,
        ]);
        let mut stream = bytes.as_slice();
        let mut reader = UploadReader::new(&mut stream);
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello world");
        assert!(reader.finish().is_ok());
        assert!(matches!(reader.drain(), UploadEnd::Complete));
    }

    #[test]
    fn upload_without_end_is_not_complete() {
        let bytes = frames(&[Upload::Chunk(b"partial".to_vec())]);
        let mut stream = bytes.as_slice();
        let mut reader = UploadReader::new(&mut stream);
        let mut sink = Vec::new();
        assert!(reader.read_to_end(&mut sink).is_err());
        assert!(matches!(reader.finish(), Err(Failure::Channel(_))));
        assert!(matches!(reader.drain(), UploadEnd::HostGone(_)));
    }

    #[test]
    fn oversized_chunks_are_malformed() {
        let bytes = frames(&[Upload::Chunk(vec![0; CHUNK_BYTES + 1]), Upload::End]);
        let mut stream = bytes.as_slice();
        let reader = UploadReader::new(&mut stream);
        assert!(matches!(reader.drain(), UploadEnd::Malformed(_)));
    }

    #[test]
    fn data_writer_cuts_chunks() {
        let mut sent: Vec<Response> = Vec::new();
        let mut writer = DataWriter::new(&mut sent);
        writer.write_all(&vec![7u8; CHUNK_BYTES * 2 + 10]).unwrap();
        assert_eq!(writer.finish().unwrap(), (CHUNK_BYTES * 2 + 10) as u64);
        let sizes: Vec<usize> = sent
            .iter()
            .map(|r| match r {
                Response::Data(d) => d.len(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sizes, vec![CHUNK_BYTES, CHUNK_BYTES, 10]);
    }
}
