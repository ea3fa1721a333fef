//! [`AccelError`]: what an accelerator operation can fail with, mapped onto the seed's codes.

use std::collections::TryReserveError;

use dsmil_core::ports::PortError;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::crypto::aes::AesError;
use crate::crypto::chacha20::ChachaError;

/// The seed's AVX-512 result codes (`avx512_result_code_t`), with their numeric values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccelErrorCode {
    /// The operation needs a CPU feature this machine lacks.
    #[error("not supported on this CPU")]
    NotSupported = -1,
    /// Parameters are invalid (lengths, alignment, counts).
    #[error("invalid parameters")]
    InvalidParams = -2,
    /// Memory could not be allocated.
    #[error("insufficient memory")]
    InsufficientMemory = -3,
    /// Work refused or reduced because of thermal pressure.
    #[error("thermal throttle")]
    ThermalThrottle = -4,
    /// NUMA-local allocation failed.
    #[error("NUMA allocation failed")]
    NumaAllocationFailed = -5,
    /// The operation did not finish in time.
    #[error("operation timed out")]
    OperationTimeout = -6,
    /// The hardware misbehaved.
    #[error("hardware failure")]
    HardwareFailure = -7,
    /// The work queue is full.
    #[error("queue full")]
    QueueFull = -8,
}

impl AccelErrorCode {
    /// The seed's numeric code.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The error for a numeric code; `None` for 0 (success) and unknown codes.
    pub fn from_code(code: i32) -> Option<Self> {
        use AccelErrorCode::*;
        [
            NotSupported,
            InvalidParams,
            InsufficientMemory,
            ThermalThrottle,
            NumaAllocationFailed,
            OperationTimeout,
            HardwareFailure,
            QueueFull,
        ]
        .into_iter()
        .find(|e| e.code() == code)
    }
}

