//! A redis-server of a test's own, for what the shared one cannot show: a
//! password, TLS. Its process is killed (by PID) when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running redis-server on `127.0.0.1:<port>`, with `requirepass`.
pub struct RedisServer {
    _child: Child,
    port: u16,
    password: String,
    /// The CA that signed the server's certificate, when it speaks TLS only.
    ca_file: Option<PathBuf>,
}

impl RedisServer {
    /// A plain-TCP server that wants `password`.
    pub async fn start(password: &str) -> Self {
        let (child, port) = spawn(|port| vec!["--port".to_owned(), port.to_string()], password).await;
        Self { _child: child, port, password: password.to_owned(), ca_file: None }
    }

    /// A TLS-only server that wants `password`, its certificate (for `localhost`
    /// and 127.0.0.1) signed by a CA made in `dir` with the openssl CLI.
    pub async fn start_tls(password: &str, dir: &Path) -> Self {
        let files = certificates(dir);
        let (child, port) = spawn(
            |port| {
                let mut args: Vec<String> =
                    ["--port", "0", "--tls-port", &port.to_string(), "--tls-auth-clients", "no"]
                        .map(String::from)
                        .into();
                for (flag, file) in [
                    ("--tls-cert-file", &files.cert),
                    ("--tls-key-file", &files.key),
                    ("--tls-ca-cert-file", &files.ca),
                ] {
                    args.push(flag.to_owned());
                    args.push(file.display().to_string());
                }
                args
            },
            password,
        )
        .await;
        Self { _child: child, port, password: password.to_owned(), ca_file: Some(files.ca) }
    }

    /// The URL with `password` (`rediss://…@localhost` for a TLS server).
    pub fn url_with(&self, password: &str) -> String {
        match self.ca_file {
            Some(_) => format!("rediss://:{password}@localhost:{}/0", self.port),
            None => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
        }
    }

    /// The URL with the right password.
    pub fn url(&self) -> String {
        self.url_with(&self.password)
    }

    /// The CA certificate a client must trust (TLS servers only).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The value under `key` (plain-TCP servers only).
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        assert!(self.ca_file.is_none(), "reads go over plain TCP");
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        conn.get(key).await.unwrap()
    }
}

/// Starts redis-server on a free port (another one if that port was taken in
/// between), waits until it accepts connections.
async fn spawn(listen: impl Fn(u16) -> Vec<String>, password: &str) -> (Child, u16) {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("redis-server")
            .args(listen(port))
            .args(["--bind", "127.0.0.1", "--requirepass", password, "--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("Ready to accept connections") {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if ready {
            // Keep reading, so a full pipe never blocks the server.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, port);
        }
        let _ = child.kill().await;
    }
    panic!("redis-server did not start on any of 5 ports");
}

struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA and a server certificate it signed, for `localhost` and 127.0.0.1.
fn certificates(dir: &Path) -> Certificates {
    let path = |name: &str| dir.join(name);
    let ext = path("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let p = |name: &str| path(name).display().to_string();
    for args in [
        [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", &p("ca.key"), "-out", &p("ca.pem"), "-days", "2", "-subj", "/CN=offndat test CA"],
        ]
        .concat(),
        [&["req"][..], &ec, &["-keyout", &p("server.key"), "-out", &p("server.csr"), "-subj", "/CN=localhost"]]
            .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("server.pem"),
            "-days",
            "2",
            "-extfile",
            &p("server.ext"),
        ],
    ] {
        let output = std::process::Command::new("openssl").args(&args).output().expect("openssl is installed");
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Certificates { ca: path("ca.pem"), cert: path("server.pem"), key: path("server.key") }
}
