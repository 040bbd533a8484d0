//! Giving a connection table's spare room back after a wave of removals.

/// The capacity a table holding `len` entries in `capacity` slots should
/// shrink to, if it should: one under a quarter full (and past its first 16
/// slots) goes to twice its size. Checked at each removal, the rehash costs
/// one pass over what is left once per wave, and a table that shrank has
/// room to grow by half before it doubles again.
pub fn shrunk_capacity(len: usize, capacity: usize) -> Option<usize> {
    (capacity > 4 * len.max(16)).then_some(2 * len)
}

#[cfg(test)]
mod tests {
    use super::shrunk_capacity;

    #[test]
    fn only_a_sparse_table_past_its_first_slots_shrinks() {
        assert_eq!(shrunk_capacity(0, 64), None, "small tables stay");
        assert_eq!(shrunk_capacity(0, 65), Some(0));
        assert_eq!(shrunk_capacity(1_000, 16_384), Some(2_000));
        assert_eq!(shrunk_capacity(4_096, 16_384), None, "a quarter full");
        assert_eq!(shrunk_capacity(10_000, 16_384), None);
    }
}
