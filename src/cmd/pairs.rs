//! `facekit pairs DIR --out PAIRS_DIR`: seeded verification pairs from the
//! evaluation set `convert --holdout` wrote, as the K-Face pair list
//! (`pairs.txt`) and the arcface_torch `.bin` of the aligned crops. They
//! replace the previous pairs in PAIRS_DIR and record the fingerprint of
//! the dataset they were drawn from.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use polars::prelude::{ParquetReader, SerReader};

use crate::cli::PairsArgs;
use crate::kface::{Attributes, Selection};
use crate::output::{self, AtomicFile, OutputDir};
use crate::pairs::{self, EvalImage, PairRequest};
use crate::shard::verification_bin;

pub fn run(args: &PairsArgs) -> anyhow::Result<()> {
    let eval = args.dir.join("eval");
    let manifest = eval.join("manifest.parquet");
    let images = read_eval_set(&manifest)?;
    let selection = |spec: &Option<String>, flag: &str| -> anyhow::Result<Selection> {
        match spec {
            Some(s) => s.parse().with_context(|| format!("--{flag}")),
            None => Ok(Selection::all()),
        }
    };
    let request = PairRequest {
        positives: args.positives,
        negatives: args.negatives,
        first: selection(&args.first, "first")?,
        second: selection(&args.second, "second")?,
        seed: args.seed,
    };
    if args.name.is_empty() || args.name.contains(['/', '\\']) || args.name.starts_with('.') {
        bail!(
            "--name {:?}: a plain file name is expected (the .bin is written as NAME.bin)",
            args.name
        );
    }
    let pairs = pairs::sample(&images, &request).with_context(|| manifest.display().to_string())?;

    let mut out = OutputDir::begin(&args.out, "pairs", true)?;
    out.derived_from(&args.dir, "convert")?;
    let txt_name = "pairs.txt";
    let bin_name = format!("{}.bin", args.name);
    out.check_free(&[txt_name, &bin_name])?;
    let txt_path = out.stage().join(txt_name);
    output::write_atomic(&txt_path, pairs::pairs_txt(&images, &pairs).as_bytes())
        .with_context(|| format!("{}: cannot write", txt_path.display()))?;

    let bin_path = out.stage().join(&bin_name);
    let order: Vec<usize> = pairs.iter().flat_map(|p| [p.first, p.second]).collect();
    let issame: Vec<bool> = pairs.iter().map(|p| p.genuine).collect();
    let bar = output::progress(order.len() as u64, "pairs", args.output.quiet);
    let crops = order.iter().map(|&i| {
        bar.inc(1);
        let path = eval.join(&images[i].path);
        fs::read(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    });
    let mut bin = AtomicFile::create(&bin_path)
        .with_context(|| format!("{}: cannot create", bin_path.display()))?;
    verification_bin::write(&mut bin, crops, &issame)
        .with_context(|| format!("{}: cannot write", bin_path.display()))?;
    bin.commit()
        .with_context(|| format!("{}: cannot write", bin_path.display()))?;
    bar.finish_and_clear();
    out.commit()?;

    let genuine = pairs.iter().filter(|p| p.genuine).count();
    print_summary(
        args,
        &Summary {
            pairs: pairs.len(),
            genuine,
            impostor: pairs.len() - genuine,
            images: images.len(),
            pairs_txt: args.out.join(txt_name),
            bin: args.out.join(bin_name),
        },
    )?;
    Ok(())
}

struct Summary {
    pairs: usize,
    genuine: usize,
    impostor: usize,
    images: usize,
    pairs_txt: PathBuf,
    bin: PathBuf,
}

fn print_summary(args: &PairsArgs, s: &Summary) -> std::io::Result<()> {
    if args.output.json {
        let json = serde_json::json!({
            "pairs": s.pairs,
            "genuine": s.genuine,
            "impostor": s.impostor,
            "eval_images": s.images,
            "pairs_txt": s.pairs_txt.display().to_string(),
            "bin": s.bin.display().to_string(),
        });
        crate::output::print(&format!("{json}\n"))?;
    } else if !args.output.quiet {
        crate::output::print(&format!(
            "{} pairs ({} genuine, {} impostor) from {} eval images: {}, {}\n",
            s.pairs,
            s.genuine,
            s.impostor,
            s.images,
            s.pairs_txt.display(),
            s.bin.display()
        ))?;
    }
    Ok(())
}

/// A code such as `S001`, `L7`, `E02`, `C13`, as its number.
fn code(value: &str, letter: char) -> Option<u8> {
    let rest = value
        .strip_prefix(letter)
        .or_else(|| value.strip_prefix(letter.to_ascii_lowercase()))?;
    rest.parse().ok()
}

/// The images of `eval/manifest.parquet`: path (relative to `eval/`),
/// identity and the four condition codes; rows with a `status` other than
/// `ok` are left out.
pub(crate) fn read_eval_set(manifest: &Path) -> anyhow::Result<Vec<EvalImage>> {
    let file = fs::File::open(manifest).with_context(|| {
        format!(
            "{}: cannot open the eval manifest (was DIR converted with --holdout?)",
            manifest.display()
        )
    })?;
    let df = ParquetReader::new(file)
        .finish()
        .with_context(|| format!("{}: not a readable Parquet file", manifest.display()))?;
    let text = |name: &str| -> anyhow::Result<Vec<Option<String>>> {
        let column = df
            .column(name)
            .with_context(|| format!("{}: no column {name:?}", manifest.display()))?;
        let column = column
            .str()
            .with_context(|| format!("{}: column {name:?} is not text", manifest.display()))?;
        Ok(column.iter().map(|v| v.map(str::to_string)).collect())
    };
    let paths = text("path")?;
    let identities = text("identity")?;
    let codes = [
        text("accessory")?,
        text("light")?,
        text("expression")?,
        text("camera")?,
    ];
    let status = if df.column("status").is_ok() {
        Some(text("status")?)
    } else {
        None
    };
    let mut images = Vec::with_capacity(paths.len());
    for row in 0..paths.len() {
        if status
            .as_ref()
            .is_some_and(|s| s[row].as_deref() != Some("ok"))
        {
            continue;
        }
        let bad = || {
            anyhow::anyhow!(
                "{}: row {row}: missing or malformed path, identity or condition code",
                manifest.display()
            )
        };
        let (Some(path), Some(identity)) = (&paths[row], &identities[row]) else {
            return Err(bad());
        };
        let get = |k: usize, letter: char| codes[k][row].as_deref().and_then(|v| code(v, letter));
        let attrs = match (get(0, 'S'), get(1, 'L'), get(2, 'E'), get(3, 'C')) {
            (Some(s), Some(l), Some(e), Some(c)) => Attributes::new(s, l, e, c),
            _ => None,
        }
        .ok_or_else(bad)?;
        images.push(EvalImage {
            path: path.clone(),
            identity: identity.clone(),
            attrs,
        });
    }
    if images.is_empty() {
        bail!("{}: the eval set holds no image", manifest.display());
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_codes_parse_as_shipped() {
        assert_eq!(code("S001", 'S'), Some(1));
        assert_eq!(code("L30", 'L'), Some(30));
        assert_eq!(code("E02", 'E'), Some(2));
        assert_eq!(code("c7", 'C'), Some(7));
        assert_eq!(code("7", 'C'), None);
        assert_eq!(code("Cx", 'C'), None);
    }
}
