//! Length-prefixed frames on a byte stream: `[length: u32 LE][payload]`. A length above the
//! bound is a protocol error, not an allocation.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest frame accepted (a snapshot must fit).
pub const MAX_FRAME: usize = 64 << 20;

/// Writes one frame and flushes.
///
/// # Errors
/// If the stream fails or the payload is over `MAX_FRAME`.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "frame over the size bound"));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    writer.write_all(&buf).await?;
    writer.flush().await
}

/// Reads one frame into `buf`. Returns `false` on a clean end of stream before a frame.
///
/// # Errors
/// If the stream fails, ends inside a frame, or announces a frame over `MAX_FRAME`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over the bound"),
        ));
    }
    buf.resize(len, 0);
    reader.read_exact(buf).await?;
    Ok(true)
}
