//! The segments of a download in progress (`download_parts`): what a resume may keep.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Result, Store, q, ts};

/// A `.part` being filled segment by segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartState {
    /// The file's ETag (or Last-Modified) when the part was begun.
    pub validator: Option<String>,
    /// The file's whole size then.
    pub size: u64,
    pub segment_size: u64,
    /// Indexes of the segments written (and flushed) into the part.
    pub done: BTreeSet<u64>,
}

impl Store {
    /// The segments recorded for a file's part, if it has begun one.
    pub async fn part_state(&self, file_row: i64) -> Result<Option<PartState>> {
        let row: Option<(Option<String>, i64, i64, String)> = sqlx::query_as(
            "SELECT validator, size, segment_size, segments_done FROM download_parts
             WHERE file_row = ?",
        )
        .bind(file_row)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read download segments"))?;
        Ok(row.map(|(validator, size, segment_size, done)| PartState {
            validator,
            size: u64::try_from(size).unwrap_or(0),
            segment_size: u64::try_from(segment_size).unwrap_or(0),
            // An index that does not parse is a segment fetched again, never one trusted.
            done: done
                .split(',')
                .filter_map(|s| s.trim().parse().ok())
                .collect(),
        }))
    }

    /// Begins (or begins again) a segmented part: no segment done yet.
    pub async fn begin_part(
        &self,
        file_row: i64,
        validator: Option<&str>,
        size: u64,
        segment_size: u64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO download_parts (file_row, validator, size, segment_size, segments_done,
                 updated_at)
             VALUES (?, ?, ?, ?, '', ?)
             ON CONFLICT (file_row) DO UPDATE SET validator = excluded.validator,
                 size = excluded.size, segment_size = excluded.segment_size,
                 segments_done = '', updated_at = excluded.updated_at",
        )
        .bind(file_row)
        .bind(validator)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(i64::try_from(segment_size).unwrap_or(i64::MAX))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(q("begin download segments"))?;
        Ok(())
    }

    /// One more segment is in the part (its bytes flushed to the file).
    pub async fn segment_done(&self, file_row: i64, index: u64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE download_parts SET updated_at = ?,
                 segments_done = CASE WHEN segments_done = '' THEN ?
                                      ELSE segments_done || ',' || ? END
             WHERE file_row = ?",
        )
        .bind(ts(now))
        .bind(index.to_string())
        .bind(index.to_string())
        .bind(file_row)
        .execute(&self.pool)
        .await
        .map_err(q("record a download segment"))?;
        Ok(())
    }

    /// The part is gone (archived, started over, or fetched in one stream).
    pub async fn clear_part(&self, file_row: i64) -> Result<()> {
        sqlx::query("DELETE FROM download_parts WHERE file_row = ?")
            .bind(file_row)
            .execute(&self.pool)
            .await
            .map_err(q("clear download segments"))?;
        Ok(())
    }
}
