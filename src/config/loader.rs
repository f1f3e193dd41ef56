//! The layers a configuration is built from: built-in defaults, the
//! application's defaults, a file, the environment.

use super::*;

/// Builds a [`Config`] from its layers. [`Config::load`] is the usual entry;
/// the loader lets an application set its own defaults and lets tests
/// supply the environment instead of reading the process's.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("rivulet-doc-loader-{}.toml", std::process::id()));
/// std::fs::write(&path, "application_id = \"orders\"\nnum_threads = 2\n")?;
/// let config = rivulet::Config::loader()
///     .default_value("num_threads", "8") // under the file
///     .args(["--config", path.to_str().unwrap()])?
///     .env([("RIVULET__NUM_THREADS", "4")]) // over the file
///     .load()?;
/// # std::fs::remove_file(&path)?;
/// assert_eq!((config.application_id.as_str(), config.num_threads), ("orders", 4));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct ConfigLoader {
    defaults: Vec<(String, String)>,
    file: Option<PathBuf>,
    env: Option<BTreeMap<String, String>>,
}

impl ConfigLoader {
    /// Sets a default for `key` (a dotted path such as `app.input_topic`),
    /// over the built-in defaults and under the file and environment.
    ///
    /// ```
    /// # fn main() -> Result<(), rivulet::ConfigError> {
    /// let config = rivulet::Config::loader()
    ///     .default_value("application_id", "wordcount")
    ///     .default_value("app.input_topic", "lines")
    ///     .env([("RIVULET__APP__INPUT_TOPIC", "text")])
    ///     .load()?;
    /// assert_eq!(config.application_id, "wordcount");
    /// #[derive(serde::Deserialize)]
    /// struct Settings { input_topic: String }
    /// assert_eq!(config.app::<Settings>()?.input_topic, "text"); // the environment wins
    /// # Ok(()) }
    /// ```
    pub fn default_value(mut self, key: &str, value: &str) -> Self {
        self.defaults.push((key.to_string(), value.to_string()));
        self
    }

