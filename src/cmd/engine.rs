//! The comparison engine that `--device` and `--precision` ask for: one
//! choice for `evaluate` and `search`, the command-line enums mapped to the
//! library's.

use crate::cli::{DeviceChoice, Precision as PrecisionArg};
use crate::compare::select::{self, Device, SelectError, SelectedEngine};
use crate::compare::Precision;

impl From<DeviceChoice> for Device {
    fn from(d: DeviceChoice) -> Device {
        match d {
            DeviceChoice::Auto => Device::Auto,
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda => Device::Cuda,
        }
    }
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Tf32 => Precision::Tf32,
            PrecisionArg::Bf16 => Precision::Bf16,
            PrecisionArg::Fp16 => Precision::Fp16,
        }
    }
}

/// The engine for `--device D --precision P`.
pub(crate) fn select_engine(
    device: DeviceChoice,
    precision: PrecisionArg,
) -> Result<SelectedEngine, SelectError> {
    select::select_engine(device.into(), precision.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// The names users type are the names summaries record.
    #[test]
    fn precision_names_survive_the_mapping() {
        for arg in PrecisionArg::value_variants() {
            let typed = arg.to_possible_value().unwrap();
            assert_eq!(Precision::from(*arg).name(), typed.get_name());
        }
    }
}
