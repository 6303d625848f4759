//! Finding the CUDA libraries at run time.
//!
//! cudarc loads libcuda, libnvrtc and libcublas with `dlopen` on first use
//! and panics when one is missing, so every entry point checks them here
//! first. Besides the loader's own search (`LD_LIBRARY_PATH`, ldconfig),
//! the folder named by `FACEKIT_NVRTC_LIB_DIR` (where the PyPI wheels
//! `nvidia-cuda-nvrtc` and `nvidia-cublas` put `libnvrtc.so.13` and
//! `libcublas.so.13`, `site-packages/nvidia/cu13/lib`) is loaded from by
//! full path: once a library is loaded, a later `dlopen` of its bare name
//! finds it.

use std::sync::Once;

/// The variable naming a folder that holds libnvrtc (and maybe libcublas).
pub const LIB_DIR_VAR: &str = "FACEKIT_NVRTC_LIB_DIR";

/// Loads the CUDA libraries found in `$FACEKIT_NVRTC_LIB_DIR`, once per
/// process. The NVRTC builtins go first: libnvrtc opens them by name when
/// it compiles, and would not look in that folder itself.
pub(crate) fn preload_from_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Some(dir) = std::env::var_os(LIB_DIR_VAR) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        for prefix in [
            "libnvrtc-builtins.so",
            "libnvrtc.so",
            "libcublasLt.so",
            "libcublas.so",
        ] {
            for name in names.iter().filter(|n| n.starts_with(prefix)) {
                load_global(&std::path::Path::new(&dir).join(name));
            }
        }
    });
}

#[cfg(unix)]
fn load_global(path: &std::path::Path) {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: these are NVIDIA's libraries; their initialisers only set up
    // their own state. Kept loaded for the life of the process.
    if let Ok(lib) = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL) } {
        std::mem::forget(lib);
    }
}

#[cfg(not(unix))]
fn load_global(_path: &std::path::Path) {}

/// Whether NVRTC can be loaded (it needs no GPU).
pub fn nvrtc_present() -> bool {
    preload_from_env();
    // SAFETY: a dlopen probe; it loads nothing it keeps and never panics.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Why the CUDA engine cannot start here, if a library is missing.
pub(crate) fn missing_library() -> Option<String> {
    preload_from_env();
    // SAFETY: dlopen probes, as above.
    unsafe {
        if !cudarc::driver::sys::is_culib_present() {
            return Some("libcuda not found (no NVIDIA driver)".into());
        }
        if !cudarc::nvrtc::sys::is_culib_present() {
            return Some(format!(
                "libnvrtc not found (install the nvidia-cuda-nvrtc wheel and put its lib folder on \
                 LD_LIBRARY_PATH or in {LIB_DIR_VAR})"
            ));
        }
        if !cudarc::cublas::sys::is_culib_present() {
            return Some(
                "libcublas not found (install the nvidia-cublas wheel and put its lib folder on \
                 LD_LIBRARY_PATH)"
                    .into(),
            );
        }
    }
    None
}

/// A CUDA version, as the driver and NVRTC report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CudaVersion {
    pub major: i32,
    pub minor: i32,
}

impl std::fmt::Display for CudaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The CUDA versions the driver and NVRTC present here support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Versions {
    pub driver: CudaVersion,
    pub nvrtc: CudaVersion,
}

impl Versions {
    /// Asks the driver and NVRTC (both libraries must be present).
    pub fn probe() -> Result<Versions, String> {
        let mut driver = 0i32;
        let (mut major, mut minor) = (0i32, 0i32);
        // SAFETY: plain queries writing one integer each; cuDriverGetVersion
        // needs no cuInit.
        unsafe {
            cudarc::driver::sys::cuDriverGetVersion(&mut driver)
                .result()
                .map_err(|e| format!("the driver's version: {e:?}"))?;
            cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor)
                .result()
                .map_err(|e| format!("NVRTC's version: {e:?}"))?;
        }
        Ok(Versions {
            driver: CudaVersion {
                major: driver / 1000,
                minor: driver % 1000 / 10,
            },
            nvrtc: CudaVersion { major, minor },
        })
    }

    /// Whether the driver can load what this NVRTC compiles. The kernels
    /// are machine code for the GPU (no PTX for the driver to compile), so
    /// a driver of NVRTC's major version is enough (CUDA's minor-version
    /// compatibility); an older major version is not.
    pub fn check(&self) -> Result<(), String> {
        if self.driver.major >= self.nvrtc.major {
            return Ok(());
        }
        Err(format!(
            "the NVIDIA driver supports CUDA {} but NVRTC is CUDA {}, whose code it cannot load: \
             install a driver for CUDA {} or later, or NVRTC and cuBLAS of CUDA {} (e.g. pip install \
             nvidia-cuda-nvrtc-cu{} nvidia-cublas-cu{}) with their lib folder in {LIB_DIR_VAR}",
            self.driver, self.nvrtc, self.nvrtc.major, self.driver.major, self.driver.major, self.driver.major
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: i32, minor: i32) -> CudaVersion {
        CudaVersion { major, minor }
    }

    /// An R550 driver (CUDA 12.4) under NVRTC 13.0: one line naming both
    /// versions and the remedies.
    #[test]
    fn an_old_driver_is_named_with_both_versions() {
        let old = Versions {
            driver: v(12, 4),
            nvrtc: v(13, 0),
        };
        let msg = old.check().unwrap_err();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(
            msg.contains("driver supports CUDA 12.4") && msg.contains("NVRTC is CUDA 13.0"),
            "{msg}"
        );
        assert!(msg.contains("nvidia-cuda-nvrtc-cu12"), "{msg}");
        for ok in [v(13, 0), v(13, 1), v(12, 9)] {
            let newer = Versions {
                driver: ok,
                nvrtc: if ok.major == 12 { v(12, 8) } else { v(13, 0) },
            };
            assert_eq!(newer.check(), Ok(()), "{newer:?}");
        }
    }
}
