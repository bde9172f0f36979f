//! The one launcher of the real binaries (`offndat-api`, `offndat-worker`) as
//! processes: a clean environment of the test's choosing, every listener on port
//! 0, the bound addresses read back from the binary's own `<binary> listening`
//! log line (so no port is picked, freed and reused), output kept for failure
//! messages, readiness awaited by polling, and the process killed by its PID when
//! the test lets go of it.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::eventually;

/// Generous: CI machines with two cores run many tests at once, and the API waits
/// for PostgreSQL and applies migrations before it listens.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// How long a stopping process may take before the test fails.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A built binary.
#[derive(Debug, Clone)]
pub struct Binary {
    path: PathBuf,
    name: String,
}

impl Binary {
    /// The binary at `path`, e.g. `env!("CARGO_BIN_EXE_offndat-api")`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(path.exists(), "{} is not built; run the tests with `cargo test --workspace`", path.display());
        Self { path, name }
    }

    /// Another binary of the same build, beside `path`: cargo gives a test the path
    /// of its own crate's binaries only.
    pub fn beside(path: impl AsRef<Path>, name: &str) -> Self {
        Self::at(path.as_ref().with_file_name(name))
    }

    /// The file name, which is also how the binary names itself in its logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A launch with an empty environment (nothing of the developer's shell leaks
    /// in; `RUST_BACKTRACE` is passed on).
    pub fn command(&self) -> Launch {
        let mut envs = Vec::new();
        if let Some(backtrace) = std::env::var_os("RUST_BACKTRACE") {
            envs.push((OsString::from("RUST_BACKTRACE"), backtrace));
        }
        Launch { binary: self.clone(), envs, args: Vec::new(), log: None }
    }
}

/// What to start: a binary, its environment and arguments.
#[must_use]
pub struct Launch {
    binary: Binary,
    envs: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
    log: Option<Log>,
}

impl Launch {
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self {
        for (name, value) in vars {
            self = self.env(name, value);
        }
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<A: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// Also appends the output to `log`, which several processes may share (a
    /// binary restarted by a test keeps one log across its lives).
    pub fn log_to(mut self, log: &Log) -> Self {
        self.log = Some(log.clone());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary.path);
        command
            .env_clear()
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Starts the process without waiting for anything.
    pub fn spawn(self) -> Process {
        let mut child = self.command().spawn().unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.path.display()));
        let own = Log::default();
        let shared = self.log.clone();
        let (listening_tx, listening) = watch::channel(None);
        let listening_tx = Arc::new(listening_tx);
        let message = format!("{} listening", self.binary.name);
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        for stream in [Box::new(stdout) as Box<dyn AsyncRead + Send + Unpin>, Box::new(stderr)] {
            let (own, shared, listening_tx, message) =
                (own.clone(), shared.clone(), listening_tx.clone(), message.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    // Not holding the borrow across `send_replace`.
                    let unseen = listening_tx.borrow().is_none();
                    if unseen && let Some(fields) = Listening::parse(&line, &message) {
                        listening_tx.send_replace(Some(fields));
                    }
                    own.push(&line);
                    if let Some(shared) = &shared {
                        shared.push(&line);
                    }
                }
                // Both streams closed (the process is gone): the last sender
                // dropped tells a waiting `listening` so.
            });
        }
        Process { name: self.binary.name, child, log: own, listening }
    }

    /// Runs the binary to its end (a subcommand, or a start that must fail) and
    /// returns its exit status and output.
    pub async fn output(self) -> Output {
        let mut command = self.command();
        let run = command.output();
        tokio::time::timeout(START_DEADLINE, run)
            .await
            .unwrap_or_else(|_| panic!("{} did not end within {START_DEADLINE:?}", self.binary.name))
            .unwrap_or_else(|e| panic!("run {}: {e}", self.binary.path.display()))
    }
}

/// Output lines of one process or of several, kept for assertions and failure
/// messages.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<String>>);

impl Log {
    fn push(&self, line: &str) {
        let mut text = self.0.lock().unwrap_or_else(|e| e.into_inner());
        text.push_str(line);
        text.push('\n');
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The fields of a binary's `<binary> listening` line: `address`, and the API's
/// `ops_address`, among others.
#[derive(Debug, Clone)]
pub struct Listening {
    pub fields: BTreeMap<String, String>,
}

impl Listening {
    /// Reads `line` if it is the `message` line, in either log format: JSON
    /// (`"message":"…","address":"…"`) or text (`… message address=… ops_address=…`).
    fn parse(line: &str, message: &str) -> Option<Self> {
        if let Ok(serde_json::Value::Object(json)) = serde_json::from_str(line) {
            if json.get("message").and_then(|m| m.as_str()) != Some(message) {
                return None;
            }
            let fields = json
                .into_iter()
                .filter_map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k, s)),
                    serde_json::Value::Number(n) => Some((k, n.to_string())),
                    _ => None,
                })
                .collect();
            return Some(Self { fields });
        }
        let (_, rest) = line.split_once(&format!(" {message} "))?;
        let fields = rest
            .split_ascii_whitespace()
            .filter_map(|field| field.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect();
        Some(Self { fields })
    }

    /// The socket address in `field`.
    pub fn address(&self, field: &str) -> SocketAddr {
        let value = self.fields.get(field).unwrap_or_else(|| panic!("no {field} in the listening line: {self:?}"));
        value.parse().unwrap_or_else(|e| panic!("{field}={value}: {e}"))
    }
}

