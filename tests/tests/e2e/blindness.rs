//! Server blindness: after a run with known plaintexts, passphrases and private keys, nothing on
//! the server side holds any of them: not a `pg_dump` of the directory's database, not a byte of
//! the XMPP server's data folder, not a line of the XMPP server's, keydir's or the component's logs.
//!
//! The private keys are recovered by decrypting the sealed secret blob independently of the
//! product (Argon2id, HKDF and XSalsa20-Poly1305 as the protocol specifies them, with keydir's
//! OPRF output computed from the stack's seed), then checked against the published
//! fingerprints; every value on the way (the OPRF output, the Argon2id output, the slot key, the
//! data key), the recovery codes and the OPRF seed itself are searched for too. Positive controls show the same search finds what the server is
//! meant to hold: public bundles, the sealed blob and message ciphertext at rest.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use crypto_secretbox::aead::{Aead, KeyInit};
use keyward_client::keyward_proto::{BareJid, Envelope, KeyPair, Recipient, Sealed, XmlElement};
use keyward_client::{Incoming, Session, Setup};
use keyward_tests::xmpp::ServerKind;

use crate::support::{expect, marker, mutual_contacts, stack};
use keyward_tests::on_both_servers;

on_both_servers!(the_server_side_never_sees_plaintext_passphrases_or_private_keys);

/// The private half of an account, as the protocol's secret blob holds it.
struct PrivateKeys {
    ik_seed: [u8; 32],
    ek_secret: [u8; 32],
}

fn xml_attr(xml: &str, name: &str) -> anyhow::Result<String> {
    for quote in ['\'', '"'] {
        let key = format!(" {name}={quote}");
        if let Some(start) = xml.find(&key).map(|i| i + key.len()) {
            let end = xml[start..].find(quote).context("unterminated attribute")?;
            return Ok(xml[start..start + end].to_owned());
        }
    }
    bail!("no attribute {name} in {xml}")
}

fn xml_text<'a>(xml: &'a str, name: &str) -> anyhow::Result<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open).with_context(|| format!("no <{name}>"))? + open.len();
    let end = xml[start..].find("</").context("unterminated element")?;
    Ok(&xml[start..start + end])
}

/// The XML of the `<slot type='kind'>` of a version 1 `<secret/>`.
fn slot<'a>(secret_xml: &'a str, kind: &str) -> anyhow::Result<&'a str> {
    let start = [format!("type='{kind}'"), format!("type=\"{kind}\"")]
        .iter()
        .find_map(|key| secret_xml.find(key.as_str()))
        .with_context(|| format!("no {kind} slot"))?;
    let start = secret_xml[..start].rfind("<slot").context("slot start")?;
    let end = secret_xml[start..].find("</slot>").context("unterminated slot")? + start;
    Ok(&secret_xml[start..end])
}

/// What opening a version 1 blob's passphrase slot goes through, kept to search the server side for.
struct Opened {
    keys: PrivateKeys,
    /// The Argon2id output of the passphrase.
    stretched: [u8; 32],
    /// The slot's key: HKDF over the Argon2id output and the OPRF output.
    slot_key: [u8; 32],
    /// The data key the slot wraps.
    data_key: [u8; 32],
}

/// Opens a version 1 `<secret/>` with the passphrase and keydir's OPRF output for it, following
/// the protocol text (section 6.2) rather than the product's code.
fn open_blob_independently(
    secret_xml: &str,
    passphrase: &str,
    oprf: &[u8; 64],
    jid: &BareJid,
) -> anyhow::Result<Opened> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let pw = slot(secret_xml, "passphrase")?;
    let (m, t, p): (u32, u32, u32) =
        (xml_attr(pw, "m")?.parse()?, xml_attr(pw, "t")?.parse()?, xml_attr(pw, "p")?.parse()?);
    let salt = b64.decode(xml_text(pw, "salt")?)?;
    let params = argon2::Params::new(m, t, p, Some(32)).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    let mut stretched = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, &mut stretched)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let mut ikm = stretched.to_vec();
    ikm.extend_from_slice(oprf);
    let mut info = b"keyward/secret/v1/passphrase\0".to_vec();
    info.extend_from_slice(jid.as_str().as_bytes());
    let mut slot_key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), &ikm)
        .expand(&info, &mut slot_key)
        .map_err(|_| anyhow::anyhow!("hkdf"))?;
    let unwrap = |key: &[u8; 32], nonce: &str, ct: &str| -> anyhow::Result<Vec<u8>> {
        let cipher = crypto_secretbox::XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(key));
        cipher
            .decrypt(crypto_secretbox::Nonce::from_slice(&b64.decode(nonce)?), b64.decode(ct)?.as_slice())
            .map_err(|_| anyhow::anyhow!("the blob did not open"))
    };
    let data_key: [u8; 32] = unwrap(&slot_key, xml_text(pw, "nonce")?, xml_text(pw, "ct")?)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a data key of the wrong length"))?;
    // The sealed keys follow the two slots.
    let outer = &secret_xml[secret_xml.rfind("</slot>").context("no slots")?..];
    let plain = unwrap(&data_key, xml_text(outer, "nonce")?, xml_text(outer, "ct")?)?;
    let mut prefix = b"keyward/secret/v1\0".to_vec();
    prefix.extend_from_slice(&u16::try_from(jid.as_str().len())?.to_be_bytes());
    prefix.extend_from_slice(jid.as_str().as_bytes());
    let rest = plain.strip_prefix(prefix.as_slice()).context("unexpected blob plaintext")?;
    if rest.len() != 64 {
        bail!("unexpected key length {}", rest.len());
    }
    let mut keys = PrivateKeys { ik_seed: [0; 32], ek_secret: [0; 32] };
    keys.ik_seed.copy_from_slice(&rest[..32]);
    keys.ek_secret.copy_from_slice(&rest[32..]);
    Ok(Opened { keys, stretched, slot_key, data_key })
}

