//! P8's subjects: akd directories with the same accounts on Postgres (`PgDatabase`) and in memory, and keydir's plain `bundles` table beside them.

use std::time::{Duration, Instant};

use akd::directory::Directory;
use akd::ecvrf::HardCodedAkdVRF;
use akd::storage::StorageManager;
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::{AkdLabel, AkdValue, AzksParallelismConfig, DomainLabel, EpochHash, ExperimentalConfiguration, LookupProof};
use anyhow::{Context, Result};
use keyward_client::keyward_proto::{BareJid, Bundle, KeyPair, VerifiedBundle, XmlElement};
use keyward_tests::postgres::Postgres;
use keyward_transparency::{PgDatabase, akd};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The domain separating the bench's hashes (akd's experimental configuration carries one).
#[derive(Clone)]
pub(crate) struct BenchDomain;

impl DomainLabel for BenchDomain {
    fn domain_label() -> &'static [u8] {
        b"keyward-transparency bench"
    }
}

/// The directories' configuration: akd's `ExperimentalConfiguration` (blake3), as keyward's tests use.
pub(crate) type Config = ExperimentalConfiguration<BenchDomain>;
type PgDirectory = Directory<Config, PgDatabase, HardCodedAkdVRF>;
type MemDirectory = Directory<Config, AsyncInMemoryDatabase, HardCodedAkdVRF>;

/// akd's cache in front of Postgres: bounded, as keydir will run it.
pub(crate) const CACHE_BYTES: usize = 64 << 20;
/// How long a cached record lives, and how often the cache is swept.
const CACHE_LIFETIME: Duration = Duration::from_secs(600);
/// Labels per epoch while filling the directories.
const SEED_EPOCH: u64 = 10_000;
/// The accounts' domain.
const DOMAIN: &str = "bench.example.test";

/// An account's label: its canonical bare JID.
pub(crate) fn jid(index: u64) -> String {
    format!("user{index}@{DOMAIN}")
}

/// Inserts accounts `user0` to `user{count - 1}` of [`DOMAIN`] and a `bundles` row for each, a
/// copy of `bundle` (keydir serves the rows; the bundle's own JID is not checked).
pub(crate) async fn fill_accounts(conn: &mut sqlx::PgConnection, count: u64, bundle: &VerifiedBundle) -> Result<()> {
    let b = bundle.bundle();
    let count = i64::try_from(count)?;
    sqlx::query("INSERT INTO accounts (jid) SELECT 'user' || g || '@' || $2 FROM generate_series(0, $1 - 1) g")
        .bind(count)
        .bind(DOMAIN)
        .execute(&mut *conn)
        .await
        .context("filling accounts")?;
    sqlx::query(
        "INSERT INTO bundles (jid, fingerprint, ik, ek, created_unix, sig, xml)
         SELECT 'user' || g || '@' || $2, $3, $4, $5, $6, $7, $8 FROM generate_series(0, $1 - 1) g",
    )
    .bind(count)
    .bind(DOMAIN)
    .bind(b.fingerprint().to_hex())
    .bind(b.identity_key().to_bytes().to_vec())
    .bind(b.encryption_key().to_bytes().to_vec())
    .bind(i64::try_from(b.created())?)
    .bind(b.signature().to_vec())
    .bind(b.to_xml())
    .execute(&mut *conn)
    .await
    .context("filling bundles")?;
    Ok(())
}

/// What keydir reads of a bundle row: JID, XML, identity and encryption keys, creation time, signature.
type BundleRow = (String, String, Vec<u8>, Vec<u8>, i64, Vec<u8>);

/// The same accounts in akd on Postgres (cached and uncached), in akd in memory, and in keydir's `bundles` table.
pub(crate) struct Directories {
    pub(crate) pool: PgPool,
    pg: PgDirectory,
    /// A second directory over the same tables with no cache: every read a query.
    pg_cold: PgDirectory,
    memory: MemDirectory,
    /// A real signed bundle: every row's copy, and the source of every value.
    pub(crate) bundle: VerifiedBundle,
    /// Accounts in the map (and rows in `bundles`).
    pub(crate) accounts: u64,
    /// Values published so far, so that every value is new.
    published: u64,
    /// The next account a rotation updates.
    cursor: u64,
    /// Seconds to fill Postgres and memory with the first accounts.
    pub(crate) seed_secs: (f64, f64),
}

