//! Test support: the local stack on its own ports and state folder, and a small HTTP client.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The function set running under `wrangler dev` for the duration of the test run.
pub struct Stack {
    child: Child,
    pub state: PathBuf,
    pub base: u16,
}

pub const TOKEN: &str = "integration-test-admin-token";

impl Stack {
    /// Starts `scripts/stack.sh` with a fresh state folder and waits until it is seeded.
    pub fn start(base: u16) -> Stack {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let state = root.join("target").join(format!("it-state-{base}"));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("state folder");
        let out = std::fs::File::create(state.join("stack.out")).expect("stack.out");
        use std::os::unix::process::CommandExt;
        let child = Command::new("bash")
            .arg(root.join("scripts/stack.sh"))
            .arg(&state)
            .arg(base.to_string())
            .env("KINDLING_ADMIN_TOKEN", TOKEN)
            .env("KINDLING_SEED_JOURNEYS", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start scripts/stack.sh");
        let stack = Stack { child, state, base };
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let out = std::fs::read_to_string(stack.state.join("stack.out")).unwrap_or_default();
            if out.contains("stack: ready") {
                return stack;
            }
            if Instant::now() > deadline || out.contains("did not start") || out.contains("failed")
            {
                panic!("the stack did not come up:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn track(&self) -> String {
        format!("http://127.0.0.1:{}", self.base)
    }
    pub fn forms(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 1)
    }
    pub fn engine(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 2)
    }
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 4)
    }

    /// Every function's log, for failure messages.
    pub fn logs(&self) -> String {
        ["track", "forms", "engine", "api"]
            .iter()
            .map(|f| {
                let log = std::fs::read_to_string(self.state.join(format!("{f}.log")))
                    .unwrap_or_default();
                let tail: Vec<_> = log.lines().rev().take(30).collect();
                format!(
                    "--- {f}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // stack.sh traps TERM and stops every function's process group before it exits.
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pgid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &pgid]).status();
        let _ = self.child.wait();
    }
}

/// An HTTP answer, whatever its status.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .redirects(0)
        .build()
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let content_type = resp.header("content-type").unwrap_or_default().to_string();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or_default().to_string();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader()
        .take(10 << 20)
        .read_to_end(&mut body)
        .expect("read body");
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

/// A JSON request with a bearer token, as every api caller in the tests makes it.
pub fn send_json(method: &str, url: &str, token: &str, body: Option<&[u8]>) -> Answer {
    let auth = format!("Bearer {token}");
    request(
        method,
        url,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

/// `send_json` with the admin token and a JSON document.
pub fn admin_send(method: &str, url: &str, body: &serde_json::Value) -> Answer {
    send_json(method, url, TOKEN, Some(body.to_string().as_bytes()))
}

/// Runs a browser script (tests/browser/*.mjs) with the project's Node and `env`; fails unless
/// it exits 0 and prints `marker`. Returns everything it printed.
pub fn run_browser_script(script: &str, env: &[(&str, &str)], marker: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(root.join("node_modules/.bin/node"));
    cmd.arg(root.join("tests/browser").join(script));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("node: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains(marker), "{text}");
    text
}

pub fn get(url: &str) -> Answer {
    request("GET", url, &[], None)
}

pub fn admin_get(url: &str) -> Answer {
    let auth = format!("Bearer {TOKEN}");
    request("GET", url, &[("Authorization", &auth)], None)
}

/// Polls until `check` returns Some, for work that flows through a queue.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A visitor id unique to this run.
pub fn fresh_visitor(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("v_{tag}_{}", nanos % 1_000_000_000_000)
}

/// The machine's clock in epoch milliseconds, for cron triggers relative to now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs engine's cron with `at` (epoch ms) as its scheduled time.
pub fn run_cron(stack: &Stack, at: i64) -> Answer {
    get(&format!(
        "{}/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*&time={at}",
        stack.engine()
    ))
}
