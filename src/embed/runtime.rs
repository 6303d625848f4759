//! Finding and loading onnxruntime at run time. facekit links no ONNX
//! library: it loads `libonnxruntime` from where users already have it (the
//! `pip install onnxruntime` of their Python environment, usually), probes
//! it (the `OrtGetApiBase` symbol and its version string) before any call
//! into it, and only then hands it to the `ort` crate, so a missing or
//! unusable library is a one-line error, never a panic.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The oldest onnxruntime the `ort` API level built in (`api-17`) accepts.
const MIN_MINOR_VERSION: u32 = 17;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RuntimeError {
    #[error(
        "onnxruntime not found (looked in: {looked}); install it with `pip install onnxruntime` \
         (or `onnxruntime-gpu` for CUDA) in the active Python environment, or pass --onnxruntime PATH"
    )]
    NotFound { looked: String },
    #[error("{path}: cannot load onnxruntime: {reason}")]
    Unloadable { path: PathBuf, reason: String },
    #[error("{path}: onnxruntime {version} is too old; facekit needs 1.{MIN_MINOR_VERSION} or newer (`pip install -U onnxruntime`)")]
    TooOld { path: PathBuf, version: String },
}

/// Where a library candidate came from, for `embed.json` and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    pub path: PathBuf,
    pub source: &'static str,
}

/// What the search looks at; a struct so tests can drive the search without
/// touching the process environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchPlaces {
    pub flag: Option<PathBuf>,
    pub ort_dylib_path: Option<PathBuf>,
    pub virtual_env: Option<PathBuf>,
    pub conda_prefix: Option<PathBuf>,
    /// The `onnxruntime` package folder that `python3` on PATH would import.
    pub python_package: Option<PathBuf>,
}

impl SearchPlaces {
    /// The places of this process: the flag, then the environment, then
    /// `python3` on PATH (asked where the package is, without importing it).
    pub(crate) fn of_process(flag: Option<&Path>) -> SearchPlaces {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let mut places = SearchPlaces {
            flag: flag.map(Path::to_path_buf),
            ort_dylib_path: var("ORT_DYLIB_PATH"),
            virtual_env: var("VIRTUAL_ENV"),
            conda_prefix: var("CONDA_PREFIX"),
            python_package: None,
        };
        if places.flag.is_none() && places.ort_dylib_path.is_none() {
            places.python_package = python_package_dir();
        }
        places
    }

    /// Candidates in the order the search tries them. An explicit path (the
    /// flag or `ORT_DYLIB_PATH`) is the only candidate when given: a user
    /// who names a library wants that one or an error, not another.
    fn candidates(&self) -> Vec<Candidate> {
        if let Some(path) = &self.flag {
            return vec![Candidate {
                path: path.clone(),
                source: "--onnxruntime",
            }];
        }
        if let Some(path) = &self.ort_dylib_path {
            return vec![Candidate {
                path: path.clone(),
                source: "ORT_DYLIB_PATH",
            }];
        }
        let mut out = Vec::new();
        for (prefix, source) in [
            (&self.virtual_env, "VIRTUAL_ENV"),
            (&self.conda_prefix, "CONDA_PREFIX"),
        ] {
            if let Some(prefix) = prefix {
                for package in site_packages(prefix) {
                    out.extend(library_in(&package).map(|path| Candidate { path, source }));
                }
            }
        }
        if let Some(package) = &self.python_package {
            out.extend(library_in(package).map(|path| Candidate {
                path,
                source: "python3 on PATH",
            }));
        }
        // Last, the dynamic loader's own search (LD_LIBRARY_PATH, ld.so.cache).
        for name in ["libonnxruntime.so", "libonnxruntime.so.1"] {
            out.push(Candidate {
                path: PathBuf::from(name),
                source: "system library path",
            });
        }
        out
    }
}

/// `PREFIX/lib/python3.*/site-packages/onnxruntime` (and `lib64`).
fn site_packages(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for lib in ["lib", "lib64"] {
        let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
            })
            .collect();
        pythons.sort();
        out.extend(
            pythons
                .into_iter()
                .map(|p| p.join("site-packages").join("onnxruntime")),
        );
    }
    out
}

/// The shared library inside an `onnxruntime` package folder: the wheel
/// ships `capi/libonnxruntime.so.<version>`.
fn library_in(package: &Path) -> Option<PathBuf> {
    let capi = package.join("capi");
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&capi)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n == "libonnxruntime.so" || n.starts_with("libonnxruntime.so.")
            })
        })
        .collect();
    libs.sort();
    libs.pop()
}

/// Asks `python3` where its `onnxruntime` package is, without importing it
/// (an import takes a second and can fail for reasons of its own).
fn python_package_dir() -> Option<PathBuf> {
    let script = "import importlib.util as u; s = u.find_spec('onnxruntime'); \
                  print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    let out = Command::new("python3").args(["-c", script]).output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// A library that answered the probe.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    pub path: PathBuf,
    pub source: &'static str,
    pub version: String,
}