/// akd's value for an account: keyward's commitment shape, `0x01 || SHA-256(bundle)`, here
/// over the model bundle, the JID and a counter so that every value differs.
fn value(bundle: &str, label: &str, counter: u64) -> AkdValue {
    let digest = Sha256::new().chain_update(bundle).chain_update(label).chain_update(counter.to_be_bytes()).finalize();
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(&digest);
    AkdValue(bytes)
}

impl Directories {
    /// A fresh database with keydir's migrations, and `accounts` accounts in every store.
    pub(crate) async fn start(accounts: u64) -> Result<Self> {
        let postgres = tokio::task::spawn_blocking(Postgres::shared).await.context("starting Postgres")??;
        let url = postgres.fresh_database().await?;
        let pool = PgPoolOptions::new().max_connections(4).connect(&url).await.context("connecting to Postgres")?;
        keyward_keydir::MIGRATOR.run(&pool).await.context("applying keydir's migrations")?;
        let storage = StorageManager::new(
            PgDatabase::new(pool.clone()),
            Some(CACHE_LIFETIME),
            Some(CACHE_BYTES),
            Some(CACHE_LIFETIME),
        );
        let pg = PgDirectory::new(storage, HardCodedAkdVRF, AzksParallelismConfig::default()).await?;
        // After the first: it finds the azks record the first one wrote.
        let pg_cold = PgDirectory::new(
            StorageManager::new_no_cache(PgDatabase::new(pool.clone())),
            HardCodedAkdVRF,
            AzksParallelismConfig::default(),
        )
        .await?;
        let memory = MemDirectory::new(
            StorageManager::new_no_cache(AsyncInMemoryDatabase::new()),
            HardCodedAkdVRF,
            AzksParallelismConfig::default(),
        )
        .await?;
        let keys = KeyPair::generate()?;
        let bundle = Bundle::sign(&keys, BareJid::parse(&jid(0))?, 1_700_000_000);
        let mut this = Directories {
            pool,
            pg,
            pg_cold,
            memory,
            bundle,
            accounts: 0,
            published: 0,
            cursor: 0,
            seed_secs: (0.0, 0.0),
        };
        this.seed(accounts).await?;
        Ok(this)
    }

    /// Fills the map with `count` new accounts in epochs of [`SEED_EPOCH`], and `bundles` with their rows.
    async fn seed(&mut self, count: u64) -> Result<()> {
        let (mut pg_secs, mut memory_secs) = (0.0, 0.0);
        while self.accounts < count {
            let size = SEED_EPOCH.min(count - self.accounts);
            let updates = self.updates(size, true);
            if count >= 100_000 && self.accounts.is_multiple_of(100_000) {
                println!("bench: P8: {} of {count} accounts in the directories …", self.accounts);
            }
            pg_secs += self.publish_pg(updates.clone()).await?.1.as_secs_f64();
            memory_secs += self.publish_memory(updates).await?.1.as_secs_f64();
        }
        self.seed_secs = (pg_secs, memory_secs);
        let mut conn = self.pool.acquire().await.context("a connection")?;
        fill_accounts(&mut conn, count, &self.bundle).await?;
        sqlx::raw_sql("VACUUM ANALYZE").execute(&self.pool).await.context("VACUUM ANALYZE")?;
        Ok(())
    }

    /// The next `size` updates: new accounts (first publishes) when `fresh`, otherwise new values
    /// of existing accounts (key rotations, round robin).
    pub(crate) fn updates(&mut self, size: u64, fresh: bool) -> Vec<(AkdLabel, AkdValue)> {
        let xml = self.bundle.to_xml();
        let labels: Vec<String> = if !fresh && size <= self.accounts {
            let start = self.cursor;
            self.cursor = (self.cursor + size) % self.accounts;
            (0..size).map(|i| jid((start + i) % self.accounts)).collect()
        } else {
            let start = self.accounts;
            self.accounts += size;
            (start..start + size).map(jid).collect()
        };
        labels
            .into_iter()
            .map(|label| {
                self.published += 1;
                let value = value(&xml, &label, self.published);
                (AkdLabel::from(label.as_str()), value)
            })
            .collect()
    }

