//! [`EngineConfig`]: how many workers, how deep the queue, pinning and thermal limits.

use std::fmt;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::error::AccelError;

/// Reads the temperature to compare with the threshold, in °C; `None` when there is no reading.
pub type ThermalSensor = Arc<dyn Fn() -> Option<f64> + Send + Sync>;

/// Settings of an [`Engine`](super::Engine). `Default` gives the documented defaults.
#[derive(Clone)]
pub struct EngineConfig {
    /// Worker threads. Default (`None`): one per core in `topology.avx512_cores` when the
    /// platform is AVX-512, else one per online core.
    pub workers: Option<usize>,
    /// Jobs that may wait in the queue; a submit beyond it fails with `QueueFull`.
    /// Default 1024.
    pub queue_capacity: usize,
    /// Pin each worker to one allowed core. Default `true`.
    pub pin_threads: bool,
    /// Above this temperature the thermal scale applies. Default 95.0 °C.
    pub thermal_threshold_celsius: f64,
    /// How often the sensor is read. Default 1 s.
    pub thermal_poll: Duration,
    /// Scale applied while over the threshold, in (0, 1]. Default 0.5.
    pub thermal_scale: f64,
    /// Where the temperature comes from. Default [`sysfs_thermal_sensor`]: the hottest
    /// `/sys/class/thermal/thermal_zone*`.
    pub thermal_sensor: ThermalSensor,
}

/// Degrees below the threshold the temperature must fall to before throttling ends.
pub const THERMAL_HYSTERESIS_CELSIUS: f64 = 5.0;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: None,
            queue_capacity: 1024,
            pin_threads: true,
            thermal_threshold_celsius: 95.0,
            thermal_poll: Duration::from_secs(1),
            thermal_scale: 0.5,
            thermal_sensor: sysfs_thermal_sensor(),
        }
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("workers", &self.workers)
            .field("queue_capacity", &self.queue_capacity)
            .field("pin_threads", &self.pin_threads)
            .field("thermal_threshold_celsius", &self.thermal_threshold_celsius)
            .field("thermal_poll", &self.thermal_poll)
            .field("thermal_scale", &self.thermal_scale)
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), AccelError> {
        let bad =
            |field: &str, why: String| Err(AccelError::InvalidParams(format!("{field}: {why}")));
        if self.workers == Some(0) {
            return bad("workers", "must be at least 1".into());
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity", "must be at least 1".into());
        }
        if !self.thermal_threshold_celsius.is_finite() {
            return bad(
                "thermal_threshold_celsius",
                format!(
                    "{} is not a finite temperature",
                    self.thermal_threshold_celsius
                ),
            );
        }
        if self.thermal_poll.is_zero() {
            return bad("thermal_poll", "must be longer than zero".into());
        }
        if !(self.thermal_scale > 0.0 && self.thermal_scale <= 1.0) {
            return bad(
                "thermal_scale",
                format!("{} is outside (0, 1]", self.thermal_scale),
            );
        }
        Ok(())
    }
}

/// The hottest thermal zone of this machine (`/sys/class/thermal`), in °C.
pub fn sysfs_thermal_sensor() -> ThermalSensor {
    Arc::new(|| max_zone_temperature(Path::new("/sys/class/thermal")))
}

/// The highest `thermal_zone*/temp` (millidegrees) under `dir`, in °C; `None` when no zone
/// has a readable temperature.
pub fn max_zone_temperature(dir: &Path) -> Option<f64> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| fs::read_to_string(e.path().join("temp")).ok())
        .filter_map(|s| s.trim().parse::<i64>().ok())
        .map(|milli| milli as f64 / 1000.0)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let c = EngineConfig::default();
        assert_eq!(c.workers, None);
        assert_eq!(c.queue_capacity, 1024);
        assert!(c.pin_threads);
        assert_eq!(c.thermal_threshold_celsius, 95.0);
        assert_eq!(c.thermal_poll, Duration::from_secs(1));
        assert_eq!(c.thermal_scale, 0.5);
        c.validate().unwrap();
        assert!(format!("{c:?}").contains("queue_capacity: 1024"));
    }

    #[test]
    fn zone_temperatures_are_read_as_the_maximum() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(max_zone_temperature(dir.path()), None);
        assert_eq!(max_zone_temperature(&dir.path().join("missing")), None);
        for (zone, milli) in [
            ("thermal_zone0", "41000\n"),
            ("thermal_zone1", "67500\n"),
            ("thermal_zone2", "garbage"),
        ] {
            let z = dir.path().join(zone);
            fs::create_dir(&z).unwrap();
            fs::write(z.join("temp"), milli).unwrap();
        }
        fs::create_dir(dir.path().join("cooling_device0")).unwrap();
        fs::write(dir.path().join("cooling_device0/temp"), "99000").unwrap();
        assert_eq!(max_zone_temperature(dir.path()), Some(67.5));
    }
}
