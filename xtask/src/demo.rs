//! `cargo xtask demo`: a narrated scenario through a real local stack, run with the real
//! `keyward` CLI, showing side by side what the clients read and what the servers stored.

use crate::stack::Endpoints;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PASSWORD: &str = "demo-password";

/// One device of one user: an account and a local state folder.
pub(crate) struct Device {
    name: &'static str,
    jid: String,
    passphrase: &'static str,
    data_dir: PathBuf,
}

/// The passphrase alice chooses when she recovers her keys.
const NEW_PASSPHRASE: &str = "alice's new passphrase: juniper canoes drift past the mill";

/// The recovery code a command printed (`your recovery code: XXXX-...`).
fn recovery_code(output: &str) -> Result<String> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("your recovery code: "))
        .map(|code| code.trim().to_owned())
        .context("the command printed no recovery code")
}

/// The demo's state: the CLI binary, the stack's addresses, a scratch folder for the devices.
pub(crate) struct Demo<'e> {
    keyward: PathBuf,
    endpoints: &'e Endpoints,
    scratch: PathBuf,
}

fn heading(step: usize, text: &str) {
    println!("\n\x1b[1m── {step}. {text}\x1b[0m");
}

fn say(text: &str) {
    println!("   {text}");
}

fn indent(label: &str, text: &str) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        println!("   {label} {line}");
    }
}

impl<'e> Demo<'e> {
    pub(crate) fn new(keyward: PathBuf, endpoints: &'e Endpoints, scratch: PathBuf) -> Self {
        Self { keyward, endpoints, scratch }
    }

    fn device(&self, user: &'static str, name: &'static str, passphrase: &'static str) -> Device {
        Device {
            name,
            jid: format!("{user}@{}", self.endpoints.domain),
            passphrase,
            data_dir: self.scratch.join(format!("{user}-{name}")),
        }
    }

    /// Runs `keyward ARGS` as `device` and returns its output; shows the command line.
    fn keyward(&self, device: &Device, args: &[&str]) -> Result<Output> {
        self.keyward_with(device, args, &[])
    }

    /// [`Demo::keyward`] with more environment variables.
    fn keyward_with(&self, device: &Device, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        println!("   \x1b[2m$ keyward {}   # {} on {}\x1b[0m", args.join(" "), device.jid, device.name);
        let output = Command::new(&self.keyward)
            .args(args)
            .envs(env.iter().copied())
            .env("KEYWARD_JID", &device.jid)
            .env("KEYWARD_SERVER", self.endpoints.c2s_addr.to_string())
            .env("KEYWARD_COMPONENT", &self.endpoints.component_jid)
            .env("KEYWARD_DATA_DIR", &device.data_dir)
            .env("KEYWARD_PASSWORD", PASSWORD)
            .env("KEYWARD_PASSPHRASE", device.passphrase)
            .arg("--insecure-plaintext")
            .output()
            .with_context(|| format!("running {}", self.keyward.display()))?;
        Ok(output)
    }

    /// Runs a command that must succeed, and shows its output (standard error, where the CLI
    /// puts warnings and notices, after a `!`); returns both.
    fn ok(&self, device: &Device, args: &[&str]) -> Result<String> {
        self.ok_with(device, args, &[])
    }

    /// [`Demo::ok`] with more environment variables.
    fn ok_with(&self, device: &Device, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let output = self.keyward_with(device, args, env)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        indent("│", &stdout);
        indent("!", &stderr);
        if !output.status.success() {
            bail!("keyward {} failed for {}", args.join(" "), device.jid);
        }
        Ok(stdout + &stderr)
    }

    /// Runs a command that must be refused, and shows why.
    fn refused(&self, device: &Device, args: &[&str]) -> Result<String> {
        let output = self.keyward(device, args)?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        indent("│", &String::from_utf8_lossy(&output.stdout));
        indent("!", &stderr);
        if output.status.success() {
            bail!("keyward {} should have been refused for {}", args.join(" "), device.jid);
        }
        Ok(stderr)
    }

