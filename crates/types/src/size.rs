//! Dyno sizes, named and sized like Heroku's.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DynoSize {
    Eco,
    Basic,
    Standard1X,
    Standard2X,
    PerformanceM,
    PerformanceL,
}

impl DynoSize {
    pub const ALL: [DynoSize; 6] = [
        DynoSize::Eco,
        DynoSize::Basic,
        DynoSize::Standard1X,
        DynoSize::Standard2X,
        DynoSize::PerformanceM,
        DynoSize::PerformanceL,
    ];

    /// Display name as Heroku's API returns it.
    pub fn name(self) -> &'static str {
        match self {
            DynoSize::Eco => "Eco",
            DynoSize::Basic => "Basic",
            DynoSize::Standard1X => "Standard-1X",
            DynoSize::Standard2X => "Standard-2X",
            DynoSize::PerformanceM => "Performance-M",
            DynoSize::PerformanceL => "Performance-L",
        }
    }

    pub fn memory_mb(self) -> u64 {
        match self {
            DynoSize::Eco | DynoSize::Basic | DynoSize::Standard1X => 512,
            DynoSize::Standard2X => 1024,
            DynoSize::PerformanceM => 2560,
            DynoSize::PerformanceL => 14336,
        }
    }

    /// Where the memory cgroup kills the dyno (R15): twice the quota, as Heroku does
    /// for these sizes. Between quota and this limit the dyno runs and logs R14.
    pub fn kill_memory_mb(self) -> u64 {
        self.memory_mb() * 2
    }

    /// Relative CPU weight (cgroup shares).
    pub fn cpu_shares(self) -> u64 {
        match self {
            DynoSize::Eco | DynoSize::Basic | DynoSize::Standard1X => 1024,
            DynoSize::Standard2X => 2048,
            DynoSize::PerformanceM => 4096,
            DynoSize::PerformanceL => 8192,
        }
    }

    pub fn pids_limit(self) -> i64 {
        match self {
            DynoSize::Eco | DynoSize::Basic | DynoSize::Standard1X => 256,
            DynoSize::Standard2X => 512,
            DynoSize::PerformanceM | DynoSize::PerformanceL => 16384,
        }
    }

    /// Only eco dynos sleep when idle.
    pub fn sleeps(self) -> bool {
        self == DynoSize::Eco
    }
}

impl fmt::Display for DynoSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown dyno size {0:?}. Sizes: eco, basic, standard-1x, standard-2x, performance-m, performance-l.")]
pub struct UnknownSize(pub String);

impl FromStr for DynoSize {
    type Err = UnknownSize;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "eco" | "free" => DynoSize::Eco,
            "basic" | "hobby" => DynoSize::Basic,
            "standard-1x" | "1x" | "standard1x" => DynoSize::Standard1X,
            "standard-2x" | "2x" | "standard2x" => DynoSize::Standard2X,
            "performance-m" | "px" | "performance" => DynoSize::PerformanceM,
            "performance-l" => DynoSize::PerformanceL,
            _ => return Err(UnknownSize(s.chars().take(40).collect())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heroku_spellings() {
        assert_eq!(
            "Standard-2X".parse::<DynoSize>().unwrap(),
            DynoSize::Standard2X
        );
        assert_eq!(
            "standard-1x".parse::<DynoSize>().unwrap(),
            DynoSize::Standard1X
        );
        assert_eq!("eco".parse::<DynoSize>().unwrap(), DynoSize::Eco);
        assert!("huge".parse::<DynoSize>().is_err());
        for s in DynoSize::ALL {
            assert_eq!(s.name().parse::<DynoSize>().unwrap(), s);
        }
        assert_eq!(DynoSize::PerformanceL.memory_mb(), 14 * 1024);
    }
}
