//! Many workers, one sweep: `runner` processes started on the same results folder drain its
//! sweep together through claims with leases. Each test runs the real binary: several at once,
//! one killed (SIGKILL) or stopped (SIGSTOP) mid-run, and compares the folder with a single
//! process's (tables but `seconds`, and checkpoints).

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{BIN, assert_same_results, run, scratch, text};

/// 24 runs of a few tens of milliseconds.
const MANY: &str = r#"
name = "many"
[task]
kind = "adding"
eval_size = 16
[model]
hidden = 12
[train]
steps = 150
batch = 8
eval_every = 50
[probe]
every = 50
batch = 4
[sweep]
"task.seq_len" = [10, 20, 40]
"model.activation" = ["tanh", "relu"]
"train.seed" = [0, 1, 2, 3]
"#;

/// 4 runs of one to two seconds each, so that a worker can be stopped in the middle of one.
const LONG: &str = r#"
name = "long"
[task]
kind = "adding"
seq_len = 40
eval_size = 16
[model]
hidden = 32
[train]
steps = 20000
batch = 8
eval_every = 2000
[probe]
every = 5000
batch = 4
[output]
charts = false
[sweep]
"model.activation" = ["tanh", "relu"]
"train.seed" = [0, 1]
"#;

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs")
}

/// The number in "N trained by this worker" of a closing line, or every run when no other
/// worker took part (the line then says nothing of workers).
fn trained_here(o: &Output, runs: usize) -> usize {
    let t = text(o);
    match t.find(" trained by this worker") {
        Some(end) => {
            let start = t[..end].rfind(' ').unwrap() + 1;
            t[start..end].parse().unwrap()
        }
        None => runs,
    }
}

/// The run ids this process (by pid) holds a claim for in `dir`.
fn claims_of(dir: &Path, pid: u32) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir.join("claims")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| {
            fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["pid"] == pid)
        })
        .map(|e| e.file_name().to_string_lossy().split('.').next().unwrap().to_string())
        .collect()
}

