//! One blocking RESP connection: one TCP stream, one command at a time (the
//! request is written whole, then the whole reply is read). The encoding and
//! the bounded reply reader are `synod_wire::resp`'s.

use std::io::{self, BufReader, BufWriter, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub use synod_wire::resp::{Reply, RespError};

/// How long connecting to one address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An I/O error as a person reads it: "Connection refused" rather than
/// "Connection refused (os error 111)".
pub fn describe_io(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Why a command got no reply, in words: an I/O error as [`describe_io`]
/// words it.
pub fn describe(error: &RespError) -> String {
    match error {
        RespError::Io(error) => describe_io(error),
        other => other.to_string(),
    }
}

/// A connection to one node.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Connection {
    /// Connects to `host:port`, trying each address it resolves to for at
    /// most [`CONNECT_TIMEOUT`]. Blocks.
    pub fn connect(host: &str, port: u16) -> io::Result<Connection> {
        let mut last_error = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(Connection {
                        reader: BufReader::new(stream.try_clone()?),
                        writer: BufWriter::new(stream),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the host name has no address")
        }))
    }

    /// Whether the server closed the connection while it was idle (a node
    /// restarted, an idle timeout): then nothing was sent on it since, and
    /// a new connection can be opened safely. Does not block.
    pub fn closed_by_server(&self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        let stream = self.reader.get_ref();
        if stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        // End of stream, unasked-for bytes or an error: all unusable.
        let closed = match stream.peek(&mut byte) {
            Ok(_) => true,
            Err(error) => error.kind() != io::ErrorKind::WouldBlock,
        };
        stream.set_nonblocking(false).is_err() || closed
    }

    /// Sends one command and waits for its reply, however long the server
    /// takes. An error leaves the connection unusable.
    pub fn call(&mut self, args: &[Vec<u8>]) -> Result<Reply, RespError> {
        assert!(!args.is_empty(), "a command has a name");
        let mut request = Vec::new();
        synod_wire::resp::encode_command(args, &mut request);
        self.writer.write_all(&request)?;
        self.writer.flush()?;
        synod_wire::resp::read_reply(&mut self.reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_without_the_os_error_number() {
        let error = io::Error::from_raw_os_error(111);
        assert!(!describe_io(&error).contains("os error"));
        assert!(!describe(&RespError::Io(error)).contains("os error"));
    }
}
