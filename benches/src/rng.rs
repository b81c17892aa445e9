//! The generator's randomness: SplitMix64 and a Zipf distribution over ranks, both
//! value-stable by construction (see [`SplitMix64`] for why they are hand-written).

/// A SplitMix64 generator (Steele, Lea & Flood, 2014).
///
/// Hand-written on purpose: the generator's output is a fixture that tests and
/// recorded benchmark figures depend on, so its bytes must not change when a
/// dependency is bumped. `rand` documents that its distributions (`random_range`,
/// float sampling, …) are not value-stable across versions; SplitMix64 is six lines,
/// passes BigCrush, and is far more than synthetic data needs.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias for n ≪ 2⁶⁴ is negligible
    /// for synthetic data). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice, uniformly.
    pub fn pick<'s, T>(&mut self, s: &'s [T]) -> &'s T {
        &s[self.below(s.len() as u64) as usize]
    }

    /// A log-normal sample with the given median and shape (σ of the log).
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        // Box–Muller; 1 - unit() is in (0, 1], so ln() is finite.
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * z).exp()
    }
}

/// The SplitMix64 finalizer: a good 64-bit mixing function, also used to derive
/// stable per-site and per-visitor values from an index without storing them.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A Zipf distribution over ranks `0..n` (rank 0 most frequent), by inverse CDF.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// `n` ranks with exponent `s` (1.0 is classic Zipf; web traffic per site is
    /// close to it).
    pub fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    /// A rank.
    pub fn sample(&self, rng: &mut SplitMix64) -> usize {
        let u = rng.unit();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}
