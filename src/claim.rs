//! Claims: which worker process trains which run, when any number of `runner` processes (on one
//! machine, or on several that share the results folder over NFS) drain one sweep together.
//!
//! A run's claim is a file `claims/<run_id>.<generation>` holding its worker's host, pid and
//! start time. It is created exclusively, so exactly one worker holds a generation: first by
//! the link-count method, which is atomic on every POSIX filesystem including old NFS (write a
//! unique file, `link()` it to the claim's name, and believe the link when the unique file's
//! link count is 2, even if the reply was lost), and by `O_CREAT | O_EXCL` on a filesystem
//! without hard links. While the run trains, a heartbeat refreshes the claim's modification
//! time. A claim whose heartbeat is older than the lease belongs to a dead (or stopped) worker:
//! another worker takes the run over by creating the next generation, which again only one can
//! do; the old worker learns at its next heartbeat, or before it records its result, that a
//! later generation exists, and discards its result. Staleness compares the claim's
//! modification time with this host's clock, so hosts sharing a folder keep their clocks in step
//! (NTP) to well within the lease.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Folder of the claims inside a results folder.
pub const CLAIMS: &str = "claims";

/// How long a claim lives without a heartbeat, and how often the heartbeat comes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lease {
    /// A claim whose last heartbeat is older than this belongs to a dead worker.
    pub lease: Duration,
    /// Time between two heartbeats; at most half the lease.
    pub heartbeat: Duration,
}

impl Lease {
    /// The default lease.
    pub const DEFAULT_SECONDS: f64 = 60.0;

    /// A lease of `lease` seconds with a heartbeat every `heartbeat` seconds (default: a fifth
    /// of the lease). Refused unless both are positive and finite and the lease is at least
    /// twice the heartbeat, so that one late heartbeat never loses a live worker its run.
    pub fn new(lease: f64, heartbeat: Option<f64>) -> Result<Self, String> {
        if !(lease.is_finite() && lease > 0.0 && lease <= 86_400.0) {
            return Err(format!("--lease {lease}: expected seconds in (0, 86400]"));
        }
        let beat = heartbeat.unwrap_or(lease / 5.0);
        if !(beat.is_finite() && beat > 0.0) {
            return Err(format!("--heartbeat {beat}: expected a positive number of seconds"));
        }
        if lease < 2.0 * beat {
            return Err(format!(
                "--lease {lease} is shorter than twice the heartbeat ({beat} s): a worker one heartbeat late would lose its run; use --lease {} or more, or a shorter --heartbeat",
                2.0 * beat
            ));
        }
        Ok(Self {
            lease: Duration::from_secs_f64(lease),
            heartbeat: Duration::from_secs_f64(beat),
        })
    }
}

/// Who holds a claim: what `claims/<run_id>.<generation>` contains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// Host name of the worker.
    pub host: String,
    /// Its process id on that host.
    pub pid: u32,
    /// When the worker process started (RFC 3339, UTC).
    pub started: String,
    /// The worker's lease in seconds: its claim is stale once its heartbeat is older than this
    /// (so workers started with different `--lease` still judge each other's claims right).
    pub lease_seconds: f64,
}

impl Holder {
    /// This process, started at `started`, with its lease.
    pub fn me(started: &str, lease: &Lease) -> Self {
        Self {
            host: hostname(),
            pid: std::process::id(),
            started: started.to_string(),
            lease_seconds: lease.lease.as_secs_f64(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.pid)
    }
}

/// This machine's host name (`unknown` if it has none).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether a process with this id runs on this host. (A dead worker's id taken by a new process
/// only makes its claim wait for the lease, as on another host.)
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A claim this process holds.
#[derive(Clone, Debug)]
pub struct Claim {
    /// The run.
    pub run_id: String,
    /// Its generation: 0 for the first claim, one more at each takeover.
    pub generation: u64,
    /// The claim file.
    path: PathBuf,
}

/// A run's claim as another process sees it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The highest generation.
    pub generation: u64,
    /// Who holds it (`None` if the file could not be read: being written, or removed).
    pub holder: Option<Holder>,
    /// Time since its last heartbeat.
    pub age: Duration,
    /// Whether the holder is gone: its heartbeat is older than its lease (`lease` when the
    /// holder is unreadable), or it ran on this host and its process has ended.
    pub stale: bool,
}