    /// One epoch on Postgres (through the cache); its hash and time.
    pub(crate) async fn publish_pg(&self, updates: Vec<(AkdLabel, AkdValue)>) -> Result<(EpochHash, Duration)> {
        let start = Instant::now();
        let hash = self.pg.publish(updates).await.context("publishing on Postgres")?;
        Ok((hash, start.elapsed()))
    }

    /// The same epoch in memory; its hash and time.
    pub(crate) async fn publish_memory(&self, updates: Vec<(AkdLabel, AkdValue)>) -> Result<(EpochHash, Duration)> {
        let start = Instant::now();
        let hash = self.memory.publish(updates).await.context("publishing in memory")?;
        Ok((hash, start.elapsed()))
    }

    /// The anchor of a publish: each update's bundle row upserted (a new account's `accounts`
    /// row inserted first), one statement each, in one transaction; its time.
    pub(crate) async fn insert_rows(&self, updates: &[(AkdLabel, AkdValue)]) -> Result<Duration> {
        let b = self.bundle.bundle();
        let (fingerprint, xml) = (b.fingerprint().to_hex(), b.to_xml());
        let (ik, ek, sig) = (b.identity_key().to_bytes(), b.encryption_key().to_bytes(), b.signature());
        let created = i64::try_from(b.created())?;
        let start = Instant::now();
        let mut tx = self.pool.begin().await?;
        for (label, _) in updates {
            let jid = std::str::from_utf8(&label.0).context("a label that is not UTF-8")?;
            sqlx::query("INSERT INTO accounts (jid) VALUES ($1) ON CONFLICT (jid) DO NOTHING")
                .bind(jid)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO bundles (jid, fingerprint, ik, ek, created_unix, sig, xml) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (jid) DO UPDATE SET fingerprint = excluded.fingerprint, ik = excluded.ik, ek = excluded.ek,
                   created_unix = excluded.created_unix, sig = excluded.sig, xml = excluded.xml, stored_at = now()",
            )
            .bind(jid)
            .bind(&fingerprint)
            .bind(&ik[..])
            .bind(&ek[..])
            .bind(created)
            .bind(&sig[..])
            .bind(&xml)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(start.elapsed())
    }

    /// A lookup proof of `label` from Postgres, through the cache or not; the proof, its epoch and the time.
    pub(crate) async fn lookup(&self, label: &str, cold: bool) -> Result<(LookupProof, EpochHash, Duration)> {
        let directory = if cold { &self.pg_cold } else { &self.pg };
        let start = Instant::now();
        let (proof, hash) = directory.lookup(AkdLabel::from(label)).await.context("a lookup proof")?;
        Ok((proof, hash, start.elapsed()))
    }

    /// The same lookup in akd's memory storage; its time.
    pub(crate) async fn lookup_memory(&self, label: &str) -> Result<Duration> {
        let start = Instant::now();
        self.memory.lookup(AkdLabel::from(label)).await.context("a lookup proof in memory")?;
        Ok(start.elapsed())
    }

    /// The anchor of a lookup: keydir's bundle row of `jid` by primary key; its time.
    pub(crate) async fn select_bundle(&self, jid: &str) -> Result<Duration> {
        let start = Instant::now();
        let row: Option<BundleRow> =
            sqlx::query_as("SELECT jid, xml, ik, ek, created_unix, sig FROM bundles WHERE jid = $1")
                .bind(jid)
                .fetch_optional(&self.pool)
                .await?;
        let took = start.elapsed();
        row.with_context(|| format!("no bundle row for {jid}"))?;
        Ok(took)
    }

    /// The VRF public key clients verify with.
    pub(crate) async fn vrf_key(&self) -> Result<Vec<u8>> {
        Ok(self.pg.get_public_key().await?.as_bytes().to_vec())
    }
}
