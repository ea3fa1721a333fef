//! Which kernel implementation runs: one [`Platform`] value, chosen once by detection and
//! forcible for tests and benches, that every kernel dispatches on — the vector kernels and the
//! crypto kernels alike.
//!
//! A `Platform` is a vector path ([`KernelPath`]: portable, AVX2, AVX-512) plus the crypto
//! extensions in use ([`CryptoExtension`]: SHA-NI, AES-NI, VAES). Its fields are private and
//! every constructor checks the CPU and OS, so holding a `Platform` is proof that each of its
//! instructions is available — the soundness argument for every `unsafe` call into a
//! `#[target_feature]` kernel. This module holds the only feature probes of the crate's kernels.
//!
//! - [`Platform::detect`] picks [`Platform::best`] unless [`FORCE_VAR`] says otherwise (see
//!   [`ForceSpec`] for the syntax); what the machine cannot run is refused, never replaced.
//! - [`Platform::portable`], [`Platform::avx2`], [`Platform::avx512`] force a vector path;
//!   [`Platform::with`] and [`Platform::without`] add or remove one crypto extension.
//!
//! A path's constructor carries every crypto extension the CPU has that the path allows, except
//! [`Platform::portable`], which carries none (forcing portable means plain Rust everywhere).
//! VAES runs on 512-bit registers and builds on AES-NI's key schedule: it is only ever carried
//! on the AVX-512 path together with AES-NI.

mod force;

use std::fmt;

use dsmil_core::KernelPath;
use thiserror::Error;

use crate::engine::AccelErrorCode;

pub use force::{ForceSpec, ForceSpecError};

/// Environment variable that forces a kernel path and crypto extensions for the whole process
/// (syntax: [`ForceSpec`]).
pub const FORCE_VAR: &str = "DSMIL_ACCEL_FORCE";

/// A crypto instruction-set extension a [`Platform`] may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CryptoExtension {
    /// The SHA extensions (`sha256rnds2` …, with SSE4.1 and SSSE3): SHA-256 four messages
    /// interleaved.
    ShaNi,
    /// 128-bit AES-NI (with SSE2): AES key schedules, ECB and CTR.
    AesNi,
    /// VAES on 512-bit registers (with AVX-512 F/BW and AES-NI): AES four blocks per register.
    Vaes,
}

impl CryptoExtension {
    /// Every extension, in the order [`Platform`]'s `Display` lists them.
    pub const ALL: [CryptoExtension; 3] = [
        CryptoExtension::ShaNi,
        CryptoExtension::AesNi,
        CryptoExtension::Vaes,
    ];

    /// The name [`FORCE_VAR`] and `Display` use: `sha_ni`, `aes_ni`, `vaes`.
    pub fn name(self) -> &'static str {
        match self {
            CryptoExtension::ShaNi => "sha_ni",
            CryptoExtension::AesNi => "aes_ni",
            CryptoExtension::Vaes => "vaes",
        }
    }

    /// The extension called `name` (see [`CryptoExtension::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Whether this CPU and OS can run the extension's kernels (every target feature they
    /// enable).
    pub fn detected(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                CryptoExtension::ShaNi => has!("sha") && has!("sse4.1") && has!("ssse3"),
                CryptoExtension::AesNi => has!("aes") && has!("sse2"),
                CryptoExtension::Vaes => {
                    has!("vaes") && has!("aes") && has!("avx512f") && has!("avx512bw")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    fn bit(self) -> u8 {
        match self {
            CryptoExtension::ShaNi => 1,
            CryptoExtension::AesNi => 2,
            CryptoExtension::Vaes => 4,
        }
    }

    /// Whether a platform on `path` may carry the extension (VAES needs 512-bit registers).
    fn allowed_on(self, path: KernelPath) -> bool {
        self != CryptoExtension::Vaes || path == KernelPath::Avx512
    }
}

impl fmt::Display for CryptoExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A vector path and a set of crypto extensions this machine is known to support; see the
/// module documentation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Platform {
    path: KernelPath,
    /// [`CryptoExtension::bit`]s; each only when detected and allowed on `path`, and VAES
    /// only with AES-NI.
    extensions: u8,
}

/// Why [`FORCE_VAR`] could not be honoured.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlatformError {
    /// The variable does not say what to force; the source says why.
    #[error("{FORCE_VAR}={value:?} is not a valid setting")]
    BadValue {
        /// What was set.
        value: String,
        /// What is wrong with it.
        #[source]
        source: ForceSpecError,
    },
    /// The machine cannot run the forced vector path (the seed's `NOT_SUPPORTED`).
    #[error("{FORCE_VAR} forces the {0} path but this CPU/OS does not support it")]
    Unsupported(KernelPath),
    /// The machine cannot run a crypto extension forced on (the seed's `NOT_SUPPORTED`).
    #[error("{FORCE_VAR} forces {0} on but this CPU/OS does not support it")]
    UnsupportedExtension(CryptoExtension),
}

