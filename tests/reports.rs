//! The files people open, checked the way a person would use them: `summary.tex` compiled by
//! `pdflatex` inside a minimal document, the heatmap drawn for two numeric keys and redrawn by
//! `runner plot --set plot.heatmap=[…]`, every chart as a PDF rendered by `pdftoppm` and compared
//! with its PNG, and `report.html` opened by a headless Chromium with the network cut off.
//!
//! The external tools (pdflatex, pdftoppm, chromium and chromedriver) are Debian packages that
//! `.ci/run` installs; a test whose tool is missing here says so on stderr and passes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{GRID, run, scratch, stderr};

/// Runs `spec` (named `name`) in a fresh folder and returns its results folder.
fn sweep(test: &str, name: &str, spec: &str, extra: &[&str]) -> PathBuf {
    let dir = scratch(test);
    fs::write(dir.join(format!("{name}.toml")), spec).unwrap();
    let mut args = vec![format!("{name}.toml"), "--quiet".into(), "--out".into(), "res".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&dir, &args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    dir.join("res")
}

/// Whether `tool` runs here; if not, says which test skips and why.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool).arg("-v").output().is_ok();
    if !found {
        // .ci/run installs the tools and sets this: there a missing tool is a failure.
        assert!(
            std::env::var_os("RUNNER_REQUIRE_TOOLS").is_none(),
            "{test}: `{tool}` is missing although RUNNER_REQUIRE_TOOLS is set"
        );
        eprintln!("SKIPPED {test}: `{tool}` is not installed here (.ci/run installs it)");
    }
    found
}

