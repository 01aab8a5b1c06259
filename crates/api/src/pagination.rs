//! The one shape of every list: `GET ...?limit=&cursor=` answered `{ "items": [...],
//! "next_cursor": "..." }`. Keyset pagination: a cursor is the id of the last item of the
//! previous page (the next page starts after it in the list's order), so pages stay stable
//! while items are added; `next_cursor` is absent on the last page.
//!
//! [`PageQuery`] is the query of every list and [`PageQuery::resolve`] its one validation:
//! `limit` 1 to [`MAX_LIMIT`] (default [`DEFAULT_LIMIT`]), `cursor` a lower-case UUID
//! ([`crate::grammar::cursor`]); anything else is 400 `malformed-request`. A well-formed cursor
//! that names no item of the list gives an empty page.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest `limit`.
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, nullable = false)]
    pub limit: Option<i64>,
    #[param(schema_with = crate::grammar::cursor_schema, nullable = false)]
    pub cursor: Option<String>,
}

/// A validated [`PageQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    /// The page starts after this item.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

impl PageQuery {
    pub fn resolve(self) -> Result<PageRequest, ApiError> {
        let limit = limit(self.limit)?;
        let after = self
            .cursor
            .as_deref()
            .map(crate::grammar::cursor)
            .transpose()?;
        Ok(PageRequest { limit, after })
    }
}

/// The `limit` of a list: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when not given.
pub fn limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::MalformedRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )))
    }
}

/// Cuts `rows`, fetched with one more than `limit` ([`PageRequest::fetch`]), to the page;
/// whether another page follows.
pub fn cut<R>(rows: &mut Vec<R>, limit: i64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    more
}

/// One page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::grammar::cursor_schema)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of `rows` (fetched with [`PageRequest::fetch`]), each item made by `item`;
    /// `key` is the id a row is resumed after.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        request: PageRequest,
        key: impl Fn(&R) -> Uuid,
        item: impl FnMut(R) -> T,
    ) -> Self {
        let more = cut(&mut rows, request.limit);
        let next_cursor = more
            .then(|| rows.last().map(|r| key(r).to_string()))
            .flatten();
        Self {
            items: rows.into_iter().map(item).collect(),
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: Option<i64>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
        PageQuery {
            limit,
            cursor: cursor.map(str::to_owned),
        }
        .resolve()
    }

    #[test]
    fn limits_are_capped_and_cursors_are_ids() {
        assert_eq!(query(None, None).ok().map(|r| r.limit), Some(DEFAULT_LIMIT));
        assert!(query(Some(200), None).is_ok());
        for limit in [0, -1, 201] {
            assert!(query(Some(limit), None).is_err(), "{limit}");
        }
        let id = Uuid::now_v7();
        assert_eq!(
            query(None, Some(&id.to_string()))
                .ok()
                .and_then(|r| r.after),
            Some(id)
        );
        for cursor in [
            "",
            "5",
            "abc",
            &id.simple().to_string(),
            &id.to_string().to_uppercase(),
        ] {
            assert!(query(None, Some(cursor)).is_err(), "{cursor:?}");
        }
    }

    #[test]
    fn a_page_says_where_the_next_starts_only_when_there_is_one() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let request = PageRequest {
            limit: 2,
            after: None,
        };
        let page = Page::from_rows(ids.clone(), request, |id| *id, |id| id);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(page.next_cursor, Some(ids[1].to_string()));
        let last = Page::from_rows(ids[2..].to_vec(), request, |id| *id, |id| id);
        assert_eq!(last.next_cursor, None);
    }
}
