//! Reading a frame's body so that memory follows the bytes that arrive, not the length a header
//! announced.
//!
//! The buffer starts at `BODY_FIRST_STEP_BYTES` (or the whole body, if smaller) and doubles each
//! time it fills, so it is never more than twice what has arrived (plus the first step), and the
//! copies the growth costs add up to less than the body itself. Each growth first takes its
//! bytes from the shard's request budget, which bounds what every connection of the shard holds
//! together; the budget is held until the caller drops the returned [`Held`], once the request
//! is handled. How long the body may take is the watchdog's business (see `watchdog`).

use bytes::BytesMut;
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

/// The size the buffer grows to once `filled` bytes of a `len`-byte body have arrived.
fn next_size(filled: usize, len: usize) -> usize {
    filled.saturating_mul(2).max(BODY_FIRST_STEP_BYTES).min(len)
}

/// Reads exactly `len` bytes. The buffer's memory and budget grow as they arrive.
pub async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    budget: &ByteBudget,
) -> Result<(BytesMut, Held), BodyError> {
    let mut held = Held::default();
    let mut body = BytesMut::new();
    let mut filled = 0;
    while filled < len {
        let size = next_size(filled, len);
        held.merge(budget.acquire((size - filled) as u64).await?);
        body.resize(size, 0);
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
    fn growth_doubles_from_the_first_step_and_ends_at_the_length() {
        assert_eq!(next_size(0, 10), 10);
        assert_eq!(next_size(0, 1 << 20), BODY_FIRST_STEP_BYTES);
        assert_eq!(
            next_size(BODY_FIRST_STEP_BYTES, 1 << 20),
            2 * BODY_FIRST_STEP_BYTES
        );
        assert_eq!(next_size(700_000, 1 << 20), 1 << 20);
    }

    #[test]
    fn a_body_is_read_whole_and_a_short_one_is_truncated() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let budget = ByteBudget::new(1 << 30);
                let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
                let mut reader = futures_lite::io::Cursor::new(data.clone());
                let (body, held) = read_body(&mut reader, data.len(), &budget).await.unwrap();
                assert_eq!(&body[..], &data[..]);
                assert_eq!(held.bytes(), data.len() as u64);
                drop(held);
                assert_eq!(budget.in_use(), 0);
                let mut short = futures_lite::io::Cursor::new(vec![0u8; 100_000]);
                assert!(matches!(
                    read_body(&mut short, 200_000, &budget).await,
                    Err(BodyError::Truncated)
                ));
                assert_eq!(budget.in_use(), 0, "a failed read gives its budget back");
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