    /// Reads the config file from this path (over `RIVULET_CONFIG`). A
    /// missing file fails the load.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let path = std::env::temp_dir().join(format!("rivulet-doc-file-{}.toml", std::process::id()));
    /// std::fs::write(&path, "application_id = \"orders\"\n[state]\ncache_bytes = 0\n")?;
    /// let config = rivulet::Config::loader().file(&path).env([("HOSTNAME", "pod-0")]).load()?;
    /// # std::fs::remove_file(&path)?;
    /// assert_eq!(config.state.cache_bytes, 0);
    /// assert!(rivulet::Config::loader().file("/no/such.toml").load().is_err());
    /// # Ok(()) }
    /// ```
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Takes `--config <path>` (or `--config=<path>`) from command-line
    /// arguments; other arguments are left to the application.
    ///
    /// ```
    /// use rivulet::{Config, ConfigError};
    /// // Usually Config::loader().args(std::env::args().skip(1))?
    /// let err = Config::loader().args(["--verbose", "--config"]).unwrap_err();
    /// assert!(matches!(err, ConfigError::Args(_)));
    /// assert_eq!(err.to_string(), "bad command line: --config needs a path after it; use --config <path to a TOML file>");
    /// ```
    pub fn args<I, S>(mut self, args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            if arg == "--config" {
                let path = args.next().ok_or_else(|| ConfigError::Args("--config needs a path after it".into()))?;
                self.file = Some(path.into());
            } else if let Some(path) = arg.strip_prefix("--config=") {
                if path.is_empty() {
                    return Err(ConfigError::Args("--config= needs a path".into()));
                }
                self.file = Some(path.into());
            }
        }
        Ok(self)
    }

    /// Uses these variables instead of the process environment (for tests
    /// and embedding). Only `RIVULET_CONFIG`, `HOSTNAME` and `RIVULET__*`
    /// are read.
    ///
    /// ```
    /// # fn main() -> Result<(), rivulet::ConfigError> {
    /// let config = rivulet::Config::loader()
    ///     .env([("RIVULET__APPLICATION_ID", "orders"), ("HOSTNAME", "orders-7f9c")])
    ///     .load()?;
    /// // Without RIVULET__INSTANCE_ID, the instance is named after the host.
    /// assert_eq!(config.instance_id, "orders-7f9c");
    /// # Ok(()) }
    /// ```
    pub fn env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// Loads the layers and validates every key: the first key that is
    /// unknown, bad or missing fails the load.
    ///
    /// ```
    /// use rivulet::{Config, ConfigError};
    /// let err = Config::loader()
    ///     .env([("RIVULET__APPLICATION_ID", "orders"), ("RIVULET__NUM_THREAD", "4")])
    ///     .load()
    ///     .unwrap_err();
    /// assert!(matches!(&err, ConfigError::UnknownKey { key, .. } if key == "num_thread"));
    /// assert!(err.to_string().contains("num_threads"), "{err}"); // the likely meant key
    /// ```
    pub fn load(self) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = match self.env {
            Some(env) => env,
            None => std::env::vars().collect(),
        };
        let file = self.file.clone().or_else(|| env.get(CONFIG_FILE_ENV).filter(|p| !p.is_empty()).map(PathBuf::from));

        let mut builder = config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if !self.defaults.is_empty() {
            let mut code_defaults = config::Config::builder();
            for (key, value) in &self.defaults {
                code_defaults = code_defaults
                    .set_override(key.as_str(), value.as_str())
                    .map_err(|e| ConfigError::Load(format!("default for `{key}`: {e}")))?;
            }
            let code_defaults = code_defaults.build().map_err(|e| ConfigError::Load(e.to_string()))?;
            builder = builder.add_source(code_defaults);
        }
        if let Some(path) = &file {
            check_file(path)?;
            let contents = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
            builder = builder.add_source(FileLayer { path: path.clone(), contents });
        }
        let rivulet_env: Map<String, String> =
            env.iter().filter(|(k, _)| k.starts_with("RIVULET__")).map(|(k, v)| (k.clone(), v.clone())).collect();
        builder = builder.add_source(
            Environment::with_prefix("RIVULET")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(rivulet_env)),
        );
        let built = builder.build().map_err(|e| match &file {
            Some(path) => ConfigError::File { path: path.clone(), reason: e.to_string() },
            None => ConfigError::Load(e.to_string()),
        })?;
        let root = config::Source::collect(&built).map_err(|e| ConfigError::Load(e.to_string()))?;
        Tree { root }.into_config(&env)
    }
}

/// The config file as a layer whose values name the file as given (the
/// `config` crate's own file source names it relative to the working
/// directory, which reads badly in errors).
#[derive(Debug, Clone)]
pub(super) struct FileLayer {
    path: PathBuf,
    contents: String,
}

impl config::Source for FileLayer {
    fn clone_into_box(&self) -> Box<dyn config::Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        let origin = self.path.display().to_string();
        let map = config::Source::collect(&File::from_str(&self.contents, FileFormat::Toml))?;
        Ok(map.into_iter().map(|(k, v)| (k, with_origin(v, &origin))).collect())
    }
}

pub(super) fn with_origin(value: Value, origin: &String) -> Value {
    let kind = match value.kind {
        ValueKind::Table(t) => ValueKind::Table(t.into_iter().map(|(k, v)| (k, with_origin(v, origin))).collect()),
        ValueKind::Array(a) => ValueKind::Array(a.into_iter().map(|v| with_origin(v, origin)).collect()),
        other => other,
    };
    Value::new(Some(origin), kind)
}

pub(super) fn check_file(path: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(ConfigError::File { path: path.to_path_buf(), reason: "it is not a regular file".into() }),
        Err(e) => Err(ConfigError::File {
            path: path.to_path_buf(),
            reason: format!("{e}; pass an existing TOML file with --config or {CONFIG_FILE_ENV}"),
        }),
    }
}
