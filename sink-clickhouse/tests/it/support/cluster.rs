//! A real ClickHouse cluster on loopback: one ZooKeeper 3.8 (Debian `zookeeper`) and
//! three Debian `clickhouse-server` 18.16 processes, each with its own config folder,
//! data dir and ports. Everything is killed by PID on drop.
//!
//! Layout (one 3-node layout serves both shapes the tests need):
//!
//! | node | shard macro | replica macro | in cluster `replicated` | in cluster `sharded` |
//! |------|-------------|---------------|-------------------------|----------------------|
//! | 0    | 1           | r0            | shard 1, replica 1      | shard 1, replica 1   |
//! | 1    | 1           | r1            | shard 1, replica 2      | shard 1, replica 2   |
//! | 2    | 2           | r0            | —                       | shard 2, replica 1   |
//!
//! - `replicated`: one shard, two replicas (`ReplicatedMergeTree`, block deduplication,
//!   failover between nodes 0 and 1).
//! - `sharded`: two shards, the first of them replicated (`internal_replication` = true,
//!   so a `Distributed` table writes each block to one replica and replication copies
//!   it), for a `Distributed` table over two shards.
//!
//! Ports come from 19400–19499 (this harness's range), ten per cluster, each checked
//! free before use. Cluster tests take [`Cluster::lock`] so that only one cluster (four
//! JVM/C++ servers) runs at a time on the shared 2-core machine.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The cluster with one shard and two replicas (nodes 0 and 1).
pub const REPLICATED: &str = "replicated";
/// The cluster with two shards (nodes 0+1 as replicas of shard 1, node 2 as shard 2).
pub const SHARDED: &str = "sharded";

static NEXT_PORT: AtomicU16 = AtomicU16::new(19400);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The next free port of 19400-19499, wrapping around (one cluster runs at a time, so
/// a wrapped-around port belongs to a cluster already dropped).
fn free_port() -> u16 {
    for _ in 0..100 {
        let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let p = 19400 + (n - 19400) % 100;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free port in 19400-19499 (the cluster tests' range)");
}

/// One clickhouse-server of the cluster.
pub struct Node {
    /// HTTP port (the sink's URL).
    pub http_port: u16,
    /// Native TCP port (what `remote_servers` and `ON CLUSTER` use).
    pub tcp_port: u16,
    /// Replication (interserver HTTP) port.
    pub interserver_port: u16,
    /// The node's folder: config.xml, users.xml, config.d/, data/, logs.
    pub dir: PathBuf,
    child: Option<Child>,
}

/// ZooKeeper plus three ClickHouse servers; see the module doc for the layout.
pub struct Cluster {
    /// The nodes, indexed as in the module doc.
    pub nodes: Vec<Node>,
    /// ZooKeeper's client port.
    pub zk_port: u16,
    zk: Option<Child>,
    server: PathBuf,
    zk_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Finds `program` on PATH or in /usr/sbin (Debian puts clickhouse-server there), or
/// fails the test loudly naming the Debian package to install.
fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is missing: the cluster tests need the Debian package `{package}` \
                 (scripts/setup installs it: apt-get install {package})"
            )
        })
}

impl Cluster {
    /// Serializes the cluster tests (hold the guard for the whole test).
    pub fn lock() -> MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts ZooKeeper and the three nodes and waits until every node answers `/ping`
    /// and sees ZooKeeper.
    pub fn start() -> Cluster {
        let server = require("clickhouse-server", "clickhouse-server");
        let java = require("java", "zookeeper (its dependency default-jre-headless)");
        assert!(
            Path::new("/usr/share/java/zookeeper.jar").is_file(),
            "/usr/share/java/zookeeper.jar is missing: the cluster tests need the Debian \
             package `zookeeper` (scripts/setup installs it: apt-get install zookeeper)"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let zk_port = free_port();
        let zk_dir = tmp.path().join("zk");
        let mut nodes: Vec<Node> = (0..3)
            .map(|i| Node {
                http_port: free_port(),
                tcp_port: free_port(),
                interserver_port: free_port(),
                dir: tmp.path().join(format!("ch{i}")),
                child: None,
            })
            .collect();
        let mut c = Cluster {
            zk: Some(start_zookeeper(&java, &zk_dir, zk_port)),
            server,
            nodes: Vec::new(),
            zk_port,
            zk_dir,
            _tmp: tmp,
        };
        let tcp: Vec<u16> = nodes.iter().map(|n| n.tcp_port).collect();
        for (i, n) in nodes.iter_mut().enumerate() {
            write_node_config(n, i, zk_port, &tcp);
        }
        c.nodes = nodes;
        c.wait_zookeeper();
        for i in 0..c.nodes.len() {
            c.start_node(i);
        }
        for i in 0..c.nodes.len() {
            c.wait_node(i);
        }
        c
    }

    /// `http://127.0.0.1:PORT` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].http_port)
    }

