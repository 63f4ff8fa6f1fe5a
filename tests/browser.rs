//! `report.html` in a real browser: Debian's Chromium, headless, driven through WebDriver
//! (`chromedriver`) with the network cut off (every host name resolves to nothing, every
//! connection goes to a closed proxy). The page is opened from disk, sorted by final loss,
//! filtered by one swept key, one run's curves opened, and what the page then shows is checked:
//! row count and order, the curves drawn, the parallel coordinates following the filter; the
//! page makes no network request and logs no console error. The folders of the "must hold"
//! cases (one run, every run diverged, no numeric key) open without errors too.
//!
//! The WebDriver client is a few lines over `std::net` (JSON over HTTP/1.1 to localhost).
//! Without `chromium` and `chromedriver` (`.ci/run` installs them) the tests say so and pass.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{GRID, run, scratch, stderr};

/// Runs `spec` in a fresh folder; returns the results folder.
fn sweep(test: &str, spec: &str) -> PathBuf {
    let dir = scratch(test);
    fs::write(dir.join("s.toml"), spec).unwrap();
    let out = run(&dir, &["s.toml", "--quiet", "--out", "res"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    dir.join("res")
}

/// One HTTP/1.1 request to localhost; the response body as JSON.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver may keep the connection open: read the head, then exactly the body.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let head_end = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{method} {path}: the connection closed before a response");
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let decoded = match length {
        Some(len) => {
            while raw.len() < head_end + len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "{method} {path}: the body ended early");
                raw.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&raw[head_end..head_end + len]).into_owned()
        }
        None => {
            // No length: the body runs to the end of the connection.
            let _ = s.read_to_end(&mut raw);
            String::from_utf8_lossy(&raw[head_end..]).into_owned()
        }
    };
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("{method} {path}: {e}: {decoded}"))
}

