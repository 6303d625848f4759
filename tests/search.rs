//! `facekit search` against known answers: a small embeddings directory
//! whose scores are fixed by construction (unit axes plus known offsets),
//! Korean identity names, and a threshold taken from an evaluate run.

use std::path::Path;
use std::process::{Command, Output};

use facekit::evaldir;
use facekit::evalinput::npy;
use serde_json::Value;
use unicode_width::UnicodeWidthStr;

const DIM: usize = 16;
const GALLERY: [&str; 4] = ["홍길동", "김철수", "이영희", "박민수"];
const OUT_OF_DB: [&str; 2] = ["최지우", "정우성"];

fn axis(i: usize, weight: f32, v: &mut [f32]) {
    v[i] += weight;
}

/// Gallery row i is axis i. Mated probe (i, j) is axis i plus a nuisance
/// axis (cosine 1/sqrt(1 + w²) ≥ 0.78); out-of-DB probe k is a nuisance axis
/// plus a little of gallery axis k % 4 (cosine ≤ 0.41). Probe 0 equals the
/// gallery row of 김철수 exactly.
fn write_emb_dir(dir: &Path) {
    let mut data = Vec::new();
    let mut labels = String::from("identity,role,path\n");
    let mut push = |v: [f32; DIM], identity: &str, role: &str, path: &str| {
        data.extend_from_slice(&v);
        labels.push_str(&format!("{identity},{role},{path}\n"));
    };
    for (i, name) in GALLERY.iter().enumerate() {
        let mut v = [0f32; DIM];
        axis(i, 1.0, &mut v);
        push(v, name, "gallery", &format!("gallery/{name}.jpg"));
    }
    let mut exact = [0f32; DIM];
    axis(1, 1.0, &mut exact);
    push(exact, "김철수", "probe", "probe/김철수_exact.jpg");
    for (i, name) in GALLERY.iter().enumerate() {
        for j in 0..3 {
            let mut v = [0f32; DIM];
            axis(i, 1.0, &mut v);
            axis(4 + (3 * i + j) % 12, 0.3 + 0.1 * (i + j) as f32, &mut v);
            push(v, name, "probe", &format!("probe/{name}_{j}.jpg"));
        }
    }
    for k in 0..12 {
        let mut v = [0f32; DIM];
        axis(4 + k, 1.0, &mut v);
        axis(k % 4, 0.03 * (k + 1) as f32, &mut v);
        let name = OUT_OF_DB[k % 2];
        push(v, name, "probe", &format!("probe/{name}_{k}.jpg"));
    }
    std::fs::create_dir_all(dir).unwrap();
    npy::write_f32(&dir.join("embeddings.npy"), data.len() / DIM, DIM, &data).unwrap();
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
}

fn facekit(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facekit"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("facekit runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn search_json(cwd: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "search",
        "--gallery",
        "emb",
        "--probes",
        "emb",
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(facekit(cwd, &args))).expect("JSON output")
}

fn probes(doc: &Value) -> &Vec<Value> {
    doc["probes"].as_array().expect("probes array")
}

#[test]
fn known_answers_with_a_cosine_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    write_emb_dir(&tmp.path().join("emb"));
    let doc = search_json(tmp.path(), &["--threshold", "0.5", "--top-k", "3"]);
    assert_eq!(doc["gallery_rows"], 4);
    let probes = probes(&doc);
    assert_eq!(probes.len(), 1 + 12 + 12);

    // The probe equal to a gallery row finds it at score 1.
    let exact = &probes[0];
    assert_eq!(exact["probe"], "probe/김철수_exact.jpg");
    assert_eq!(exact["decision"], "김철수");
    assert_eq!(exact["candidates"][0]["identity"], "김철수");
    let cos = exact["candidates"][0]["cosine"].as_f64().unwrap();
    assert!((cos - 1.0).abs() < 1e-6, "{cos}");
    assert!(exact["candidates"][0]["distance"].as_f64().unwrap() < 1e-3);

    for p in probes {
        let label = p["label"].as_str().unwrap();
        let candidates = p["candidates"].as_array().unwrap();
        assert_eq!(candidates.len(), 3, "three distinct identities");
        let ids: Vec<&str> = candidates
            .iter()
            .map(|c| c["identity"].as_str().unwrap())
            .collect();
        assert!(
            ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
            "{ids:?}"
        );
        let best = candidates[0]["cosine"].as_f64().unwrap();
        if GALLERY.contains(&label) {
            assert_eq!(p["decision"], label, "in-DB probe {}", p["probe"]);
            assert!(best >= 0.78, "{best}");
        } else {
            // Out-of-DB probes score below the threshold: unknown.
            assert_eq!(p["decision"], "unknown", "out-of-DB probe {}", p["probe"]);
            assert!(best < 0.5, "{best}");
        }
        let d = candidates[0]["distance"].as_f64().unwrap();
        assert!((d - evaldir::cosine_to_l2(best)).abs() < 1e-9);
    }
}

