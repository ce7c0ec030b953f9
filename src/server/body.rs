//! Reading a frame's body so that memory follows the bytes that arrive, not the length a header
//! announced.
//!
//! The buffer starts at `BODY_FIRST_STEP_BYTES` (or the whole body, if smaller) and grows each
//! time it fills: to everything that has already arrived (what the socket's receive queue holds,
//! `FIONREAD`, plus what the connection's read buffer holds), or to twice its size if that is
//! more, or to the whole body once half of it has arrived. So it is never more than twice what
//! has arrived (plus the first step); a body that is mostly there when its header is read takes
//! one allocation and no copy, and a slow one costs copies that add up to less than the body. Each growth first takes its
//! bytes from the shard's request budget, which bounds what every connection of the shard holds
//! together; the budget is held until the caller drops the returned [`Held`], once the request
//! is handled. How long the body may take is the watchdog's business (see `watchdog`).

use bytes::BytesMut;
use futures_lite::io::BufReader;
use futures_lite::{AsyncRead, AsyncReadExt};

use super::budget::{BudgetClosed, ByteBudget, Held};

/// The first allocation for a body; bodies up to this size are read with one allocation.
pub const BODY_FIRST_STEP_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("connection I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("the connection is closing")]
    Closed,
}

impl From<BudgetClosed> for BodyError {
    fn from(_: BudgetClosed) -> Self {
        BodyError::Closed
    }
}

/// The size the buffer grows to once `filled` bytes of a `len`-byte body are in it and
/// `arrived` more have arrived but not been read yet. Once half the body has arrived the whole
/// of it is allocated (still at most twice what arrived), so a body is not copied again for its
/// last few bytes.
fn next_size(filled: usize, arrived: usize, len: usize) -> usize {
    let received = filled.saturating_add(arrived);
    if received.saturating_mul(2) >= len {
        return len;
    }
    filled
        .saturating_mul(2)
        .max(received)
        .max(BODY_FIRST_STEP_BYTES)
        .min(len)
}

/// Bytes that have arrived on a socket and wait to be read: its receive queue (`FIONREAD`).
/// `None` when it cannot be told (not a socket); the body then grows by doubling only.
pub fn socket_arrived(fd: std::os::fd::RawFd) -> Option<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer; the descriptor is only read from.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
    (rc == 0).then_some(queued.max(0) as usize)
}

/// Something a body is read from, which may hold bytes it has read ahead.
pub trait BodySource: AsyncRead + Unpin {
    /// Bytes read from the socket but not yet returned by `read`.
    fn buffered(&self) -> usize;
}

impl<R: AsyncRead + Unpin> BodySource for BufReader<R> {
    fn buffered(&self) -> usize {
        self.buffer().len()
    }
}

/// Unbuffered: the router reads a Hello straight from the socket, so nothing past it is read
/// before the socket is handed to another shard.
impl BodySource for glommio::net::TcpStream {
    fn buffered(&self) -> usize {
        0
    }
}

/// A TLS or plain stream read directly (the TLS listener's Hello): what rustls has decrypted
/// ahead stays inside the stream for the connection's reader, so nothing is lost.
impl BodySource for crate::server::tls::Stream {
    fn buffered(&self) -> usize {
        0
    }
}

/// Reads exactly `len` bytes. The buffer's memory and budget grow as they arrive; `arrived`
/// tells how many bytes wait in the socket, beyond what `reader` has buffered already, and is
/// called only for a body larger than the first step that is not yet half buffered (it costs
/// a syscall, and a small request must not pay one).
pub async fn read_body<R: BodySource>(
    reader: &mut R,
    len: usize,
    budget: &ByteBudget,
    arrived: impl Fn() -> usize,
) -> Result<(BytesMut, Held), BodyError> {
    let mut held = Held::default();
    let mut body = BytesMut::new();
    let mut filled = 0;
    while filled < len {
        // The socket is asked (a syscall) only when what is buffered does not already let the
        // whole body be taken: a body that fits the first step, or is half buffered, never asks.
        let buffered = reader.buffered();
        let size = match next_size(filled, buffered, len) {
            whole if whole == len => whole,
            _ => next_size(filled, buffered + arrived(), len),
        };
        held.merge(budget.acquire((size - filled) as u64).await?);
        if filled == 0 {
            // calloc: memory fresh from the kernel is not cleared a second time.
            body = BytesMut::zeroed(size);
        } else {
            body.resize(size, 0);
        }
        reader
            .read_exact(&mut body[filled..size])
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => BodyError::Truncated,
                _ => BodyError::Io(e),
            })?;
        filled = size;
    }
    Ok((body, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_takes_what_arrived_doubles_otherwise_and_ends_at_the_length() {
        let step = BODY_FIRST_STEP_BYTES;
        assert_eq!(next_size(0, 0, 10), 10);
        assert_eq!(next_size(0, 0, 1 << 20), step);
        assert_eq!(next_size(step, 0, 1 << 20), 2 * step);
        assert_eq!(next_size(700_000, 0, 1 << 20), 1 << 20);
        // What has arrived is taken at once, the rest once half is there; what has not arrived
        // is never allocated beyond twice what has.
        assert_eq!(next_size(0, 300_000, 1 << 20), 300_000);
        assert_eq!(next_size(0, 600_000, 1 << 20), 1 << 20);
        assert_eq!(next_size(step, 5 << 20, 1 << 20), 1 << 20);
        for (filled, arrived) in [(0, 0), (step, 10), (100_000, 200_000), (300_000, 1)] {
            let size = next_size(filled, arrived, 10 << 20);
            assert!(
                size <= 2 * (filled + arrived).max(step),
                "{filled} {arrived} {size}"
            );
        }
    }

    #[test]
    fn a_body_is_read_whole_and_a_short_one_is_truncated() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let budget = ByteBudget::new(1 << 30);
                let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
                let mut reader = BufReader::new(futures_lite::io::Cursor::new(data.clone()));
                let (body, held) = read_body(&mut reader, data.len(), &budget, || 0)
                    .await
                    .unwrap();
                assert_eq!(&body[..], &data[..]);
                assert_eq!(held.bytes(), data.len() as u64);
                drop(held);
                assert_eq!(budget.in_use(), 0);
                let mut short = BufReader::new(futures_lite::io::Cursor::new(vec![0u8; 100_000]));
                assert!(matches!(
                    read_body(&mut short, 200_000, &budget, || 0).await,
                    Err(BodyError::Truncated)
                ));
                assert_eq!(budget.in_use(), 0, "a failed read gives its budget back");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn the_socket_is_asked_only_for_a_large_body_not_yet_half_buffered() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let budget = ByteBudget::new(1 << 30);
                let asked = std::cell::Cell::new(0);
                let arrived = || {
                    asked.set(asked.get() + 1);
                    0
                };
                let small = vec![7u8; 1024];
                let mut reader = BufReader::new(futures_lite::io::Cursor::new(small.clone()));
                let (body, _held) = read_body(&mut reader, small.len(), &budget, arrived)
                    .await
                    .unwrap();
                assert_eq!(&body[..], &small[..]);
                assert_eq!(asked.get(), 0, "a body within the first step asks nothing");
                let large = vec![9u8; 4 * BODY_FIRST_STEP_BYTES];
                let mut reader = BufReader::new(futures_lite::io::Cursor::new(large.clone()));
                let (body, _held) = read_body(&mut reader, large.len(), &budget, arrived)
                    .await
                    .unwrap();
                assert_eq!(&body[..], &large[..]);
                assert!(asked.get() > 0, "a large body asks how much has arrived");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
