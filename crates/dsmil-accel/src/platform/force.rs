//! The syntax of [`FORCE_VAR`](super::FORCE_VAR): a comma-separated list of items, blanks
//! around items ignored.
//!
//! - at most one vector path: `portable`, `avx2` or `avx512` (none named: the best this
//!   machine has);
//! - `-sha_ni`, `-aes_ni`, `-vaes`: that crypto extension off (`-aes_ni` also turns VAES off,
//!   which builds on it);
//! - `+sha_ni`, `+aes_ni`, `+vaes` (or the bare name): that extension on — an error when the
//!   machine lacks it. Needed only on the portable path, which carries no extension unless
//!   asked; `avx2` and `avx512` already carry every extension present.
//!
//! `avx512` is AVX-512 with every extension present; `avx512,-vaes` AES-NI instead of VAES;
//! `avx2,-sha_ni,-aes_ni` AVX2 with portable crypto; `portable,+aes_ni` plain Rust except
//! AES-NI; `-sha_ni` the best path without SHA-NI.

use std::collections::BTreeSet;
use std::str::FromStr;

use dsmil_core::KernelPath;
use thiserror::Error;

use super::{CryptoExtension, Platform, PlatformError};

/// A parsed [`FORCE_VAR`](super::FORCE_VAR) value: what to force, before it is checked
/// against this machine ([`ForceSpec::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForceSpec {
    /// The vector path named; `None`: the best this machine has.
    pub path: Option<KernelPath>,
    /// Extensions forced on (`+name` or `name`).
    pub on: BTreeSet<CryptoExtension>,
    /// Extensions forced off (`-name`).
    pub off: BTreeSet<CryptoExtension>,
}

/// Why a [`FORCE_VAR`](super::FORCE_VAR) value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ForceSpecError {
    /// Two commas with nothing between them (or a leading or trailing comma).
    #[error("item {index} is empty")]
    EmptyItem {
        /// Its position, from 0.
        index: usize,
    },
    /// An item that is neither a path nor an extension.
    #[error(
        "unknown item {0:?}: expected portable, avx2 or avx512, or sha_ni, aes_ni or vaes \
         with an optional + (on) or - (off)"
    )]
    UnknownItem(String),
    /// More than one vector path.
    #[error("two paths named, {0} and {1}: name at most one")]
    TwoPaths(KernelPath, KernelPath),
    /// The same extension both on and off.
    #[error("{0} is forced both on and off")]
    OnAndOff(CryptoExtension),
    /// VAES forced on with a path other than AVX-512.
    #[error("+vaes needs the avx512 path (it runs on 512-bit registers), not {0}")]
    VaesNeedsAvx512(KernelPath),
    /// VAES forced on with AES-NI forced off.
    #[error("+vaes needs aes_ni (its key schedule), which -aes_ni turns off")]
    VaesNeedsAesNi,
    /// The variable is not valid UTF-8.
    #[error("the value is not valid UTF-8")]
    NotUnicode,
}

impl FromStr for ForceSpec {
    type Err = ForceSpecError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let mut spec = ForceSpec::default();
        for (index, item) in value.split(',').map(str::trim).enumerate() {
            if item.is_empty() {
                return Err(ForceSpecError::EmptyItem { index });
            }
            let (on, name) = if let Some(rest) = item.strip_prefix('+') {
                (true, rest)
            } else if let Some(rest) = item.strip_prefix('-') {
                (false, rest)
            } else {
                (true, item)
            };
            let name = name.trim();
            if let Some(extension) = CryptoExtension::from_name(name) {
                if on {
                    spec.on.insert(extension);
                } else {
                    spec.off.insert(extension);
                }
                continue;
            }
            let path: KernelPath = match item.parse() {
                Ok(path) => path,
                Err(_) => return Err(ForceSpecError::UnknownItem(item.to_owned())),
            };
            if let Some(first) = spec.path.replace(path) {
                return Err(ForceSpecError::TwoPaths(first, path));
            }
        }
        if let Some(both) = spec.on.intersection(&spec.off).next() {
            return Err(ForceSpecError::OnAndOff(*both));
        }
        if spec.on.contains(&CryptoExtension::Vaes) {
            if let Some(path) = spec.path.filter(|p| *p != KernelPath::Avx512) {
                return Err(ForceSpecError::VaesNeedsAvx512(path));
            }
            if spec.off.contains(&CryptoExtension::AesNi) {
                return Err(ForceSpecError::VaesNeedsAesNi);
            }
        }
        Ok(spec)
    }
}