/// A running binary. Dropping it kills the process (SIGKILL to its PID).
pub struct Process {
    name: String,
    child: Child,
    log: Log,
    listening: watch::Receiver<Option<Listening>>,
}

impl Process {
    /// The `<binary> listening` line's fields, once the binary has logged it;
    /// panics with the output if it exits first or takes longer than
    /// [`START_DEADLINE`].
    pub async fn listening(&self) -> Listening {
        let mut listening = self.listening.clone();
        match tokio::time::timeout(START_DEADLINE, listening.wait_for(Option::is_some)).await {
            Ok(Ok(fields)) => fields.clone().expect("waited for it"),
            Ok(Err(_)) => panic!("{} exited before listening; output:\n{}", self.name, self.output()),
            Err(_) => panic!("{} did not listen within {START_DEADLINE:?}; output:\n{}", self.name, self.output()),
        }
    }

    /// The fields of the listening line if it is out yet.
    pub fn listening_now(&self) -> Option<Listening> {
        self.listening.borrow().clone()
    }

    /// The address the binary bound for `field` (`address`, `ops_address`).
    pub async fn address(&self, field: &str) -> SocketAddr {
        self.listening().await.address(field)
    }

    /// Polls `GET http://<field's address>/health/ready` until it answers 200.
    pub async fn ready(&self, field: &str, client: &reqwest::Client) {
        let url = format!("http://{}/health/ready", self.address(field).await);
        eventually(START_DEADLINE, &format!("{} ready at {url}", self.name), || async {
            match client.get(&url).send().await {
                Ok(response) if response.status() == 200 => Ok(()),
                Ok(response) => Err(format!("{}: {}", response.status(), response.text().await.unwrap_or_default())),
                Err(error) => Err(format!("{error}; output:\n{}", self.output())),
            }
        })
        .await;
    }

    /// Waits until the process has written a line containing `needle` and returns
    /// that line.
    pub async fn line_containing(&self, needle: &str) -> String {
        eventually(START_DEADLINE, &format!("{} logs {needle:?}", self.name), || async {
            self.log.text().lines().find(|line| line.contains(needle)).map(str::to_owned).ok_or_else(|| self.output())
        })
        .await
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process has not been awaited yet")
    }

    /// Sends `signal` (`TERM`, `KILL`) to this process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits up to `within` for the process to end; its exit code (`None` if a
    /// signal ended it).
    pub async fn exit_code_within(&mut self, within: Duration) -> Option<i32> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("wait").code(),
            Err(_) => panic!("{} did not exit within {within:?}; output:\n{}", self.name, self.output()),
        }
    }

    /// [`Self::exit_code_within`] [`EXIT_DEADLINE`].
    pub async fn exit_code(&mut self) -> Option<i32> {
        self.exit_code_within(EXIT_DEADLINE).await
    }

    /// SIGTERM, then asserts a clean exit (code 0).
    pub async fn stop(mut self) {
        self.signal("TERM");
        let code = self.exit_code().await;
        assert_eq!(code, Some(0), "{} exit code; output:\n{}", self.name, self.output());
    }

    /// `Some(exit code)` if the process has ended already.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().expect("try_wait").map(|status| status.code())
    }

    /// What this process wrote so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.log.text()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // By PID (tokio's `kill` of this child); a process that ended is left alone.
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_is_read_in_both_log_formats() {
        let text = "2026-01-01T00:00:00.000000Z  INFO offndat_api::app: offndat-api listening \
                    address=127.0.0.1:41234 ops_address=127.0.0.1:41235 public_base_url=http://short.test/";
        let listening = Listening::parse(text, "offndat-api listening").expect("text");
        assert_eq!(listening.address("address"), "127.0.0.1:41234".parse().expect("addr"));
        assert_eq!(listening.address("ops_address"), "127.0.0.1:41235".parse().expect("addr"));

        let json = r#"{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","message":"offndat-worker listening","address":"[::1]:8091","namespace":"n","target":"offndat_worker::app"}"#;
        let listening = Listening::parse(json, "offndat-worker listening").expect("json");
        assert_eq!(listening.address("address"), "[::1]:8091".parse().expect("addr"));

        assert!(Listening::parse(json, "offndat-api listening").is_none(), "another binary's line");
        assert!(Listening::parse("INFO listening for link changes exchange=x", "offndat-api listening").is_none());
        assert!(Listening::parse(r#"{"message":"offndat-api listening for"}"#, "offndat-api listening").is_none());
    }
}
