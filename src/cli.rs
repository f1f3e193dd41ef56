//! An application binary's command line: [`main`] (and [`Main`], to set
//! defaults) is the one call `fn main` makes. It loads the config, sets up
//! logging, builds the topology and runs the subcommand:
//!
//! - `run` (the default): [`App::run`](crate::App::run) until SIGTERM or Ctrl-C;
//!   `run --to-end`: a bounded run ([`App::run_to_end`](crate::App::run_to_end));
//! - `describe`: prints [`Topology::describe`];
//! - `reset [--to-earliest | --to-latest | --to-datetime <time> | --by-duration <duration> |
//!   --to-offset <n> | --shift-by <n>] [--dry-run]`: see [`crate::reset`];
//! - `--config <file>` (anywhere), `-h`/`--help`.
//!
//! Errors print as sentences on stderr after `error: `; the exit code is 0
//! on success, 1 on an error and 2 when the command line is not understood.
//!
//! The parser is written here rather than taken from `clap`: the grammar is
//! three subcommands and eight options, and its errors read as the crate's
//! others (one sentence that says what to do).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::app::App;
use crate::config::{Config, ConfigLoader};
use crate::error::Result;
use crate::reset::{self, ResetTo};
use crate::topology::Topology;

/// What an application's `run` does instead of [`App::run`] (see
/// [`Main::run_with`]).
type RunFn = Box<dyn FnOnce(Config, Topology) -> std::result::Result<(), Box<dyn std::error::Error>>>;

/// The whole `fn main` of an application: loads [`Config::load`]'s
/// configuration (with `--config <file>` from the command line), sets up
/// logging, builds the topology with `topology` and runs the subcommand
/// (`run`, `describe` or `reset`; see the [module docs](self)). The exit
/// code is 0 on success; errors are printed as sentences.
///
/// ```no_run
/// use rivulet::prelude::*;
///
/// fn main() -> std::process::ExitCode {
///     rivulet::main(|config| {
///         #[derive(serde::Deserialize)]
///         struct Settings { input_topic: String }
///         let settings: Settings = config.app()?;
///         let mut b = Topology::builder();
///         b.stream(&settings.input_topic, Serdes::string(), Serdes::string())
///             .to("copies", Serdes::string(), Serdes::string());
///         Ok(b.build()?)
///     })
/// }
/// ```
pub fn main(topology: impl FnOnce(&Config) -> Result<Topology>) -> ExitCode {
    Main::new(Config::loader()).main(topology)
}

/// [`main`] with the application's own config defaults, command line or
/// `run`.
///
/// ```no_run
/// use rivulet::prelude::*;
///
/// fn main() -> std::process::ExitCode {
///     let defaults = Config::loader().default_value("application_id", "copier");
///     rivulet::Main::new(defaults).main(|_config| {
///         let mut b = Topology::builder();
///         b.stream("in", Serdes::string(), Serdes::string()).to("out", Serdes::string(), Serdes::string());
///         Ok(b.build()?)
///     })
/// }
/// ```
pub struct Main {
    loader: ConfigLoader,
    args: Option<Vec<String>>,
    run: Option<RunFn>,
}

impl Main {
    /// Loads the config with `loader` (its defaults, file and environment);
    /// `--config <file>` on the command line sets the file.
    pub fn new(loader: ConfigLoader) -> Main {
        Main { loader, args: None, run: None }
    }

    /// Uses these arguments (without the program name) instead of the
    /// process's.
    pub fn args<I, S>(mut self, args: I) -> Main
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Runs `run` for the `run` subcommand instead of
    /// `App::new(config)?.run(topology)`: for a demo that starts its own
    /// cluster, as the `wordcount` example does when no Kafka is configured.
    pub fn run_with(
        mut self,
        run: impl FnOnce(Config, Topology) -> std::result::Result<(), Box<dyn std::error::Error>> + 'static,
    ) -> Main {
        self.run = Some(Box::new(run));
        self
    }

