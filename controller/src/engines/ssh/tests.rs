//! The ssh engine through its path table on an in-memory store: every role restriction is
//! refused with a 400 naming the rule, and what is signed is what was asked for.
//! Requests go through the same matching and field validation the API runs; no HTTP.

use std::sync::Arc;

use axum::http::StatusCode;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Algorithm, Certificate, HashAlg, LineEnding, PrivateKey, PublicKey};
use serde_json::{Value, json};

use super::keys::{KeySpec, generate};
use crate::api::paths::Operation;
use crate::api::{ApiError, ApiResponse, Services, TokenContext};

struct Engine {
    state: Arc<Services>,
}

impl Engine {
    fn new() -> Self {
        Self {
            state: crate::testing::services(),
        }
    }

    async fn call_on(
        &self,
        mount: &str,
        operation: Operation,
        path: &str,
        body: Value,
    ) -> Result<ApiResponse, ApiError> {
        let token = TokenContext::root_for_tests("accessor-1");
        self.call_as(token, mount, operation, path, body).await
    }

    async fn call_as(
        &self,
        token: TokenContext,
        mount: &str,
        operation: Operation,
        path: &str,
        body: Value,
    ) -> Result<ApiResponse, ApiError> {
        let table = super::paths::paths();
        crate::testing::call_as(&self.state, token, table, mount, operation, path, body).await
    }

    async fn call(
        &self,
        operation: Operation,
        path: &str,
        body: Value,
    ) -> Result<ApiResponse, ApiError> {
        self.call_on("ssh/", operation, path, body).await
    }

    async fn write(&self, path: &str, body: Value) -> Result<ApiResponse, ApiError> {
        self.call(Operation::Write, path, body).await
    }

    async fn data(&self, operation: Operation, path: &str, body: Value) -> Value {
        let response = self
            .call(operation, path, body)
            .await
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        Value::Object(response.data.unwrap_or_default())
    }

    /// An Ed25519 CA and the role most tests start from.
    async fn with_ca_and_role(role: Value) -> Self {
        let engine = Self::new();
        engine
            .write("config/ca", json!({"key_type": "ed25519"}))
            .await
            .expect("generate CA");
        engine.write("roles/dev", role).await.expect("role");
        engine
    }

