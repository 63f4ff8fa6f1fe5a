//! Sweeps that survive interruption, split across a cluster, and guard CI: the real binary in
//! temporary folders, killed with SIGKILL, sharded, merged and checked against a baseline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{BIN, assert_same_results, comparable, run, scratch, text};

/// Twelve runs of a few hundred milliseconds each.
const SPEC: &str = r#"
name = "sweep"
[task]
kind = "adding"
eval_size = 32
[model]
hidden = 24
[train]
steps = 150
batch = 16
lr = 0.05
momentum = 0.9
eval_every = 25
[probe]
every = 50
[sweep]
"task.seq_len" = [30, 60]
"model.activation" = ["tanh", "relu"]
"train.seed" = [0, 1, 2]
"#;

fn records(dir: &Path) -> usize {
    fs::read_dir(dir.join("records"))
        .map(|d| {
            d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_killed_sweep_resumes_to_the_results_of_an_uninterrupted_one() {
    let dir = scratch("kill");
    fs::write(dir.join("s.toml"), SPEC).unwrap();
    let full = run(&dir, &["s.toml", "-q", "-j", "1", "--out", "full"]);
    assert_eq!(full.status.code(), Some(0), "{}", text(&full));
    assert_eq!(records(&dir.join("full")), 12);

    // Start the same sweep, SIGKILL it once a few runs are recorded, then run it again.
    let mut child = Command::new(BIN)
        .args(["s.toml", "-q", "-j", "1", "--out", "killed"])
        .current_dir(&dir)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while records(&dir.join("killed")) < 3 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_before = records(&dir.join("killed"));
    assert!((3..12).contains(&done_before), "killed after {done_before} of 12 runs");
    assert!(
        !dir.join("killed/runs.csv").exists(),
        "the final tables are written only at the end"
    );

    let again = run(&dir, &["s.toml", "-q", "-j", "2", "--out", "killed"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        text(&again).contains(&format!("{done_before} reused")),
        "{}",
        text(&again)
    );
    assert_same_results(&dir.join("full"), &dir.join("killed"));

    // Running once more reuses everything and changes nothing but timing.
    let before = comparable(&dir.join("full"), "curves.csv");
    let third = run(&dir, &["s.toml", "-q", "--out", "full"]);
    assert!(text(&third).contains("12 reused"), "{}", text(&third));
    assert_eq!(comparable(&dir.join("full"), "curves.csv"), before);

    // A different spec is refused, and nothing is touched; --force reruns everything.
    let other = run(&dir, &["s.toml", "-q", "--out", "full", "--set", "train.steps=20"]);
    assert_eq!(other.status.code(), Some(2));
    assert!(text(&other).contains("holds another spec"), "{}", text(&other));
    assert_eq!(comparable(&dir.join("full"), "curves.csv"), before);
    let forced = run(&dir, &["s.toml", "-q", "--out", "full", "--force"]);
    assert!(text(&forced).contains("12 ok"), "{}", text(&forced));
    assert!(!text(&forced).contains("reused"));
}

#[test]
fn shards_merge_into_the_unsharded_results() {
    let dir = scratch("shards");
    fs::write(dir.join("s.toml"), SPEC).unwrap();
    assert_eq!(run(&dir, &["s.toml", "-q", "--out", "whole"]).status.code(), Some(0));
    for i in 0..3 {
        let out = run(
            &dir,
            &[
                "s.toml",
                "-q",
                "--shard",
                &format!("{i}/3"),
                "--out",
                &format!("part{i}"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(
            text(&out).contains("4 runs") && text(&out).contains(&format!("(shard {i}/3)")),
            "{}",
            text(&out)
        );
    }
    // With a shard missing, merge names the missing runs and writes nothing.
    let partial = run(&dir, &["merge", "part0", "part1", "--out", "merged"]);
    assert_eq!(partial.status.code(), Some(2));
    assert!(
        text(&partial).contains("4 of 12 runs are in none of the shard folders"),
        "{}",
        text(&partial)
    );
    assert!(!dir.join("merged").exists());
    let merged = run(&dir, &["merge", "part0", "part1", "part2", "--out", "merged"]);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged));
    assert_same_results(&dir.join("whole"), &dir.join("merged"));
    assert!(dir.join("merged/charts/grad_decay.png").exists() && dir.join("merged/report.md").exists());

    // A Slurm job array picks the shard from its environment.
    let out = Command::new(BIN)
        .args(["s.toml", "-q"])
        .env("SLURM_ARRAY_TASK_ID", "5")
        .env("SLURM_ARRAY_TASK_MIN", "4")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let manifest = fs::read_to_string(dir.join("results/sweep/shard-1-of-3/manifest.json")).unwrap();
    assert!(manifest.contains("\"shard\": \"1/3\""));
    assert_eq!(
        comparable(&dir.join("results/sweep/shard-1-of-3"), "curves.csv"),
        comparable(&dir.join("part1"), "curves.csv")
    );
}

#[test]
fn check_passes_within_tolerance_and_fails_on_a_regression_or_a_missing_run() {
    let dir = scratch("check");
    fs::write(dir.join("s.toml"), SPEC).unwrap();
    let bless = run(
        &dir,
        &[
            "check",
            "s.toml",
            "--baseline",
            "base.csv",
            "--bless",
            "-q",
            "--out",
            "r",
        ],
    );
    assert_eq!(bless.status.code(), Some(0), "{}", text(&bless));
    let base = fs::read_to_string(dir.join("base.csv")).unwrap();
    assert_eq!(base.lines().count(), 13);
    assert!(
        base.lines()
            .any(|l| l.starts_with("task.seq_len=30; model.activation=tanh; train.seed=0,")),
        "{base}"
    );

    let same = run(&dir, &["check", "s.toml", "--baseline", "base.csv", "-q", "--out", "r"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains("0 failing, 0 improved"), "{}", text(&same));

    // Make one baseline value 10 % lower (the run now looks worse) and another 10 % higher.
    let edit = |line: &str, factor: f64| {
        let (config, loss) = line.rsplit_once(',').unwrap();
        format!("{config},{}", loss.parse::<f64>().unwrap() * factor)
    };
    let lines: Vec<&str> = base.lines().collect();
    let mut worse: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    worse[1] = edit(lines[1], 0.9);
    worse[2] = edit(lines[2], 1.1);
    fs::write(dir.join("edited.csv"), worse.join("\n") + "\n").unwrap();
    let out = run(
        &dir,
        &["check", "s.toml", "--baseline", "edited.csv", "-q", "--out", "r"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("REGRESSED") && text(&out).contains("1 failing, 1 improved"),
        "{}",
        text(&out)
    );
    // The same with a looser tolerance passes.
    let loose = run(
        &dir,
        &[
            "check",
            "s.toml",
            "--baseline",
            "edited.csv",
            "-q",
            "--out",
            "r",
            "--rtol",
            "0.2",
        ],
    );
    assert_eq!(loose.status.code(), Some(0), "{}", text(&loose));

    // For CI systems: JUnit XML and GitHub's job summary say the same.
    let out = std::process::Command::new(common::BIN)
        .args([
            "check",
            "s.toml",
            "--baseline",
            "edited.csv",
            "-q",
            "--out",
            "r",
            "--junit",
            "j/check.xml",
        ])
        .env("GITHUB_STEP_SUMMARY", dir.join("summary.md"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let xml = fs::read_to_string(dir.join("j/check.xml")).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 12, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(
        xml.contains("tests=\"12\" failures=\"1\"") && xml.contains("REGRESSED: baseline "),
        "{xml}"
    );
    let md = fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.starts_with("### runner check: s.toml against edited.csv"), "{md}");
    assert_eq!(md.matches("**REGRESSED**").count(), 1, "{md}");
    assert!(md.contains("12 configurations: 1 failing, 1 improved"), "{md}");

    // By configuration: the seeds of each configuration pooled. Against its own baseline every
    // configuration is the same; with all three seeds of the (tight) ReLU configuration twice as
    // good in the baseline, it regresses (the chaotic tanh configurations, whose seeds differ
    // widely, would need a change larger than their spread).
    let by_config = |baseline: &str| {
        run(
            &dir,
            &[
                "check",
                "s.toml",
                "--baseline",
                baseline,
                "-q",
                "--out",
                "r",
                "--by",
                "config",
            ],
        )
    };
    let out = by_config("base.csv");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("4 configurations: 0 failing"), "{}", text(&out));
    let target = "task.seq_len=30; model.activation=relu;";
    let better: Vec<String> = lines
        .iter()
        .map(|l| {
            if l.starts_with(target) {
                edit(l, 0.5)
            } else {
                l.to_string()
            }
        })
        .collect();
    fs::write(dir.join("better.csv"), better.join("\n") + "\n").unwrap();
    let out = by_config("better.csv");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("4 configurations: 1 failing, 0 improved"),
        "{}",
        text(&out)
    );

    // A run missing from the baseline fails too.
    fs::write(dir.join("short.csv"), lines[..12].join("\n") + "\n").unwrap();
    let out = run(
        &dir,
        &["check", "s.toml", "--baseline", "short.csv", "-q", "--out", "r"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("MISSING (not in baseline)"), "{}", text(&out));

    // A malformed baseline names its line.
    fs::write(dir.join("bad.csv"), "config,final_loss\na=1,zero\n").unwrap();
    let out = run(&dir, &["check", "s.toml", "--baseline", "bad.csv", "-q", "--out", "r"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("bad.csv:2: final_loss `zero` is not a finite number"),
        "{}",
        text(&out)
    );
}

#[test]
fn summary_and_report_describe_every_configuration() {
    let dir = scratch("report");
    fs::write(dir.join("s.toml"), SPEC).unwrap();
    assert_eq!(run(&dir, &["s.toml", "-q", "--out", "r"]).status.code(), Some(0));
    let summary = fs::read_to_string(dir.join("r/summary.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(summary.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(&header[..4], ["task.seq_len", "model.activation", "runs", "runs_ok"]);
    assert!(header.contains(&"final_loss_std".to_string()) && header.last().unwrap() == "beats_baseline");
    let records: Vec<csv::StringRecord> = rows.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 4, "2 lengths × 2 activations, seeds summarised");
    for r in &records {
        assert_eq!(&r[2], "3");
    }
    let report = fs::read_to_string(dir.join("r/report.md")).unwrap();
    assert!(report.starts_with("# sweep\n"));
    assert!(report.contains("![Gradient reaching back d steps, after training](charts/grad_decay.png)"));
    assert_eq!(
        report
            .lines()
            .filter(|l| l.starts_with("| 30 |") || l.starts_with("| 60 |"))
            .count(),
        4
    );
}

/// Every file present in a results folder parses (temporary files, which start with a dot, are
/// never presented as complete).
fn assert_every_file_parses(dir: &Path) {
    use runner::output;
    if !dir.exists() {
        return;
    }
    if dir.join("manifest.json").exists() {
        output::read_manifest(dir).unwrap();
    }
    if dir.join("runs.csv").exists() {
        output::read_runs(dir).unwrap();
    }
    if dir.join("curves.csv").exists() {
        output::read_curves(dir).unwrap();
    }
    if dir.join("grad_decay.csv").exists() {
        output::read_decay(dir).unwrap();
    }
    if dir.join("summary.csv").exists() {
        let text = fs::read_to_string(dir.join("summary.csv")).unwrap();
        csv::Reader::from_reader(text.as_bytes())
            .records()
            .for_each(|r| drop(r.unwrap()));
    }
    for entry in fs::read_dir(dir.join("records")).into_iter().flatten() {
        let p = entry.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
            serde_json::from_slice::<runner::launch::RunRecord>(&fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
    for entry in fs::read_dir(dir.join("checkpoints")).into_iter().flatten() {
        for f in fs::read_dir(entry.unwrap().path()).unwrap() {
            let p = f.unwrap().path();
            if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                output::read_checkpoint(&fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            }
        }
    }
    for entry in fs::read_dir(dir.join("charts")).into_iter().flatten() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = fs::read(&p).unwrap();
        if name.ends_with(".png") && !name.starts_with('.') {
            assert!(
                bytes.starts_with(b"\x89PNG") && bytes.ends_with(b"IEND\xaeB`\x82"),
                "{name} is truncated"
            );
        } else if name.ends_with(".svg") && !name.starts_with('.') {
            assert!(
                String::from_utf8(bytes).unwrap().trim_end().ends_with("</svg>"),
                "{name} is truncated"
            );
        }
    }
}

#[test]
fn twenty_kills_at_random_moments_lose_nothing() {
    use rand::{Rng, SeedableRng};
    let dir = scratch("kills");
    // 40 runs, so that twenty kills land while the sweep is still training.
    let spec = SPEC.replace(
        "\"train.seed\" = [0, 1, 2]",
        "\"train.seed\" = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]",
    );
    fs::write(dir.join("s.toml"), spec).unwrap();
    assert_eq!(run(&dir, &["s.toml", "-q", "--out", "full"]).status.code(), Some(0));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
    let mut finished_early = 0;
    let mut during = 0;
    for kill in 0..20 {
        let mut child = Command::new(BIN)
            .args(["s.toml", "-q", "-j", "1", "--out", "killed"])
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
        child.kill().unwrap(); // SIGKILL (a no-op if it already finished)
        let status = child.wait().unwrap();
        if status.success() {
            finished_early += 1;
        }
        assert_every_file_parses(&dir.join("killed"));
        let n = records(&dir.join("killed"));
        println!("kill {kill}: {n} of 40 runs recorded");
        during += usize::from(n < 40);
    }
    let last = run(&dir, &["s.toml", "-q", "--out", "killed"]);
    assert_eq!(last.status.code(), Some(0), "{}", text(&last));
    assert_same_results(&dir.join("full"), &dir.join("killed"));
    assert!(finished_early < 20, "no kill landed during the sweep");
    assert!(
        during >= 15,
        "only {during} of 20 kills landed while runs were still missing"
    );
}

#[test]
fn ctrl_c_writes_what_is_complete_and_says_how_to_resume() {
    let dir = scratch("sigint");
    fs::write(dir.join("s.toml"), SPEC).unwrap();
    assert_eq!(
        run(&dir, &["s.toml", "-q", "-j", "1", "--out", "full"]).status.code(),
        Some(0)
    );
    let child = Command::new(BIN)
        .args(["s.toml", "-q", "-j", "1", "--out", "stopped"])
        .current_dir(&dir)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while records(&dir.join("stopped")) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: sending SIGINT to a child process we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        text(&out).contains("Run the same command again to resume"),
        "{}",
        text(&out)
    );
    let stopped = dir.join("stopped");
    assert_every_file_parses(&stopped);
    let partial = runner::output::read_runs(&stopped).unwrap().rows.len();
    assert!((2..12).contains(&partial), "{partial} runs written");
    let again = run(&dir, &["s.toml", "-q", "--out", "stopped"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_same_results(&dir.join("full"), &stopped);
}

/// A full disk: a small tmpfs as the results folder. The sweep fails with a clear error naming
/// the file and exit code 1; every file it leaves parses; with space, the same command completes
/// the sweep to the results of an undisturbed one. Needs permission to mount (root); skipped with
/// a message otherwise.
#[test]
fn a_full_disk_gives_a_clear_error_and_a_rerun_with_space_completes() {
    let dir = scratch("disk");
    fs::write(dir.join("s.toml"), SPEC).unwrap();
    assert_eq!(
        run(&dir, &["s.toml", "-q", "--out", "reference"]).status.code(),
        Some(0)
    );
    let mnt = dir.join("small");
    fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=600k", "tmpfs"])
        .arg(&mnt)
        .output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs here (needs root): {mounted:?}");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());

    let out = run(&dir, &["s.toml", "-q", "--out", "small/r"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("No space left on device"), "{}", text(&out));
    assert!(
        text(&out).contains("small/r/"),
        "the error names the file: {}",
        text(&out)
    );
    assert_every_file_parses(&mnt.join("r"));
    let partial = records(&mnt.join("r"));
    assert!(partial < 12, "{partial} records fit in 600 kB");

    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(grown.success());
    let again = run(&dir, &["s.toml", "-q", "--out", "small/r"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_same_results(&dir.join("reference"), &mnt.join("r"));
}