#[test]
fn summary_tex_compiles_with_pdflatex() {
    let res = sweep("tex", "grid", GRID, &[]);
    let tex = fs::read_to_string(res.join("summary.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"), "{tex}");
    // 8 configurations (the seeds summarised): 8 rows between \midrule and \bottomrule.
    let body = &tex[tex.find("\\midrule").unwrap()..tex.find("\\bottomrule").unwrap()];
    assert_eq!(body.matches("\\\\").count(), 8, "{tex}");
    assert!(tex.contains("\\texttt{train.lr}") && tex.contains("$\\pm$"), "{tex}");
    if !have("pdflatex", "summary_tex_compiles_with_pdflatex") {
        return;
    }
    let doc = res.join("doc.tex");
    fs::write(
        &doc,
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n\\input{summary.tex}\n\\end{document}\n",
    )
    .unwrap();
    let out = Command::new("pdflatex")
        .args([
            "-interaction=nonstopmode",
            "-halt-on-error",
            "-no-shell-escape",
            "doc.tex",
        ])
        .current_dir(&res)
        .output()
        .unwrap();
    let log = fs::read_to_string(res.join("doc.log")).unwrap_or_default();
    assert!(
        out.status.success() && res.join("doc.pdf").exists(),
        "pdflatex failed:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
    assert!(!log.contains("Undefined control sequence"), "{log}");
}

/// A folder's file names, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn heatmap_is_drawn_for_two_numeric_keys_and_redrawn_with_another_pair() {
    let res = sweep("heatmap", "grid", GRID, &[]);
    let svg = |res: &Path| fs::read_to_string(res.join("charts/final_loss_heatmap.svg")).unwrap();
    assert!(res.join("charts/final_loss_heatmap.png").exists());
    let first = svg(&res);
    // auto: the first two numeric keys, learning rate across, clipping up; activation as panels.
    assert!(
        first.contains("by learning rate and gradient-norm clipping threshold θ"),
        "{}",
        &first[..first.len().min(2000)]
    );
    assert!(first.contains("activation = tanh") && first.contains("activation = relu"));
    assert!(first.contains("1 of 2 diverged"), "the diverged ReLU cell is marked");
    let report = fs::read_to_string(res.join("report.md")).unwrap();
    assert!(report.contains("charts/final_loss_heatmap.png"), "{report}");

    let plot = |args: &[&str]| {
        let mut all = vec!["plot", "res"];
        all.extend(args);
        run(res.parent().unwrap(), &all)
    };
    let out = plot(&["--set", "plot.heatmap=[train.clip, train.lr]"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(svg(&res).contains("by gradient-norm clipping threshold θ and learning rate"));
    // The seed is averaged in each cell; an unswept key is not there: refused, nothing redrawn.
    for bad in [
        "plot.heatmap=[train.seed, train.lr]",
        "plot.heatmap=[model.hidden, train.lr]",
    ] {
        let out = plot(&["--set", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("plot.heatmap"), "{}", stderr(&out));
    }
    assert!(svg(&res).contains("by gradient-norm clipping threshold θ and learning rate"));
    let out = plot(&["--set", "plot.heatmap=none"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!res.join("charts/final_loss_heatmap.svg").exists());
    assert!(!fs::read_to_string(res.join("report.md")).unwrap().contains("heatmap"));
}

#[test]
fn a_spec_naming_unswept_heatmap_keys_is_refused_before_any_run() {
    let dir = scratch("heatmap-spec");
    for (bad, says) in [
        ("[plot]\nheatmap = [\"model.hidden\", \"train.lr\"]\n", "not swept"),
        ("[plot]\nheatmap = [\"train.lr\"]\n", "two"),
        (
            "[plot]\nheatmap = [\"train.seed\", \"train.lr\"]\n",
            "averages over the seeds",
        ),
        ("[output]\nformats = [\"png\", \"gif\"]\n", "gif"),
    ] {
        fs::write(
            dir.join("bad.toml"),
            format!("{bad}{}", &GRID[GRID.find("[task]").unwrap()..]),
        )
        .unwrap();
        let out = run(&dir, &["bad.toml", "--quiet", "--out", "res"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{bad}: {}", stderr(&out));
        assert!(!dir.join("res").exists());
    }
}

/// A greyscale image: width, height, one byte per pixel.
struct Grey(usize, usize, Vec<u8>);

/// A PNG chart as written by runner (8-bit RGB or RGBA), in grey.
fn read_png(path: &Path) -> Grey {
    let decoder = png::Decoder::new(fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let grey = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| ((u32::from(p[0]) * 30 + u32::from(p[1]) * 59 + u32::from(p[2]) * 11) / 100) as u8)
        .collect();
    Grey(info.width as usize, info.height as usize, grey)
}

/// A PDF's first page rendered by pdftoppm at 96 pixels per inch (one pixel per chart pixel),
/// in grey.
fn render_pdf(pdf: &Path) -> Grey {
    let stem = pdf.with_extension("");
    let out = Command::new("pdftoppm")
        .args(["-r", "96", "-gray", "-singlefile"])
        .arg(pdf)
        .arg(&stem)
        .output()
        .unwrap();
    assert!(out.status.success(), "pdftoppm {}: {}", pdf.display(), stderr(&out));
    let bytes = fs::read(stem.with_extension("pgm")).unwrap();
    // Binary PGM: "P5", width, height, 255, each after whitespace, then the pixels.
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    Grey(w, h, bytes[at + 1..at + 1 + w * h].to_vec())
}

/// How far apart two images are in content: the mean and the largest absolute difference of
/// their 16×16-pixel block averages (0–255). Antialiasing and font hinting move single pixels,
/// not blocks; a missing line, panel or label moves blocks.
fn block_difference(a: &Grey, b: &Grey) -> (f64, f64) {
    let (w, h) = (a.0.min(b.0), a.1.min(b.1));
    let block = |img: &Grey, bx: usize, by: usize| {
        let mut sum = 0u32;
        for y in by * 16..by * 16 + 16 {
            for x in bx * 16..bx * 16 + 16 {
                sum += u32::from(img.2[y * img.0 + x]);
            }
        }
        f64::from(sum) / 256.0
    };
    let (mut total, mut worst, mut n) = (0.0, 0f64, 0.0);
    for by in 0..h / 16 {
        for bx in 0..w / 16 {
            let d = (block(a, bx, by) - block(b, bx, by)).abs();
            total += d;
            worst = worst.max(d);
            n += 1.0;
        }
    }
    (total / n, worst)
}

/// Whether two renders show the same chart: matching charts measured 0.4–1.3 on average and at
/// most 22 in one block; two different charts of one sweep, 2.5 and far more in some block.
fn alike(mean: f64, worst: f64) -> bool {
    mean < 2.0 && worst < 40.0
}

#[test]
fn every_chart_is_a_pdf_with_its_font_that_renders_like_its_png() {
    let res = sweep("pdf", "grid", GRID, &[]);
    let charts = res.join("charts");
    let mut names: Vec<String> = files(&charts)
        .into_iter()
        .filter_map(|f| f.strip_suffix(".png").map(String::from))
        .collect();
    names.sort();
    assert!(
        names.len() >= 10 && names.contains(&"final_loss_heatmap".to_string()),
        "{names:?}"
    );
    for name in &names {
        let pdf = fs::read(charts.join(format!("{name}.pdf"))).unwrap();
        assert!(pdf.starts_with(b"%PDF-"), "{name}.pdf");
        let text = String::from_utf8_lossy(&pdf);
        assert!(
            text.contains("/FontFile2") && text.contains("+DejaVuSans"),
            "{name}: font embedded"
        );
        assert!(!text.contains("/CreationDate"), "{name}: no date");
    }
    // The same sweep with one thread: the same PDF bytes.
    let again = sweep("pdf-1", "grid", GRID, &["-j", "1"]);
    for name in &names {
        let (a, b) = (
            fs::read(charts.join(format!("{name}.pdf"))).unwrap(),
            fs::read(again.join(format!("charts/{name}.pdf"))).unwrap(),
        );
        assert!(a == b, "{name}.pdf differs between 2 threads and 1");
    }
    if !have("pdftoppm", "every_chart_is_a_pdf_…_renders_like_its_png") {
        return;
    }
    for name in &names {
        let png = read_png(&charts.join(format!("{name}.png")));
        let page = render_pdf(&charts.join(format!("{name}.pdf")));
        assert!(
            png.0.abs_diff(page.0) <= 1 && png.1.abs_diff(page.1) <= 1,
            "{name}: PNG {}×{}, PDF page {}×{}",
            png.0,
            png.1,
            page.0,
            page.1
        );
        let (mean, worst) = block_difference(&png, &page);
        eprintln!("{name}: PDF against PNG, 16×16 blocks: mean {mean:.2}, largest {worst:.1} (of 255)");
        assert!(alike(mean, worst), "{name}: the PDF does not draw what the PNG does");
    }
    // The measure tells charts apart: two different charts are far from each other.
    let (mean, worst) = block_difference(
        &read_png(&charts.join("loss.png")),
        &render_pdf(&charts.join("grad_norm.pdf")),
    );
    eprintln!("control, loss.png against grad_norm.pdf: mean {mean:.2}, largest {worst:.1}");
    assert!(
        !alike(mean, worst),
        "loss against grad_norm: mean {mean:.2}, largest {worst:.1}"
    );
}

/// report.html with the rows that hold times or the thread count left out (as report.md, the
/// page shows them); everything else must be the same bytes.
fn html_without_times(res: &Path) -> String {
    fs::read_to_string(res.join("report.html"))
        .unwrap()
        .lines()
        .filter(|l| {
            !["<tr><th>threads", "<tr><th>started", "<tr><th>wall time"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_new_files_are_the_same_whatever_the_thread_count() {
    let (a, b) = (
        sweep("det-2", "grid", GRID, &["-j", "2"]),
        sweep("det-1", "grid", GRID, &["-j", "1"]),
    );
    for f in [
        "summary.tex",
        "summary.csv",
        "charts/final_loss_heatmap.svg",
        "charts/final_loss_heatmap.png",
    ] {
        assert!(
            fs::read(a.join(f)).unwrap() == fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
    assert!(
        html_without_times(&a) == html_without_times(&b),
        "report.html differs beyond its times"
    );
    let html = fs::read_to_string(a.join("report.html")).unwrap();
    // Self-contained: nothing to fetch (no http, no src= or href= to another file).
    // (The SVG namespace is a name, never fetched.)
    let fetchable = html.replace("http://www.w3.org/2000/svg", "");
    for pattern in ["http://", "https://", " src=", "@import", "url("] {
        assert!(!fetchable.contains(pattern), "report.html holds {pattern}");
    }
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
}

#[test]
fn runner_plot_gives_a_folder_from_before_the_new_files_and_leaves_its_tables() {
    let res = sweep("old", "grid", GRID, &[]);
    // Make it a folder of the previous version: no summary.tex, no report.html, no PDF and no
    // heatmap, and a manifest without the keys that came with them.
    fs::remove_file(res.join("summary.tex")).unwrap();
    fs::remove_file(res.join("report.html")).unwrap();
    for f in files(&res.join("charts")) {
        if f.ends_with(".pdf") || f.starts_with("final_loss_heatmap") {
            fs::remove_file(res.join("charts").join(f)).unwrap();
        }
    }
    let manifest = fs::read_to_string(res.join("manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let settings = m["settings"].as_object_mut().unwrap();
    settings.remove("plot.heatmap");
    settings.remove("output.formats");
    m.as_object_mut().unwrap().remove("processor");
    fs::write(res.join("manifest.json"), serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let tables = [
        "runs.csv",
        "curves.csv",
        "grad_decay.csv",
        "spectrum.csv",
        "summary.csv",
    ];
    let before: Vec<Vec<u8>> = tables.iter().map(|f| fs::read(res.join(f)).unwrap()).collect();

    let out = run(res.parent().unwrap(), &["plot", "res"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for f in [
        "summary.tex",
        "report.html",
        "charts/final_loss_heatmap.png",
        "charts/final_loss_heatmap.svg",
        "charts/final_loss_heatmap.pdf",
        "charts/loss.pdf",
    ] {
        assert!(res.join(f).exists(), "runner plot did not write {f}");
    }
    let after: Vec<Vec<u8>> = tables.iter().map(|f| fs::read(res.join(f)).unwrap()).collect();
    assert!(before == after, "runner plot changed a table");
    let html = fs::read_to_string(res.join("report.html")).unwrap();
    assert!(html.contains("not recorded"), "the processor the old manifest lacks");
}

#[test]
fn output_formats_chooses_the_files_of_each_chart() {
    let res = sweep("formats", "grid", GRID, &["--set", "output.formats=[\"svg\", \"pdf\"]"]);
    let names = files(&res.join("charts"));
    assert!(names.iter().all(|f| !f.ends_with(".png")), "{names:?}");
    assert!(names.contains(&"loss.svg".to_string()) && names.contains(&"loss.pdf".to_string()));
    // report.md embeds the SVG when there is no PNG; the page holds every chart inline.
    let report = fs::read_to_string(res.join("report.md")).unwrap();
    assert!(
        report.contains("charts/loss.svg") && !report.contains(".png"),
        "{report}"
    );
    let html = fs::read_to_string(res.join("report.html")).unwrap();
    assert!(html.contains("<figure id=\"chart-loss\">"));
}

/// A stack of three layers beside one layer, two cells, two seeds: small enough to run in a
/// second.
const STACK: &str = r#"
name = "stack"
[task]
kind = "adding"
seq_len = 6
eval_size = 16
[model]
hidden = 4
[train]
steps = 10
batch = 4
[probe]
every = 5
batch = 4
[sweep]
"model.cell" = ["rnn", "gru"]
"model.layers" = [1, 3]
"train.seed" = [0, 1]
"#;

/// The charts and summary columns of stacks.
const DEPTH_CHARTS: [&str; 4] = ["grad_depth_init", "grad_depth", "depth_factor_init", "depth_factor"];

#[test]
fn depth_charts_and_columns_appear_for_a_stack_only() {
    let res = sweep("depth", "stack", STACK, &[]);
    let charts = res.join("charts");
    for name in DEPTH_CHARTS {
        let png = fs::read(charts.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{name}.png");
        let svg = fs::read_to_string(charts.join(format!("{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}.svg");
        assert!(
            fs::read(charts.join(format!("{name}.pdf")))
                .unwrap()
                .starts_with(b"%PDF-")
        );
    }
    // One panel per stacked configuration, one line per layer; the one-layer runs have none.
    let svg = fs::read_to_string(charts.join("grad_depth_init.svg")).unwrap();
    assert!(svg.contains("cell=rnn, layers=3") && svg.contains("cell=gru, layers=3"));
    assert!(!svg.contains("layers=1"), "a one-layer configuration got a panel");
    let report = fs::read_to_string(res.join("report.md")).unwrap();
    for name in DEPTH_CHARTS {
        assert!(report.contains(&format!("charts/{name}.png")), "report.md lists {name}");
    }
    assert!(
        report.contains("| depth factor |"),
        "report.md's summary has the depth factor"
    );
    let html = fs::read_to_string(res.join("report.html")).unwrap();
    assert!(html.contains("id=\"chart-grad_depth_init\"") && html.contains("\"depth_factor_init\""));
    let csv = fs::read_to_string(res.join("summary.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains("decay_factor_max,depth_factor_mean,")
    );
    assert!(
        fs::read_to_string(res.join("summary.tex"))
            .unwrap()
            .contains("depth factor")
    );
    if have("pdftoppm", "depth_charts_…_for_a_stack_only") {
        for name in DEPTH_CHARTS {
            let (png, page) = (
                read_png(&charts.join(format!("{name}.png"))),
                render_pdf(&charts.join(format!("{name}.pdf"))),
            );
            let (mean, worst) = block_difference(&png, &page);
            assert!(alike(mean, worst), "{name}: the PDF does not draw what the PNG does");
        }
    }

    // One layer: none of it, anywhere.
    let flat = sweep("depth-flat", "grid", GRID, &[]);
    for name in DEPTH_CHARTS {
        assert!(
            files(&flat.join("charts")).iter().all(|f| !f.starts_with(name)),
            "{name} drawn for one layer"
        );
    }
    for file in ["report.md", "report.html", "summary.csv", "summary.tex"] {
        let text = fs::read_to_string(flat.join(file)).unwrap();
        assert!(
            !text.contains("depth_factor") && !text.contains("depth factor") && !text.contains("grad_depth"),
            "{file} mentions the depth factor for one layer"
        );
    }
}