/// Waits until `pid` holds a claim in `dir`, and returns its run id.
fn wait_for_claim(dir: &Path, pid: u32) -> String {
    let t0 = Instant::now();
    loop {
        if let Some(id) = claims_of(dir, pid).into_iter().next() {
            return id;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "worker {pid} claimed nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: sending a signal to a child process this test spawned.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

#[test]
fn three_workers_started_together_train_every_run_once() {
    let dir = scratch("three");
    fs::write(dir.join("s.toml"), MANY).unwrap();
    let single = run(&dir, &["s.toml", "-q", "-j", "1", "--out", "single"]);
    assert_eq!(single.status.code(), Some(0), "{}", text(&single));

    let workers: Vec<Child> = (0..3)
        .map(|_| spawn(&dir, &["s.toml", "-q", "-j", "1", "--out", "shared"]))
        .collect();
    let outputs: Vec<Output> = workers.into_iter().map(|w| w.wait_with_output().unwrap()).collect();
    let mut total = 0;
    for o in &outputs {
        assert_eq!(o.status.code(), Some(0), "{}", text(o));
        assert!(
            text(o).contains("24 runs in"),
            "every worker waits for the whole sweep: {}",
            text(o)
        );
        assert!(!text(o).contains("discarded"), "{}", text(o));
        total += trained_here(o, 24);
    }
    assert_eq!(total, 24, "every run trained exactly once: {outputs:?}");
    assert_same_results(&dir.join("single"), &dir.join("shared"));
    assert_eq!(
        fs::read_dir(dir.join("shared/claims")).unwrap().count(),
        0,
        "claims are cleared"
    );
}

#[test]
fn a_killed_workers_run_is_taken_over_and_the_sweep_completes() {
    let dir = scratch("killed");
    fs::write(dir.join("s.toml"), LONG).unwrap();
    let single = run(&dir, &["s.toml", "-q", "-j", "1", "--out", "single"]);
    assert_eq!(single.status.code(), Some(0), "{}", text(&single));

    let a = spawn(&dir, &["s.toml", "-q", "-j", "1", "--out", "shared", "--lease", "5"]);
    let shared = dir.join("shared");
    let id = wait_for_claim(&shared, a.id());
    // While it trains: `runner status` names it, and --force refuses to pull the folder away.
    let status = run(&dir, &["status", "shared", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    assert_eq!(report["runs"], 4);
    assert!(
        report["running"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["worker"].as_str().unwrap().ends_with(&format!(":{}", a.id()))),
        "{report}"
    );
    let forced = run(&dir, &["s.toml", "-q", "--out", "shared", "--force"]);
    assert_eq!(forced.status.code(), Some(2), "{}", text(&forced));
    assert!(
        text(&forced).contains("in training by other workers"),
        "{}",
        text(&forced)
    );

    let b = spawn(&dir, &["s.toml", "-q", "-j", "1", "--out", "shared", "--lease", "5"]);
    wait_for_claim(&shared, b.id());
    signal(&a, libc::SIGKILL);
    let a = a.wait_with_output().unwrap();
    assert_eq!(a.status.code(), None, "killed by a signal");
    assert!(
        !shared.join("records").join(format!("{id}.json")).exists(),
        "killed mid-run"
    );

    let b = b.wait_with_output().unwrap();
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    assert!(shared.join("records").join(format!("{id}.json")).exists());
    assert_same_results(&dir.join("single"), &shared);
    let status = run(&dir, &["status", "shared"]);
    assert!(
        text(&status).contains("4 runs: 4 done, 0 running, 0 stale, 0 pending, 0 failed"),
        "{}",
        text(&status)
    );
}

#[test]
fn a_stopped_worker_loses_its_run_after_the_lease_and_discards_its_result() {
    let dir = scratch("stopped");
    fs::write(dir.join("s.toml"), LONG).unwrap();
    let single = run(&dir, &["s.toml", "-q", "-j", "1", "--out", "single"]);
    assert_eq!(single.status.code(), Some(0), "{}", text(&single));

    let args = ["s.toml", "-q", "-j", "1", "--out", "shared", "--lease", "3"];
    let a = spawn(&dir, &args);
    let shared = dir.join("shared");
    let id = wait_for_claim(&shared, a.id());
    signal(&a, libc::SIGSTOP);
    let b = spawn(&dir, &args);
    // B trains the other runs, waits out A's lease, and takes A's run over: generation 1.
    let t0 = Instant::now();
    while !shared.join("claims").join(format!("{id}.1")).exists()
        && !shared.join("records").join(format!("{id}.json")).exists()
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "A's run was not taken over");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        t0.elapsed() > Duration::from_secs(3),
        "taken over before the lease ran out"
    );
    signal(&a, libc::SIGCONT);
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    assert!(
        text(&a).contains("1 discarded"),
        "A noticed it lost its run: {}",
        text(&a)
    );
    assert_eq!(
        trained_here(&a, 4) + trained_here(&b, 4),
        4,
        "{}\n{}",
        text(&a),
        text(&b)
    );
    assert_same_results(&dir.join("single"), &shared);
}

#[test]
fn a_worker_with_no_wait_leaves_runs_in_training_to_their_worker() {
    let dir = scratch("nowait");
    // One long run and one short one: the long one (claimed first, longest first) is A's.
    let spec = LONG.replace("steps = 20000\n", "").replace(
        "\"model.activation\" = [\"tanh\", \"relu\"]\n\"train.seed\" = [0, 1]",
        "\"train.steps\" = [30000, 2000]",
    );
    fs::write(dir.join("s.toml"), spec).unwrap();
    let a = spawn(&dir, &["s.toml", "-q", "-j", "1", "--out", "shared"]);
    wait_for_claim(&dir.join("shared"), a.id());
    let b = run(&dir, &["s.toml", "-q", "-j", "1", "--out", "shared", "--no-wait"]);
    assert_eq!(b.status.code(), Some(0), "{}", text(&b));
    assert!(
        text(&b).contains("1 trained by this worker, 0 by others, 1 left to the workers training them"),
        "{}",
        text(&b)
    );
    assert!(
        !dir.join("shared/runs.csv").exists(),
        "a worker that leaves early writes no tables"
    );
    let a = a.wait_with_output().unwrap();
    assert_eq!(a.status.code(), Some(0), "{}", text(&a));
    assert_eq!(common::runs_without_seconds(&dir.join("shared")).lines().count(), 3);
}

#[test]
fn bad_worker_options_and_an_unwritable_folder_exit_2_before_any_work() {
    let dir = scratch("bad");
    fs::write(dir.join("s.toml"), MANY).unwrap();
    let o = run(
        &dir,
        &["s.toml", "-q", "--out", "x", "--lease", "5", "--heartbeat", "3"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("shorter than twice the heartbeat"), "{}", text(&o));
    assert!(!dir.join("x").exists(), "nothing written");

    // A read-only results folder: a read-only bind mount when root (who ignores permissions),
    // permissions otherwise.
    let ro = dir.join("ro");
    fs::create_dir(&ro).unwrap();
    let o = if unsafe { libc::geteuid() } == 0 {
        let script = format!(
            "mount --bind {0} {0} && mount -o remount,bind,ro {0} && exec {BIN} s.toml -q --out ro",
            ro.display()
        );
        Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .current_dir(&dir)
            .output()
            .unwrap()
    } else {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        run(&dir, &["s.toml", "-q", "--out", "ro"])
    };
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot write in the results folder"), "{}", text(&o));
    assert_eq!(fs::read_dir(&ro).unwrap().count(), 0);
}