impl ForceSpec {
    /// The platform this asks for on this machine: the path's constructor (or
    /// [`Platform::best`]), minus what is forced off, plus what is forced on.
    /// [`PlatformError::Unsupported`] / [`PlatformError::UnsupportedExtension`] name what the
    /// machine lacks; nothing is silently replaced.
    pub fn resolve(&self) -> Result<Platform, PlatformError> {
        let mut platform = match self.path {
            Some(path) => Platform::for_path(path).ok_or(PlatformError::Unsupported(path))?,
            None => Platform::best(),
        };
        for extension in &self.off {
            platform = platform.without(*extension);
        }
        // In `CryptoExtension` order, so AES-NI is on before VAES is asked for.
        for extension in &self.on {
            if !platform.has(*extension) {
                platform = platform
                    .with(*extension)
                    .ok_or(PlatformError::UnsupportedExtension(*extension))?;
            }
        }
        Ok(platform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CryptoExtension::{AesNi, ShaNi, Vaes};

    fn spec(
        path: Option<KernelPath>,
        on: &[CryptoExtension],
        off: &[CryptoExtension],
    ) -> ForceSpec {
        ForceSpec {
            path,
            on: on.iter().copied().collect(),
            off: off.iter().copied().collect(),
        }
    }

    fn check(value: &str, expected: Result<ForceSpec, ForceSpecError>) {
        assert_eq!(value.parse::<ForceSpec>(), expected, "{value:?}");
    }

    #[test]
    fn paths_and_extensions_parse() {
        use KernelPath::*;
        check("portable", Ok(spec(Some(Portable), &[], &[])));
        check(" avx2 ", Ok(spec(Some(Avx2), &[], &[])));
        check("avx512", Ok(spec(Some(Avx512), &[], &[])));
        check(
            "avx512,-sha_ni,-vaes",
            Ok(spec(Some(Avx512), &[], &[ShaNi, Vaes])),
        );
        check("-vaes", Ok(spec(None, &[], &[Vaes])));
        check(
            "portable, +aes_ni, sha_ni",
            Ok(spec(Some(Portable), &[AesNi, ShaNi], &[])),
        );
        check("- aes_ni", Ok(spec(None, &[], &[AesNi])));
        check("+vaes,avx512", Ok(spec(Some(Avx512), &[Vaes], &[])));
        check("-vaes,-vaes", Ok(spec(None, &[], &[Vaes])));
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        use KernelPath::*;
        check("sse", Err(ForceSpecError::UnknownItem("sse".into())));
        check(
            "avx512,-sse",
            Err(ForceSpecError::UnknownItem("-sse".into())),
        );
        check("+avx2", Err(ForceSpecError::UnknownItem("+avx2".into())));
        check("AVX2", Err(ForceSpecError::UnknownItem("AVX2".into())));
        check("avx2,", Err(ForceSpecError::EmptyItem { index: 1 }));
        check(",avx2", Err(ForceSpecError::EmptyItem { index: 0 }));
        check("avx2,avx512", Err(ForceSpecError::TwoPaths(Avx2, Avx512)));
        check("+sha_ni,-sha_ni", Err(ForceSpecError::OnAndOff(ShaNi)));
        check("avx2,+vaes", Err(ForceSpecError::VaesNeedsAvx512(Avx2)));
        check(
            "portable,vaes",
            Err(ForceSpecError::VaesNeedsAvx512(Portable)),
        );
        check("+vaes,-aes_ni", Err(ForceSpecError::VaesNeedsAesNi));
        let message = "sse9".parse::<ForceSpec>().unwrap_err().to_string();
        assert!(
            message.contains("\"sse9\"") && message.contains("portable, avx2 or avx512"),
            "{message}"
        );
    }

    #[test]
    fn resolving_removes_adds_and_refuses() {
        let best = Platform::best();
        assert_eq!(ForceSpec::default().resolve(), Ok(best));
        assert_eq!(spec(None, &[], &[Vaes]).resolve(), Ok(best.without(Vaes)));
        assert_eq!(
            spec(None, &[], &[AesNi]).resolve().map(|p| p.has(Vaes)),
            Ok(false)
        );
        let portable = spec(Some(KernelPath::Portable), &[], &[]).resolve();
        assert_eq!(portable, Ok(Platform::portable()));
        for extension in CryptoExtension::ALL {
            let on = spec(Some(KernelPath::Portable), &[extension], &[]).resolve();
            match Platform::portable().with(extension) {
                Some(p) => assert_eq!(on, Ok(p)),
                None => assert_eq!(on, Err(PlatformError::UnsupportedExtension(extension))),
            }
        }
        for path in [KernelPath::Avx2, KernelPath::Avx512] {
            let resolved = spec(Some(path), &[], &[]).resolve();
            match Platform::for_path(path) {
                Some(p) => assert_eq!(resolved, Ok(p)),
                None => assert_eq!(resolved, Err(PlatformError::Unsupported(path))),
            }
        }
        let vaes = spec(Some(KernelPath::Avx512), &[Vaes], &[]).resolve();
        match Platform::avx512() {
            Some(p) if p.has(Vaes) => assert_eq!(vaes, Ok(p)),
            Some(_) => assert_eq!(vaes, Err(PlatformError::UnsupportedExtension(Vaes))),
            None => assert_eq!(vaes, Err(PlatformError::Unsupported(KernelPath::Avx512))),
        }
    }

    #[test]
    fn from_force_wraps_parse_errors_with_the_value() {
        assert_eq!(Platform::from_force(""), Ok(Platform::best()));
        assert_eq!(Platform::from_force("  "), Ok(Platform::best()));
        assert_eq!(
            Platform::from_force("sse"),
            Err(PlatformError::BadValue {
                value: "sse".into(),
                source: ForceSpecError::UnknownItem("sse".into()),
            })
        );
        assert_eq!(Platform::from_force("portable"), Ok(Platform::portable()));
    }
}
