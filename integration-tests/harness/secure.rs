//! The test broker's SASL_SSL listener (see integration-tests/kafka/broker.sh):
//! TLS with the test CA, SCRAM-SHA-512 users and ACLs that each test makes
//! for itself, with random names, through `broker.sh admin`.
//!
//! It is the listener of the broker [`super::bootstrap`] uses: with
//! `RIVULET_TEST_BOOTSTRAP` pointing at another cluster, these tests still
//! ask the local `broker.sh` for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use rand::Rng;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integration-tests/kafka/broker.sh");

/// Where the SASL_SSL listener is and the CA that signed its certificate.
#[derive(Debug, Clone)]
pub struct Secured {
    /// `127.0.0.1:<secure port>`.
    pub bootstrap: String,
    /// The test CA as PEM, for `ssl.ca.location`.
    pub ca_pem: String,
    /// The super user created when the broker's log dir was formatted.
    pub admin_user: String,
    pub admin_password: String,
}

/// The broker's SASL_SSL listener; the broker is started if need be. A
/// broker started by an older broker.sh (without the listener) fails here
/// with broker.sh's message saying how to restart it.
pub fn secured() -> &'static Secured {
    static SECURED: OnceLock<Secured> = OnceLock::new();
    SECURED.get_or_init(|| {
        super::bootstrap();
        let out = Command::new("bash").arg(SCRIPT).arg("secured").output().expect("run broker.sh secured");
        assert!(out.status.success(), "{SCRIPT} secured failed: {}", String::from_utf8_lossy(&out.stderr));
        let vars: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        Secured {
            bootstrap: vars["RIVULET_KAFKA_SECURE_BOOTSTRAP"].clone(),
            ca_pem: vars["RIVULET_KAFKA_CA_PEM"].clone(),
            admin_user: vars["RIVULET_KAFKA_ADMIN_USER"].clone(),
            admin_password: vars["RIVULET_KAFKA_ADMIN_PASSWORD"].clone(),
        }
    })
}

/// A SCRAM user with a random name and password.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub password: String,
}

impl Principal {
    /// A new random name and password (not yet known to the broker: see
    /// [`setup`]).
    pub fn random() -> Principal {
        let mut rng = rand::rng();
        Principal {
            user: super::unique("user"),
            password: format!("pw-{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>()),
        }
    }

    /// `User:<name>`, as ACLs name it.
    pub fn acl_name(&self) -> String {
        format!("User:{}", self.user)
    }
}

/// One ALLOW ACL: resource type (`TOPIC`, `GROUP`, `TRANSACTIONAL_ID`,
/// `CLUSTER`), pattern type (`LITERAL`, `PREFIXED`), resource name and
/// operation (`READ`, `WRITE`, `CREATE`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub resource_type: &'static str,
    pub pattern: &'static str,
    pub name: String,
    pub operation: &'static str,
}

impl Acl {
    pub fn new(resource_type: &'static str, pattern: &'static str, name: &str, operation: &'static str) -> Acl {
        Acl { resource_type, pattern, name: name.to_string(), operation }
    }
}

/// Creates `principal`'s SCRAM-SHA-512 credentials and grants it `acls`, in
/// one run of SecurityAdmin.java (a JVM start, a few seconds); returns once
/// the broker shows them.
pub fn setup(principal: &Principal, acls: &[Acl]) {
    let mut args: Vec<String> = vec!["admin".into(), "user".into(), principal.user.clone(), principal.password.clone()];
    for acl in acls {
        args.extend([
            "allow".to_string(),
            principal.acl_name(),
            acl.resource_type.to_string(),
            acl.pattern.to_string(),
            acl.name.clone(),
            acl.operation.to_string(),
        ]);
    }
    let out = Command::new("bash").arg(SCRIPT).args(&args).output().expect("run broker.sh admin");
    assert!(
        out.status.success(),
        "{SCRIPT} admin failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `RIVULET__KAFKA__*` variables that connect an application to the
/// SASL_SSL listener as `principal`, its password read from the file
/// `password` in `secret_dir` (as a Kubernetes Secret mounted as a volume),
/// which this writes.
pub fn app_env(principal: &Principal, secret_dir: &Path) -> Vec<(String, String)> {
    std::fs::write(secret_dir.join("password"), format!("{}\n", principal.password)).unwrap();
    let s = secured();
    [
        ("RIVULET__KAFKA__BOOTSTRAP_SERVERS", s.bootstrap.clone()),
        ("RIVULET__KAFKA__COMMON__SECURITY_PROTOCOL", "SASL_SSL".to_string()),
        ("RIVULET__KAFKA__COMMON__SASL_MECHANISMS", "SCRAM-SHA-512".to_string()),
        ("RIVULET__KAFKA__COMMON__SASL_USERNAME", principal.user.clone()),
        ("RIVULET__KAFKA__COMMON__SASL_PASSWORD", format!("${{directory:{}:password}}", secret_dir.display())),
        ("RIVULET__KAFKA__COMMON__SSL_CA_LOCATION", s.ca_pem.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
