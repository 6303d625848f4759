//! The CUDA kernels' sources (`kernels/*.cu`, in the repository) and their
//! compilation by NVRTC at run time, to machine code (CUBIN) for the GPU
//! present: the driver then has no PTX to compile, so a driver older than
//! NVRTC's PTX version still loads it, and the build needs no CUDA toolkit.

use std::ffi::CString;

use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys, Ptx};

use super::params;

/// Definitions every kernel file starts with.
const COMMON: &str = include_str!("kernels/common.cuh");

/// Threads per block of the fold kernel (also its -DBLOCK).
pub(crate) const FOLD_BLOCK: u32 = 512;
/// The longest candidate list the fold keeps (in registers, two per lane
/// per 32 entries).
pub const MAX_TOP_K: usize = 64;
/// Threads of the tail maintenance block (its TB).
pub(crate) const TAIL_BLOCK: u32 = 1024;

/// One kernel file and the functions it defines.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub file: &'static str,
    text: &'static str,
    pub functions: &'static [&'static str],
}

pub(crate) const CONVERT: Source = Source {
    file: "convert.cu",
    text: include_str!("kernels/convert.cu"),
    functions: &["f32_to_bf16", "f32_to_f16", "gather_scores"],
};
pub(crate) const GENUINE: Source = Source {
    file: "genuine.cu",
    text: include_str!("kernels/genuine.cu"),
    functions: &["genuine"],
};
pub(crate) const TAIL: Source = Source {
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
    match source.file {
        f if f == FOLD.file => fold_defines(10),
        f if f == TAIL.file => vec![format!("-DTB={TAIL_BLOCK}")],
        _ => Vec::new(),
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

/// A kernel file compiled for one GPU architecture.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The CUBIN image.
    pub cubin: Vec<u8>,
    /// ptxas' report: registers, stack frame, spills per function.
    pub report: String,
}

impl Compiled {
    pub fn module(&self) -> Ptx {
        Ptx::from_binary(self.cubin.clone())
    }

    /// Bytes of register spill stores, summed over the file's functions.
    pub fn spill_store_bytes(&self) -> u64 {
        self.report
            .lines()
            .filter_map(|l| l.split_once(" bytes spill stores"))
            .filter_map(|(before, _)| before.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

/// [`compile`], once per process for each file, architecture and set of
/// -D options (NVRTC takes 0.1 to 1 s a file; engines made later reuse it).
pub(crate) fn compile_cached(
    source: &Source,
    arch: &str,
    defines: &[String],
) -> Result<Compiled, CompileError> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Key = (&'static str, String, Vec<String>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Compiled>>> = OnceLock::new();
    let key = (source.file, arch.to_string(), defines.to_vec());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let compiled = compile(source, arch, defines)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, compiled.clone());
    Ok(compiled)
}

/// Compiles one kernel file to CUBIN for `arch` ("sm_90"), with ptxas'
/// resource report.
pub fn compile(source: &Source, arch: &str, defines: &[String]) -> Result<Compiled, CompileError> {
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        "--ptxas-options=-v".to_string(),
    ];
    options.extend(params::struct_defines());
    options.extend(defines.iter().cloned());
    let fail = |log: String| CompileError {
        file: source.file,
        arch: arch.to_string(),
        defines: defines.join(" "),
        log,
    };
    let text = format!("{COMMON}\n#line 1 \"{}\"\n{}", source.file, source.text);
    let text = CString::new(text).map_err(|_| fail("a NUL byte in the source".into()))?;
    let name = CString::new(source.file).map_err(|_| fail("a NUL byte in the name".into()))?;
    // cudarc panics if a symbol is missing from the library it loaded.
    std::panic::catch_unwind(|| nvrtc_cubin(&text, &name, &options))
        .unwrap_or_else(|_| Err("NVRTC panicked (an incompatible libnvrtc?)".into()))
        .map_err(fail)
}

/// NVRTC's steps: create, compile, read the log and the CUBIN, destroy.
fn nvrtc_cubin(text: &CString, name: &CString, options: &[String]) -> Result<Compiled, String> {
    let prog = nvrtc::create_program(text, Some(name)).map_err(|e| e.to_string())?;
    // SAFETY: `prog` was just created and is destroyed once, below; the
    // source and name it refers to outlive it.
    let out = unsafe {
        let compiled = nvrtc::compile_program(prog, options);
        let log = nvrtc::get_program_log(prog)
            .map(|l| {
                let bytes: Vec<u8> = l.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
                String::from_utf8_lossy(&bytes).trim().to_string()
            })
            .unwrap_or_default();
        let result = match compiled {
            Err(e) => Err(if log.is_empty() { e.to_string() } else { log }),
            Ok(()) => get_cubin(prog)
                .map(|cubin| Compiled { cubin, report: log })
                .map_err(|e| e.to_string()),
        };
        let _ = nvrtc::destroy_program(prog);
        result
    };
    out
}

/// # Safety
/// `prog` must be a live, compiled program.
unsafe fn get_cubin(prog: nvrtc_sys::nvrtcProgram) -> Result<Vec<u8>, nvrtc::NvrtcError> {
    let mut size = 0usize;
    nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size).result()?;
    let mut cubin = vec![0u8; size];
    nvrtc_sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast()).result()?;
    Ok(cubin)
}
