//! Seeded mutations of fuzz corpus inputs, so every test run on stable also fuzzes each target
//! briefly (what CI runs; the long runs are `cargo +nightly fuzz run`). No coverage guidance:
//! libFuzzer's simplest mutations — flip a bit, set a byte to an interesting value, erase,
//! insert, duplicate a range, overwrite a little-endian integer, truncate — a few stacked per
//! mutant, each mutant a pure function of `(input, seed, n)`, so a failure replays from the
//! numbers it prints.

/// splitmix64.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX,
    4096,
];

/// Mutant `n` of `input` under `seed`; at most `max_len` bytes.
pub fn mutant(input: &[u8], seed: u64, n: u64, max_len: usize) -> Vec<u8> {
    let mut rng = SplitMix(seed ^ n.wrapping_mul(0xa076_1d64_78bd_642f));
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(&mut out, &mut rng);
    }
    out.truncate(max_len);
    out
}

fn mutate_once(out: &mut Vec<u8>, rng: &mut SplitMix) {
    if out.is_empty() {
        out.extend((0..1 + rng.below(16)).map(|_| rng.next_u64() as u8));
        return;
    }
    let at = rng.below(out.len());
    match rng.below(7) {
        0 => out[at] ^= 1 << rng.below(8),
        1 => out[at] = INTERESTING[rng.below(INTERESTING.len())] as u8,
        2 => {
            let end = (at + 1 + rng.below(64)).min(out.len());
            out.drain(at..end);
        }
        3 => {
            let bytes: Vec<u8> = (0..1 + rng.below(16))
                .map(|_| rng.next_u64() as u8)
                .collect();
            out.splice(at..at, bytes);
        }
        4 => {
            let end = (at + 1 + rng.below(256)).min(out.len());
            let copy = out[at..end].to_vec();
            let to = rng.below(out.len());
            out.splice(to..to, copy);
        }
        5 => {
            let width = [2usize, 4, 8][rng.below(3)];
            if at + width <= out.len() {
                let value = INTERESTING[rng.below(INTERESTING.len())]
                    .wrapping_add(rng.below(3) as u64)
                    .wrapping_sub(1);
                out[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
        }
        _ => out.truncate(at),
    }
}

/// The seed of a brief fuzz run: `SHARDMQ_FUZZ_SEED` if set (to replay or explore), else
/// `default` (CI runs the same mutants every time).
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("SHARDMQ_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutants_are_reproducible_bounded_and_differ() {
        let input = b"a corpus input of some length".to_vec();
        let a: Vec<_> = (0..50).map(|n| mutant(&input, 7, n, 40)).collect();
        let b: Vec<_> = (0..50).map(|n| mutant(&input, 7, n, 40)).collect();
        assert_eq!(a, b, "a mutant is a function of (input, seed, n)");
        assert!(a.iter().all(|m| m.len() <= 40));
        assert!(
            a.iter().filter(|m| **m != input).count() > 40,
            "mutants change the input"
        );
        assert!(!mutant(&[], 1, 0, 64).is_empty());
    }
}