    /// The whole scenario.
    pub(crate) fn run(&self) -> Result<()> {
        let alice = self.device("alice", "laptop", "alice's rhubarb tractor hums over velvet anchors");
        let bob = self.device("bob", "phone", "bob's marmalade glacier sings to quiet lanterns");
        let secret_text = "Meet me at the lighthouse at nine.";
        let reply_text = "I'll bring the thermos.";

        heading(1, "alice and bob create accounts and keys");
        say("Each client generates keys, seals the private part with the user's passphrase");
        say("(Argon2id and an answer of the key directory for it, an OPRF that sees only a blinded");
        say("value, so the directory's database alone allows no guess), publishes the bundle and");
        say("the sealed blob, and prints a recovery code once.");
        let mut codes = Vec::new();
        for device in [&alice, &bob] {
            self.ok(device, &["register"])?;
            codes.push(recovery_code(&self.ok(device, &["init"])?)?);
        }

        heading(2, "alice adds bob; bob accepts; the component relays their keys");
        self.ok(&alice, &["add", &bob.jid])?;
        self.ok(&bob, &["recv", "--timeout", "2"])?;
        self.ok(&bob, &["accept", &alice.jid])?;
        self.ok(&alice, &["recv", "--timeout", "2"])?;

        heading(3, "alice sends bob a message while bob is offline");
        self.ok(&alice, &["send", &bob.jid, secret_text])?;
        say("What the servers hold right now, before bob fetches it:");
        self.show_server_side(secret_text, &[alice.passphrase, bob.passphrase])?;

        heading(4, "bob comes online and reads it");
        let read = self.ok(&bob, &["recv", "--timeout", "3", "--json"])?;
        if !read.contains(secret_text) {
            bail!("bob did not read alice's message");
        }
        self.ok(&bob, &["send", &alice.jid, reply_text])?;
        self.ok(&alice, &["recv", "--timeout", "3"])?;

        heading(5, "they compare safety numbers");
        let seen_by_alice = safety_digits(&self.ok(&alice, &["verify", &bob.jid])?)?;
        let seen_by_bob = safety_digits(&self.ok(&bob, &["verify", &alice.jid])?)?;
        say("Each reads their number to the other, who confirms with what they heard:");
        self.ok(&alice, &["verify", &bob.jid, "--confirm", &seen_by_bob])?;
        self.ok(&bob, &["verify", &alice.jid, "--confirm", &seen_by_alice])?;
        self.ok(&alice, &["contacts"])?;

        heading(6, "alice logs in on a second device with her passphrase");
        let tablet = self.device("alice", "tablet", alice.passphrase);
        self.ok(&tablet, &["login"])?;
        self.ok(&bob, &["send", &alice.jid, "Hello to both of your devices."])?;
        self.ok(&tablet, &["recv", "--timeout", "3"])?;

        heading(7, "alice forgot her passphrase: her recovery code opens her keys on a phone");
        let phone = self.device("alice", "phone", NEW_PASSPHRASE);
        say("The code from step 1 opens the blob's second slot; alice chooses a new passphrase");
        say("(KEYWARD_PASSPHRASE here) and gets a new code. The old passphrase opens nothing now.");
        let recovered = self.ok_with(&phone, &["recover"], &[("KEYWARD_RECOVERY_CODE", &codes[0])])?;
        codes.push(recovery_code(&recovered)?);
        self.refused(&self.device("alice", "old-passphrase", alice.passphrase), &["login"])?;

        heading(8, "the admin revokes alice's account over HTTP");
        say(&format!(
            "$ curl -X POST -H 'Authorization: Bearer $KEYWARD_ADMIN_TOKEN' -H 'Content-Type: application/json' \\\n     -d '{{\"reason\":\"laptop stolen\"}}' {}/v0/admin/accounts/{}/revoke",
            self.endpoints.keydir_url, alice.jid
        ));
        let answer = self.revoke(&alice.jid, "laptop stolen")?;
        indent("│", &answer);

        heading(9, "bob receives the notice and refuses to send to alice");
        let notice = self.ok(&bob, &["recv", "--timeout", "3"])?;
        if !notice.contains("REVOKED") {
            bail!("bob did not receive the revocation notice");
        }
        self.refused(&bob, &["send", &alice.jid, "are you there?"])?;
        self.ok(&bob, &["contacts"])?;

        heading(10, "what the server side kept");
        let messages = [secret_text, reply_text, "Hello to both of your devices."];
        let mut secrets = vec![alice.passphrase, bob.passphrase, NEW_PASSPHRASE];
        secrets.extend(codes.iter().map(String::as_str));
        self.sweep_server_side(&messages, &secrets)?;

        println!("\n\x1b[1mDone.\x1b[0m The server side never saw a plaintext, a passphrase or a recovery code.");
        Ok(())
    }