/// Why an accelerator operation failed. [`AccelError::code`] gives the seed's numeric code.
/// Where an underlying error exists it is kept as the [`source`](std::error::Error::source),
/// not flattened into the message.
#[derive(Debug, Error)]
pub enum AccelError {
    /// The operation needs a CPU feature this machine lacks.
    #[error("not supported on this CPU")]
    NotSupported,
    /// A parameter is invalid; the message names it.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// The AES-256 kernels refused their input (key count or length, block or stream count).
    #[error("invalid AES-256 parameters")]
    Aes(#[from] AesError),
    /// The ChaCha20 kernels refused their input (key or nonce length, counter overflow).
    #[error("invalid ChaCha20 parameters")]
    Chacha20(#[from] ChachaError),
    /// Memory could not be allocated (or the size does not fit the address space).
    #[error("insufficient memory")]
    InsufficientMemory,
    /// The allocator refused a buffer of `bytes` bytes.
    #[error("insufficient memory for {bytes} bytes")]
    Allocation {
        /// Bytes asked for.
        bytes: usize,
        /// The allocator's error.
        #[source]
        source: TryReserveError,
    },
    /// Work refused or reduced because of thermal pressure.
    #[error("thermal throttle")]
    ThermalThrottle,
    /// NUMA-local allocation failed.
    #[error("NUMA allocation failed")]
    NumaAllocationFailed,
    /// The operation did not finish in time.
    #[error("operation timed out")]
    OperationTimeout,
    /// The hardware (or the thread running the work) misbehaved; the message says how.
    #[error("hardware failure: {0}")]
    HardwareFailure(String),
    /// The OS refused to start one of the engine's threads.
    #[error("cannot start thread {thread}")]
    Spawn {
        /// The thread's name (`dsmil-accel-N`, `dsmil-accel-thermal`).
        thread: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The engine's bounded queue is full; retry later.
    #[error("queue full")]
    QueueFull,
    /// The engine is shut down and accepts no more work.
    #[error("the compute engine is shut down")]
    ShutDown,
    /// The submitted job panicked; the message is the panic's, when it had one.
    /// The worker survives.
    #[error("job panicked: {0}")]
    JobPanicked(String),
}

impl AccelError {
    /// The seed's result code for this error. [`AccelError::ShutDown`] maps to
    /// [`AccelErrorCode::QueueFull`] (the queue accepts no more work), the AES and ChaCha20
    /// refusals to [`AccelErrorCode::InvalidParams`], [`AccelError::Allocation`] to
    /// [`AccelErrorCode::InsufficientMemory`], and [`AccelError::Spawn`] and
    /// [`AccelError::JobPanicked`] to [`AccelErrorCode::HardwareFailure`].
    pub fn code(&self) -> AccelErrorCode {
        match self {
            AccelError::NotSupported => AccelErrorCode::NotSupported,
            AccelError::InvalidParams(_) | AccelError::Aes(_) | AccelError::Chacha20(_) => {
                AccelErrorCode::InvalidParams
            }
            AccelError::InsufficientMemory | AccelError::Allocation { .. } => {
                AccelErrorCode::InsufficientMemory
            }
            AccelError::ThermalThrottle => AccelErrorCode::ThermalThrottle,
            AccelError::NumaAllocationFailed => AccelErrorCode::NumaAllocationFailed,
            AccelError::OperationTimeout => AccelErrorCode::OperationTimeout,
            AccelError::HardwareFailure(_)
            | AccelError::Spawn { .. }
            | AccelError::JobPanicked(_) => AccelErrorCode::HardwareFailure,
            AccelError::QueueFull | AccelError::ShutDown => AccelErrorCode::QueueFull,
        }
    }
}

impl From<AccelError> for PortError {
    /// Invalid parameters are the caller's fault; a full, throttled or shut-down engine is
    /// unavailable; everything else is a backend failure. The message includes the sources.
    fn from(e: AccelError) -> Self {
        let message = dsmil_core::report::chain(&e);
        match e {
            AccelError::InvalidParams(_) | AccelError::Aes(_) | AccelError::Chacha20(_) => {
                PortError::InvalidInput(message)
            }
            AccelError::QueueFull | AccelError::ShutDown | AccelError::ThermalThrottle => {
                PortError::Unavailable(message)
            }
            _ => PortError::Backend(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_seed() {
        let cases = [
            (AccelError::NotSupported, -1),
            (AccelError::InvalidParams("x".into()), -2),
            (AccelError::InsufficientMemory, -3),
            (AccelError::ThermalThrottle, -4),
            (AccelError::NumaAllocationFailed, -5),
            (AccelError::OperationTimeout, -6),
            (AccelError::HardwareFailure("x".into()), -7),
            (AccelError::QueueFull, -8),
            (AccelError::JobPanicked("boom".into()), -7),
            (AccelError::ShutDown, -8),
            (AccelError::Aes(AesError::KeyCount(0)), -2),
            (AccelError::Chacha20(ChachaError::KeyLength(3)), -2),
            (
                AccelError::Spawn {
                    thread: "t".into(),
                    source: std::io::Error::other("no"),
                },
                -7,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code().code(), code, "{err}");
        }
        assert!(
            AccelError::JobPanicked("boom".into())
                .to_string()
                .contains("panicked")
        );
    }

    #[test]
    fn error_codes_round_trip() {
        assert_eq!(AccelErrorCode::NotSupported.code(), -1);
        assert_eq!(AccelErrorCode::QueueFull.code(), -8);
        for code in -8..=-1 {
            assert_eq!(
                AccelErrorCode::from_code(code).map(AccelErrorCode::code),
                Some(code)
            );
        }
        assert_eq!(AccelErrorCode::from_code(0), None);
        assert_eq!(AccelErrorCode::from_code(-9), None);
    }

    #[test]
    fn port_errors_keep_the_kind() {
        assert!(matches!(
            PortError::from(AccelError::InvalidParams("k".into())),
            PortError::InvalidInput(_)
        ));
        assert!(matches!(
            PortError::from(AccelError::QueueFull),
            PortError::Unavailable(_)
        ));
        assert!(matches!(
            PortError::from(AccelError::JobPanicked("p".into())),
            PortError::Backend(_)
        ));
    }

    #[test]
    fn sources_are_kept_and_reach_port_messages() {
        use std::error::Error as _;
        let err = AccelError::from(ChachaError::NonceLength(16));
        assert_eq!(err.to_string(), "invalid ChaCha20 parameters");
        let source = err.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("nonce is 16 bytes, expected 12"));
        match PortError::from(err) {
            PortError::InvalidInput(m) => {
                assert_eq!(
                    m,
                    "invalid ChaCha20 parameters: nonce is 16 bytes, expected 12"
                )
            }
            other => panic!("{other:?}"),
        }
        let spawn = AccelError::Spawn {
            thread: "dsmil-accel-0".into(),
            source: std::io::Error::other("out of threads"),
        };
        assert!(
            spawn
                .source()
                .is_some_and(|s| s.to_string() == "out of threads")
        );
        assert!(
            matches!(PortError::from(spawn), PortError::Backend(m) if m.ends_with("out of threads"))
        );
    }
}
