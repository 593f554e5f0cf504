//! The committed `.sqlx/` query data still matches the migrated schema and the query call sites of keydir and keyward-transparency.
//!
//! Builds use `.sqlx/` (`SQLX_OFFLINE=true`), so a migration that changes a column
//! without regenerating it would compile against stale types. Here every entry's
//! query is described afresh against a migrated database and compared with what
//! the entry recorded: columns (names, types, origin), nullability and parameter types.

use keyward_tests::postgres::Postgres;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqlSafeStr};
use std::path::{Path, PathBuf};

/// One `.sqlx/query-<hash>.json` file.
struct Entry {
    file: String,
    query: String,
    describe: Value,
}

fn sqlx_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.sqlx")
}

fn entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    for item in std::fs::read_dir(sqlx_dir()).expect("the committed .sqlx/ folder") {
        let path = item.expect("a .sqlx/ entry").path();
        let file = path.file_name().and_then(|n| n.to_str()).expect("a UTF-8 name").to_owned();
        let Some(hash) = file.strip_prefix("query-").and_then(|rest| rest.strip_suffix(".json")) else {
            continue;
        };
        let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
        assert_eq!(json["db_name"], "PostgreSQL", "{file}");
        let query = json["query"].as_str().expect("a query string").to_owned();
        assert_eq!(json["hash"], hash, "{file}: hash field differs from the file name");
        assert_eq!(hex(&Sha256::digest(query.as_bytes())), hash, "{file}: the name is not the SHA-256 of its query");
        entries.push(Entry { file, query, describe: json["describe"].clone() });
    }
    entries.sort_by(|a, b| a.file.cmp(&b.file));
    entries
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The source folders of the crates whose query macros write `.sqlx/` (as `sqlx-prepare.sh` builds them).
const QUERY_CRATES: [&str; 2] = ["src", "../transparency/src"];

/// `query!`, `query_as!` and `query_scalar!` call sites in the sources of [`QUERY_CRATES`].
fn macro_call_sites() -> usize {
    fn walk(dir: &Path, count: &mut usize) {
        for item in std::fs::read_dir(dir).expect("a source folder") {
            let path = item.expect("an entry").path();
            if path.is_dir() {
                walk(&path, count);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("readable source");
                *count += ["query!(", "query_as!(", "query_scalar!("]
                    .iter()
                    .map(|name| text.matches(&format!("sqlx::{name}")).count())
                    .sum::<usize>();
            }
        }
    }
    let mut count = 0;
    for dir in QUERY_CRATES {
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut count);
    }
    count
}

/// The entries whose recorded description differs from the live one, each with why.
async fn stale(conn: &mut PgConnection, entries: &[Entry]) -> Vec<String> {
    let mut stale = Vec::new();
    for entry in entries {
        match conn.describe(AssertSqlSafe(entry.query.clone()).into_sql_str()).await {
            Err(err) => stale.push(format!("{}: does not prepare: {err}", entry.file)),
            Ok(live) => {
                let live = serde_json::to_value(&live).expect("a description serialises");
                if live != entry.describe {
                    stale.push(format!("{}: recorded {} but the schema gives {live}", entry.file, entry.describe));
                }
            }
        }
    }
    stale
}

/// A connection to a freshly migrated database, set up as sqlx's macros set up theirs.
async fn migrated() -> PgConnection {
    let postgres = Postgres::shared().expect("throwaway Postgres");
    let url = postgres.fresh_database().await.expect("fresh database");
    let mut conn = PgConnection::connect(&url).await.expect("connects");
    keyward_keydir::MIGRATOR.run(&mut conn).await.expect("migrations apply");
    // The macros describe with generic plans: nullability inferred from the
    // EXPLAIN of a custom plan (all parameters NULL) would differ.
    conn.execute("SET SESSION plan_cache_mode = 'force_generic_plan'").await.expect("sets the plan cache mode");
    conn
}

const REGENERATE: &str = "regenerate it with keydir/sqlx-prepare.sh (keydir/README.md, \"Changing SQL\")";

#[tokio::test]
async fn every_sqlx_entry_matches_the_migrated_schema() {
    let entries = entries();
    let sites = macro_call_sites();
    assert!(sites > 0, "no query macros found in {QUERY_CRATES:?}");
    assert_eq!(entries.len(), sites, ".sqlx/ has {} entries for {sites} query macros: {REGENERATE}", entries.len());
    let mut conn = migrated().await;
    let stale = stale(&mut conn, &entries).await;
    assert!(stale.is_empty(), ".sqlx/ is stale, {REGENERATE}:\n{}", stale.join("\n"));
    conn.close().await.expect("closes");
}

#[tokio::test]
async fn a_column_type_change_makes_its_entries_stale() {
    let entries = entries();
    let mut conn = migrated().await;
    conn.execute("ALTER TABLE audit_log ALTER COLUMN action TYPE varchar(16)").await.expect("alters");
    let stale = stale(&mut conn, &entries).await;
    let expected: Vec<&str> = entries
        .iter()
        .filter(|e| e.query.contains("FROM audit_log") && e.query.starts_with("SELECT id, at, action"))
        .map(|e| e.file.as_str())
        .collect();
    assert_eq!(expected.len(), 1, "one query returns audit_log.action");
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].starts_with(expected[0]) && stale[0].contains("Varchar"), "{stale:?}");
    conn.close().await.expect("closes");
}
