//! Choosing the engine for `--device auto|cpu|cuda`: CUDA where a driver, a
//! GPU and the CUDA libraries are present, the CPU otherwise, and a record
//! of which one ran and why (`summary.json`'s `engine`).

use super::cpu::{CpuEngine, CpuPrecision};
use super::cuda::{CudaEngine, CudaError};
use super::Engine;
use super::Precision;
use crate::evaldir::{EngineInfo, EngineKind};

/// Where the comparisons run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Device {
    /// CUDA when a driver and GPU are present, the CPU otherwise.
    Auto,
    Cpu,
    Cuda,
}

/// The engine a run uses and what the summary says about it.
pub(crate) struct SelectedEngine {
    pub engine: Box<dyn Engine>,
    pub info: EngineInfo,
    /// A GPU is there but could not be used (a driver too old for the
    /// CUDA libraries, say): the notice is printed even with --quiet.
    pub gpu_unusable: bool,
}

impl SelectedEngine {
    /// The one line to print when `--device auto` fell back to the CPU.
    pub(crate) fn notice(&self) -> Option<String> {
        self.info
            .fallback_reason
            .as_ref()
            .map(|why| format!("using the CPU engine: {why}"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("--device cuda: {0}")]
    CudaUnavailable(String),
    #[error("--precision {0} needs the CUDA engine (the CPU engine computes in fp32 or bf16)")]
    PrecisionNeedsCuda(&'static str),
    #[error("--device cpu --precision bf16: {0}")]
    CpuBf16(String),
}

/// Picks the engine. `auto` tries the first GPU and falls back to the CPU,
/// saying why; `cuda` without a usable GPU is an error, never a panic.
/// The CPU engine runs on the rayon pool it is called from, so `--jobs`
/// is the caller's pool, not a parameter here.
pub(crate) fn select_engine(
    device: Device,
    precision: Precision,
) -> Result<SelectedEngine, SelectError> {
    select_with(device, precision, || CudaEngine::new(0, precision))
}

/// [`select_engine`] with the CUDA engine opened by `open_gpu`.
fn select_with(
    device: Device,
    precision: Precision,
    open_gpu: impl FnOnce() -> Result<CudaEngine, CudaError>,
) -> Result<SelectedEngine, SelectError> {
    match device {
        Device::Cpu => match precision {
            Precision::Fp32 => Ok(cpu(CpuPrecision::Fp32, None)),
            Precision::Bf16 if bf16_on_cpu() => Ok(cpu(CpuPrecision::Bf16, None)),
            Precision::Bf16 => Err(SelectError::CpuBf16("this CPU lacks AVX-512 BF16".into())),
            other => Err(SelectError::PrecisionNeedsCuda(other.name())),
        },
        Device::Cuda => open_gpu()
            .map(cuda)
            .map_err(|e| SelectError::CudaUnavailable(e.to_string())),
        Device::Auto => match open_gpu() {
            Ok(engine) => Ok(cuda(engine)),
            Err(e) => {
                let mut why = e.to_string();
                // The CPU keeps bf16 where it can; tf32 and fp16 are GPU only.
                let on_cpu = match precision {
                    Precision::Bf16 if bf16_on_cpu() => CpuPrecision::Bf16,
                    _ => CpuPrecision::Fp32,
                };
                if on_cpu == CpuPrecision::Fp32 && precision != Precision::Fp32 {
                    why.push_str(&format!("; fp32 instead of {}", precision.name()));
                }
                let mut selected = cpu(on_cpu, Some(why));
                selected.gpu_unusable = e.gpu_unusable();
                Ok(selected)
            }
        },
    }
}

fn bf16_on_cpu() -> bool {
    CpuEngine::with_precision(CpuPrecision::Bf16).is_ok()
}

fn cpu(precision: CpuPrecision, fallback_reason: Option<String>) -> SelectedEngine {
    let engine = CpuEngine::with_precision(precision)
        .expect("callers check that the CPU supports the precision");
    let info = EngineInfo {
        kind: EngineKind::Cpu,
        description: engine.description(),
        precision: match precision {
            CpuPrecision::Fp32 => "fp32",
            CpuPrecision::Bf16 => "bf16",
        }
        .into(),
        fallback_reason,
        // Filled from the results' `score_error` once the jobs have run.
        max_abs_score_error: None,
        precision_note: None,
    };
    SelectedEngine {
        engine: Box::new(engine),
        info,
        gpu_unusable: false,
    }
}

fn cuda(engine: CudaEngine) -> SelectedEngine {
    let info = EngineInfo {
        kind: EngineKind::Cuda,
        description: engine.description(),
        precision: engine.precision().name().into(),
        fallback_reason: None,
        // Filled from the results' `score_error` once the jobs have run.
        max_abs_score_error: None,
        precision_note: None,
    };
    SelectedEngine {
        engine: Box::new(engine),
        info,
        gpu_unusable: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a GPU, auto falls back with a reason and cuda is an error;
    /// with one, both give the CUDA engine. Neither panics.
    #[test]
    fn auto_falls_back_and_cuda_fails_cleanly_without_a_gpu() {
        let auto = select_engine(Device::Auto, Precision::Fp32).unwrap();
        let cuda = select_engine(Device::Cuda, Precision::Fp32);
        match auto.info.kind {
            EngineKind::Cpu => {
                let why = auto.info.fallback_reason.clone().unwrap();
                assert!(!why.is_empty());
                assert!(auto.notice().unwrap().starts_with("using the CPU engine: "));
                let err = cuda
                    .err()
                    .expect("cuda must fail where auto fell back")
                    .to_string();
                assert!(err.starts_with("--device cuda: "), "{err}");
                eprintln!("no usable GPU here ({why}): CUDA selection tested as a fallback only");
            }
            EngineKind::Cuda => {
                assert!(auto.info.fallback_reason.is_none());
                assert_eq!(cuda.unwrap().info.kind, EngineKind::Cuda);
            }
            EngineKind::ScoreFile => panic!("an engine was asked for"),
        }
    }

    /// A driver too old for NVRTC: auto falls back, saying so with both
    /// versions, loudly; cuda is an error with the same line.
    #[test]
    fn an_old_driver_makes_auto_fall_back_loudly() {
        use crate::compare::cuda::libs::{CudaVersion, Versions};
        let old = Versions {
            driver: CudaVersion {
                major: 12,
                minor: 4,
            },
            nvrtc: CudaVersion {
                major: 13,
                minor: 0,
            },
        };
        let probe = || Err(CudaError::Unusable(old.check().unwrap_err()));
        let auto = select_with(Device::Auto, Precision::Fp32, probe).unwrap();
        assert_eq!(auto.info.kind, EngineKind::Cpu);
        assert!(auto.gpu_unusable);
        let notice = auto.notice().unwrap();
        assert!(
            notice.starts_with("using the CPU engine: the NVIDIA driver supports CUDA 12.4"),
            "{notice}"
        );
        assert!(
            notice.contains("NVRTC is CUDA 13.0") && !notice.contains('\n'),
            "{notice}"
        );
        let err = select_with(Device::Cuda, Precision::Fp32, probe)
            .err()
            .unwrap();
        assert!(err.to_string().contains("CUDA 12.4"), "{err}");
        let missing = || Err(CudaError::Unavailable("libcuda not found".into()));
        let quiet = select_with(Device::Auto, Precision::Fp32, missing).unwrap();
        assert!(!quiet.gpu_unusable);
    }

    #[test]
    fn cpu_is_fp32_or_bf16() {
        let cpu = select_engine(Device::Cpu, Precision::Fp32).unwrap();
        assert_eq!(
            (cpu.info.kind, cpu.info.precision.as_str()),
            (EngineKind::Cpu, "fp32")
        );
        assert!(cpu.notice().is_none());
        for gpu_only in [Precision::Tf32, Precision::Fp16] {
            let err = select_engine(Device::Cpu, gpu_only).err().unwrap();
            assert!(matches!(err, SelectError::PrecisionNeedsCuda(_)), "{err}");
        }
        match select_engine(Device::Cpu, Precision::Bf16) {
            Ok(bf16) => {
                assert!(bf16_on_cpu());
                assert_eq!(bf16.info.precision, "bf16");
                assert!(bf16.info.description.contains("BF16"));
            }
            Err(err) => {
                assert!(!bf16_on_cpu());
                assert!(matches!(err, SelectError::CpuBf16(_)), "{err}");
            }
        }
    }
}
