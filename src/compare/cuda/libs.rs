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
pub fn preload_from_env() {
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
pub fn missing_library() -> Option<String> {
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
