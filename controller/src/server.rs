//! `rotor server`: wires the store, the CA, the agents' QUIC endpoint, the dispatcher and the
//! HTTPS API together, runs them, and stops them cleanly on SIGTERM or Ctrl-C (a dev server
//! then removes its temp directory).
//!
//! Owns startup and shutdown order and what the server prints for the operator. Must not hold
//! request logic (api), agent logic (dispatch) or storage logic (store).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rotor_common::tls;

use crate::api::{self, ServerInfo, Services};
use crate::config::Settings;
use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::engines::mounts;
use crate::pki;
use crate::store::{Sealer, Store};
use crate::tokens;

/// How the server was asked to run.
pub enum Mode {
    Dev(DevOptions),
    Config(PathBuf),
}

pub struct DevOptions {
    pub root_token_id: Option<String>,
    pub api_address: SocketAddr,
    pub agent_address: SocketAddr,
}

pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// Opens the store of a configured server, creating the seal key on first start.
fn open_configured_store(settings: &Settings, create_key: bool) -> Result<Store> {
    let sealer = if settings.seal_key_file.exists() {
        Sealer::load(&settings.seal_key_file)?
    } else if create_key {
        tracing::warn!(path = %settings.seal_key_file.display(), "seal key file missing: creating a new one (first start)");
        if let Some(parent) = settings.seal_key_file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        Sealer::create_key_file(&settings.seal_key_file)?
    } else {
        bail!(
            "seal key file {} does not exist: run `rotor operator init -config FILE` first",
            settings.seal_key_file.display()
        );
    };
    if let Some(parent) = settings.storage_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(Store::open(&settings.storage_path, sealer)?)
}

/// Creates the root token when the store has none; answers it so it can be shown once.
fn initialize_if_needed(store: &Store) -> Result<Option<String>> {
    if tokens::any_exist(store)? {
        return Ok(None);
    }
    let token = tokens::generate_token();
    tokens::store_root_token(store, &token)?;
    for (path, kind) in [("os", "os"), ("ssh", "ssh")] {
        mounts::enable(store, path, kind, "mounted at initialisation")
            .map_err(|error| anyhow::anyhow!("mounting {path}/: {}", error.message))?;
    }
    Ok(Some(token))
}

/// `rotor operator init -config FILE`: seal key, store, CA and root token, once.
pub fn operator_init(config_path: &Path) -> Result<()> {
    let settings = crate::config::load(config_path)?;
    if settings.seal_key_file.exists() {
        let store = open_configured_store(&settings, false)?;
        if tokens::any_exist(&store)? {
            bail!(
                "already initialised: {} holds a root token (a second init would lose nothing, but prints no new token)",
                settings.storage_path.display()
            );
        }
    }
    let store = open_configured_store(&settings, true)?;
    let ca = pki::load_or_create_ca(&store)?;
    write_ca_file(&settings.ca_cert_file, ca.cert_pem())?;
    let token = initialize_if_needed(&store)?
        .context("the store already has tokens; nothing to initialise")?;
    println!("Seal Key File: {}", settings.seal_key_file.display());
    println!("CA Certificate: {}", settings.ca_cert_file.display());
    println!("CA Fingerprint: {}", ca.fingerprint());
    println!("Root Token: {token}");
    println!();
    println!("Keep the seal key file safe: without it nothing in the store can be read.");
    Ok(())
}

fn write_ca_file(path: &Path, pem: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, pem)
        .with_context(|| format!("writing the CA certificate to {}", path.display()))
}

/// The dev server's directory (`rotor-dev-<pid>` under the temp dir, holding the CA file
/// it printed), removed when the server stops: a dev server keeps nothing.
struct DevDirectory(PathBuf);

impl DevDirectory {
    fn create() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("rotor-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for DevDirectory {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.0) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(dir = %self.0.display(), %error, "cannot remove the dev server's directory");
            }
        }
    }
}