/// Every way `secret` may be written down: raw, hex (both cases), and base64 (standard and
/// URL-safe) at each of the three alignments it can have inside a longer base64 text.
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![secret.to_vec(), hex::encode(secret).into_bytes(), hex::encode_upper(secret).into_bytes()];
    for offset in 0..3usize {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(secret);
        // Only the characters whose 6 bits all come from `secret`.
        let first = (8 * offset).div_ceil(6);
        let last = (8 * (offset + secret.len())) / 6;
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            let text = engine.encode(&shifted);
            forms.push(text.as_bytes()[first..last].to_vec());
        }
    }
    forms
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

async fn the_server_side_never_sees_plaintext_passphrases_or_private_keys(kind: ServerKind) -> anyhow::Result<()> {
    let mut stack = stack(kind).await?;
    let run = marker();
    let texts: Vec<String> = (0..6).map(|i| format!("plaintext {i} of run {run}: meet at the old mill")).collect();

    let (alice, bob, mut a, mut b) = mutual_contacts(&stack).await?;
    let alice_code = a.take_recovery_code().context("alice's first use made a recovery code")?;
    let bob_code = b.take_recovery_code().context("bob's first use made a recovery code")?;
    for pair in texts[..4].chunks(2) {
        a.send(&bob.jid, &pair[0]).await?;
        expect(&mut b, "alice's message", |e| matches!(e, Incoming::Message(m) if m.body == pair[0])).await?;
        b.send(&alice.jid, &pair[1]).await?;
        expect(&mut a, "bob's message", |e| matches!(e, Incoming::Message(m) if m.body == pair[1])).await?;
    }
    // alice's second device fetches and opens her secret blob.
    let laptop = tempfile::tempdir()?;
    let (second, setup) = Session::start(&alice.account_on(laptop.path())).await?;
    assert_eq!(setup, Setup::NewDevice);
    second.close().await?;

    // bob goes offline: two messages and one with a known ciphertext stay on the server at rest.
    let bob_bundle = b.bundle().clone();
    b.close().await?;
    for text in &texts[4..] {
        a.send(&bob.jid, text).await?;
    }
    let alice_keys = alice.keys()?;
    let control = Sealed::seal(
        &alice_keys,
        &Envelope {
            from: alice.jid.clone(),
            to: bob.jid.clone(),
            ts_ms: 1_900_000_000_000,
            msg_id: "control".into(),
            body: format!("control message of run {run}"),
        },
        &[Recipient::from(&bob_bundle)],
    )?;
    a.connection().send(keyward_client::stanzas::sealed_message(&bob.jid, "control", &control)?).await?;
    let control_xml = control.to_xml();
    let control_ct = xml_text(&control_xml, "ct")?.to_owned();
    let alice_bundle = a.bundle().to_xml();
    let alice_ik = xml_text(&alice_bundle, "ik")?.to_owned();
    a.close().await?;

    // The private keys, recovered from the blobs on the users' own devices, with every value
    // on the way: keydir's OPRF output, the Argon2id output, the slot key, the data key.
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut alice_secret_ct = String::new();
    for (user, code) in [(&alice, &alice_code), (&bob, &bob_code)] {
        let store = keyward_client::Store::open(user.device.path(), &user.jid)?;
        let state = store.account()?.context("keys cached on the device")?;
        let oprf = *user.oprf_output(user.passphrase.as_bytes())?.as_bytes();
        let opened = open_blob_independently(&state.secret, &user.passphrase, &oprf, &user.jid)?;
        let keys = &opened.keys;
        let rebuilt = KeyPair::from_secret_bytes(&keys.ik_seed, &keys.ek_secret);
        assert_eq!(
            rebuilt.fingerprint(),
            state.bundle(&user.jid)?.fingerprint(),
            "the recovered keys are the real ones"
        );
        if user.jid == alice.jid {
            alice_secret_ct = xml_text(slot(&state.secret, "passphrase")?, "ct")?.to_owned();
        }
        secrets.push((format!("{} Ed25519 seed", user.jid), keys.ik_seed.to_vec()));
        secrets.push((format!("{} X25519 secret", user.jid), keys.ek_secret.to_vec()));
        secrets.push((format!("{} OPRF output", user.jid), oprf.to_vec()));
        secrets.push((format!("{} Argon2id output", user.jid), opened.stretched.to_vec()));
        secrets.push((format!("{} passphrase slot key", user.jid), opened.slot_key.to_vec()));
        secrets.push((format!("{} data key", user.jid), opened.data_key.to_vec()));
        secrets.push((format!("{} recovery code", user.jid), code.to_grouped().as_bytes().to_vec()));
        let compact: String = code.to_grouped().chars().filter(|c| *c != '-').collect();
        secrets.push((format!("{} recovery code, ungrouped", user.jid), compact.into_bytes()));
    }
    let seed = STANDARD.decode(stack.oprf_seed().context("the stack's keydir has a seed")?)?;
    secrets.push(("keydir's OPRF seed".into(), seed));
    // The transparency map's VRF key and the head signing key: with them a thief could forge
    // proofs or heads. Secrets of the process, never written anywhere.
    secrets.push(("keydir's VRF key".into(), STANDARD.decode(stack.vrf_key().context("a VRF key")?)?));
    secrets.push(("keydir's head signing key".into(), STANDARD.decode(stack.signing_key().context("a signing key")?)?));

    // Stop everything so that every log and data file is complete on disk.
    stack.stop().await?;

    let mut haystacks: Vec<(String, Vec<u8>)> = vec![("pg_dump".into(), stack.pg_dump().await?)];
    for path in files_under(&stack.server_data_dir())?.into_iter().chain(stack.log_paths()) {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        haystacks.push((path.display().to_string(), bytes));
    }
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for text in &texts {
        needles.push((format!("plaintext {text:?}"), text.as_bytes().to_vec()));
    }
    needles.push(("the control plaintext".into(), format!("control message of run {run}").into_bytes()));
    needles.push(("the run marker".into(), run.as_bytes().to_vec()));
    for user in [&alice, &bob] {
        needles.push((format!("passphrase of {}", user.jid), user.passphrase.as_bytes().to_vec()));
    }
    for (name, secret) in &secrets {
        for (i, form) in encodings(secret).into_iter().enumerate() {
            needles.push((format!("{name} (encoding {i})"), form));
        }
    }
    let mut leaks = Vec::new();
    for (place, bytes) in &haystacks {
        for (what, needle) in &needles {
            if contains(bytes, needle) {
                leaks.push(format!("{what} found in {place}"));
            }
        }
    }
    assert!(leaks.is_empty(), "the server side holds secrets:\n{}", leaks.join("\n"));

    // Positive controls: the same search finds what the server is meant to hold.
    let find = |place: &str, needle: &str| -> bool {
        haystacks.iter().filter(|(p, _)| p.contains(place)).any(|(_, bytes)| contains(bytes, needle.as_bytes()))
    };
    let data_dir = stack.server_data_dir().display().to_string();
    assert!(find("pg_dump", &alice_ik), "alice's public bundle is in the database");
    assert!(find("pg_dump", &alice_secret_ct), "alice's sealed blob is in the database");
    assert!(find("pg_dump", "keyward-epoch"), "the signed epoch heads are in the database");
    assert!(find(&data_dir, &control_ct), "the control message's ciphertext is stored offline");
    assert!(find(&data_dir, "urn:keyward:0"), "sealed messages are stored offline");
    assert!(find("component.log", "stream up"), "the component's log was captured");
    assert!(find("keydir.log", alice.jid.as_str()), "keydir's log was captured with request details");
    assert!(haystacks.len() >= 5, "data files and logs were read: {}", haystacks.len());

    // The users' own devices keep private keys only sealed, too.
    for user in [&alice, &bob] {
        for path in files_under(user.device.path())? {
            let bytes = std::fs::read(&path)?;
            for (name, secret) in &secrets {
                for form in encodings(secret) {
                    assert!(!contains(&bytes, &form), "{name} in the clear in {}", path.display());
                }
            }
        }
    }
    Ok(())
}