fn claim_path(dir: &Path, run_id: &str, generation: u64) -> PathBuf {
    dir.join(CLAIMS).join(format!("{run_id}.{generation}"))
}

/// The generations of `run_id`'s claims present in the results folder `dir`, from a listing of
/// `claims/` (pass it in when looking at many runs).
fn generations<'a>(names: &'a [String], run_id: &'a str) -> impl Iterator<Item = u64> + 'a {
    names.iter().filter_map(move |n| {
        n.strip_prefix(run_id)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|g| g.parse().ok())
    })
}

/// The names in `dir/claims/` (empty if the folder does not exist).
pub fn listing(dir: &Path) -> Vec<String> {
    fs::read_dir(dir.join(CLAIMS))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// `run_id`'s current claim (its highest generation) as seen now, or `None` if it has none.
pub fn seen(dir: &Path, names: &[String], run_id: &str, lease: &Lease) -> Option<Seen> {
    let generation = generations(names, run_id).max()?;
    let path = claim_path(dir, run_id, generation);
    let meta = fs::metadata(&path).ok()?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO);
    let holder: Option<Holder> = fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let limit = holder
        .as_ref()
        .and_then(|h| Duration::try_from_secs_f64(h.lease_seconds).ok())
        .unwrap_or(lease.lease);
    let ended_here = holder.as_ref().is_some_and(|h| h.host == hostname() && !alive(h.pid));
    Some(Seen {
        generation,
        holder,
        age,
        stale: age > limit || ended_here,
    })
}

/// Claims `run_id` for `me`: a run without a claim, or one whose claim is stale (then as the next
/// generation). `None` when another worker holds a live claim, or won the race for it.
pub fn try_claim(dir: &Path, run_id: &str, me: &Holder, lease: &Lease) -> Result<Option<Claim>, Error> {
    let names = listing(dir);
    let generation = match seen(dir, &names, run_id, lease) {
        None if generations(&names, run_id).next().is_some() => return Ok(None), // just removed
        None => 0,
        Some(s) if s.stale => s.generation + 1,
        Some(_) => return Ok(None),
    };
    let path = claim_path(dir, run_id, generation);
    let bytes = serde_json::to_vec(me).expect("holders serialise");
    if create_exclusive(&path, &bytes, false)? {
        Ok(Some(Claim {
            run_id: run_id.to_string(),
            generation,
            path,
        }))
    } else {
        Ok(None)
    }
}

impl Claim {
    /// Whether this process still holds the claim: its file is there and no later generation
    /// exists (a worker that took the run over).
    pub fn held(&self, dir: &Path) -> bool {
        self.path.exists() && !claim_path(dir, &self.run_id, self.generation + 1).exists()
    }

    /// Gives the run up (interrupted): removes this claim if this process still holds it, so
    /// that another worker may take the run at once.
    pub fn release(&self, dir: &Path) {
        if self.held(dir) {
            let _ = fs::remove_file(&self.path);
        }
    }

    /// The heartbeat: refreshes the claim's modification time if this process still holds it;
    /// says whether it does.
    pub fn beat(&self, dir: &Path) -> bool {
        if !self.held(dir) {
            return false;
        }
        fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .is_ok()
    }
}

/// Removes every claim of `run_id` (its run is recorded: the claims have served).
pub fn clear(dir: &Path, run_id: &str) {
    let names = listing(dir);
    for g in generations(&names, run_id).collect::<Vec<_>>() {
        let _ = fs::remove_file(claim_path(dir, run_id, g));
    }
}