#[test]
fn threshold_from_an_evaluate_run() {
    let tmp = tempfile::tempdir().unwrap();
    write_emb_dir(&tmp.path().join("emb"));
    ok(facekit(
        tmp.path(),
        &[
            "evaluate",
            "--embeddings",
            "emb/embeddings.npy",
            "--labels",
            "emb/labels.csv",
            "--bootstrap",
            "0",
            "--out",
            "eval",
            "--quiet",
        ],
    ));
    let summary = evaldir::read_summary(&tmp.path().join("eval")).unwrap();
    let point = summary
        .identification
        .as_ref()
        .and_then(|i| i.operating_points.iter().find(|p| p.fpir_target == 0.1))
        .expect("an FPIR 0.1 operating point");

    let doc = search_json(tmp.path(), &["--threshold", "eval:fpir=0.1"]);
    assert_eq!(doc["threshold"]["cosine"].as_f64(), Some(point.threshold));
    let mut accepted_out_of_db = 0;
    for p in probes(&doc) {
        let best = p["candidates"][0]["cosine"].as_f64().unwrap();
        let expected = if best >= point.threshold {
            p["candidates"][0]["identity"].as_str().unwrap()
        } else {
            "unknown"
        };
        assert_eq!(p["decision"], expected, "{}", p["probe"]);
        if OUT_OF_DB.contains(&p["label"].as_str().unwrap()) && expected != "unknown" {
            accepted_out_of_db += 1;
        }
    }
    // FPIR <= 10% of the 12 out-of-DB probes.
    assert!(accepted_out_of_db <= 1, "{accepted_out_of_db}");

    // A target the run did not measure: the error lists the ones it did.
    let out = facekit(
        tmp.path(),
        &[
            "search",
            "--gallery",
            "emb",
            "--probes",
            "emb",
            "--threshold",
            "eval:fpir=0.05",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no fpir=0.05 operating point"), "{err}");
    assert!(
        err.contains("fpir=0.1") && err.contains("fmr=0.001"),
        "{err}"
    );
}

#[test]
fn korean_names_align_in_the_table_and_csv_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    write_emb_dir(&tmp.path().join("emb"));
    let table = ok(facekit(
        tmp.path(),
        &[
            "search",
            "--gallery",
            "emb",
            "--probes",
            "emb",
            "--top-k",
            "1",
            "--threshold",
            "0.5",
        ],
    ));
    let lines: Vec<&str> = table.lines().skip(1).collect();
    assert!(lines[0].starts_with("probe"), "{table}");
    assert!(table.contains("홍길동") && table.contains("최지우"));
    // Every row's distance column ends at the same display column.
    let ends: Vec<usize> = lines
        .iter()
        .map(|line| {
            let mut seen = 0;
            let mut end = 0;
            let mut in_token = false;
            for (i, ch) in line.char_indices() {
                if ch == ' ' {
                    if in_token {
                        seen += 1;
                        if seen == 6 {
                            end = i;
                            break;
                        }
                    }
                    in_token = false;
                } else {
                    in_token = true;
                }
            }
            line[..end].width()
        })
        .collect();
    assert!(
        ends.iter().all(|&e| e == ends[0] && e > 0),
        "{ends:?}\n{table}"
    );

    let csv_text = ok(facekit(
        tmp.path(),
        &[
            "search",
            "--gallery",
            "emb",
            "--probes",
            "emb",
            "--format",
            "csv",
            "--top-k",
            "2",
        ],
    ));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        header,
        ["probe", "row", "label", "rank", "identity", "cosine", "distance", "decision"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 25 * 2);
    assert_eq!(&rows[0][0], "probe/김철수_exact.jpg");
    assert_eq!(&rows[0][4], "김철수");
    assert_eq!(&rows[1][3], "2");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write_emb_dir(&tmp.path().join("emb"));
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    let out = facekit(
        tmp.path(),
        &["search", "--gallery", "empty", "--probes", "emb"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no embeddings.npy"));
    let out = facekit(
        tmp.path(),
        &[
            "search",
            "--gallery",
            "emb",
            "--probes",
            "emb",
            "--threshold",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[-1, 1]"));
}

/// `--precision bf16` prints what fp32 prints (the candidates and their
/// scores are the fp32 engine's), or is refused in one line where the CPU
/// lacks AVX-512 BF16.
#[test]
fn bf16_output_equals_fp32() {
    let tmp = tempfile::tempdir().unwrap();
    write_emb_dir(&tmp.path().join("emb"));
    let on = |precision| ["--device", "cpu", "--top-k", "3", "--precision", precision];
    if !facekit::compare::cpu::bf16::supported() {
        let mut args = vec!["search", "--gallery", "emb", "--probes", "emb"];
        args.extend(on("bf16"));
        let out = facekit(tmp.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("lacks AVX-512 BF16") && err.lines().count() == 1,
            "{err}"
        );
        return;
    }
    let (bf16, fp32) = (
        search_json(tmp.path(), &on("bf16")),
        search_json(tmp.path(), &on("fp32")),
    );
    assert_eq!(probes(&bf16), probes(&fp32));
    assert_eq!(probes(&fp32).len(), 25);
    assert!(
        bf16["engine"].as_str().unwrap().contains("BF16"),
        "{}",
        bf16["engine"]
    );
    assert!(
        fp32["engine"].as_str().unwrap().contains("fp32"),
        "{}",
        fp32["engine"]
    );
}
