//! Test harness: runs the real `pyxis` binary on a free port with its own data dir.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEY: &str = "pyx-test-demo-key";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pyxis")
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: tempfile::TempDir,
    pub started_in: Duration,
    pub stdout_lines: Vec<String>,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let data_dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(data_dir, extra, Some(KEY))
    }

    pub fn start_in(data_dir: tempfile::TempDir, extra: &[&str], key: Option<&str>) -> Server {
        let t0 = Instant::now();
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .args(extra)
            .env("PYXIS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match key {
            Some(k) => cmd.env("PYXIS_DEMO_API_KEY", k),
            None => cmd.env_remove("PYXIS_DEMO_API_KEY"),
        };
        let mut child = cmd.spawn().expect("spawn pyxis serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().expect("a first line").expect("utf8");
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_string();
        let mut stdout_lines = vec![first];
        // The banner is a handful of lines; read them, then keep draining in the background.
        for _ in 0..4 {
            if let Some(Ok(l)) = lines.next() {
                stdout_lines.push(l);
            }
        }
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let started_in = t0.elapsed();
        Server {
            child,
            url,
            data_dir,
            started_in,
            stdout_lines,
        }
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    /// Runs another `pyxis` command against the same data dir.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli_in(self.data_path(), args)
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
        // SIGTERM for a graceful stop (drains the audit writer).
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn cli_in(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    let d = data_dir.to_str().expect("utf8 path");
    all.extend(["--data-dir", d]);
    Command::new(bin())
        .args(&all)
        .env("PYXIS_LOG", "warn")
        .output()
        .expect("run pyxis")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

pub fn chat_body(model: &str, stream: bool, max_tokens: u32) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello to the fleet."}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
}

/// Reads the audit log through the CLI until `pred` holds or 5 s pass.
pub fn wait_audit(data_dir: &Path, pred: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = cli_in(data_dir, &["audit", "tail", "-n", "200", "--output", "json"]);
        assert!(
            out.status.success(),
            "audit tail failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        if pred(&rows) || Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn write_file(path: &PathBuf, content: &str) {
    // Write then rename, as editors do, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}
