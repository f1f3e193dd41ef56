//! An application binary's command line, without a broker: what a person
//! reads when the config is wrong (one sentence on stderr, not a Rust
//! struct), whichever way `main` returns the error, and the usage errors,
//! `--help` and `describe` of `rivulet::main`.
//!
//! `harness = false`: this binary is its own test runner, so that it can
//! start itself as the application (the `csv_to_json` example's `main`, or
//! a `main` returning `Result`) with only the arguments a test gives;
//! libtest's own arguments would be a usage error there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../examples/csv_to_json.rs"]
mod csv_to_json;

use std::process::{Command, ExitCode, Termination};

/// Set in a child: which `main` to run.
const AS_APP: &str = "RIVULET_TEST_CLI_APP";

fn main() -> ExitCode {
    match std::env::var(AS_APP).as_deref() {
        Ok("csv_to_json") => return csv_to_json::main(),
        // `fn main() -> Result<(), Box<dyn std::error::Error>>`.
        Ok("boxed") => {
            let result: Result<(), Box<dyn std::error::Error>> = (|| {
                rivulet::Config::load()?;
                Ok(())
            })();
            return result.report();
        }
        // `fn main() -> rivulet::Result<()>`.
        Ok("rivulet_result") => {
            let result: rivulet::Result<()> = (|| {
                rivulet::App::new(rivulet::Config::load()?)?;
                Ok(())
            })();
            return result.report();
        }
        _ => {}
    }
    let tests: &[(&str, fn())] = &[
        ("a_bad_config_key_is_one_sentence_on_stderr", a_bad_config_key_is_one_sentence_on_stderr),
        ("a_main_returning_result_prints_the_sentence_too", a_main_returning_result_prints_the_sentence_too),
        ("a_missing_bootstrap_server_says_how_to_set_it", a_missing_bootstrap_server_says_how_to_set_it),
        ("usage_errors_exit_2_with_one_sentence", usage_errors_exit_2_with_one_sentence),
        ("help_and_describe_need_no_broker", help_and_describe_need_no_broker),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for (name, test) in tests {
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            println!("test {name} ...");
            test();
            println!("test {name} ... ok");
        }
    }
    ExitCode::SUCCESS
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs this binary as the application `app` with `args` and only `env`
/// (and a host name) in its environment.
fn run_app(app: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .env_clear()
        .env(AS_APP, app)
        .env("HOSTNAME", "test-host")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The stderr of a failed start: one line, `<prefix><sentence>`, with no
/// trace of a Rust struct.
fn assert_one_sentence(out: &Output, prefix: &str) -> String {
    assert_eq!(out.code, 1, "exit code; stderr: {}", out.stderr);
    let line = out.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one line: {line:?}");
    assert!(line.starts_with(prefix), "{line:?}");
    for debug_trace in ["{ ", " }", "key:", "origin:", "hint:", "UnknownKey", "Missing", "\\\""] {
        assert!(!line.contains(debug_trace), "{debug_trace:?} in {line:?}");
    }
    line[prefix.len()..].to_string()
}

const BAD_KEY: &str = "unknown config key `kafka.linger` (from environment variable RIVULET__KAFKA__LINGER); \
                       librdkafka properties go under [kafka.common], [kafka.consumer] or [kafka.producer], for \
                       example \"linger\" in [kafka.producer] or RIVULET__KAFKA__PRODUCER__LINGER";

fn a_bad_config_key_is_one_sentence_on_stderr() {
    let out = run_app("csv_to_json", &[], &[("RIVULET__KAFKA__LINGER", "5")]);
    assert_eq!(assert_one_sentence(&out, "error: "), BAD_KEY);
    // Also for describe and reset, which load the same config.
    for sub in ["describe", "reset"] {
        let out = run_app("csv_to_json", &[sub], &[("RIVULET__KAFKA__LINGER", "5")]);
        assert_eq!(assert_one_sentence(&out, "error: "), BAD_KEY, "{sub}");
    }
}

fn a_main_returning_result_prints_the_sentence_too() {
    let env = [("RIVULET__APPLICATION_ID", "app"), ("RIVULET__KAFKA__LINGER", "5")];
    for app in ["boxed", "rivulet_result"] {
        let out = run_app(app, &[], &env);
        assert_eq!(assert_one_sentence(&out, "Error: "), BAD_KEY, "{app}");
    }
}

fn a_missing_bootstrap_server_says_how_to_set_it() {
    let expected = "config key `kafka.bootstrap_servers` must be set: name the Kafka cluster, for example \
                    RIVULET__KAFKA__BOOTSTRAP_SERVERS=broker:9092";
    for sub in ["run", "reset"] {
        let out = run_app("csv_to_json", &[sub], &[]);
        assert_eq!(assert_one_sentence(&out, "error: "), expected, "{sub}");
    }
    let out = run_app("rivulet_result", &[], &[("RIVULET__APPLICATION_ID", "app")]);
    assert_eq!(assert_one_sentence(&out, "Error: "), expected);
}

fn usage_errors_exit_2_with_one_sentence() {
    for (args, message) in [
        (&["frobnicate"][..], "unknown subcommand `frobnicate`: use run (the default), describe or reset"),
        (&["reset", "--to-yesterday"][..], "unknown option `--to-yesterday`"),
        (&["--dry-run"][..], "--dry-run is an option of reset; write it after the subcommand: reset --dry-run"),
    ] {
        let out = run_app("csv_to_json", args, &[]);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        let line = out.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(line.starts_with(&format!("error: {message}; see `")), "{line:?}");
        assert!(line.ends_with(" --help`"), "{line:?}");
    }
}

fn help_and_describe_need_no_broker() {
    let out = run_app("csv_to_json", &["--help"], &[("RIVULET__KAFKA__LINGER", "5")]);
    assert_eq!(out.code, 0, "help does not load the config: {}", out.stderr);
    for word in ["run", "describe", "reset", "--to-datetime", "--by-duration", "--dry-run"] {
        assert!(out.stdout.contains(word), "{word} in {}", out.stdout);
    }
    let out = run_app("csv_to_json", &["describe"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("Topology\n  Sub-topology 0\n"), "{}", out.stdout);
    assert!(out.stdout.contains("(topic payments-csv;"), "the example's default input topic: {}", out.stdout);
}