/// Finds the first candidate that loads and is recent enough, and makes it
/// the library `ort` uses for the rest of the process.
pub(crate) fn load(places: &SearchPlaces) -> Result<Runtime, RuntimeError> {
    let candidates = places.candidates();
    let explicit = places.flag.is_some() || places.ort_dylib_path.is_some();
    let mut looked = Vec::new();
    for candidate in candidates {
        let bare_name = candidate.path.components().count() == 1;
        if !bare_name && !candidate.path.exists() {
            if explicit {
                return Err(RuntimeError::Unloadable {
                    path: candidate.path,
                    reason: format!("no such file (from {})", candidate.source),
                });
            }
            looked.push(candidate.source.to_string());
            continue;
        }
        match probe(&candidate.path) {
            Ok(version) => {
                ort::init_from(&candidate.path).map_err(|e| RuntimeError::Unloadable {
                    path: candidate.path.clone(),
                    reason: e.to_string(),
                })?;
                return Ok(Runtime {
                    path: candidate.path,
                    source: candidate.source,
                    version,
                });
            }
            // A library that is there but unusable is worth a precise error;
            // a bare name the loader cannot find is just "not found".
            Err(e) if !bare_name || explicit => return Err(e),
            Err(_) => looked.push(candidate.source.to_string()),
        }
    }
    looked.dedup();
    Err(RuntimeError::NotFound {
        looked: if looked.is_empty() {
            "nowhere".into()
        } else {
            looked.join(", ")
        },
    })
}

/// Loads the library and reads its version through `OrtGetApiBase`, the
/// one entry point every onnxruntime exports.
fn probe(path: &Path) -> Result<String, RuntimeError> {
    let unloadable = |reason: String| RuntimeError::Unloadable {
        path: path.to_path_buf(),
        reason,
    };
    // SAFETY: loading a shared library runs its initialisers; the path is
    // one the user pointed at (or onnxruntime's own wheel), which is what
    // loading a runtime means.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| unloadable(e.to_string()))?;
    // SAFETY: the symbol's type is onnxruntime's C API entry point,
    // `const OrtApiBase* OrtGetApiBase(void)`.
    let get_base = unsafe {
        lib.get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase")
    }
    .map_err(|_| unloadable("no OrtGetApiBase symbol: not an onnxruntime library".into()))?;
    // SAFETY: OrtGetApiBase takes no arguments and returns a static struct.
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(unloadable("OrtGetApiBase returned null".into()));
    }
    // SAFETY: `base` is non-null and points at the library's static
    // OrtApiBase; GetVersionString returns a static NUL-terminated string.
    let version = unsafe {
        let ptr = ((*base).GetVersionString)();
        if ptr.is_null() {
            return Err(unloadable("no version string".into()));
        }
        CStr::from_ptr(ptr).to_string_lossy().into_owned()
    };
    let minor = version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m >= MIN_MINOR_VERSION && version.starts_with("1.") => Ok(version),
        _ => Err(RuntimeError::TooOld {
            path: path.to_path_buf(),
            version,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_is_the_only_candidate() {
        let places = SearchPlaces {
            flag: Some("/opt/ort/libonnxruntime.so".into()),
            ort_dylib_path: Some("/elsewhere.so".into()),
            virtual_env: Some("/venv".into()),
            ..SearchPlaces::default()
        };
        assert_eq!(
            places.candidates(),
            [Candidate {
                path: "/opt/ort/libonnxruntime.so".into(),
                source: "--onnxruntime"
            }]
        );
        let err = load(&places).unwrap_err().to_string();
        assert!(
            err.starts_with("/opt/ort/libonnxruntime.so: cannot load onnxruntime: no such file"),
            "{err}"
        );
    }

    #[test]
    fn the_virtual_env_comes_before_the_system() {
        let venv = tempfile::tempdir().unwrap();
        let capi = venv
            .path()
            .join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime.so.1.32.0"), b"").unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        let places = SearchPlaces {
            virtual_env: Some(venv.path().into()),
            ..SearchPlaces::default()
        };
        let c = places.candidates();
        assert_eq!(c[0].path, capi.join("libonnxruntime.so.1.32.0"));
        assert_eq!(c[0].source, "VIRTUAL_ENV");
        assert_eq!(c.last().unwrap().source, "system library path");
        // An empty file is there but not a library: a precise error.
        let err = load(&places).unwrap_err().to_string();
        assert!(err.contains("cannot load onnxruntime"), "{err}");
    }

    #[test]
    fn nothing_found_says_how_to_get_it() {
        match load(&SearchPlaces::default()) {
            Err(err @ RuntimeError::NotFound { .. }) => {
                assert!(err.to_string().contains("pip install onnxruntime"), "{err}")
            }
            Err(other) => panic!("expected not found, got {other}"),
            Ok(rt) => eprintln!(
                "SKIPPED nothing_found_says_how_to_get_it: the system has {}",
                rt.path.display()
            ),
        }
    }
}