    /// Parses the command line, loads the config, builds the topology and
    /// runs the subcommand; prints an error as a sentence and returns the
    /// exit code.
    pub fn main(self, topology: impl FnOnce(&Config) -> Result<Topology>) -> ExitCode {
        let program = std::env::args_os()
            .next()
            .map(PathBuf::from)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "app".to_string());
        let args = match &self.args {
            Some(args) => args.clone(),
            None => std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect(),
        };
        let command = match parse(&args) {
            Ok(command) => command,
            Err(usage) => {
                eprintln!("error: {usage}; see `{program} --help`");
                return ExitCode::from(2);
            }
        };
        match self.execute(&program, command, topology) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", Readable(&*e));
                ExitCode::FAILURE
            }
        }
    }

    fn execute(
        self,
        program: &str,
        command: CommandLine,
        topology: impl FnOnce(&Config) -> Result<Topology>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        let loader = match command.config_file {
            Some(file) => self.loader.file(file),
            None => self.loader,
        };
        if command.subcommand == Subcommand::Help {
            print!("{}", help(program));
            return Ok(());
        }
        let mut config = loader.load()?;
        if command.to_end {
            config.bounded.enabled = true;
        }
        if command.subcommand != Subcommand::Describe {
            crate::init_logging(&config)?;
        }
        let topology = topology(&config)?;
        match command.subcommand {
            Subcommand::Help => Ok(()),
            Subcommand::Describe => {
                print!("{}", topology.describe());
                Ok(())
            }
            Subcommand::Run => match self.run {
                Some(run) => run(config, topology),
                None => Ok(App::new(config)?.run(topology)?),
            },
            Subcommand::Reset { to, dry_run } => {
                let plan = reset::plan(&config, &topology, to)?;
                print!("{plan}");
                if dry_run {
                    println!("Dry run: nothing was changed.");
                    return Ok(plan.check_source_topics()?);
                }
                plan.apply(&config)?;
                println!("Done: the application processes its input from the new offsets when it starts again.");
                Ok(())
            }
        }
    }
}

/// A boxed error printed as rivulet's errors' `Debug` prints them: the
/// message and the causes it does not already contain.
struct Readable<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for Readable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::error::write_readable(self.0, f)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Subcommand {
    Run,
    Describe,
    Reset { to: ResetTo, dry_run: bool },
    Help,
}

#[derive(Debug, Clone, PartialEq)]
struct CommandLine {
    subcommand: Subcommand,
    config_file: Option<PathBuf>,
    /// `run --to-end`: a bounded run.
    to_end: bool,
}

const RESET_POSITIONS: &str = "--to-earliest, --to-latest, --to-datetime, --by-duration, --to-offset or --shift-by";

