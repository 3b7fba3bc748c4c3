//! The query API on SQLite: binding, transactions, locks held elsewhere.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::sqlite::{sqlite_placeholders, SQLITE_BUSY_DEADLINE};
use super::*;

fn sqlite_db() -> (tempfile::TempDir, Db) {
    let (dir, db) = sqlite_db_with(SQLITE_BUSY_DEADLINE);
    (dir, Db::Sqlite(db))
}

fn sqlite_db_with(busy_deadline: Duration) -> (tempfile::TempDir, Arc<SqliteDb>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let open = move || {
        let conn = rusqlite::Connection::open(&path)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 0")?;
        Ok(conn)
    };
    let writer = open().unwrap();
    writer
        .execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
        .unwrap();
    let db = SqliteDb::new(writer, open).with_busy_deadline(busy_deadline);
    (dir, Arc::new(db))
}

/// Another process (here: another connection) holding the write lock.
fn hold_write_lock(dir: &tempfile::TempDir, for_: Duration) -> std::thread::JoinHandle<()> {
    let other = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(for_);
        other.execute_batch("COMMIT").unwrap();
    })
}

async fn insert(db: &Db, key: &str) -> DbResult<()> {
    let mut tx = db.begin().await?;
    query("INSERT INTO t (k, v) VALUES ($1, 1)")
        .bind(key)
        .execute(&mut tx)
        .await?;
    tx.commit().await
}

/// `#[tokio::test]` runs on one thread: had the writer waited inside
/// SQLite, the ticker could not tick until the lock was released.
#[tokio::test]
async fn a_lock_held_elsewhere_is_awaited_without_blocking_the_runtime() {
    let (dir, db) = sqlite_db_with(SQLITE_BUSY_DEADLINE);
    let db = Db::Sqlite(db);
    let held = Duration::from_millis(400);
    let started = std::time::Instant::now();
    let releaser = hold_write_lock(&dir, held);
    let ticker = async {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    };
    let write = async {
        insert(&db, "k").await.unwrap();
        started.elapsed()
    };
    let (ticked, written) = tokio::join!(ticker, write);
    releaser.join().unwrap();
    assert!(ticked < held / 2, "ticker blocked for {ticked:?}");
    assert!(
        written >= held,
        "wrote at {written:?}, before the lock was free"
    );
    let lone = query("UPDATE t SET v = 2").execute(&db).await.unwrap();
    assert_eq!(lone, 1);
}

#[tokio::test]
async fn a_lock_held_past_the_deadline_is_503_and_writes_nothing() {
    let (dir, db) = sqlite_db_with(Duration::from_millis(100));
    let db = Db::Sqlite(db);
    let releaser = hold_write_lock(&dir, Duration::from_millis(600));
    let err = insert(&db, "late").await.unwrap_err();
    assert!(matches!(err, DbError::Busy), "{err}");
    let lone = query("INSERT INTO t (k, v) VALUES ('lone', 1)")
        .execute(&db)
        .await
        .unwrap_err();
    assert!(matches!(lone, DbError::Busy), "{lone}");
    assert_eq!(
        MlflowError::from(err).code,
        ErrorCode::TemporarilyUnavailable
    );
    releaser.join().unwrap();
    let rows = query("SELECT k FROM t").fetch_all(&db).await.unwrap();
    assert!(rows.is_empty());
}

#[test]
fn dollar_placeholders_become_numbered_question_marks() {
    assert_eq!(
        sqlite_placeholders("SELECT $1, '$.x', $12 FROM t WHERE a = $2"),
        "SELECT ?1, '$.x', ?12 FROM t WHERE a = ?2"
    );
    assert!(matches!(sqlite_placeholders("SELECT 1"), Cow::Borrowed(_)));
}

#[tokio::test]
async fn numbered_parameters_bind_by_number_on_sqlite() {
    let (_dir, db) = sqlite_db();
    let row = query("SELECT $2 AS b, $1 AS a, $2 AS b2")
        .bind("first")
        .bind(2_i64)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("a").unwrap(), "first");
    assert_eq!(row.try_get::<i64, _>("b").unwrap(), 2);
    assert_eq!(row.try_get::<i64, _>(2).unwrap(), 2);
    assert!(row.try_get::<String, _>("b").is_err());
    assert!(row.try_get::<i64, _>("missing").is_err());
}

#[tokio::test]
async fn transactions_commit_or_roll_back_and_lone_writes_take_the_writer() {
    let (_dir, db) = sqlite_db();
    let mut tx = db.begin().await.unwrap();
    query("INSERT INTO t (k, v) VALUES ($1, $2)")
        .bind("dropped")
        .bind(1_i64)
        .execute(&mut tx)
        .await
        .unwrap();
    drop(tx);
    let mut tx = db.begin().await.unwrap();
    query("INSERT INTO t (k, v) VALUES ($1, $2)")
        .bind("kept")
        .bind(2_i64)
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Outside a transaction a write goes to the writer, a read to a reader.
    let changed = query("UPDATE t SET v = v + 1").execute(&db).await.unwrap();
    assert_eq!(changed, 1);
    let rows = query("SELECT k, v FROM t").fetch_all(&db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].try_get::<String, _>("k").unwrap(), "kept");
    assert_eq!(rows[0].try_get::<Option<i64>, _>("v").unwrap(), Some(3));
    let err = query("INSERT INTO t (k) VALUES ($1)")
        .bind("kept")
        .execute(&db)
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
}
