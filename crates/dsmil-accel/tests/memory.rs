//! Memory kernels, each test once per forced path, against std: random lengths (0, 1, odd, 64-byte
//! boundaries ±1, sizes above the non-temporal threshold) and unaligned starts.

use dsmil_accel::memory::{self, NON_TEMPORAL_THRESHOLD};
use proptest::prelude::*;

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        (0usize..8).prop_map(|k| [7, 8, 63, 64, 65, 255, 256, 257][k]),
        0usize..5000,
    ]
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Cases per property test and path.
const CASES: u32 = 300;

per_path!(copy_equals_the_source, [portable, avx2, avx512], |p| {
    proptest!(ProptestConfig::with_cases(CASES), |(len in length(), off in 0usize..64, seed in any::<u64>())| {
        let src = bytes(len + off, seed);
        let mut dst = vec![0u8; len + off + 3];
        memory::copy(p, &mut dst[off..off + len], &src[off..]).unwrap();
        prop_assert_eq!(&dst[off..off + len], &src[off..]);
        prop_assert!(dst[..off].iter().chain(&dst[off + len..]).all(|b| *b == 0), "{} wrote outside", p);
    });
});

per_path!(fill_matches_the_reference, [portable, avx2, avx512], |p| {
    proptest!(ProptestConfig::with_cases(CASES), |(len in length(), off in 0usize..64, pattern in any::<u64>())| {
        let want: Vec<u8> = (0..len).map(|i| pattern.to_le_bytes()[i % 8]).collect();
        let mut buf = vec![0xAAu8; len + off + 3];
        memory::fill_pattern(p, &mut buf[off..off + len], pattern);
        prop_assert_eq!(&buf[off..off + len], &want[..]);
        prop_assert!(buf[..off].iter().chain(&buf[off + len..]).all(|b| *b == 0xAA));
    });
});

per_path!(
    first_difference_finds_the_first_changed_byte,
    [portable, avx2, avx512],
    |p| {
        proptest!(ProptestConfig::with_cases(CASES), |(
            len in 1usize..5000, off in 0usize..64, seed in any::<u64>(),
            at in any::<prop::sample::Index>(), later in any::<prop::sample::Index>(),
        )| {
            let a = bytes(len + off, seed);
            let mut b = a.clone();
            let first = off + at.index(len);
            let second = first + later.index(len + off - first);
            b[second] ^= 0x10;
            b[first] ^= 0x01;
            prop_assert_eq!(memory::first_difference(p, &a[off..], &a[off..]), None);
            prop_assert_eq!(memory::first_difference(p, &a[off..], &b[off..]), Some(first - off), "{}", p);
        });
    }
);

per_path!(
    large_unaligned_copy_and_fill_use_streaming_stores_correctly,
    [portable, avx2, avx512],
    |p| {
        let len = memory::non_temporal_threshold().max(NON_TEMPORAL_THRESHOLD) + 4099;
        let src = bytes(len + 5, 7);
        let mut dst = vec![0u8; len + 5];
        memory::copy(p, &mut dst[5..], &src[5..]).unwrap();
        assert!(dst[5..] == src[5..], "{p}");
        memory::fill_pattern(p, &mut dst[3..], 0x0102_0304_0506_0708);
        let ok = dst[3..]
            .iter()
            .enumerate()
            .all(|(i, b)| *b == 0x0102_0304_0506_0708u64.to_le_bytes()[i % 8]);
        assert!(ok, "{p}");
        assert_eq!(memory::first_difference(p, &dst, &dst), None);
        let mut other = dst.clone();
        other[len - 1] ^= 0xFF;
        assert_eq!(memory::first_difference(p, &dst, &other), Some(len - 1));
    }
);