/// Parses the arguments (without the program name); the error is a
/// sentence without the final "see --help".
fn parse(args: &[String]) -> std::result::Result<CommandLine, String> {
    let mut subcommand: Option<&str> = None;
    let mut config_file = None;
    let mut help = false;
    let mut to: Option<(String, ResetTo)> = None;
    let mut dry_run = false;
    let mut to_end = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> std::result::Result<String, String> {
            match inline.clone().or_else(|| it.next().cloned()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("{name} needs {what} after it")),
            }
        };
        let position = match name {
            "-h" | "--help" => {
                help = true;
                continue;
            }
            "--config" => {
                config_file = Some(PathBuf::from(value("the path of a TOML file")?));
                continue;
            }
            "--dry-run" => {
                dry_run = true;
                None
            }
            "--to-end" if matches!(subcommand, None | Some("run")) => {
                to_end = true;
                continue;
            }
            "--to-end" => return Err("--to-end is an option of run: run --to-end".into()),
            "--to-earliest" => Some(ResetTo::Earliest),
            "--to-latest" => Some(ResetTo::Latest),
            "--to-datetime" => Some(ResetTo::Datetime(reset::parse_datetime(&value("a date-time")?)?)),
            "--by-duration" => Some(ResetTo::Duration(reset::parse_duration(&value("a duration")?)?)),
            "--to-offset" => Some(ResetTo::Offset(number(name, &value("an offset")?)?)),
            "--shift-by" => Some(ResetTo::ShiftBy(number(name, &value("a number of records")?)?)),
            _ if name.starts_with('-') => return Err(format!("unknown option `{arg}`")),
            _ => {
                if let Some(first) = subcommand {
                    return Err(format!("unexpected argument `{arg}` after the subcommand `{first}`"));
                }
                if !["run", "describe", "reset", "help"].contains(&name) {
                    return Err(format!("unknown subcommand `{arg}`: use run (the default), describe or reset"));
                }
                subcommand = Some(name);
                continue;
            }
        };
        // A reset option.
        if subcommand != Some("reset") {
            return Err(format!(
                "{name} is an option of reset; write it after the subcommand: reset {name}{}",
                if matches!(position, Some(ResetTo::Earliest | ResetTo::Latest) | None) { "" } else { " <value>" }
            ));
        }
        if let Some(p) = position {
            if let Some((earlier, _)) = &to {
                return Err(format!("{earlier} and {name} cannot be given together; give one of {RESET_POSITIONS}"));
            }
            to = Some((name.to_string(), p));
        }
    }
    if to_end && subcommand.is_some_and(|s| s != "run") {
        return Err("--to-end is an option of run: run --to-end".into());
    }
    let subcommand = match subcommand {
        _ if help => Subcommand::Help,
        None | Some("run") => Subcommand::Run,
        Some("describe") => Subcommand::Describe,
        Some("reset") => Subcommand::Reset { to: to.map(|(_, p)| p).unwrap_or_default(), dry_run },
        _ => Subcommand::Help,
    };
    Ok(CommandLine { subcommand, config_file, to_end })
}

fn number(option: &str, text: &str) -> std::result::Result<i64, String> {
    text.trim().parse().map_err(|_| format!("{option} takes a whole number, not `{text}`"))
}