pub async fn run(mode: Mode) -> Result<()> {
    tls::install_crypto_provider();
    let dev_mode = matches!(mode, Mode::Dev(_));
    // Held until `run` returns (a clean stop or a failed start), then removed.
    let mut dev_directory: Option<DevDirectory> = None;
    let (
        store,
        api_address,
        agent_address,
        advertise,
        ca_file,
        tls_san,
        api_tls_files,
        root_token,
        dispatch_settings,
        api_limits,
    ) = match mode {
        Mode::Dev(options) => {
            let store = Store::in_memory(Sealer::ephemeral())?;
            let token = options
                .root_token_id
                .clone()
                .unwrap_or_else(tokens::generate_token);
            tokens::store_root_token(&store, &token)?;
            for path in ["os", "ssh"] {
                mounts::enable(&store, path, path, "mounted by the dev server")
                    .map_err(|error| anyhow::anyhow!("mounting {path}/: {}", error.message))?;
            }
            let ca_file = dev_directory
                .insert(DevDirectory::create()?)
                .0
                .join("ca.pem");
            (
                store,
                options.api_address,
                options.agent_address,
                None,
                ca_file,
                Vec::new(),
                None,
                Some(token),
                DispatchSettings::default(),
                api::connections::ConnectionLimits::default(),
            )
        }
        Mode::Config(path) => {
            let settings = crate::config::load(&path)?;
            let store = open_configured_store(&settings, true)?;
            let token = initialize_if_needed(&store)?;
            (
                store,
                settings.api_address,
                settings.agent_address,
                Some(settings.agent_advertise_address),
                settings.ca_cert_file,
                settings.api_tls_san,
                settings.api_tls_files,
                token,
                DispatchSettings {
                    max_jobs_per_agent: settings.max_jobs_per_agent,
                    max_jobs_per_host: settings.max_jobs_per_host,
                    ..DispatchSettings::default()
                },
                settings.api_limits,
            )
        }
    };
    let store = Arc::new(store);
    let ca = Arc::new(pki::load_or_create_ca(&store)?);
    write_ca_file(&ca_file, ca.cert_pem())?;

    let host = hostname();
    let mut dns_names: Vec<String> = vec!["localhost".into()];
    dns_names.extend(host.clone());
    let mut ip_addresses: Vec<IpAddr> =
        vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    for name in tls_san {
        match name.parse::<IpAddr>() {
            Ok(ip) => ip_addresses.push(ip),
            Err(_) => dns_names.push(name),
        }
    }
    if !api_address.ip().is_unspecified() {
        ip_addresses.push(api_address.ip());
    }

    // Agents' QUIC endpoint.
    let quic_identity = pki::issue_server_identity(&ca, &dns_names, &ip_addresses)?;
    let quic_config = tls::quic_server_config(
        ca.cert_pem(),
        &quic_identity,
        Duration::from_secs(30),
        Duration::from_secs(5),
    )?;
    // With the store's reset key, agents of a controller killed and restarted reconnect at
    // their next packet instead of after their heartbeat timeout.
    let endpoint = crate::dispatch::endpoint::bind(&store, quic_config, agent_address)?;
    let agent_bound = endpoint
        .local_addr()
        .context("reading the agent listener's address")?;
    let agent_advertised = advertise.unwrap_or_else(|| agent_bound.to_string());

    let dispatcher = Dispatcher::new(store.clone(), ca.clone(), dispatch_settings);
    let serving = dispatcher.clone();
    let serving_endpoint = endpoint.clone();
    tokio::spawn(async move { serving.serve(serving_endpoint).await });

    // HTTPS API.
    let api_identity = match api_tls_files {
        Some((cert, key)) => {
            let chain = std::fs::read_to_string(&cert)
                .with_context(|| format!("reading tls_cert_file {}", cert.display()))?;
            let key_text = std::fs::read_to_string(&key)
                .with_context(|| format!("reading tls_key_file {}", key.display()))?;
            tls::ServerIdentity {
                cert_chain_pem: chain,
                key: rotor_common::secret::PrivateKeyPem::new(key_text),
            }
        }
        None => pki::issue_server_identity(&ca, &dns_names, &ip_addresses)?,
    };
    let https = tls::https_server_config(&api_identity)?;
    let listener = std::net::TcpListener::bind(api_address)
        .with_context(|| format!("binding the API listener on {api_address} (TCP)"))?;
    listener.set_nonblocking(true)?;
    let api_bound = listener.local_addr()?;

    let os_engine = crate::engines::os::OsEngine::new(store.clone(), dispatcher.clone());
    tokio::spawn(crate::engines::os::recovery_loop(
        os_engine.clone(),
        store.clone(),
        Duration::from_secs(15),
    ));
    tokio::spawn(crate::scheduler::run::run(
        os_engine.clone(),
        store.clone(),
        Duration::from_secs(5),
    ));
    let services = Arc::new(Services::new(
        store.clone(),
        dispatcher.clone(),
        os_engine,
        ServerInfo {
            agent_address: agent_advertised.clone(),
            ca_fingerprint: ca.fingerprint(),
            version: env!("CARGO_PKG_VERSION"),
            dev_mode,
        },
    )?);
    // The ssh engine's OTPs: their leases end them, and agents' PAM helpers verify them.
    services.leases.register_revoker(
        crate::engines::ssh::otp::SECRET_KIND,
        Arc::new(crate::engines::ssh::otp::OtpRevoker {
            store: store.clone(),
        }),
    );
    // The database engine's roles: their leases drop them and renew their VALID UNTIL; leases
    // a stopped controller left mid-creation are revoked (dropping the role if it exists).
    crate::engines::database::creds::RoleLeases::install(
        store.clone(),
        dispatcher.clone(),
        &services.leases,
    );
    dispatcher.set_otp_verifier(crate::engines::ssh::otp::verifier(
        store.clone(),
        services.leases.clone(),
    ));
    // Leases expire and failed revocations retry; expired tokens are revoked with their
    // children and leases.
    tokio::spawn(crate::leases::sweeper::run(
        services.leases.clone(),
        Duration::from_secs(1),
    ));
    tokio::spawn(crate::auth::sweeper::run(
        services.clone(),
        Duration::from_secs(5),
    ));

    let api_host = if api_bound.ip().is_unspecified() {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), api_bound.port())
    } else {
        api_bound
    };
    println!("export ROTOR_ADDR='https://{api_host}'");
    println!("export ROTOR_CACERT='{}'", ca_file.display());
    if let Some(token) = &root_token {
        if dev_mode {
            println!("export ROTOR_TOKEN='{token}'");
        } else {
            println!("Root Token: {token}");
            println!(
                "(shown once: this server was not initialised, so it created its root token now)"
            );
        }
    }
    println!("agents: {agent_advertised}");
    println!("ca_fingerprint: {}", ca.fingerprint());
    tracing::info!(api = %api_bound, agents = %agent_bound, dev_mode, "rotor server started");

    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let mut server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(https)),
    )?
    // A client that never finishes its TLS hello, or trickles a request's headers, is cut
    // off after the listener's header timeout (hyper counts only with a timer set); one
    // address holds at most its cap of connections.
    .map(|tls| {
        tls.handshake_timeout(api_limits.header_read_timeout)
            // Responses go out as soon as they are written: without TCP_NODELAY a keep-alive
            // client sometimes waited ~40 ms (Nagle against delayed ACK) for an answer's tail.
            .acceptor(api::connections::PerAddressLimit::new(
                axum_server::accept::NoDelayAcceptor::new(),
                api_limits.max_connections_per_address,
            ))
    })
    .handle(handle);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(api_limits.header_read_timeout);
    server
        .serve(api::router(services).into_make_service_with_connect_info::<SocketAddr>())
        .await
        .context("serving the API")?;

    dispatcher.close_all();
    endpoint.close(quinn::VarInt::from_u32(0), b"controller shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(3), endpoint.wait_idle()).await;
    tracing::info!("rotor server stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
