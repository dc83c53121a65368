//! The set bits of a 64-bit mask: how the search, the exact program and the move paths
//! walk a choice of pool members.

/// The indices of the set bits of `mask`, lowest first.
pub(crate) fn bits(mask: u64) -> impl Iterator<Item = usize> {
    let mut m = mask;
    std::iter::from_fn(move || {
        (m != 0).then(|| {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            i
        })
    })
}
