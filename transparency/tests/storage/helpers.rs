//! What every storage test starts from: a fresh database with keydir's migrations, and the directory configuration.

use akd::directory::Directory;
use akd::ecvrf::HardCodedAkdVRF;
use akd::storage::StorageManager;
use akd::{AzksParallelismConfig, DomainLabel, ExperimentalConfiguration};
use keyward_tests::postgres::Postgres;
use keyward_transparency::{PgDatabase, akd};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The tests' domain label. akd's `ExperimentalConfiguration` (its main-branch configuration)
/// separates every hash by such a label, so keyward's proofs can never pass for another
/// deployment's; `WhatsAppV1Configuration` only matters to interoperate with WhatsApp's
/// clients, which keyward's are not. keyward's own label is chosen with its protocol.
#[derive(Clone)]
pub struct TestDomain;

impl DomainLabel for TestDomain {
    fn domain_label() -> &'static [u8] {
        b"keyward-transparency tests"
    }
}

/// The configuration of every directory in these tests.
pub type Config = ExperimentalConfiguration<TestDomain>;

/// A directory over Postgres. The VRF key is akd's hard-coded public test key
/// (`HardCodedAkdVRF`, what akd's documentation uses): fine here, where only storage is
/// under test; a real directory keeps its key outside the database.
pub type PgDirectory = Directory<Config, PgDatabase, HardCodedAkdVRF>;

/// A pool on a new database of the shared throwaway cluster, with every migration applied
/// by keydir's migrator (as `keyward-keydir migrate` does).
pub async fn migrated_pool() -> PgPool {
    let postgres = Postgres::shared().expect("a throwaway Postgres (Debian package postgresql-15)");
    let url = postgres.fresh_database().await.expect("a fresh database");
    let pool = PgPoolOptions::new().max_connections(4).connect(&url).await.expect("connects");
    keyward_keydir::MIGRATOR.run(&pool).await.expect("migrations apply");
    pool
}

/// A directory over `pool` with no cache in front, so that every read is a query.
pub async fn open_directory(pool: &PgPool) -> Result<PgDirectory, akd::errors::AkdError> {
    let storage = StorageManager::new_no_cache(PgDatabase::new(pool.clone()));
    Directory::new(storage, HardCodedAkdVRF, AzksParallelismConfig::default()).await
}