    /// Expects a 400 whose message contains `rule`.
    async fn refused(&self, path: &str, body: Value, rule: &str) {
        let error = self
            .write(path, body.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{path} {body} was accepted; expected '{rule}'"));
        assert_eq!(error.status, StatusCode::BAD_REQUEST, "{error}");
        assert!(
            error.message.contains(rule),
            "expected '{rule}' in: {}",
            error.message
        );
    }
}

fn user_role() -> Value {
    json!({
        "key_type": "ca",
        "allow_user_certificates": true,
        "allowed_users": "app1,app2",
        "default_user": "app1",
        "allowed_extensions": "permit-pty,permit-port-forwarding",
        "allowed_critical_options": "source-address",
        "default_extensions": {"permit-pty": ""},
        "ttl": "1h",
        "max_ttl": "4h",
    })
}

fn public_key_line(key: &PrivateKey) -> String {
    key.public_key().to_openssh().expect("openssh")
}

fn ed25519_public() -> String {
    public_key_line(&generate(KeySpec::Ed25519).expect("key"))
}

fn now() -> u64 {
    crate::tokens::now_unix()
}

#[tokio::test]
async fn every_role_restriction_is_refused_naming_the_rule() {
    let engine = Engine::with_ca_and_role(user_role()).await;
    let key = ed25519_public();
    let sign = |extra: Value| {
        let mut body = json!({"public_key": key});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    let cases = [
        (
            json!({"valid_principals": "root"}),
            "principal not allowed: 'root' is not in role 'dev''s allowed_users (app1,app2)",
        ),
        (
            json!({"valid_principals": "app1,mallory"}),
            "principal not allowed: 'mallory'",
        ),
        (
            json!({"ttl": "5h"}),
            "TTL over max: ttl 5h is longer than role 'dev''s max_ttl 4h",
        ),
        (
            json!({"extensions": {"permit-X11-forwarding": ""}}),
            "extension not allowed: permit-X11-forwarding",
        ),
        (
            json!({"critical_options": {"force-command": "/bin/true"}}),
            "critical option not allowed: force-command",
        ),
        (
            json!({"cert_type": "host", "valid_principals": "web.example.com"}),
            "host certificate not allowed: role 'dev' has allow_host_certificates=false",
        ),
        (json!({"key_id": "mine"}), "key_id not allowed"),
        (json!({"valid_principals": ""}), "no principals"),
        (json!({"cert_type": "both"}), "field 'cert_type'"),
    ];
    for (extra, rule) in cases {
        engine.refused("sign/dev", sign(extra), rule).await;
    }
    engine
        .refused(
            "sign/dev",
            json!({"public_key": "ssh-ed25519 not-base64"}),
            "field 'public_key'",
        )
        .await;
    engine
        .refused(
            "sign/nobody",
            sign(json!({})),
            "role 'nobody' does not exist",
        )
        .await;
    // The same rules hold for issue.
    engine
        .refused(
            "issue/dev",
            json!({"key_type": "ed25519", "valid_principals": "root"}),
            "principal not allowed: 'root'",
        )
        .await;
    engine
        .refused(
            "issue/dev",
            json!({"key_type": "ed25519", "ttl": "48h"}),
            "TTL over max",
        )
        .await;
}

#[tokio::test]
async fn user_and_host_certificates_need_their_flags_and_principals() {
    let engine = Engine::with_ca_and_role(json!({
        "key_type": "ca",
        "allow_host_certificates": true,
        "allowed_domains": "example.com",
        "allow_subdomains": true,
    }))
    .await;
    let key = ed25519_public();
    engine
        .refused(
            "sign/dev",
            json!({"public_key": key, "valid_principals": "app1"}),
            "user certificate not allowed: role 'dev' has allow_user_certificates=false",
        )
        .await;
    let host =
        |name: &str| json!({"public_key": key, "cert_type": "host", "valid_principals": name});
    engine
        .refused(
            "sign/dev",
            host("example.com"),
            "principal not allowed: host name 'example.com' does not match role 'dev''s allowed_domains (example.com) with allow_bare_domains=false",
        )
        .await;
    engine
        .refused("sign/dev", host("example.org"), "principal not allowed")
        .await;
    engine
        .refused(
            "sign/dev",
            json!({"public_key": key, "cert_type": "host", "valid_principals": "a.example.com",
                   "extensions": {"permit-pty": ""}}),
            "host certificates carry no critical options or extensions",
        )
        .await;
    engine
        .refused(
            "sign/dev",
            json!({"public_key": key, "cert_type": "host"}),
            "no principals",
        )
        .await;
    let data = engine
        .data(Operation::Write, "sign/dev", host("web-1.example.com"))
        .await;
    let certificate =
        Certificate::from_openssh(data["signed_key"].as_str().expect("signed_key")).expect("cert");
    assert_eq!(certificate.cert_type(), CertType::Host);
    assert_eq!(certificate.valid_principals(), ["web-1.example.com"]);

    // A CA role that names no users allows none.
    engine
        .write(
            "roles/nousers",
            json!({"key_type": "ca", "allow_user_certificates": true}),
        )
        .await
        .expect("role");
    engine
        .refused(
            "sign/nousers",
            json!({"public_key": key, "valid_principals": "app1"}),
            "role 'nousers' allows no user principals (allowed_users is empty)",
        )
        .await;
}

#[tokio::test]
async fn key_lengths_and_types_are_enforced() {
    let mut role = user_role();
    role["allowed_user_key_lengths"] = json!({"rsa": [3072, 4096], "ecdsa-sha2-nistp384": 0});
    let engine = Engine::with_ca_and_role(role).await;
    let rsa_2048 = public_key_line(&generate(KeySpec::Rsa { bits: 2048 }).expect("rsa"));
    engine
        .refused(
            "sign/dev",
            json!({"public_key": rsa_2048}),
            "key too short or of a size not allowed: RSA key of 2048 bits; the role's allowed_user_key_lengths allows sizes 3072, 4096",
        )
        .await;
    engine
        .refused(
            "sign/dev",
            json!({"public_key": ed25519_public()}),
            "key not allowed: the role's allowed_user_key_lengths does not list this Ed25519 key",
        )
        .await;
    engine
        .refused(
            "issue/dev",
            json!({"key_type": "ec", "key_bits": 256}),
            "ECDSA key on the 256-bit curve",
        )
        .await;
    let p384 = public_key_line(&generate(KeySpec::Ecdsa { bits: 384 }).expect("p384"));
    engine
        .write("sign/dev", json!({"public_key": p384}))
        .await
        .expect("a P-384 key is allowed");
    let issued = engine
        .data(
            Operation::Write,
            "issue/dev",
            json!({"key_type": "rsa", "key_bits": 3072}),
        )
        .await;
    assert_eq!(issued["private_key_type"], "rsa");
}

#[tokio::test]
async fn a_signed_certificate_holds_exactly_what_was_asked() {
    let mut role = user_role();
    role["allow_user_key_ids"] = json!(true);
    let engine = Engine::with_ca_and_role(role).await;
    let ca_line = engine.data(Operation::Read, "config/ca", json!({})).await["public_key"]
        .as_str()
        .expect("public_key")
        .to_string();
    let ca_public = PublicKey::from_openssh(ca_line.trim()).expect("CA key");
    let key = ed25519_public();
    let before = now();
    let response = engine
        .write(
            "sign/dev",
            json!({
                "public_key": key,
                "valid_principals": "app1,app2",
                "ttl": "30m",
                "key_id": "ticket-42",
                "extensions": {"permit-pty": "", "permit-port-forwarding": ""},
                "critical_options": {"source-address": "10.0.0.0/8"},
            }),
        )
        .await
        .expect("sign");
    assert_eq!(response.lease_duration, 1800);
    let data = response.data.expect("data");
    let signed_key = data["signed_key"].as_str().expect("signed_key");
    assert!(signed_key.starts_with("ssh-ed25519-cert-v01@openssh.com "));
    assert!(signed_key.ends_with('\n'));
    let certificate = Certificate::from_openssh(signed_key.trim()).expect("certificate");
    let serial = data["serial_number"].as_str().expect("serial");
    assert!(!serial.starts_with('0'), "{serial}");
    assert_eq!(
        u64::from_str_radix(serial, 16).expect("hex"),
        certificate.serial()
    );
    assert_eq!(certificate.cert_type(), CertType::User);
    assert_eq!(certificate.key_id(), "ticket-42");
    assert_eq!(certificate.valid_principals(), ["app1", "app2"]);
    assert!(certificate.valid_after() >= before - 31 && certificate.valid_after() <= now() - 29);
    assert_eq!(
        certificate.valid_before() - certificate.valid_after(),
        1800 + 30
    );
    let extensions: Vec<&String> = certificate.extensions().keys().collect();
    assert_eq!(extensions, ["permit-port-forwarding", "permit-pty"]);
    assert_eq!(
        certificate.critical_options().get("source-address"),
        Some(&"10.0.0.0/8".to_string())
    );
    assert_eq!(
        certificate.public_key(),
        PublicKey::from_openssh(&key).expect("key").key_data()
    );
    certificate
        .validate_at(now(), [&ca_public.fingerprint(HashAlg::Sha256)])
        .expect("signed by the CA and valid now");

    // Defaults: default_user, default_extensions, the key id format with root's name.
    let data = engine
        .data(Operation::Write, "sign/dev", json!({"public_key": key}))
        .await;
    let certificate =
        Certificate::from_openssh(data["signed_key"].as_str().expect("signed_key")).expect("cert");
    assert_eq!(certificate.valid_principals(), ["app1"]);
    assert_eq!(
        certificate.extensions().keys().collect::<Vec<_>>(),
        ["permit-pty"]
    );
    let hash = hex::encode(
        PublicKey::from_openssh(&key)
            .expect("key")
            .fingerprint(HashAlg::Sha256)
            .as_bytes(),
    );
    assert_eq!(certificate.key_id(), format!("rotor-root-{hash}"));
    assert_eq!(
        certificate.valid_before() - certificate.valid_after(),
        3600 + 30
    );
}

#[tokio::test]
async fn the_default_key_id_names_the_callers_token() {
    let mut role = user_role();
    role["key_id_format"] = json!("{{token_display_name}}@{{role_name}}");
    let engine = Engine::with_ca_and_role(role).await;
    let mut token = TokenContext::root_for_tests("accessor-2");
    token.record.display_name = "token-ci-job".into();
    token.record.policies = vec!["default".into()];
    let response = engine
        .call_as(
            token,
            "ssh/",
            Operation::Write,
            "sign/dev",
            json!({"public_key": ed25519_public()}),
        )
        .await
        .expect("sign");
    let data = response.data.expect("data");
    let certificate =
        Certificate::from_openssh(data["signed_key"].as_str().expect("signed_key")).expect("cert");
    assert_eq!(certificate.key_id(), "token-ci-job@dev");
}

#[tokio::test]
async fn issue_returns_a_key_pair_that_matches_its_certificate() {
    let engine = Engine::with_ca_and_role(user_role()).await;
    for (body, expected_type) in [
        (json!({"key_type": "ed25519"}), "ed25519"),
        (json!({"key_type": "ec", "key_bits": 521}), "ec"),
        (json!({}), "rsa"),
    ] {
        let data = engine.data(Operation::Write, "issue/dev", body).await;
        assert_eq!(data["private_key_type"], expected_type);
        let private = PrivateKey::from_openssh(data["private_key"].as_str().expect("private_key"))
            .expect("OpenSSH private key");
        let certificate =
            Certificate::from_openssh(data["signed_key"].as_str().expect("signed_key"))
                .expect("certificate");
        assert_eq!(certificate.public_key(), private.public_key().key_data());
        assert_eq!(
            u64::from_str_radix(data["serial_number"].as_str().expect("serial"), 16).expect("hex"),
            certificate.serial()
        );
        if expected_type == "rsa" {
            assert!(matches!(private.algorithm(), Algorithm::Rsa { .. }));
            assert_eq!(
                super::keys::KeyShape::of(private.public_key().key_data()).bits,
                2048
            );
        }
    }
    engine
        .refused(
            "issue/dev",
            json!({"key_type": "dsa"}),
            "field 'key_type': unknown key type 'dsa'",
        )
        .await;
}

#[tokio::test]
async fn the_ca_key_is_generated_or_imported_and_never_returned() {
    let engine = Engine::new();
    engine
        .refused(
            "sign/dev",
            json!({"public_key": ed25519_public()}),
            "does not exist",
        )
        .await;
    engine.write("roles/dev", user_role()).await.expect("role");
    engine
        .refused(
            "sign/dev",
            json!({"public_key": ed25519_public()}),
            "no CA key is configured at ssh/",
        )
        .await;
    let error = engine
        .call(Operation::Read, "public_key", json!({}))
        .await
        .expect_err("no key yet");
    assert_eq!(error.status, StatusCode::NOT_FOUND);

    for (mount, key_type, bits, prefix) in [
        ("a/", "ssh-rsa", 2048, "ssh-rsa "),
        ("b/", "ecdsa-sha2-nistp384", 0, "ecdsa-sha2-nistp384 "),
        ("c/", "ec", 521, "ecdsa-sha2-nistp521 "),
        ("d/", "ssh-ed25519", 0, "ssh-ed25519 "),
    ] {
        let response = engine
            .call_on(
                mount,
                Operation::Write,
                "config/ca",
                json!({"key_type": key_type, "key_bits": bits}),
            )
            .await
            .expect("generate");
        let public = response.data.expect("data")["public_key"]
            .as_str()
            .expect("public_key")
            .to_string();
        assert!(public.starts_with(prefix), "{key_type}: {public}");
        let raw = engine
            .call_on(mount, Operation::Read, "public_key", json!({}))
            .await
            .expect("public_key");
        assert_eq!(raw.raw_text.as_deref(), Some(public.as_str()));
    }
    engine
        .refused(
            "config/ca",
            json!({"key_type": "ssh-dss"}),
            "field 'key_type'",
        )
        .await;
    engine
        .refused(
            "config/ca",
            json!({"key_type": "rsa", "key_bits": 1024}),
            "field 'key_bits'",
        )
        .await;

    // Import: the pair must match; then the key signs and is never shown.
    let imported = generate(KeySpec::Ecdsa { bits: 256 }).expect("key");
    let private_text = imported
        .to_openssh(LineEnding::LF)
        .expect("pem")
        .to_string();
    let other_public = ed25519_public();
    engine
        .refused(
            "config/ca",
            json!({"private_key": private_text, "public_key": other_public}),
            "not the public half of private_key",
        )
        .await;
    engine
        .refused(
            "config/ca",
            json!({"private_key": private_text}),
            "missing required field 'public_key'",
        )
        .await;
    engine
        .refused(
            "config/ca",
            json!({"private_key": private_text, "public_key": public_key_line(&imported),
                   "generate_signing_key": true}),
            "must not be given with generate_signing_key=true",
        )
        .await;
    engine
        .refused(
            "config/ca",
            json!({"generate_signing_key": false}),
            "missing required fields 'private_key' and 'public_key'",
        )
        .await;
    let response = engine
        .write(
            "config/ca",
            json!({"private_key": private_text, "public_key": public_key_line(&imported)}),
        )
        .await
        .expect("import");
    assert!(response.data.is_none(), "an import answers 204");
    engine
        .refused(
            "config/ca",
            json!({"key_type": "ed25519"}),
            "a CA key is already configured at ssh/",
        )
        .await;
    let read = engine.data(Operation::Read, "config/ca", json!({})).await;
    assert_eq!(read.as_object().map(|data| data.len()), Some(1), "{read}");
    assert!(!read.to_string().contains("PRIVATE"));
    let data = engine
        .data(
            Operation::Write,
            "sign/dev",
            json!({"public_key": ed25519_public()}),
        )
        .await;
    let certificate =
        Certificate::from_openssh(data["signed_key"].as_str().expect("signed_key")).expect("cert");
    assert_eq!(
        certificate.signature_key(),
        imported.public_key().key_data()
    );

    engine
        .call(Operation::Delete, "config/ca", json!({}))
        .await
        .expect("delete");
    engine
        .refused(
            "sign/dev",
            json!({"public_key": ed25519_public()}),
            "no CA key is configured",
        )
        .await;
}

#[tokio::test]
async fn algorithm_signer_picks_the_rsa_hash_and_needs_an_rsa_ca() {
    let engine = Engine::new();
    engine
        .write("config/ca", json!({"key_type": "rsa", "key_bits": 2048}))
        .await
        .expect("RSA CA");
    for (signer, hash) in [
        ("default", HashAlg::Sha256),
        ("rsa-sha2-256", HashAlg::Sha256),
        ("rsa-sha2-512", HashAlg::Sha512),
    ] {
        let mut role = user_role();
        role["algorithm_signer"] = json!(signer);
        engine.write("roles/dev", role).await.expect("role");
        let data = engine
            .data(
                Operation::Write,
                "sign/dev",
                json!({"public_key": ed25519_public()}),
            )
            .await;
        let certificate =
            Certificate::from_openssh(data["signed_key"].as_str().expect("signed_key"))
                .expect("cert");
        assert_eq!(
            certificate.signature().algorithm(),
            Algorithm::Rsa { hash: Some(hash) },
            "{signer}"
        );
    }

    let engine = Engine::new();
    engine
        .write("config/ca", json!({"key_type": "ed25519"}))
        .await
        .expect("Ed25519 CA");
    let mut role = user_role();
    role["algorithm_signer"] = json!("rsa-sha2-512");
    engine.write("roles/dev", role).await.expect("role");
    engine
        .refused(
            "sign/dev",
            json!({"public_key": ed25519_public()}),
            "algorithm_signer rsa-sha2-512 of role 'dev' needs an RSA CA key; this CA's key is ssh-ed25519",
        )
        .await;
}

#[tokio::test]
async fn roles_read_back_list_with_key_info_and_validate_their_fields() {
    let engine = Engine::new();
    let ca_role = json!({
        "key_type": "ca",
        "default_user": "app1",
        "allowed_users": ["app1", "app2"],
        "allowed_domains": "example.com,example.org",
        "allow_bare_domains": true,
        "allow_subdomains": "true",
        "allow_user_certificates": true,
        "allow_host_certificates": false,
        "allowed_critical_options": "source-address",
        "allowed_extensions": "*",
        "default_critical_options": {"source-address": "10.0.0.0/8"},
        "default_extensions": {"permit-pty": ""},
        "allow_user_key_ids": true,
        "key_id_format": "{{role_name}}-{{token_display_name}}",
        "allowed_user_key_lengths": {"rsa": "3072,4096", "ed25519": 0},
        "algorithm_signer": "rsa-sha2-512",
        "ttl": "4h",
        "max_ttl": 768 * 3600,
        "not_before_duration": "1m",
    });
    let response = engine
        .write("roles/ca-role", ca_role)
        .await
        .expect("ca role");
    assert!(response.warnings.is_empty(), "{:?}", response.warnings);
    let read = engine
        .data(Operation::Read, "roles/ca-role", json!({}))
        .await;
    let expected = json!({
        "key_type": "ca",
        "default_user": "app1",
        "default_user_template": false,
        "allowed_users": "app1,app2",
        "allowed_users_template": false,
        "allowed_domains": "example.com,example.org",
        "allowed_domains_template": false,
        "allow_bare_domains": true,
        "allow_subdomains": true,
        "allow_user_certificates": true,
        "allow_host_certificates": false,
        "allowed_critical_options": "source-address",
        "allowed_extensions": "*",
        "default_critical_options": {"source-address": "10.0.0.0/8"},
        "default_extensions": {"permit-pty": ""},
        "default_extensions_template": false,
        "allow_user_key_ids": true,
        "key_id_format": "{{role_name}}-{{token_display_name}}",
        "allowed_user_key_lengths": {"rsa": [3072, 4096], "ed25519": [0]},
        "algorithm_signer": "rsa-sha2-512",
        "ttl": "4h",
        "max_ttl": "768h",
        "not_before_duration": 60,
    });
    assert_eq!(read, expected);

    // An OTP role (issue 8) is stored and read back in the same record.
    let response = engine
        .write(
            "roles/otp-role",
            json!({
                "key_type": "otp",
                "default_user": "app1",
                "cidr_list": "10.0.0.0/8,fd00::/8",
                "exclude_cidr_list": ["10.9.0.0/16"],
                "port": 2222,
                "allowed_users": "app1,app2",
            }),
        )
        .await
        .expect("otp role");
    assert!(response.warnings.is_empty(), "{:?}", response.warnings);
    let read = engine
        .data(Operation::Read, "roles/otp-role", json!({}))
        .await;
    // The fields both halves share, and the OTP ones this half stores; the OTP half's own
    // tests cover the rest.
    for (field, value) in [
        ("key_type", json!("otp")),
        ("default_user", json!("app1")),
        ("allowed_users", json!("app1,app2")),
        ("cidr_list", json!("10.0.0.0/8,fd00::/8")),
        ("exclude_cidr_list", json!("10.9.0.0/16")),
        ("port", json!(2222)),
    ] {
        assert_eq!(read[field], value, "{field} in {read}");
    }
    assert!(read.get("allowed_domains").is_none(), "{read}");
    engine
        .refused(
            "sign/otp-role",
            json!({"public_key": ed25519_public()}),
            "role 'otp-role' is an otp role",
        )
        .await;

    let list = engine.data(Operation::List, "roles", json!({})).await;
    assert_eq!(list["keys"], json!(["ca-role", "otp-role"]));
    assert_eq!(
        list["key_info"],
        json!({"ca-role": {"key_type": "ca"}, "otp-role": {"key_type": "otp"}})
    );

    for (body, rule) in [
        (json!({}), "missing required field 'key_type'"),
        (
            json!({"key_type": "x"}),
            "field 'key_type': 'x' is not a role type",
        ),
        (
            json!({"key_type": "otp", "cidr_list": "10.0.0.0/8"}),
            "missing required field 'default_user'",
        ),
        (
            json!({"key_type": "otp", "default_user": "a", "cidr_list": "10.0.0.0"}),
            "field 'cidr_list': '10.0.0.0' is not a CIDR block",
        ),
        (
            json!({"key_type": "otp", "default_user": "a", "cidr_list": "10.0.0.0/8", "port": 70000}),
            "field 'port'",
        ),
        (
            json!({"key_type": "ca", "ttl": "5h", "max_ttl": "1h"}),
            "field 'ttl': 5h is longer than max_ttl 1h",
        ),
        (
            json!({"key_type": "ca", "key_id_format": "{{user}}"}),
            "field 'key_id_format'",
        ),
        (
            json!({"key_type": "ca", "allowed_users_template": true}),
            "identity templates are not supported",
        ),
        (
            json!({"key_type": "ca", "algorithm_signer": "sha1"}),
            "field 'algorithm_signer'",
        ),
        (
            json!({"key_type": "ca", "allowed_user_key_lengths": {"dsa": 1024}}),
            "field 'allowed_user_key_lengths'",
        ),
        (
            json!({"key_type": "ca", "default_extensions": "permit-pty"}),
            "field 'default_extensions': expected an object",
        ),
        (
            json!({"key_type": "ca", "allow_empty_principals": true}),
            "never signs certificates valid for every principal",
        ),
    ] {
        engine.refused("roles/bad", body, rule).await;
    }
    engine
        .refused("roles/bad name", json!({"key_type": "ca"}), "role name")
        .await;

    engine
        .call(Operation::Delete, "roles/ca-role", json!({}))
        .await
        .expect("delete");
    let error = engine
        .call(Operation::Read, "roles/ca-role", json!({}))
        .await
        .expect_err("deleted");
    assert_eq!(error.status, StatusCode::NOT_FOUND);
    let list = engine.data(Operation::List, "roles", json!({})).await;
    assert_eq!(list["keys"], json!(["otp-role"]));
}

#[tokio::test]
async fn roles_named_dot_or_dot_dot_are_refused() {
    let engine = Engine::new();
    for name in [".", ".."] {
        engine
            .refused(
                &format!("roles/{name}"),
                json!({"key_type": "ca"}),
                &format!("role name \"{name}\" is invalid: '.' and '..' are path steps"),
            )
            .await;
    }
    engine
        .write("roles/a..b", json!({"key_type": "ca"}))
        .await
        .expect("dots inside a name are fine");
}

#[tokio::test]
async fn otps_are_only_for_linux_account_names() {
    let engine = Engine::new();
    let otp_role = |default_user: &str| {
        json!({
            "key_type": "otp",
            "default_user": default_user,
            "allowed_users": "*",
            "cidr_list": "10.0.0.0/8",
        })
    };
    // The agent's PAM helper would refuse these users: an OTP for them could never be used.
    for bad in ["App", "1app", "a\0b", "a b"] {
        engine
            .refused("roles/otp", otp_role(bad), "field 'default_user': username")
            .await;
    }
    engine
        .write("roles/otp", otp_role("app1"))
        .await
        .expect("otp role");
    for bad in ["App", "1app", "a\0b", "-rf", "a:b"] {
        engine
            .refused(
                "creds/otp",
                json!({"ip": "10.0.0.5", "username": bad}),
                "field 'username': username",
            )
            .await;
    }
    let issued = engine
        .data(
            Operation::Write,
            "creds/otp",
            json!({"ip": "10.0.0.5", "username": "app2"}),
        )
        .await;
    assert_eq!(issued["username"], "app2", "{issued}");
}

#[tokio::test]
async fn an_otp_role_without_cidr_list_serves_only_as_a_zero_address_role() {
    let engine = Engine::new();
    let written = engine
        .write(
            "roles/otp_key_role",
            json!({"key_type": "otp", "default_user": "app1"}),
        )
        .await
        .expect("an otp role without cidr_list, as Vault takes it");
    assert!(
        written
            .warnings
            .iter()
            .any(|warning| warning.contains("config/zeroaddress")),
        "{:?}",
        written.warnings
    );
    engine
        .refused(
            "creds/otp_key_role",
            json!({"ip": "1.2.3.4"}),
            "IP 1.2.3.4 is not covered by role 'otp_key_role'",
        )
        .await;
    // The reference's payload spells the roles as a JSON list.
    engine
        .write("config/zeroaddress", json!({"roles": ["otp_key_role"]}))
        .await
        .expect("zero-address roles");
    let issued = engine
        .data(
            Operation::Write,
            "creds/otp_key_role",
            json!({"ip": "1.2.3.4"}),
        )
        .await;
    assert_eq!(issued["username"], "app1", "{issued}");
    assert_eq!(issued["ip"], "1.2.3.4", "{issued}");
}
