//! A real browser for end-to-end tests: Debian's headless Chromium driven over WebDriver by
//! Debian's `chromedriver`, through a thin client of the W3C WebDriver protocol (JSON over
//! HTTP on loopback; reqwest, which the workspace already builds).
//!
//! Owns starting chromedriver on a free loopback port, one browser session with a throwaway
//! profile, the few commands scenarios need (navigate, find, click, type, read, run a script,
//! screenshot), and stopping both on drop. Certificates: the browser trusts exactly one
//! server key, the one the test names (`--ignore-certificate-errors-spki-list`, the SHA-256
//! of the controller's public key read from its TLS handshake); every other certificate error
//! stays an error. Missing Chromium is a failure naming the packages, never a skip (only
//! `ROTOR_E2E=skip` skips, in the scenario).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

use crate::wait::wait_until;

/// The W3C key under which an element reference travels.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a WebDriver command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A laptop screen.
const WINDOW: (u32, u32) = (1366, 900);

/// Finds `name` on PATH (or in the environment variable `override_variable`).
fn program(name: &str, override_variable: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(override_variable) {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Chromium and chromedriver, or an error saying how to get them.
pub fn require_chromium() -> Result<(PathBuf, PathBuf)> {
    let chromium = program("chromium", "ROTOR_CHROMIUM");
    let driver = program("chromedriver", "ROTOR_CHROMEDRIVER");
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => Ok((chromium, driver)),
        (chromium, driver) => bail!(
            "the console's browser test needs Debian's chromium and chromium-driver (missing: {}{}); \
             install them with `apt-get install chromium chromium-driver` (scripts/install-tools.sh \
             does, as scripts/test.sh runs it), point ROTOR_CHROMIUM / ROTOR_CHROMEDRIVER at them, \
             or set ROTOR_E2E=skip to skip the end-to-end tests",
            if chromium.is_none() { "chromium " } else { "" },
            if driver.is_none() { "chromedriver" } else { "" },
        ),
    }
}

/// The base64 SHA-256 of the public key a TLS server at `address` (`ip:port`) presents, the
/// form Chromium's `--ignore-certificate-errors-spki-list` and curl's `--pinnedpubkey` take.
pub fn server_key_pin(address: &str) -> Result<String> {
    let script = format!(
        "openssl s_client -connect {address} </dev/null 2>/dev/null | openssl x509 -pubkey -noout \
         | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl enc -base64"
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .output()
        .context("running openssl to read the server's public key")?;
    let pin = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if pin.len() != 44 {
        bail!(
            "could not read the public key of {address} with openssl (got {pin:?}): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(pin)
}

/// One element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// chromedriver and one headless Chromium session; both stopped on drop.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session_url: String,
    driver: Child,
    _profile: tempfile::TempDir,
    screenshots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that trusts only the server key `pin`
    /// (see [`server_key_pin`]); screenshots go to `screenshots`.
    pub fn start(pin: &str, screenshots: &Path) -> Result<Browser> {
        let (chromium, driver_program) = require_chromium()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(&driver_program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", driver_program.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()?;
        let profile = tempfile::tempdir()?;
        std::fs::create_dir_all(screenshots)?;
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            runtime,
            http,
            session_url: String::new(),
            driver,
            _profile: profile,
            screenshots: screenshots.to_path_buf(),
        };
        wait_until(
            "chromedriver to answer /status",
            Duration::from_secs(20),
            || {
                Ok(browser
                    .send("GET", &format!("{base}/status"), None)
                    .map(|status| status["ready"] == true)
                    .unwrap_or(false))
            },
        )?;
        let arguments = vec![
            "--headless=new".to_string(),
            // The suite runs as root in CI; Chromium's sandbox refuses root.
            "--no-sandbox".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-gpu".to_string(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={pin}"),
            "--no-first-run".to_string(),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": arguments},
        }}});
        let created = browser.send("POST", &format!("{base}/session"), Some(&capabilities))?;
        let id = created["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("chromedriver answered no sessionId: {created}"))?;
        browser.session_url = format!("{base}/session/{id}");
        Ok(browser)
    }

    /// One WebDriver command: the answer's `value`, or its error as an Err.
    fn send(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let request = self.http.request(method, url);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        let answer: Value = self.runtime.block_on(async {
            let response = request.send().await?;
            response.json::<Value>().await
        })?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            bail!(
                "WebDriver {url}: {error}: {}",
                value["message"].as_str().unwrap_or("")
            );
        }
        Ok(value)
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        self.send(
            method,
            &format!("{}{path}", self.session_url),
            body.as_ref(),
        )
    }

    /// Loads `url` and waits for the page. A load Chromium dropped because the machine's
    /// network changed (the docker networks of concurrent tests come and go) is tried again:
    /// a GET is safe to repeat.
    pub fn goto(&self, url: &str) -> Result<()> {
        for _ in 0..5 {
            self.command("POST", "/url", Some(json!({ "url": url })))
                .with_context(|| format!("opening {url}"))?;
            if !self.dropped_by_network_change()? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!("opening {url}: Chromium kept reporting ERR_NETWORK_CHANGED")
    }

    /// Whether the page is Chromium's error page for a request dropped because the
    /// machine's network changed (not an answer of the server).
    pub fn dropped_by_network_change(&self) -> Result<bool> {
        Ok(self.source()?.contains("ERR_NETWORK_CHANGED"))
    }

    /// Runs `step` (which must be safe to repeat) again, up to 4 times, when it failed on
    /// a request Chromium dropped because the machine's network changed.
    pub fn retrying_network_changes(&self, mut step: impl FnMut() -> Result<()>) -> Result<()> {
        let mut attempt = 0;
        loop {
            match step() {
                Ok(()) => return Ok(()),
                Err(error) if attempt < 4 && self.dropped_by_network_change().unwrap_or(false) => {
                    attempt += 1;
                    eprintln!(
                        "console test: a request was dropped by a network change ({error:#}); repeating the step"
                    );
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub fn current_url(&self) -> Result<String> {
        Ok(self
            .command("GET", "/url", None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// The page's HTML as the browser holds it now.
    pub fn source(&self) -> Result<String> {
        Ok(self
            .command("GET", "/source", None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// Every element matching the CSS selector.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let found = self.command(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|element| element[ELEMENT_KEY].as_str().map(|id| Element(id.into())))
            .collect())
    }

    /// The first element matching the CSS selector, or an error naming it and the page.
    pub fn find(&self, css: &str) -> Result<Element> {
        self.find_all(css)?.into_iter().next().ok_or_else(|| {
            anyhow!(
                "no element matches {css} on {}",
                self.current_url().unwrap_or_default()
            )
        })
    }

    /// The rendered text of the first element matching `css`.
    pub fn text(&self, css: &str) -> Result<String> {
        let element = self.find(css)?;
        self.element_text(&element)
    }

    pub fn element_text(&self, element: &Element) -> Result<String> {
        Ok(self
            .command("GET", &format!("/element/{}/text", element.0), None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    pub fn attribute(&self, element: &Element, name: &str) -> Result<Option<String>> {
        Ok(self
            .command(
                "GET",
                &format!("/element/{}/attribute/{name}", element.0),
                None,
            )?
            .as_str()
            .map(String::from))
    }

    /// Clicks the first element matching `css` (a real click: focus, events, navigation).
    pub fn click(&self, css: &str) -> Result<()> {
        let element = self.find(css)?;
        self.command(
            "POST",
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )
        .map(drop)
        .with_context(|| format!("clicking {css}"))
    }

    /// Types `text` into the first element matching `css` (after clearing it).
    pub fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let element = self.find(css)?;
        self.command(
            "POST",
            &format!("/element/{}/clear", element.0),
            Some(json!({})),
        )?;
        self.command(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// The `id` of the element that has the keyboard focus ("" when none has one).
    pub fn focused_id(&self) -> Result<String> {
        let focused = self.command("GET", "/element/active", None)?;
        let element = Element(
            focused[ELEMENT_KEY]
                .as_str()
                .ok_or_else(|| anyhow!("no focused element: {focused}"))?
                .to_string(),
        );
        Ok(self.attribute(&element, "id")?.unwrap_or_default())
    }

    /// Types `text` on the keyboard into the focused element (`\u{E007}` is Enter).
    pub fn type_into_focused(&self, text: &str) -> Result<()> {
        let focused = self.command("GET", "/element/active", None)?;
        let id = focused[ELEMENT_KEY]
            .as_str()
            .ok_or_else(|| anyhow!("no focused element: {focused}"))?;
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// Runs `script` in the page (WebDriver's, not subject to the page's CSP) and answers
    /// its return value.
    pub fn execute(&self, script: &str) -> Result<Value> {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Saves a PNG of the viewport as `<name>.png` in the screenshot folder.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let encoded = self.command("GET", "/screenshot", None)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or(""))
            .context("decoding the screenshot")?;
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, bytes)?;
        Ok(path)
    }

    /// Waits until `condition` holds, reading the page as it changes. On a timeout the error
    /// carries the page's address and text, and a screenshot `failed-<n>.png` is saved.
    /// A page Chromium dropped because the machine's network changed ends the wait at once
    /// (an error [`Browser::retrying_network_changes`] recognises), unless `condition` itself
    /// loaded a page again.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let checked = || -> Result<bool> {
            if condition()? {
                return Ok(true);
            }
            if self.dropped_by_network_change()? {
                bail!(
                    "Chromium dropped the request (ERR_NETWORK_CHANGED) while waiting for {what}"
                );
            }
            Ok(false)
        };
        wait_until(what, timeout, checked).map_err(|error| {
            let url = self.current_url().unwrap_or_default();
            let text = self
                .execute("return document.body ? document.body.innerText : '';")
                .ok()
                .and_then(|text| text.as_str().map(String::from))
                .unwrap_or_default();
            let shot = self
                .screenshot(&format!("failed-{}", std::process::id()))
                .map(|path| path.display().to_string())
                .unwrap_or_default();
            error.context(format!(
                "the page at {url} (screenshot {shot}) reads:\n{}",
                text.chars().take(3000).collect::<String>()
            ))
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session_url.is_empty() {
            let url = self.session_url.clone();
            let _ = self.send("DELETE", &url, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
