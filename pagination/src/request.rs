//! Page requests and the page-size policy.

use crate::error::Error;

/// An API's page-size policy: the size when the client names none, and the most it may get.
///
/// # Examples
///
/// ```
/// use shardkit_pagination::PageSize;
///
/// let sizes = PageSize::new(25, 200)?;
/// assert_eq!(sizes.resolve(None)?, 25);
/// assert_eq!(sizes.resolve(Some(10_000))?, 200); // coerced, not refused
/// assert!(sizes.resolve(Some(-1)).is_err());
/// # Ok::<(), shardkit_pagination::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    default: u32,
    max: u32,
}

impl PageSize {
    /// A policy with a default and a maximum size.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPolicy`] unless `1 <= default <= max`.
    pub fn new(default: u32, max: u32) -> Result<Self, Error> {
        if default == 0 || default > max {
            return Err(Error::InvalidPolicy { default, max });
        }
        Ok(Self { default, max })
    }

    /// The size to serve for a requested size: the default for none, the maximum for too many.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPageSize`] for zero or a negative size.
    pub fn resolve(&self, requested: Option<i64>) -> Result<u32, Error> {
        match requested {
            None => Ok(self.default),
            Some(n) if n <= 0 => Err(Error::InvalidPageSize(n)),
            Some(n) => Ok(n.min(i64::from(self.max)) as u32),
        }
    }

    /// The default size.
    pub fn default_size(&self) -> u32 {
        self.default
    }

    /// The maximum size.
    pub fn max_size(&self) -> u32 {
        self.max
    }
}

/// Which way a page walks from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The items after the cursor, in sort order (`first`/`after`).
    Forward,
    /// The items before the cursor, nearest last (`last`/`before`).
    Backward,
}

/// A validated request for one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    direction: Direction,
    size: u32,
    cursor: Option<String>,
}

impl PageRequest {
    /// The first page forwards, at `size` items.
    pub fn first(size: u32) -> Self {
        Self {
            direction: Direction::Forward,
            size: size.max(1),
            cursor: None,
        }
    }

    /// Builds a request from Relay-style arguments: `first`/`after` page forwards,
    /// `last`/`before` backwards, none gives the first page at the default size.
    ///
    /// # Errors
    ///
    /// [`Error::ConflictingDirections`] if forward and backward arguments are mixed, and
    /// [`Error::InvalidPageSize`] for a size of zero or below.
    pub fn from_relay(
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
        policy: PageSize,
    ) -> Result<Self, Error> {
        let forward = first.is_some() || after.is_some();
        let backward = last.is_some() || before.is_some();
        match (forward, backward) {
            (true, true) => Err(Error::ConflictingDirections),
            (_, false) => Ok(Self {
                direction: Direction::Forward,
                size: policy.resolve(first)?,
                cursor: after,
            }),
            (false, true) => Ok(Self {
                direction: Direction::Backward,
                size: policy.resolve(last)?,
                cursor: before,
            }),
        }
    }

    /// The direction of the walk.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The number of items to return.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The cursor to start from, as the client sent it (opaque until decoded).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_must_make_sense() {
        assert!(PageSize::new(0, 10).is_err());
        assert!(PageSize::new(11, 10).is_err());
        assert!(PageSize::new(10, 10).is_ok());
    }

    #[test]
    fn sizes_at_the_edges() {
        let p = PageSize::new(5, 50).unwrap();
        assert_eq!(p.resolve(Some(1)), Ok(1));
        assert_eq!(p.resolve(Some(50)), Ok(50));
        assert_eq!(p.resolve(Some(i64::MAX)), Ok(50));
        assert_eq!(
            p.resolve(Some(i64::MIN)),
            Err(Error::InvalidPageSize(i64::MIN))
        );
    }

    #[test]
    fn backwards_requests() {
        let p = PageSize::new(5, 50).unwrap();
        let r = PageRequest::from_relay(None, None, Some(7), Some("c".into()), p).unwrap();
        assert_eq!(
            (r.direction(), r.size(), r.cursor()),
            (Direction::Backward, 7, Some("c"))
        );
        let r = PageRequest::from_relay(None, None, None, Some("c".into()), p).unwrap();
        assert_eq!(r.size(), 5);
        assert_eq!(
            PageRequest::from_relay(None, Some("a".into()), None, Some("b".into()), p),
            Err(Error::ConflictingDirections)
        );
    }
}
