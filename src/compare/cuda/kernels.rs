//! The CUDA kernels' sources (`kernels/*.cu`, in the repository) and their
//! compilation by NVRTC at run time for the GPU present, so the build needs
//! no CUDA toolkit.

use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

/// Definitions every kernel file starts with.
const COMMON: &str = include_str!("kernels/common.cuh");

/// Threads per block of the fold kernel (also its -DBLOCK).
pub const FOLD_BLOCK: u32 = 512;
/// The longest candidate list the fold keeps in registers per lane.
pub const MAX_TOP_K: usize = 64;

/// One kernel file and the functions it defines.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub file: &'static str,
    text: &'static str,
    pub functions: &'static [&'static str],
}

pub const CONVERT: Source = Source {
    file: "convert.cu",
    text: include_str!("kernels/convert.cu"),
    functions: &["f32_to_bf16", "f32_to_f16", "gather_scores"],
};
pub const GENUINE: Source = Source {
    file: "genuine.cu",
    text: include_str!("kernels/genuine.cu"),
    functions: &["genuine_f32", "genuine_bf16", "genuine_f16"],
};
pub const TAIL: Source = Source {
    file: "tail.cu",
    text: include_str!("kernels/tail.cu"),
    functions: &["tail_maintain"],
};
pub const FOLD: Source = Source {
    file: "fold.cu",
    text: include_str!("kernels/fold.cu"),
    functions: &["fold_tile"],
};

/// Every kernel file.
pub const ALL: [Source; 4] = [CONVERT, GENUINE, TAIL, FOLD];

/// The -D options of the fold for a top-k length.
pub fn fold_defines(top_k: usize) -> Vec<String> {
    vec![format!("-DTOPK={top_k}"), format!("-DBLOCK={FOLD_BLOCK}")]
}

/// The -D options a file needs (the fold's for the usual top-10).
pub fn default_defines(source: &Source) -> Vec<String> {
    if source.file == FOLD.file {
        fold_defines(10)
    } else {
        Vec::new()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("NVRTC could not compile {file} for {arch} ({defines}): {log}")]
pub struct CompileError {
    pub file: &'static str,
    pub arch: String,
    pub defines: String,
    pub log: String,
}

/// [`compile`], once per process for each file, architecture and set of
/// -D options (NVRTC takes 0.1 to 1 s a file; engines made later reuse it).
pub fn compile_cached(
    source: &Source,
    arch: &str,
    defines: &[String],
) -> Result<Ptx, CompileError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Key = (&'static str, String, Vec<String>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Ptx>>> = OnceLock::new();
    let key = (source.file, arch.to_string(), defines.to_vec());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(ptx) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(ptx.clone());
    }
    let ptx = compile(source, arch, defines)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, ptx.clone());
    Ok(ptx)
}

/// Compiles one kernel file to PTX for `arch` ("sm_90").
pub fn compile(source: &Source, arch: &str, defines: &[String]) -> Result<Ptx, CompileError> {
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
    ];
    options.extend(defines.iter().cloned());
    let opts = CompileOptions {
        options,
        name: Some(source.file.to_string()),
        ..Default::default()
    };
    let text = format!("{COMMON}\n#line 1 \"{}\"\n{}", source.file, source.text);
    let fail = |log: String| CompileError {
        file: source.file,
        arch: arch.to_string(),
        defines: defines.join(" "),
        log,
    };
    // cudarc panics if a symbol is missing from the library it loaded.
    match std::panic::catch_unwind(|| compile_ptx_with_opts(text, opts)) {
        Ok(Ok(ptx)) => Ok(ptx),
        Ok(Err(cudarc::nvrtc::CompileError::CompileError { log, .. })) => {
            Err(fail(log.to_string_lossy().trim().to_string()))
        }
        Ok(Err(e)) => Err(fail(format!("{e:?}"))),
        Err(_) => Err(fail("NVRTC panicked (an incompatible libnvrtc?)".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel compiles to PTX for Hopper (sm_90) through NVRTC, which
    /// needs no GPU: CI installs the `nvidia-cuda-nvrtc==13.0.*` wheel and
    /// names its lib folder in FACEKIT_NVRTC_LIB_DIR (or LD_LIBRARY_PATH).
    /// With FACEKIT_PTXAS naming the `ptxas` of the `nvidia-cuda-nvcc`
    /// wheel, the PTX is also assembled for sm_90, and the fold for the
    /// usual top-10 must not spill registers.
    #[test]
    fn every_kernel_compiles_for_sm90() {
        if !super::super::libs::nvrtc_present() {
            crate::require::skip(
                "nvrtc",
                "every_kernel_compiles_for_sm90",
                &format!(
                    "libnvrtc not found (set {} to the nvidia-cuda-nvrtc wheel's lib folder)",
                    super::super::libs::LIB_DIR_VAR
                ),
            );
            return;
        }
        let mut variants: Vec<(Source, Vec<String>)> =
            ALL.iter().map(|s| (*s, default_defines(s))).collect();
        for k in [0, 1, MAX_TOP_K] {
            variants.push((FOLD, fold_defines(k)));
        }
        for (source, defines) in &variants {
            let ptx = compile(source, "sm_90", defines).unwrap_or_else(|e| panic!("{e}"));
            let text = ptx.to_src();
            assert!(
                text.contains(".target sm_90"),
                "{}: no sm_90 target",
                source.file
            );
            for f in source.functions {
                assert!(
                    text.contains(&format!(".entry {f}(")),
                    "{}: no entry {f}",
                    source.file
                );
            }
            if let Some(ptxas) = std::env::var_os("FACEKIT_PTXAS") {
                let report = assemble(&ptxas, &text);
                if defines.contains(&"-DTOPK=10".to_string()) {
                    assert!(
                        report.contains(" 0 bytes spill stores"),
                        "{}: spills\n{report}",
                        source.file
                    );
                }
            }
        }
    }

    /// Runs ptxas on the PTX for sm_90 and returns its resource report.
    fn assemble(ptxas: &std::ffi::OsStr, ptx: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.ptx");
        std::fs::write(&path, ptx).unwrap();
        let out = std::process::Command::new(ptxas)
            .args(["-arch=sm_90", "-v", "-o"])
            .arg(dir.path().join("k.cubin"))
            .arg(&path)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "ptxas failed:\n{report}");
        eprintln!("{report}");
        report
    }
}
