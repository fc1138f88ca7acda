//! RFC 8288 `Link` headers for paged HTTP responses.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::page::Page;

/// Characters escaped in a query-string value: everything but RFC 3986's unreserved set.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `Link` header for `page`, with `rel="next"` and `rel="prev"` links built from
/// `base_url` (which may carry its own query string), or `None` when there is neither.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use shardkit_pagination::{ColumnType, CursorCodec, PageRequest, Sort, link_header, paginate};
///
/// let rows: BTreeMap<u64, ()> = (0..50).map(|k| (k, ())).collect();
/// let sort = Sort::builder().unique_asc("id", ColumnType::Uint).build()?;
/// let codec = CursorCodec::builder(sort).build()?;
/// let query = codec.bind(b"");
/// let page = paginate(&rows, &query, &PageRequest::first(20))?;
/// let link = link_header("https://api.example.com/items?sort=id", 20, &page).unwrap();
/// assert!(link.starts_with("<https://api.example.com/items?sort=id&first=20&after="));
/// assert!(link.ends_with(r#">; rel="next""#));
/// # Ok::<(), shardkit_pagination::Error>(())
/// ```
pub fn link_header<T>(base_url: &str, size: u32, page: &Page<T>) -> Option<String> {
    let sep = if base_url.contains('?') { '&' } else { '?' };
    let mut links = Vec::with_capacity(2);
    if let Some(c) = page.next_cursor() {
        let c = utf8_percent_encode(c.as_str(), QUERY_VALUE);
        links.push(format!(
            "<{base_url}{sep}first={size}&after={c}>; rel=\"next\""
        ));
    }
    if let Some(c) = page.prev_cursor() {
        let c = utf8_percent_encode(c.as_str(), QUERY_VALUE);
        links.push(format!(
            "<{base_url}{sep}last={size}&before={c}>; rel=\"prev\""
        ));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{ColumnType, CursorCodec, PageRequest, PageSize, Sort, paginate};

    use super::*;

    #[test]
    fn both_links_with_encoded_cursors() {
        let rows: BTreeMap<String, ()> = (0..30).map(|i| (format!("k/{i:02}?&"), ())).collect();
        let sort = Sort::builder()
            .unique_asc("name", ColumnType::Text)
            .build()
            .unwrap();
        let codec = CursorCodec::builder(sort).build().unwrap();
        let query = codec.bind(b"");
        let sizes = PageSize::new(10, 10).unwrap();
        let first = paginate(&rows, &query, &PageRequest::first(10)).unwrap();
        let after = first.next_cursor().map(ToString::to_string);
        let middle = paginate(
            &rows,
            &query,
            &PageRequest::from_relay(None, after, None, None, sizes).unwrap(),
        )
        .unwrap();
        let link = link_header("/items", 10, &middle).unwrap();
        let next = middle.next_cursor().unwrap().as_str().to_string();
        let prev = middle.prev_cursor().unwrap().as_str().to_string();
        assert_eq!(
            link,
            format!(
                "</items?first=10&after={next}>; rel=\"next\", </items?last=10&before={prev}>; rel=\"prev\""
            )
        );
        // Base64url needs no escaping; anything else in a cursor would be percent-encoded.
        assert_eq!(
            utf8_percent_encode("a+b/c=d", QUERY_VALUE).to_string(),
            "a%2Bb%2Fc%3Dd"
        );
        let none = paginate(
            &BTreeMap::<String, ()>::new(),
            &query,
            &PageRequest::first(10),
        )
        .unwrap();
        assert_eq!(link_header("/items", 10, &none), None);
    }
}
