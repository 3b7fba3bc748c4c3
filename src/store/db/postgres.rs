//! Running statements on PostgreSQL through sqlx, rows read into the
//! driver-neutral [`Row`].

use std::sync::Arc;

use sqlx::postgres::{PgColumn, PgRow, Postgres};
use sqlx::{Column, Row as _, TypeInfo};

use super::{DbError, DbResult, Output, Query, Row, Value};

impl Query<'_> {
    pub(super) async fn run_sqlx<'e>(
        self,
        executor: impl sqlx::Executor<'e, Database = Postgres>,
        want_rows: bool,
    ) -> DbResult<Output> {
        let mut query = sqlx::query(self.sql).persistent(self.cacheable());
        for param in self.params {
            query = match param {
                Value::Int(v) => query.bind(v),
                Value::Real(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
                Value::IntArray(v) => query.bind(v),
                Value::RealArray(v) => query.bind(v),
                Value::TextArray(v) => query.bind(v),
            };
        }
        if !want_rows {
            let done = query.execute(executor).await?;
            return Ok(Output {
                rows: Vec::new(),
                rows_affected: done.rows_affected(),
            });
        }
        let pg_rows = query.fetch_all(executor).await?;
        let Some(first) = pg_rows.first() else {
            return Ok(Output {
                rows: Vec::new(),
                rows_affected: 0,
            });
        };
        let columns: Arc<[String]> = first
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let kinds = first
            .columns()
            .iter()
            .map(PgKind::of)
            .collect::<DbResult<Vec<_>>>()?;
        let rows = pg_rows
            .iter()
            .map(|row| {
                Ok(Row {
                    columns: columns.clone(),
                    values: kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| kind.read(row, i))
                        .collect::<DbResult<_>>()?,
                })
            })
            .collect::<DbResult<Vec<_>>>()?;
        Ok(Output {
            rows_affected: rows.len() as u64,
            rows,
        })
    }
}

/// How a PostgreSQL column is read: the store's statements return only these
/// types (aggregates are cast to text).
#[derive(Clone, Copy)]
enum PgKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
}

impl PgKind {
    fn of(column: &PgColumn) -> DbResult<Self> {
        Ok(match column.type_info().name() {
            "BOOL" => PgKind::Bool,
            "INT2" => PgKind::Int2,
            "INT4" => PgKind::Int4,
            "INT8" => PgKind::Int8,
            "FLOAT4" => PgKind::Float4,
            "FLOAT8" => PgKind::Float8,
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => PgKind::Text,
            other => {
                return Err(DbError::Other(anyhow::anyhow!(
                    "column {} has type {other}, which the store does not read",
                    column.name()
                )))
            }
        })
    }

    fn read(self, row: &PgRow, i: usize) -> DbResult<Value> {
        Ok(match self {
            PgKind::Bool => Value::Bool(row.try_get(i)?),
            PgKind::Int2 => Value::Int(row.try_get::<Option<i16>, _>(i)?.map(i64::from)),
            PgKind::Int4 => Value::Int(row.try_get::<Option<i32>, _>(i)?.map(i64::from)),
            PgKind::Int8 => Value::Int(row.try_get(i)?),
            PgKind::Float4 => Value::Real(row.try_get::<Option<f32>, _>(i)?.map(f64::from)),
            PgKind::Float8 => Value::Real(row.try_get(i)?),
            PgKind::Text => Value::Text(row.try_get(i)?),
        })
    }
}
