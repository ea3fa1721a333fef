//! DSMIL device identifiers: 108 devices, 0x8000–0x806B, five of which are quarantined.
//!
//! Quarantined devices (0x8009, 0x800A, 0x800B, 0x8019, 0x8029) perform data destruction and
//! must never be written. Every write path goes through [`DeviceId::check_writable`], which is
//! the one place that rule lives.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// First DSMIL device id.
pub const FIRST_DEVICE: u16 = 0x8000;
/// Last DSMIL device id (inclusive).
pub const LAST_DEVICE: u16 = 0x806B;
/// Number of DSMIL devices.
pub const DEVICE_COUNT: usize = (LAST_DEVICE - FIRST_DEVICE) as usize + 1;
/// Devices that destroy data and must never be written.
pub const QUARANTINED_DEVICES: [u16; 5] = [0x8009, 0x800A, 0x800B, 0x8019, 0x8029];

/// Why a device id or a device operation was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeviceError {
    /// The number is outside 0x8000–0x806B.
    #[error("device id {0:#06x} is outside the DSMIL range 0x8000-0x806B")]
    OutOfRange(u32),
    /// The text is not a device id.
    #[error("device id {0:?} is not a number (expected e.g. \"0x8000\" or 32768)")]
    NotANumber(String),
    /// A write was attempted on a quarantined (data-destruction) device.
    #[error("device {0} is quarantined (data destruction) and must never be written")]
    Quarantined(DeviceId),
}

/// One DSMIL device, guaranteed to be within 0x8000–0x806B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(u16);

impl DeviceId {
    /// Validates a raw id.
    pub fn new(raw: u32) -> Result<Self, DeviceError> {
        match u16::try_from(raw) {
            Ok(id) if (FIRST_DEVICE..=LAST_DEVICE).contains(&id) => Ok(Self(id)),
            _ => Err(DeviceError::OutOfRange(raw)),
        }
    }

    /// The raw 16-bit id.
    pub fn get(self) -> u16 {
        self.0
    }

    /// Index of the device within the range (0 for 0x8000).
    pub fn index(self) -> usize {
        usize::from(self.0 - FIRST_DEVICE)
    }

    /// Whether the device is in the quarantine set.
    pub fn is_quarantined(self) -> bool {
        QUARANTINED_DEVICES.contains(&self.0)
    }

    /// `Ok` when the device may be written; [`DeviceError::Quarantined`] otherwise.
    pub fn check_writable(self) -> Result<(), DeviceError> {
        if self.is_quarantined() {
            Err(DeviceError::Quarantined(self))
        } else {
            Ok(())
        }
    }

    /// All 108 devices in order.
    pub fn all() -> impl Iterator<Item = DeviceId> {
        (FIRST_DEVICE..=LAST_DEVICE).map(DeviceId)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06X}", self.0)
    }
}

impl FromStr for DeviceId {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16),
            None => t.parse::<u32>(),
        };
        parsed
            .map_err(|_| DeviceError::NotANumber(s.to_owned()))
            .and_then(DeviceId::new)
    }
}

impl utoipa::PartialSchema for DeviceId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^0x80[0-6][0-9A-Fa-f]$"))
            .description(Some(
                "A DSMIL device, 0x8000-0x806B, written in hex (quarantined: 0x8009, 0x800A, 0x800B, 0x8019, 0x8029).",
            ))
            .examples(["0x8000"])
            .into()
    }
}

impl utoipa::ToSchema for DeviceId {}

impl Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts `"0x8000"`, `"32768"` or the number `32768`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Num(n) => DeviceId::new(u32::try_from(n).unwrap_or(u32::MAX))
                .map_err(serde::de::Error::custom),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn range_has_108_devices_and_five_quarantined() {
        assert_eq!(DEVICE_COUNT, 108);
        assert_eq!(DeviceId::all().count(), 108);
        let quarantined: Vec<u16> = DeviceId::all()
            .filter(|d| d.is_quarantined())
            .map(DeviceId::get)
            .collect();
        assert_eq!(quarantined, QUARANTINED_DEVICES);
    }

    #[test]
    fn bounds_are_inclusive() {
        assert!(DeviceId::new(0x8000).is_ok());
        assert!(DeviceId::new(0x806B).is_ok());
        assert_eq!(DeviceId::new(0x7FFF), Err(DeviceError::OutOfRange(0x7FFF)));
        assert_eq!(DeviceId::new(0x806C), Err(DeviceError::OutOfRange(0x806C)));
        assert_eq!(
            DeviceId::new(0x1_8000),
            Err(DeviceError::OutOfRange(0x1_8000))
        );
    }

    #[test]
    fn quarantined_devices_refuse_writes() {
        let d = DeviceId::new(0x8019).unwrap();
        let err = d.check_writable().unwrap_err();
        assert_eq!(
            err.to_string(),
            "device 0x8019 is quarantined (data destruction) and must never be written"
        );
        assert!(DeviceId::new(0x8000).unwrap().check_writable().is_ok());
    }

    #[test]
    fn parses_hex_decimal_and_json_forms() {
        assert_eq!("0x800a".parse::<DeviceId>().unwrap().get(), 0x800A);
        assert_eq!("32768".parse::<DeviceId>().unwrap().get(), 0x8000);
        assert!(matches!(
            "zz".parse::<DeviceId>(),
            Err(DeviceError::NotANumber(_))
        ));
        assert_eq!(
            serde_json::from_str::<DeviceId>("32769").unwrap().get(),
            0x8001
        );
        assert!(serde_json::from_str::<DeviceId>("\"0x9000\"").is_err());
        assert!(serde_json::from_str::<DeviceId>("-1").is_err());
        assert_eq!(
            serde_json::to_string(&DeviceId::new(0x806B).unwrap()).unwrap(),
            "\"0x806B\""
        );
    }

    proptest! {
        #[test]
        fn every_u32_is_accepted_exactly_when_in_range(raw in any::<u32>()) {
            let in_range = (0x8000..=0x806B).contains(&raw);
            prop_assert_eq!(DeviceId::new(raw).is_ok(), in_range);
        }

        #[test]
        fn serde_round_trips(raw in 0x8000u32..=0x806B) {
            let id = DeviceId::new(raw).unwrap();
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), id);
            prop_assert_eq!(id.to_string().parse::<DeviceId>().unwrap(), id);
        }
    }
}
