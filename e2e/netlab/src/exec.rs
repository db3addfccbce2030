//! Running things inside a namespace: commands, long-running processes, and sockets
//! opened by this process but living in another namespace.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::names::NETNS_DIR;
use crate::{NetlabError, Result};

/// How long a one-shot command may run before it is killed (only a guard against hangs).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CmdOutput {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// A `Command` that runs `program` inside namespace `netns` (`ip netns exec`). Add
/// arguments, environment and stdio as usual; `ip netns exec` passes the environment on
/// and execs the program, so the child's pid is the program's.
pub fn command_in(netns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns]).arg(program);
    cmd
}

/// Runs `program args..` inside `netns` and captures its output, whatever its status.
pub fn run_in<I, S>(netns: &str, program: &str, args: I) -> Result<CmdOutput>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command_in(netns, program);
    cmd.args(args);
    output(cmd)
}

/// Like [`run_in`], but a non-zero exit is an error; returns stdout.
pub fn run_in_ok<I, S>(netns: &str, program: &str, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command_in(netns, program);
    cmd.args(args);
    checked(cmd)
}

/// Renders a command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command to completion (bounded by [`COMMAND_TIMEOUT`]) and captures its output.
pub(crate) fn output(mut cmd: Command) -> Result<CmdOutput> {
    let line = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| NetlabError::Spawn {
        command: line.clone(),
        source,
    })?;
    // Read both pipes on threads so a chatty command cannot fill one and block.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NetlabError::Command {
                    command: line,
                    status: format!("killed after {COMMAND_TIMEOUT:?}"),
                    stderr: String::new(),
                });
            }
            Err(e) => return Err(NetlabError::io(format!("waiting for `{line}`"), e)),
        }
    };
    Ok(CmdOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs a command; a non-zero exit is an error. Returns stdout.
pub(crate) fn checked(cmd: Command) -> Result<String> {
    let line = describe(&cmd);
    let out = output(cmd)?;
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(NetlabError::Command {
            command: line,
            status: out.status.to_string(),
            stderr: out.stderr.trim().to_string(),
        })
    }
}

/// Runs `ip args..` in the current (root) namespace; a non-zero exit is an error.
pub(crate) fn ip<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("ip");
    cmd.args(args);
    checked(cmd)
}

// === impl ProcessGuard ===

/// A long-running process in its own process group; dropping the guard stops the whole
/// group (SIGTERM, then SIGKILL after a grace period). Never panics on drop.
#[derive(Debug)]
pub struct ProcessGuard {
    child: Child,
    line: String,
    done: Option<ExitStatus>,
}

/// Spawns a command (typically from [`command_in`]) as the leader of a new process group
/// and returns a guard that stops the group on drop.
pub fn spawn(mut cmd: Command) -> Result<ProcessGuard> {
    let line = describe(&cmd);
    cmd.process_group(0);
    let child = cmd.spawn().map_err(|source| NetlabError::Spawn {
        command: line.clone(),
        source,
    })?;
    tracing::debug!(pid = child.id(), command = %line, "spawned");
    Ok(ProcessGuard {
        child,
        line,
        done: None,
    })
}

impl ProcessGuard {
    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with.
    pub fn command_line(&self) -> &str {
        &self.line
    }

    /// The underlying child, e.g. to take its piped stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its exit status if it has exited, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.done.is_none() {
            self.done = self.child.try_wait().ok().flatten();
        }
        self.done
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for it to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the whole process group.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let pgid = Pid::from_raw(self.child.id() as i32);
        match killpg(pgid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(NetlabError::io(
                format!("signalling `{}` with {signal}", self.line),
                e.into(),
            )),
        }
    }

    /// Kills the group at once (SIGKILL) and reaps the leader: a crash, for failover tests.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let _ = self.signal(Signal::SIGKILL);
        self.reap()
    }

    /// Stops the group politely: SIGTERM, then SIGKILL if it lingers. Returns the leader's
    /// exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.done.is_some() {
            // The leader is gone, but children in its group may not be.
            let _ = self.signal(Signal::SIGKILL);
            return self.done;
        }
        let _ = self.signal(Signal::SIGTERM);
        if let Some(status) = self.wait_timeout(STOP_GRACE) {
            let _ = self.signal(Signal::SIGKILL);
            return Some(status);
        }
        self.kill()
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        if self.done.is_none() {
            self.done = self.child.wait().ok();
        }
        self.done
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

// === sockets in other namespaces ===

/// Runs `f` on a fresh thread that has joined network namespace `netns`; sockets it
/// creates belong to that namespace for their whole life, wherever they are used later.
pub fn in_netns<T, F>(netns: &str, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = std::path::Path::new(NETNS_DIR).join(netns);
    let handle =
        File::open(&path).map_err(|e| NetlabError::io(format!("opening {}", path.display()), e))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                setns(&handle, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NetlabError::io(format!("entering network namespace {netns}"), e.into())
                })?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetlabError::Invalid(format!("the closure run in {netns} panicked")))?
    })
}

/// Binds a TCP listener inside `netns` (e.g. `127.0.0.1:6443` of a node) and returns it
/// to this process, which can serve it from any thread: this is how an in-process server
/// becomes reachable from programs running in that namespace.
pub fn bind_tcp_in(netns: &str, addr: SocketAddr) -> Result<TcpListener> {
    in_netns(netns, || TcpListener::bind(addr))?
        .map_err(|e| NetlabError::io(format!("binding tcp {addr} in {netns}"), e))
}

/// Binds a UDP socket inside `netns`, like [`bind_tcp_in`].
pub fn bind_udp_in(netns: &str, addr: SocketAddr) -> Result<UdpSocket> {
    in_netns(netns, || UdpSocket::bind(addr))?
        .map_err(|e| NetlabError::io(format!("binding udp {addr} in {netns}"), e))
}

/// Waits until a TCP connection to `addr` from inside `netns` succeeds (a server there
/// is ready), trying every 50 ms for at most `timeout`.
pub fn wait_tcp_in(netns: &str, addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let last_error = in_netns(netns, || loop {
        let attempt = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500));
        match attempt {
            Ok(_) => return None,
            Err(e) if Instant::now() >= deadline => return Some(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    })?;
    match last_error {
        None => Ok(()),
        Some(e) => Err(NetlabError::io(
            format!("connecting to {addr} in {netns} for {timeout:?}"),
            e,
        )),
    }
}

/// The pids of every process inside `netns` (`ip netns pids`).
pub fn pids_in(netns: &str) -> Result<Vec<u32>> {
    Ok(ip(["netns", "pids", netns])?
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Kills (SIGKILL) every process inside `netns`; returns how many were signalled.
pub fn kill_all_in(netns: &str) -> Result<usize> {
    let mut killed = 0;
    for pid in pids_in(netns)? {
        if kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
            killed += 1;
        }
    }
    Ok(killed)
}
