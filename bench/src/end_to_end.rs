//! End-to-end stamps: a stamped record's payload starts with the microseconds since the run's
//! start at which its batch was encoded (`stamp_payload`). Producers and consumers are threads
//! of one process reading one monotonic clock (`Instant`), so no clock synchronization is
//! involved. The consumers themselves are in `crate::engine` (`receive`).

use std::time::Instant;

/// Bytes at the start of a stamped payload that hold the send time.
pub const STAMP_BYTES: usize = 8;

/// Writes the microseconds since `start` into the first bytes of `payload`.
pub fn stamp_payload(payload: &mut [u8], start: Instant) {
    let us = start.elapsed().as_micros() as u64;
    payload[..STAMP_BYTES].copy_from_slice(&us.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_round_trip() {
        let start = Instant::now() - Duration::from_millis(5);
        let mut payload = vec![0u8; 32];
        stamp_payload(&mut payload, start);
        let us = u64::from_le_bytes(payload[..8].try_into().unwrap());
        assert!(us >= 5_000, "{us}");
        assert!(
            payload[8..].iter().all(|&b| b == 0),
            "only the stamp bytes change"
        );
    }
}