    /// Runs `sql` on node `i`; the body, or the server's error text.
    pub fn try_query(&self, i: usize, sql: &str) -> Result<String, String> {
        self.try_query_with(i, sql, &[])
    }

    /// Runs `sql` on node `i` with these settings (URL parameters, which 18.16 applies
    /// to an `INSERT … SELECT` as a whole, unlike a trailing `SETTINGS` clause).
    pub fn try_query_with(
        &self,
        i: usize,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<String, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        // A node busy with replication or a DDL task on these 2 shared cores sometimes
        // refuses a connection for a moment; a request that never connected is safe to
        // send again (it reached no server), anything else is reported as it is.
        let mut attempt = 0;
        let r = loop {
            let sent = client
                .post(format!("{}/", self.url(i)))
                .query(settings)
                .body(sql.to_owned())
                .send();
            match sent {
                Err(e) if e.is_connect() && attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(500 * attempt));
                }
                other => break other.map_err(|e| format!("node {i}: {e:?}"))?,
            }
        };
        let ok = r.status().is_success();
        let text = r.text().map_err(|e| format!("node {i}: {e}"))?;
        if ok {
            Ok(text)
        } else {
            Err(format!("node {i}: {text}"))
        }
    }

    /// Runs `sql` on node `i`, panicking with the server's error.
    pub fn query(&self, i: usize, sql: &str) -> String {
        self.try_query(i, sql).unwrap_or_else(|e| {
            let logs: String = (0..self.nodes.len())
                .map(|k| format!("=== node {k}\n{}", self.node_log_tail(k)))
                .collect();
            panic!("query failed: {e}\nquery: {sql}\n{logs}")
        })
    }

    /// A single number answered by `sql` on node `i`.
    pub fn count(&self, i: usize, sql: &str) -> u64 {
        let t = self.query(i, sql);
        t.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {t:?} for {sql}"))
    }

    /// `kill -9` of node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` (again) and waits until it is up.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.start_node(i);
        self.wait_node(i);
    }

    fn start_node(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let d = &n.dir;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("stdout.log"))
            .expect("node log");
        let child = Command::new(&self.server)
            .arg(format!("--config-file={}", d.join("config.xml").display()))
            .arg("--")
            .arg(format!("--path={}/data/", d.display()))
            .arg(format!("--tmp_path={}/tmp/", d.display()))
            .arg(format!("--user_files_path={}/uf/", d.display()))
            .arg(format!("--format_schema_path={}/fs/", d.display()))
            .arg(format!("--http_port={}", n.http_port))
            .arg(format!("--tcp_port={}", n.tcp_port))
            .arg(format!("--interserver_http_port={}", n.interserver_port))
            .arg("--listen_host=127.0.0.1")
            .arg(format!("--logger.log={}/server.log", d.display()))
            .arg(format!("--logger.errorlog={}/server.err.log", d.display()))
            .arg("--logger.console=0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawning clickhouse-server");
        n.child = Some(child);
    }

    fn wait_node(&mut self, i: usize) {
        let t0 = Instant::now();
        loop {
            let up = reqwest::blocking::get(format!("{}/ping", self.url(i)))
                .ok()
                .filter(|r| r.status().is_success())
                .is_some();
            // Up and connected to ZooKeeper (replicated DDL needs the session).
            if up
                && self
                    .try_query(i, "SELECT count() FROM system.zookeeper WHERE path = '/'")
                    .is_ok()
            {
                return;
            }
            if let Some(st) = self.nodes[i]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "clickhouse-server node {i} exited at start ({st}):\n{}",
                    self.node_log_tail(i)
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "clickhouse-server node {i} not ready after 60 s:\n{}",
                self.node_log_tail(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The tail of node `i`'s error log (for failure messages).
    pub fn node_log_tail(&self, i: usize) -> String {
        let d = &self.nodes[i].dir;
        let mut s = String::new();
        for f in ["stdout.log", "server.err.log"] {
            let t = std::fs::read_to_string(d.join(f)).unwrap_or_default();
            let cut = t.len().saturating_sub(3000);
            let cut = (cut..t.len())
                .find(|&k| t.is_char_boundary(k))
                .unwrap_or(t.len());
            s.push_str(&format!("--- {f}\n{}\n", &t[cut..]));
        }
        s
    }

    fn wait_zookeeper(&mut self) {
        let t0 = Instant::now();
        loop {
            if zk_ruok(self.zk_port) {
                return;
            }
            if let Some(st) = self.zk.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "zookeeper exited at start ({st}):\n{}",
                    std::fs::read_to_string(self.zk_dir.join("zk.log")).unwrap_or_default()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "zookeeper not ready after 60 s:\n{}",
                std::fs::read_to_string(self.zk_dir.join("zk.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if let Some(mut z) = self.zk.take() {
            let _ = z.kill();
            let _ = z.wait();
        }
    }
}

/// ZooKeeper's `ruok` four-letter command (whitelisted in zoo.cfg) answers `imok`.
fn zk_ruok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = String::new();
    s.write_all(b"ruok").is_ok() && s.read_to_string(&mut buf).is_ok() && buf == "imok"
}

/// ZooKeeper in the foreground (the JVM is our child, so its PID is what we kill), as
/// CLICKHOUSE.md describes: Debian's jars on the class path and a minimal zoo.cfg.
fn start_zookeeper(java: &Path, dir: &Path, port: u16) -> Child {
    std::fs::create_dir_all(dir.join("data")).expect("zk dir");
    // A short tick keeps the session timeout of a killed ClickHouse node short (a
    // restarted replica must not find its previous session still alive).
    let cfg = format!(
        "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\n\
         clientPortAddress=127.0.0.1\nadmin.enableServer=false\nmaxClientCnxns=0\n\
         4lw.commands.whitelist=ruok\n",
        dir.join("data").display()
    );
    std::fs::write(dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
    let jars: Vec<String> = std::fs::read_dir("/usr/share/java")
        .expect("/usr/share/java")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jar"))
        .map(|p| p.display().to_string())
        .collect();
    let log = std::fs::File::create(dir.join("zk.log")).expect("zk log");
    Command::new(java)
        .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp"])
        .arg(jars.join(":"))
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(dir.join("zoo.cfg"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawning zookeeper (java)")
}

/// Copies the system config.xml/users.xml into the node's folder and adds a config.d
/// file with ZooKeeper, the macros and both clusters (root element `<yandex>` in 18.16).
fn write_node_config(n: &Node, i: usize, zk_port: u16, tcp: &[u16]) {
    let d = &n.dir;
    for sub in ["config.d", "data", "tmp", "uf", "fs"] {
        std::fs::create_dir_all(d.join(sub)).expect("node dir");
    }
    for f in ["config.xml", "users.xml"] {
        std::fs::copy(Path::new("/etc/clickhouse-server").join(f), d.join(f))
            .unwrap_or_else(|e| panic!("copying /etc/clickhouse-server/{f}: {e}"));
    }
    let (shard, replica) = [(1, "r0"), (1, "r1"), (2, "r0")][i];
    let rep = |p: u16| format!("<replica><host>127.0.0.1</host><port>{p}</port></replica>");
    let xml = format!(
        r#"<yandex>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <zookeeper>
    <node><host>127.0.0.1</host><port>{zk_port}</port></node>
    <session_timeout_ms>4000</session_timeout_ms>
  </zookeeper>
  <macros><shard>{shard}</shard><replica>{replica}</replica></macros>
  <remote_servers>
    <{REPLICATED}>
      <shard><internal_replication>true</internal_replication>{r0}{r1}</shard>
    </{REPLICATED}>
    <{SHARDED}>
      <shard><internal_replication>true</internal_replication>{r0}{r1}</shard>
      <shard><internal_replication>true</internal_replication>{r2}</shard>
    </{SHARDED}>
  </remote_servers>
</yandex>
"#,
        r0 = rep(tcp[0]),
        r1 = rep(tcp[1]),
        r2 = rep(tcp[2]),
    );
    std::fs::write(d.join("config.d/cluster.xml"), xml).expect("config.d/cluster.xml");
}