/// A name no other process or thread writing in the same folder uses: host, pid, thread and a
/// per-process counter.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    // The count only makes names unique; it holds no state of the computation.
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}.{}.{n}.{nanos}", hostname(), std::process::id())
}

/// Creates `path` holding `bytes` if no file of that name exists, atomically even on NFS:
/// `Ok(true)` if this call created it, `Ok(false)` if it existed. The file appears complete or
/// not at all. `durable` flushes its content to the disk first (records and the manifest; a
/// claim, which a crash makes stale anyway, skips the cost).
pub fn create_exclusive(path: &Path, bytes: &[u8], durable: bool) -> Result<bool, Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", unique_suffix()));
    let io = |e| Error::io(path, e);
    {
        let mut f = fs::File::create(&tmp).map_err(io)?;
        if let Err(e) = f
            .write_all(bytes)
            .and_then(|_| if durable { f.sync_data() } else { Ok(()) })
        {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
    }
    let linked = fs::hard_link(&tmp, path);
    let result = match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // On NFS a lost reply can report an error for a link that was made: believe the
            // link count.
            Ok(link_count(&tmp) == 2)
        }
        Err(_) if link_count(&tmp) == 2 => Ok(true),
        Err(_) => {
            // A filesystem without hard links: O_EXCL, then the content.
            match fs::OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut f) => f.write_all(bytes).and_then(|_| f.sync_data()).map(|_| true).map_err(io),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io(e)),
            }
        }
    };
    let _ = fs::remove_file(&tmp);
    result
}

fn link_count(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).map_or(0, |m| m.nlink())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("runner-claim-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join(CLAIMS)).unwrap();
        dir
    }

    fn holder(pid: u32) -> Holder {
        Holder {
            host: "h".into(),
            pid,
            started: "t".into(),
            lease_seconds: 60.0,
        }
    }

    #[test]
    fn a_lease_must_be_twice_the_heartbeat() {
        assert!(Lease::new(60.0, None).is_ok());
        assert_eq!(Lease::new(60.0, None).unwrap().heartbeat, Duration::from_secs(12));
        assert!(Lease::new(10.0, Some(5.0)).is_ok());
        let e = Lease::new(10.0, Some(6.0)).unwrap_err();
        assert!(e.contains("shorter than twice the heartbeat"), "{e}");
        assert!(Lease::new(0.0, None).is_err());
        assert!(Lease::new(f64::NAN, None).is_err());
    }

    #[test]
    fn one_claim_per_generation_and_a_stale_one_is_taken_over_once() {
        let dir = scratch("takeover");
        let lease = Lease::new(60.0, None).unwrap();
        let a = try_claim(&dir, "r", &holder(1), &lease).unwrap().expect("free run");
        assert_eq!(a.generation, 0);
        assert!(
            try_claim(&dir, "r", &holder(2), &lease).unwrap().is_none(),
            "live claim"
        );
        // Age the claim past the lease: the next generation goes to exactly one taker.
        let old = SystemTime::now() - Duration::from_secs(120);
        fs::OpenOptions::new()
            .write(true)
            .open(&a.path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let seen_now = seen(&dir, &listing(&dir), "r", &lease).unwrap();
        assert!(seen_now.stale && seen_now.holder == Some(holder(1)));
        let b = try_claim(&dir, "r", &holder(2), &lease).unwrap().expect("stale claim");
        assert_eq!(b.generation, 1);
        assert!(try_claim(&dir, "r", &holder(3), &lease).unwrap().is_none());
        // The old holder learns that it lost the run; the new one holds it.
        assert!(!a.held(&dir) && !a.beat(&dir));
        assert!(b.held(&dir) && b.beat(&dir));
        clear(&dir, "r");
        assert!(listing(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn exclusive_creation_has_one_winner_among_threads() {
        let dir = scratch("race");
        let path = dir.join("m.json");
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || create_exclusive(path, format!("{i}").as_bytes(), true).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(wins, 1);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2, "no temporary file left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