/// A headless Chromium session; chromedriver ends with it.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at 1280×800 with the network cut off, or
    /// `None` (said on stderr) where they are not installed.
    fn start(test: &str) -> Option<Self> {
        let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let (Some(chromium), true) = (chromium, Command::new("chromedriver").arg("--version").output().is_ok()) else {
            // .ci/run installs them and sets this: there a missing browser is a failure.
            assert!(
                std::env::var_os("RUNNER_REQUIRE_TOOLS").is_none(),
                "{test}: chromium or chromedriver is missing although RUNNER_REQUIRE_TOOLS is set"
            );
            eprintln!("SKIPPED {test}: chromium or chromedriver is not installed here (.ci/run installs them)");
            return None;
        };
        let binary = String::from_utf8(Command::new("which").arg(chromium).output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        // From here on the driver is ended with the browser, whatever fails.
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": binary, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                // No network: every name resolves to nothing, every connection to a closed port.
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
            ]}
        }}});
        let started = http(port, "POST", "/session", Some(&caps));
        browser.session = started["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {started}"))
            .to_string();
        Some(browser)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        http(
            self.port,
            "POST",
            &format!("/session/{}{path}", self.session),
            Some(&body),
        )["value"]
            .clone()
    }

    fn open(&self, file: &Path) {
        let url = format!("file://{}", file.canonicalize().unwrap().display());
        self.post("/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn eval(&self, script: &str) -> Value {
        let v = self.post("/execute/sync", json!({ "script": script, "args": [] }));
        assert!(v.get("error").is_none(), "{script}: {v}");
        v
    }

    /// Runs `script` until `settled` accepts its value or 5 s have passed (an answer that comes
    /// in a promise, as the clipboard's), and returns its last value.
    fn eval_until(&self, script: &str, settled: impl Fn(&Value) -> bool) -> Value {
        let start = std::time::Instant::now();
        loop {
            let v = self.eval(script);
            if settled(&v) || start.elapsed() > std::time::Duration::from_secs(5) {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Clicks the element `css` selects, as a user would (WebDriver's element click).
    fn click(&self, css: &str) {
        let found = self.post("/element", json!({"using": "css selector", "value": css}));
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string();
        let clicked = self.post(&format!("/element/{id}/click"), json!({}));
        assert!(clicked.is_null(), "click {css}: {clicked}");
    }

    /// The console messages of level SEVERE (errors, refused loads) since the last call.
    fn console_errors(&self) -> Vec<String> {
        let log = self.post("/se/log", json!({"type": "browser"}));
        log.as_array()
            .unwrap_or_else(|| panic!("chromedriver gave no browser log: {log}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].to_string())
            .collect()
    }

    /// Requests the page made for anything beyond itself (resource timing entries).
    fn requests(&self) -> Value {
        self.eval("return performance.getEntriesByType('resource').map(e => e.name);")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(|| http(self.port, "DELETE", &format!("/session/{}", self.session), None));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The text of column `col` (by its label) of every shown row of the runs table.
const COLUMN: &str =
    "const i = [...document.querySelectorAll('#runs-table thead th')].findIndex(th => th.dataset.col === arguments[0]);
return [...document.querySelectorAll('#runs-table tbody tr')].map(tr => tr.children[i].textContent);";

fn column(b: &Browser, col: &str) -> Vec<String> {
    let v = b.post("/execute/sync", json!({ "script": COLUMN, "args": [col] }));
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_report_sorts_filters_and_draws_a_run_offline() {
    let res = sweep("browser", GRID);
    let Some(b) = Browser::start("the_report_sorts_filters_and_draws_a_run_offline") else {
        return;
    };
    b.open(&res.join("report.html"));
    assert_eq!(b.eval("return document.title;"), "grid — runner report");
    // The log reader sees errors: one logged on purpose is the only one since the page loaded.
    b.eval("console.error('self-check of the log reader'); return null;");
    let errors = b.console_errors();
    assert!(
        errors.len() == 1 && errors[0].contains("self-check of the log reader"),
        "console after loading: {errors:?}"
    );
    assert_eq!(column(&b, "run_id").len(), 16);
    // Every chart of the folder is in the page, inline (the large ones unpacked by the script).
    let until = Instant::now() + Duration::from_secs(20);
    while b.eval("return document.documentElement.dataset.charts || '';") != "ready" {
        assert!(Instant::now() < until, "the charts were not unpacked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let charts = fs::read_dir(res.join("charts"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "svg"))
        .count();
    assert_eq!(b.eval("return document.querySelectorAll('figure svg').length;"), charts);
    let packed = b.eval("return document.querySelectorAll('figure div.packed svg').length;");
    assert!(
        packed.as_u64().unwrap() >= 1,
        "no chart went through the compressed path"
    );

    // Sort by final loss: ascending, the diverged run (no final loss, shown as —) last.
    b.click("th[data-col='final_loss'] button");
    let losses = column(&b, "final_loss");
    let values: Vec<f64> = losses
        .iter()
        .filter(|v| *v != "—")
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 15, "{losses:?}");
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{losses:?}");
    assert_eq!(losses.last().map(String::as_str), Some("—"), "{losses:?}");
    assert_eq!(column(&b, "status").last().map(String::as_str), Some("diverged"));
    // Again: descending, the missing value still last.
    b.click("th[data-col='final_loss'] button");
    let desc: Vec<f64> = column(&b, "final_loss")
        .iter()
        .filter(|v| *v != "—")
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(desc.windows(2).all(|w| w[0] >= w[1]), "{desc:?}");

    // Filter: untick relu; 8 tanh runs remain, still sorted, and the parallel coordinates follow.
    b.click("input[data-filter='model.activation'][value='relu']");
    let act = column(&b, "model.activation");
    assert_eq!(act.len(), 8);
    assert!(act.iter().all(|a| a == "tanh"), "{act:?}");
    assert_eq!(
        b.eval("return document.getElementById('shown').textContent;"),
        "8 of 16 runs shown"
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('#parcoords polyline').length;"),
        8
    );

    // Back to ascending, and open the first run (the lowest loss): its loss curve and its
    // gradient-decay profiles are drawn.
    b.click("th[data-col='final_loss'] button");
    let first = column(&b, "run_id")[0].clone();
    b.click("#runs-table tbody tr");
    assert_eq!(b.eval("return document.getElementById('detail').hidden;"), false);
    let heading = b.eval("return document.querySelector('#detail h3').textContent;");
    assert!(heading.as_str().unwrap().contains(&first), "{heading}");
    let points = b.eval("return [...document.querySelectorAll('#detail path.curve')].map(p => +p.dataset.points);");
    let points: Vec<u64> = serde_json::from_value(points).unwrap();
    assert_eq!(
        points.len(),
        3,
        "loss, decay at initialisation, decay after training: {points:?}"
    );
    assert!(points.iter().all(|&n| n >= 5), "{points:?}");
    assert_eq!(
        b.eval("return document.querySelector('#parcoords polyline[stroke=\"#000\"]').dataset.run;"),
        first.as_str(),
        "the opened run is highlighted in the parallel coordinates"
    );

    // The constant settings hide behind a toggle; a copy button gives the LaTeX table.
    assert_eq!(
        b.eval("return getComputedStyle(document.querySelector('th.constant')).display;"),
        "none"
    );
    b.click("#show-constant");
    assert_ne!(
        b.eval("return getComputedStyle(document.querySelector('th.constant')).display;"),
        "none"
    );
    b.click("button[data-copy='latex']");
    // The clipboard's write answers in a promise: the status line is set when it settles.
    let said = b.eval_until("return document.getElementById('copied').textContent;", |v| {
        v.as_str().is_some_and(|s| !s.is_empty())
    });
    assert!(said.as_str().is_some_and(|s| s.contains("LaTeX")), "{said}");

    assert_eq!(b.requests(), json!([]), "the page fetched something");
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[test]
fn one_run_all_diverged_and_no_numeric_key_open_without_errors() {
    let cases = [
        ("one", GRID.replace(&GRID[GRID.find("[sweep]").unwrap()..], "")),
        (
            "diverged",
            GRID.replace("steps = 30", "steps = 30\nlr = 100000.0").replace(
                "\"train.lr\" = [0.01, 3.0]\n\"train.clip\" = [\"none\", 0.5]\n",
                "\"model.scale\" = [3.0, 4.0]\n",
            ),
        ),
        (
            "words",
            GRID.replace(
                "\"train.lr\" = [0.01, 3.0]\n\"train.clip\" = [\"none\", 0.5]\n",
                "\"model.init\" = [\"xavier\", \"orthogonal\"]\n",
            ),
        ),
    ];
    let folders: Vec<(&str, PathBuf)> = cases
        .iter()
        .map(|(n, s)| (*n, sweep(&format!("browser-{n}"), s)))
        .collect();
    let runs = |res: &Path| fs::read_to_string(res.join("runs.csv")).unwrap();
    assert_eq!(runs(&folders[0].1).lines().count(), 2, "one run");
    assert!(
        runs(&folders[1].1).lines().skip(1).all(|l| l.contains(",diverged,")),
        "{}",
        runs(&folders[1].1)
    );
    let Some(b) = Browser::start("one_run_all_diverged_and_no_numeric_key_open_without_errors") else {
        return;
    };
    for (name, res) in &folders {
        b.open(&res.join("report.html"));
        let n = runs(res).lines().count() - 1;
        assert_eq!(column(&b, "run_id").len(), n, "{name}");
        b.click("th[data-col='status'] button");
        b.click("#runs-table tbody tr");
        assert_eq!(
            b.eval("return document.querySelectorAll('#detail svg').length;"),
            2,
            "{name}"
        );
        assert_eq!(
            b.eval("return document.querySelectorAll('#parcoords polyline').length;"),
            n,
            "{name}"
        );
        assert_eq!(b.requests(), json!([]), "{name}");
        let errors = b.console_errors();
        assert!(errors.is_empty(), "{name}: console errors: {errors:?}");
    }
}