fn help(program: &str) -> String {
    format!(
        "A rivulet stream-processing application.

Usage: {program} [--config <file>] [run | describe | reset [<reset options>]]

Subcommands:
  run        Process records until SIGTERM or Ctrl-C (the default).
             run --to-end: read every input up to its end offsets at start,
             process, commit and exit 0 (a bounded run, bounded.enabled).
  describe   Print the topology: sub-topologies, stores, internal topics.
  reset      Make the application process its input again: commit new offsets
             for every source topic partition of its consumer group, delete its
             internal (repartition, changelog, subscription) topics and its local
             state directory. Refused while an instance runs. Output topics, the
             dead-letter topic and global-table topics are left as they are.

Reset options (where the source offsets go; --to-earliest when none is given):
  --to-earliest            The first record still in each partition.
  --to-latest              The end: only records written from now on.
  --to-datetime <time>     The first record at or after an RFC 3339 time with a
                           zone, such as 2026-12-03T10:00:00Z.
  --by-duration <duration> The first record of the last <duration>: ISO 8601
                           (PT1H, P1DT12H) or 1h, 30m, 2d, 1h30m.
  --to-offset <n>          Offset <n> in every partition.
  --shift-by <n>           The committed offset moved by <n> (negative: back).
  --dry-run                Print what the reset would do, and change nothing.

Options:
  --config <file>  A TOML config file (else $RIVULET_CONFIG); RIVULET__* environment
                   variables override it (see docs/configuration.md).
  -h, --help       Print this help.
"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parsed(args: &[&str]) -> std::result::Result<CommandLine, String> {
        parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    fn subcommand(args: &[&str]) -> Subcommand {
        parsed(args).unwrap().subcommand
    }

    #[test]
    fn run_is_the_default_and_config_goes_anywhere() {
        assert_eq!(subcommand(&[]), Subcommand::Run);
        assert_eq!(subcommand(&["run"]), Subcommand::Run);
        assert_eq!(subcommand(&["describe"]), Subcommand::Describe);
        for args in [&["--config", "a.toml", "run"][..], &["run", "--config=a.toml"][..], &["--config=a.toml"][..]] {
            let c = parsed(args).unwrap();
            assert_eq!((c.subcommand, c.config_file), (Subcommand::Run, Some(PathBuf::from("a.toml"))), "{args:?}");
        }
        assert_eq!(subcommand(&["reset", "--help"]), Subcommand::Help);
        assert_eq!(subcommand(&["-h"]), Subcommand::Help);
        assert_eq!(subcommand(&["help"]), Subcommand::Help);
    }

    #[test]
    fn to_end_is_an_option_of_run() {
        for args in [&["run", "--to-end"][..], &["--to-end"][..], &["--to-end", "run"][..]] {
            let c = parsed(args).unwrap();
            assert_eq!((c.subcommand, c.to_end), (Subcommand::Run, true), "{args:?}");
        }
        assert!(!parsed(&["run"]).unwrap().to_end);
        for args in [&["reset", "--to-end"][..], &["--to-end", "describe"][..]] {
            assert_eq!(parsed(args).unwrap_err(), "--to-end is an option of run: run --to-end", "{args:?}");
        }
    }

    #[test]
    fn reset_takes_one_position_and_dry_run() {
        assert_eq!(subcommand(&["reset"]), Subcommand::Reset { to: ResetTo::Earliest, dry_run: false });
        assert_eq!(
            subcommand(&["reset", "--to-latest", "--dry-run"]),
            Subcommand::Reset { to: ResetTo::Latest, dry_run: true }
        );
        assert_eq!(
            subcommand(&["reset", "--to-datetime", "1970-01-01T00:00:02Z"]),
            Subcommand::Reset { to: ResetTo::Datetime(2_000), dry_run: false }
        );
        assert_eq!(
            subcommand(&["reset", "--by-duration=PT1M"]),
            Subcommand::Reset { to: ResetTo::Duration(std::time::Duration::from_secs(60)), dry_run: false }
        );
        assert_eq!(
            subcommand(&["reset", "--to-offset", "7"]),
            Subcommand::Reset { to: ResetTo::Offset(7), dry_run: false }
        );
        assert_eq!(
            subcommand(&["reset", "--shift-by=-3"]),
            Subcommand::Reset { to: ResetTo::ShiftBy(-3), dry_run: false }
        );
    }

    #[test]
    fn mistakes_are_one_sentence_each() {
        let err = |args: &[&str]| parsed(args).unwrap_err();
        assert_eq!(err(&["start"]), "unknown subcommand `start`: use run (the default), describe or reset");
        assert_eq!(err(&["reset", "--verbose"]), "unknown option `--verbose`");
        assert_eq!(err(&["run", "describe"]), "unexpected argument `describe` after the subcommand `run`");
        assert_eq!(
            err(&["--dry-run"]),
            "--dry-run is an option of reset; write it after the subcommand: reset --dry-run"
        );
        assert_eq!(
            err(&["run", "--to-offset", "3"]),
            "--to-offset is an option of reset; write it after the subcommand: reset --to-offset <value>"
        );
        assert_eq!(
            err(&["reset", "--to-earliest", "--to-latest"]),
            format!("--to-earliest and --to-latest cannot be given together; give one of {RESET_POSITIONS}")
        );
        assert_eq!(err(&["reset", "--to-offset", "x"]), "--to-offset takes a whole number, not `x`");
        assert_eq!(err(&["--config"]), "--config needs the path of a TOML file after it");
        assert!(err(&["reset", "--to-datetime", "noon"]).contains("RFC 3339"));
        assert!(err(&["reset", "--by-duration", "a while"]).contains("PT1H"));
    }

    #[test]
    fn help_names_every_subcommand_and_option() {
        let text = help("app");
        for word in ["run", "describe", "reset", "--dry-run", "--config"] {
            assert!(text.contains(word), "{word}");
        }
        for option in RESET_POSITIONS.split(", ").flat_map(|s| s.split(" or ")) {
            assert!(text.contains(option), "{option}");
        }
    }
}
