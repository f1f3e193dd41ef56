//! Child processes for the tests that kill, pause or signal an application
//! (and for the recovery benchmark): the test binary starts itself again,
//! with [`CHILD_ENV`] telling the child what to run, and the child's output
//! goes to a log file the parent can read.
//!
//! In a libtest binary the child runs one `#[test]` function, an entry point
//! that returns at once in a normal run (no [`CHILD_ENV`]) and otherwise
//! starts the application ([`spec`], [`run_until_stopped`]).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rivulet::RunningApp;

/// The environment variable that holds a child's spec (`|`-separated
/// fields chosen by each test).
pub const CHILD_ENV: &str = "RIVULET_TEST_CHILD";

/// The spec this process was started with, when it is a child.
pub fn spec() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Keeps a started application running until it stops by itself, then
/// panics with its error: a child is killed, it never ends on its own.
pub fn run_until_stopped(app: RunningApp) -> ! {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if app.has_stopped() {
            let err = app.shutdown().err();
            panic!("the child application stopped: {err:?}");
        }
    }
}

/// The body of a child whose spec is
/// `input|output|application_id|state_dir|instance_id`: logs to stderr,
/// runs `topology(input, output)` under exactly-once ([`super::eos_config`])
/// and never returns.
pub fn run_exactly_once(spec: &str, topology: impl Fn(&str, &str) -> rivulet::topology::Topology) -> ! {
    let _ = tracing_subscriber::fmt().with_env_filter("warn,rivulet=info").with_writer(std::io::stderr).try_init();
    let parts: Vec<&str> = spec.split('|').collect();
    let [input, output, app_id, state_dir, instance] = parts[..] else { panic!("bad child spec: {spec}") };
    let config = super::eos_config(app_id, std::path::Path::new(state_dir), instance, &[]);
    let app = rivulet::App::new(config).unwrap().start(topology(input, output)).unwrap();
    run_until_stopped(app)
}

/// A child process, killed with SIGKILL when dropped (also when a test
/// fails). Its stdout and stderr go to a log file, kept when the test
/// fails.
pub struct ChildApp {
    child: Child,
    log: PathBuf,
}

impl ChildApp {
    /// Runs the test function `entry` of this test binary as a child.
    pub fn spawn_test(entry: &str, spec: &str) -> ChildApp {
        Self::spawn(&["--exact", entry, "--nocapture", "--test-threads=1"], spec)
    }

    /// Runs this binary again with `args` and [`CHILD_ENV`] = `spec`.
    pub fn spawn(args: &[&str], spec: &str) -> ChildApp {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(args)
            .env(CHILD_ENV, spec)
            .env("RIVULET_TEST_BOOTSTRAP", super::bootstrap())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        Self::start(cmd)
    }

    /// Starts any program (the benchmark's Kafka Streams peer) as a child,
    /// its output to the log file.
    pub fn start(mut cmd: Command) -> ChildApp {
        let log = std::env::temp_dir().join(format!("{}.log", super::unique("rivulet-child")));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(out.try_clone().unwrap()).stderr(out).stdin(Stdio::null()).spawn().unwrap();
        ChildApp { child, log }
    }

    /// The exit status, if the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Waits for the exit, failing after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the child did not exit within {timeout:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the child wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildApp {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Kills (SIGKILL) each child of `order` in turn and starts it again with
/// `respawn`: the first once `output` holds `step` records
/// (read_committed), the next at `2 step`, and so on.
pub fn kill_in_turn(
    children: &mut [ChildApp],
    order: &[usize],
    step: usize,
    output: &str,
    respawn: impl Fn(usize) -> ChildApp,
) {
    for (n, &victim) in order.iter().enumerate() {
        super::wait_for_output(output, (n + 1) * step);
        children[victim].kill();
        std::thread::sleep(Duration::from_secs(1));
        children[victim] = respawn(victim);
    }
}
