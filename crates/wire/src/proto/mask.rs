//! Client-to-server payload masking (RFC 6455 §5.3), 32 bytes at a time.

/// XORs `data` in place with the 4-byte `key`, starting at key position
/// `offset % 4` (so a payload can be unmasked in pieces as it arrives).
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    // The key repeated over 32 bytes: a fixed-size XOR that LLVM turns into
    // vector instructions, with no alignment requirement.
    let mut wide = [0u8; 32];
    for (i, b) in wide.iter_mut().enumerate() {
        *b = key[i % 4];
    }
    let mut chunks = data.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for (b, k) in chunk.iter_mut().zip(wide.iter()) {
            *b ^= k;
        }
    }
    // 32 and 8 are multiples of 4, so each tail starts at key position 0
    // again. Short payloads (most messages) go eight bytes at a time.
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = chunks.into_remainder().chunks_exact_mut(8);
    for w in &mut words {
        let mut v = [0u8; 8];
        v.copy_from_slice(w);
        w.copy_from_slice(&(u64::from_ne_bytes(v) ^ word).to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

fn rotate(key: [u8; 4], by: usize) -> [u8; 4] {
    let by = by % 4;
    [
        key[by],
        key[(by + 1) % 4],
        key[(by + 2) % 4],
        key[(by + 3) % 4],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= key[(i + offset) % 4];
        }
    }

    #[test]
    fn matches_bytewise_for_every_length_alignment_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let src: Vec<u8> = (0..100u8).collect();
        for start in 0..8 {
            for len in 0..64 {
                for offset in 0..4 {
                    let mut a = src[start..start + len].to_vec();
                    let mut b = a.clone();
                    apply_mask(&mut a, key, offset);
                    naive(&mut b, key, offset);
                    assert_eq!(a, b, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_whole() {
        let key = [1, 2, 3, 4];
        let mut whole: Vec<u8> = (0..37).collect();
        let mut pieces = whole.clone();
        apply_mask(&mut whole, key, 0);
        let (a, b) = pieces.split_at_mut(11);
        apply_mask(a, key, 0);
        apply_mask(b, key, 11);
        assert_eq!(whole, pieces);
    }
}