    /// Shows what Postgres and the XMPP server's data folder hold, and checks that no plaintext
    /// or passphrase is among it.
    fn show_server_side(&self, plaintext: &str, passphrases: &[&str]) -> Result<()> {
        let psql = crate::stack::pg_tool("psql")?;
        let query = "SELECT jid, fingerprint, left(xml, 60) || '…' AS bundle FROM bundles ORDER BY jid; \
                     SELECT jid, kdf_m_kib, kdf_t, left(xml, 70) || '…' AS sealed_private_keys FROM secret_blobs ORDER BY jid;";
        let output = Command::new(psql).arg(&self.endpoints.database_url).args(["-c", query]).output()?;
        if !output.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        say("keydir's Postgres (public bundles, passphrase-sealed key blobs):");
        indent("│", &String::from_utf8_lossy(&output.stdout));
        say(&format!("the XMPP server's data folder ({}):", self.endpoints.server_data_dir.display()));
        // ejabberd writes offline messages asynchronously: give it a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let stored = loop {
            let stored = stored_ciphertexts(&self.endpoints.server_data_dir);
            if !stored.is_empty() || std::time::Instant::now() > deadline {
                break stored;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        for (file, ct) in &stored {
            say(&format!(
                "{} holds a sealed message:",
                file.strip_prefix(&self.endpoints.server_data_dir).unwrap_or(file).display()
            ));
            indent(
                "│",
                &format!(
                    "<ct>{}…</ct>  ({} bytes of ciphertext)",
                    ct.chars().take(64).collect::<String>(),
                    ct.len() / 4 * 3 - ct.matches('=').count()
                ),
            );
        }
        if stored.is_empty() {
            say("(no stored message found in the server's files)");
        }
        let secrets: Vec<&str> = std::iter::once(plaintext).chain(passphrases.iter().copied()).collect();
        refuse_secrets(&read_files(files_under(&self.endpoints.server_data_dir))?, &secrets)?;
        say(&format!("searched every server-side file for {plaintext:?} and both passphrases: not found"));
        Ok(())
    }

    /// Searches everything the server side holds (a `pg_dump` of keydir's database, every file
    /// of the XMPP server, every log of the XMPP server, keydir and the component) for the
    /// plaintexts and passphrases.
    fn sweep_server_side(&self, messages: &[&str], passphrases: &[&str]) -> Result<()> {
        let dump = Command::new(crate::stack::pg_tool("pg_dump")?)
            .arg(&self.endpoints.database_url)
            .output()
            .context("running pg_dump")?;
        if !dump.status.success() {
            bail!("pg_dump failed: {}", String::from_utf8_lossy(&dump.stderr));
        }
        let mut haystacks = vec![("pg_dump of keydir's database".to_owned(), dump.stdout)];
        let files = files_under(&self.endpoints.server_data_dir).into_iter().chain(self.endpoints.log_paths.clone());
        haystacks.extend(read_files(files)?);
        let total: usize = haystacks.iter().map(|(_, bytes)| bytes.len()).sum();
        let secrets: Vec<&str> = messages.iter().chain(passphrases).copied().collect();
        refuse_secrets(&haystacks, &secrets)?;
        say(&format!(
            "searched a pg_dump, the XMPP server's files and every server-side log ({} files, {} KiB in all)",
            haystacks.len() - 1,
            total / 1024
        ));
        say(&format!(
            "for the {} messages and the {} passphrases and recovery codes: none of them is there.",
            messages.len(),
            passphrases.len()
        ));
        Ok(())
    }

    fn revoke(&self, jid: &str, reason: &str) -> Result<String> {
        let url = format!("{}/v0/admin/accounts/{jid}/revoke", self.endpoints.keydir_url);
        let output = Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", "Content-Type: application/json", "-H"])
            .arg(format!("Authorization: Bearer {}", self.endpoints.admin_token))
            .args(["-d", &format!("{{\"reason\":\"{reason}\"}}"), &url])
            .output()
            .context("running curl (Debian package `curl`)")?;
        if !output.status.success() {
            bail!("curl failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The sealed messages stored in the files below `dir`: per file, the ciphertext (base64) of
/// the first `<ct>` element, in whichever form the server stores stanzas.
fn stored_ciphertexts(dir: &Path) -> Vec<(PathBuf, String)> {
    files_under(dir)
        .into_iter()
        .filter_map(|file| {
            let bytes = std::fs::read(&file).ok()?;
            let ct = ct_in_xml(&bytes).or_else(|| ct_in_lua(&bytes)).or_else(|| ct_in_erlang_terms(&bytes))?;
            Some((file, String::from_utf8_lossy(ct).into_owned()))
        })
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// XML text: `<ct>BASE64</ct>`.
fn ct_in_xml(bytes: &[u8]) -> Option<&[u8]> {
    let start = find(bytes, b"<ct>")? + 4;
    let len = find(&bytes[start..], b"</ct>")?;
    Some(&bytes[start..start + len])
}

/// Prosody's internal storage (Lua tables): the text child comes first, then the name:
/// `{ "BASE64"; ["name"] = "ct"; ... }`.
fn ct_in_lua(bytes: &[u8]) -> Option<&[u8]> {
    let name = find(bytes, b"[\"name\"] = \"ct\"")?;
    let before = &bytes[..name];
    let close = before.iter().rposition(|&b| b == b'"')?;
    let open = before[..close].iter().rposition(|&b| b == b'"')?;
    Some(&before[open + 1..close])
}

/// ejabberd's Mnesia tables (Erlang external term format): the binary `ct`, then the child
/// `{xmlcdata, Binary}` with the binary's 32-bit length before its bytes.
fn ct_in_erlang_terms(bytes: &[u8]) -> Option<&[u8]> {
    let name = find(bytes, b"m\x00\x00\x00\x02ct")?;
    let rest = &bytes[name..];
    let at = find(rest, b"xmlcdatam")? + 9;
    let len = u32::from_be_bytes(rest.get(at..at + 4)?.try_into().ok()?) as usize;
    rest.get(at + 4..at + 4 + len)
}

/// Each file's name and bytes. A file the server rotated away between the listing and the
/// read is skipped; any other failure to read is an error.
fn read_files(files: impl IntoIterator<Item = PathBuf>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut read = Vec::new();
    for file in files {
        match std::fs::read(&file) {
            Ok(bytes) => read.push((file.display().to_string(), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        }
    }
    Ok(read)
}

/// Fails naming the first haystack that holds one of `secrets`.
fn refuse_secrets(haystacks: &[(String, Vec<u8>)], secrets: &[&str]) -> Result<()> {
    for (name, bytes) in haystacks {
        for secret in secrets {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                bail!("{name} contains {secret:?}");
            }
        }
    }
    Ok(())
}

/// Every regular file below `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `cargo xtask demo`: installs what is missing, builds the CLI, brings the stack up, narrates.
pub(crate) fn run(server: keyward_tests::xmpp::ServerKind) -> Result<()> {
    crate::install::apt_packages(crate::stack::packages(server))?;
    let bin_dir = crate::stack::build_binaries()?;
    let keyward = bin_dir.join("keyward");
    let runtime = crate::runtime()?;
    let mut stack = runtime.block_on(crate::stack::start(server, bin_dir))?;
    let endpoints = crate::stack::Endpoints::of(&stack)?;
    println!(
        "local stack up: {} on {}, component {}, keydir {}",
        server.name(),
        endpoints.c2s_addr,
        endpoints.component_jid,
        endpoints.keydir_url
    );
    let scratch = tempfile::Builder::new().prefix("keyward-demo-").tempdir()?;
    let outcome = Demo::new(keyward, &endpoints, scratch.path().to_path_buf()).run();
    let stopped = runtime.block_on(stack.stop());
    outcome.and(stopped)
}

/// The 60 digits of the safety number that `keyward verify` printed (the rows after its heading).
fn safety_digits(output: &str) -> Result<String> {
    let digits: String = output
        .lines()
        .skip_while(|line| !line.starts_with("safety number with"))
        .skip(1)
        .take(3)
        .flat_map(|line| line.chars().filter(char::is_ascii_digit))
        .collect();
    if digits.len() != 60 {
        bail!("no safety number in the output of keyward verify");
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str =
        "LqbLCtejnkFifgaHl8FCty1SoaM3Isuom5UtE324ZRpSWPqhO/FA80iJAOCOncR0L+l5TDytIT5kz3geTVjMPEcam7PUNP8wSsJtEkI/5zbO";
    const WRAP: &str = "gsubzyXhU/iasHu3jlzn698Rihu/+RyKMGCF3cwDWaYX3v4zD9YCf/HfGs4L8+yR"; // 64 chars

    #[test]
    fn a_secret_anywhere_is_refused_by_name() {
        let haystacks = vec![
            ("pg_dump".to_owned(), b"COPY bundles ... <ct>q1Dk</ct>".to_vec()),
            ("prosody.log".to_owned(), b"\x00\xffmeet at nine\x00".to_vec()),
        ];
        assert!(refuse_secrets(&haystacks, &["passphrase", "lighthouse"]).is_ok());
        let refused = refuse_secrets(&haystacks, &["lighthouse", "meet at nine"]).expect_err("a secret is there");
        assert_eq!(refused.to_string(), "prosody.log contains \"meet at nine\"");
    }

    #[test]
    fn finds_the_ciphertext_in_text_and_in_mnesia_storage() -> Result<()> {
        let dir = tempfile::tempdir()?;
        // Prosody: the stanza as XML text.
        std::fs::create_dir(dir.path().join("offline"))?;
        std::fs::write(
            dir.path().join("offline/bob.list"),
            format!(
                "<message><sealed xmlns='urn:keyward:0' v='0'><key fp='ab'>{WRAP}</key><ct>{CT}</ct></sealed></message>"
            ),
        )?;
        // ejabberd: Erlang's external term format, strings as length-prefixed binaries.
        let mut mnesia =
            b"\x00\x05xmlelm\x00\x00\x00\x06sealedl\x00\x00\x00\x02h\x04d\x00\x05xmlelm\x00\x00\x00\x03key".to_vec();
        mnesia.extend_from_slice(&[b'm', 0, 0, 0, 64]);
        mnesia.extend_from_slice(WRAP.as_bytes());
        mnesia.extend_from_slice(b"jh\x04d\x00\x05xmlelm\x00\x00\x00\x02ctjl\x00\x00\x00\x01h\x02d\x00\x08xmlcdatam");
        mnesia.extend_from_slice(&u32::try_from(CT.len())?.to_be_bytes());
        mnesia.extend_from_slice(CT.as_bytes());
        mnesia.extend_from_slice(b"jj");
        std::fs::write(dir.path().join("offline_msg.DAT"), mnesia)?;
        // Prosody's internal storage: Lua tables, text before name.
        std::fs::write(
            dir.path().join("offline/carol.list"),
            format!(
                "item({{ {{ {{ \"{WRAP}\"; [\"name\"] = \"key\"; }}; {{ \"{CT}\"; [\"name\"] = \"ct\"; [\"attr\"] = {{}}; }}; [\"name\"] = \"sealed\"; }} }});"
            ),
        )?;
        // Files without a sealed message.
        std::fs::write(dir.path().join("roster.DAT"), "bob@example.test subscription both")?;
        std::fs::write(dir.path().join("other.log"), format!("sealed {WRAP}"))?;

        let found = stored_ciphertexts(dir.path());
        let names: Vec<_> =
            found.iter().map(|(f, ct)| (f.strip_prefix(dir.path()).unwrap_or(f).to_owned(), ct.as_str())).collect();
        assert_eq!(
            names,
            vec![
                (PathBuf::from("offline/bob.list"), CT),
                (PathBuf::from("offline/carol.list"), CT),
                (PathBuf::from("offline_msg.DAT"), CT)
            ]
        );
        Ok(())
    }
}