impl PlatformError {
    /// The seed's result code: `NotSupported` for what the machine lacks, `InvalidParams` for
    /// a value that does not parse.
    pub fn code(&self) -> AccelErrorCode {
        match self {
            PlatformError::BadValue { .. } => AccelErrorCode::InvalidParams,
            PlatformError::Unsupported(_) | PlatformError::UnsupportedExtension(_) => {
                AccelErrorCode::NotSupported
            }
        }
    }
}

impl Platform {
    /// `path` with every crypto extension this machine has that `path` allows.
    fn with_detected(path: KernelPath) -> Self {
        let extensions = CryptoExtension::ALL
            .into_iter()
            .filter(|e| e.allowed_on(path) && e.detected())
            .fold(0, |bits, e| bits | e.bit());
        Self { path, extensions }.checked()
    }

    /// Drops VAES when AES-NI is absent (the invariant every constructor keeps).
    fn checked(mut self) -> Self {
        if !self.has(CryptoExtension::AesNi) {
            self.extensions &= !CryptoExtension::Vaes.bit();
        }
        self
    }

    /// Plain Rust everywhere, no crypto extension; always available.
    pub fn portable() -> Self {
        Self {
            path: KernelPath::Portable,
            extensions: 0,
        }
    }

    /// AVX2 + FMA, if this machine has them, with SHA-NI and AES-NI where present.
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Some(Self::with_detected(KernelPath::Avx2));
        }
        None
    }

    /// AVX-512 F + BW + DQ + VL, if this machine has them, with SHA-NI, AES-NI and VAES where
    /// present.
    pub fn avx512() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return Some(Self::with_detected(KernelPath::Avx512));
        }
        None
    }

    /// The constructor for `path` ([`Platform::portable`], [`Platform::avx2`] or
    /// [`Platform::avx512`]), if this machine supports it.
    pub fn for_path(path: KernelPath) -> Option<Self> {
        match path {
            KernelPath::Portable => Some(Self::portable()),
            KernelPath::Avx2 => Self::avx2(),
            KernelPath::Avx512 => Self::avx512(),
        }
    }

    /// The best vector path available, with every crypto extension this machine has that it
    /// allows.
    pub fn best() -> Self {
        Self::avx512()
            .or_else(Self::avx2)
            .unwrap_or_else(|| Self::with_detected(KernelPath::Portable))
    }

    /// [`Platform::best`], unless [`FORCE_VAR`] is set (and not blank): then what it forces
    /// ([`Platform::from_force`]).
    pub fn detect() -> Result<Self, PlatformError> {
        match std::env::var(FORCE_VAR) {
            Ok(value) => Self::from_force(&value),
            Err(std::env::VarError::NotPresent) => Ok(Self::best()),
            Err(std::env::VarError::NotUnicode(raw)) => Err(PlatformError::BadValue {
                value: raw.to_string_lossy().into_owned(),
                source: ForceSpecError::NotUnicode,
            }),
        }
    }

    /// The platform a [`FORCE_VAR`] value asks for: [`Platform::best`] for a blank value,
    /// else the [`ForceSpec`] it parses to, checked against this machine.
    pub fn from_force(value: &str) -> Result<Self, PlatformError> {
        if value.trim().is_empty() {
            return Ok(Self::best());
        }
        let spec: ForceSpec = value.parse().map_err(|source| PlatformError::BadValue {
            value: value.to_owned(),
            source,
        })?;
        spec.resolve()
    }

    /// One platform per vector path this machine supports, portable first, each as its
    /// constructor makes it.
    pub fn available() -> Vec<Self> {
        [Some(Self::portable()), Self::avx2(), Self::avx512()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The vector path.
    pub fn path(self) -> KernelPath {
        self.path
    }

    /// Whether the platform carries `extension` (and so this machine has it).
    pub fn has(self, extension: CryptoExtension) -> bool {
        self.extensions & extension.bit() != 0
    }

    /// The crypto extensions carried, in [`CryptoExtension::ALL`] order.
    pub fn extensions(self) -> impl Iterator<Item = CryptoExtension> {
        CryptoExtension::ALL
            .into_iter()
            .filter(move |e| self.has(*e))
    }

    /// This platform with `extension` too: `None` when this machine lacks it, when the path
    /// does not allow it (VAES needs AVX-512) or when it needs one the platform lacks (VAES
    /// needs AES-NI).
    pub fn with(self, extension: CryptoExtension) -> Option<Self> {
        if !extension.allowed_on(self.path) || !extension.detected() {
            return None;
        }
        if extension == CryptoExtension::Vaes && !self.has(CryptoExtension::AesNi) {
            return None;
        }
        Some(Self {
            extensions: self.extensions | extension.bit(),
            ..self
        })
    }

    /// This platform without `extension`; without AES-NI also means without VAES, which
    /// builds on it.
    pub fn without(self, extension: CryptoExtension) -> Self {
        Self {
            extensions: self.extensions & !extension.bit(),
            ..self
        }
        .checked()
    }

    /// The same crypto extensions on another vector path (those `path` allows), if this
    /// machine supports `path`.
    pub fn with_path(self, path: KernelPath) -> Option<Self> {
        Self::for_path(path)?;
        let extensions = self
            .extensions()
            .filter(|e| e.allowed_on(path))
            .fold(0, |bits, e| bits | e.bit());
        Some(Self { path, extensions })
    }
}

impl fmt::Display for Platform {
    /// The path, then `+name` per crypto extension: `avx512+sha_ni+aes_ni+vaes`, `portable`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path.fmt(f)?;
        for e in self.extensions() {
            write!(f, "+{e}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Platform({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_paths_are_constructible_and_best_is_the_last() {
        let all = Platform::available();
        assert_eq!(all[0], Platform::portable());
        assert_eq!(all[0].extensions().count(), 0);
        assert_eq!(all.last().unwrap().path(), Platform::best().path());
        for p in all {
            assert_eq!(Platform::for_path(p.path()), Some(p));
        }
    }

    #[test]
    fn every_extension_carried_is_detected_and_allowed() {
        let mut platforms = Platform::available();
        platforms.push(Platform::best());
        for p in platforms {
            for e in p.extensions() {
                assert!(e.detected() && e.allowed_on(p.path()), "{p}: {e}");
            }
            if p.has(CryptoExtension::Vaes) {
                assert!(p.has(CryptoExtension::AesNi) && p.path() == KernelPath::Avx512);
            }
            for e in CryptoExtension::ALL {
                assert!(!p.without(e).has(e));
                if let Some(with) = p.with(e) {
                    assert!(with.has(e) && e.detected(), "{p} with {e}");
                }
            }
            assert!(!p.without(CryptoExtension::AesNi).has(CryptoExtension::Vaes));
        }
    }

    #[test]
    fn vaes_is_never_carried_off_the_avx512_path_or_without_aes_ni() {
        let portable = Platform::portable();
        assert_eq!(portable.with(CryptoExtension::Vaes), None);
        if let Some(avx512) = Platform::avx512() {
            let no_aes = avx512.without(CryptoExtension::AesNi);
            assert_eq!(no_aes.with(CryptoExtension::Vaes), None);
            if avx512.has(CryptoExtension::Vaes) {
                let down = avx512.with_path(KernelPath::Portable).unwrap();
                assert!(!down.has(CryptoExtension::Vaes));
                assert_eq!(
                    down.has(CryptoExtension::AesNi),
                    avx512.has(CryptoExtension::AesNi)
                );
            }
        }
    }

    #[test]
    fn display_lists_the_path_and_extensions() {
        assert_eq!(Platform::portable().to_string(), "portable");
        assert_eq!(format!("{:?}", Platform::portable()), "Platform(portable)");
        if let Some(p) = Platform::portable().with(CryptoExtension::AesNi) {
            assert_eq!(p.to_string(), "portable+aes_ni");
        }
        for e in CryptoExtension::ALL {
            assert_eq!(CryptoExtension::from_name(e.name()), Some(e));
        }
        assert_eq!(CryptoExtension::from_name("sse"), None);
    }

    #[test]
    fn errors_carry_the_seed_codes() {
        let bad = PlatformError::BadValue {
            value: "sse".into(),
            source: ForceSpecError::UnknownItem("sse".into()),
        };
        assert_eq!(bad.code(), AccelErrorCode::InvalidParams);
        assert_eq!(
            PlatformError::Unsupported(KernelPath::Avx512).code(),
            AccelErrorCode::NotSupported
        );
        assert_eq!(
            PlatformError::UnsupportedExtension(CryptoExtension::Vaes).code(),
            AccelErrorCode::NotSupported
        );
        let source = std::error::Error::source(&bad).map(ToString::to_string);
        assert!(source.is_some_and(|s| s.contains("\"sse\"")));
        assert!(
            bad.to_string().contains("DSMIL_ACCEL_FORCE=\"sse\""),
            "{bad}"
        );
    }
}
