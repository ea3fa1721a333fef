//! Portable reference kernels: plain Rust with 16 independent partial sums (the same
//! association as one 512-bit register of f32 lanes), which compilers vectorise well.
//! Separate multiply and add, not `mul_add`: without a target FMA, `mul_add` becomes a call
//! into libm per element.

const LANES: usize = 16;

fn reduce(acc: [f32; LANES]) -> f32 {
    acc.iter().sum()
}

/// Inner product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    reduce(acc) + tail
}

/// Squared Euclidean distance.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    reduce(acc) + tail
}

/// `(a·b, b·b)` in one pass.
pub fn dot_and_norm_squared(a: &[f32], b: &[f32]) -> (f32, f32) {
    let (mut ab, mut bb) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (mut tab, mut tbb) = (0.0f32, 0.0f32);
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tab += x * y;
        tbb += y * y;
    }
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            ab[i] += x[i] * y[i];
            bb[i] += y[i] * y[i];
        }
    }
    (reduce(ab) + tab, reduce(bb) + tbb)
}

/// `out = a + b` element-wise.
pub fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}
