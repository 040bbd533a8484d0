//! A list that is almost always one item long, without a heap block.

/// None, one item held in place, or several in a boxed vector: a
/// connection's namespace sockets, a socket's rooms. Most hold one, and
/// that one costs no allocation. Two words for a thin pointer and for a
/// fat one (`Arc<str>`) alike, where a `Vec` takes three and a heap block.
#[derive(Debug, Clone)]
pub(crate) struct OneOrMany<T>(Repr<T>);

/// Two variants, not three: the compiler then keeps the second one's
/// pointer beside the first one's non-null pointer, and tells them apart by
/// that pointer alone (an `Arc<str>` list is 16 bytes, not 24).
#[derive(Debug, Clone)]
enum Repr<T> {
    One(T),
    /// None, or several.
    #[allow(
        clippy::box_collection,
        reason = "two words in every record instead of three"
    )]
    Other(Option<Box<Vec<T>>>),
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self::NONE
    }
}

impl<T> OneOrMany<T> {
    /// Empty.
    pub(crate) const NONE: Self = Self(Repr::Other(None));

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        match &self.0 {
            Repr::One(x) => std::slice::from_ref(x).iter(),
            Repr::Other(None) => [].iter(),
            Repr::Other(Some(v)) => v.iter(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Other(None))
    }

    /// Appends `item`; the second one makes a vector with room for just two.
    pub(crate) fn push(&mut self, item: T) {
        self.0 = match std::mem::replace(&mut self.0, Repr::Other(None)) {
            Repr::Other(None) => Repr::One(item),
            Repr::One(first) => Repr::Other(Some(Box::new(vec![first, item]))),
            Repr::Other(Some(mut v)) => {
                v.push(item);
                Repr::Other(Some(v))
            }
        };
    }

    /// Removes the items for which `gone` is true.
    pub(crate) fn remove_where(&mut self, gone: impl Fn(&T) -> bool) {
        self.0 = match std::mem::replace(&mut self.0, Repr::Other(None)) {
            Repr::One(x) if gone(&x) => Repr::Other(None),
            Repr::Other(Some(mut v)) => {
                v.retain(|x| !gone(x));
                match v.len() {
                    0 => Repr::Other(None),
                    1 => Repr::One(v.swap_remove(0)),
                    _ => Repr::Other(Some(v)),
                }
            }
            other => other,
        };
    }

    /// The item, if there is exactly one.
    #[cfg(test)]
    fn only(&self) -> Option<&T> {
        match &self.0 {
            Repr::One(x) => Some(x),
            Repr::Other(_) => None,
        }
    }
}

impl<T: Clone> OneOrMany<T> {
    pub(crate) fn to_vec(&self) -> Vec<T> {
        self.iter().cloned().collect()
    }
}

impl<T> IntoIterator for OneOrMany<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        match self.0 {
            Repr::One(x) => vec![x],
            Repr::Other(None) => Vec::new(),
            Repr::Other(Some(v)) => *v,
        }
        .into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::OneOrMany;

    fn all(s: &OneOrMany<u8>) -> Vec<u8> {
        s.iter().copied().collect()
    }

    #[test]
    fn goes_from_none_to_one_to_many_and_back() {
        let mut s = OneOrMany::<u8>::NONE;
        assert!(s.is_empty());
        s.push(1);
        assert_eq!(s.only(), Some(&1));
        s.push(2);
        s.push(3);
        assert_eq!(all(&s), [1, 2, 3]);
        s.remove_where(|&x| x == 2);
        assert_eq!(all(&s), [1, 3]);
        s.remove_where(|&x| x == 9);
        assert_eq!(s.to_vec(), [1, 3]);
        s.remove_where(|&x| x == 1);
        assert_eq!(s.only(), Some(&3), "{s:?}");
        s.push(4);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [3, 4]);
        let mut s = OneOrMany::NONE;
        s.push(5u8);
        s.remove_where(|&x| x == 5);
        assert!(s.is_empty());
        assert_eq!(s.into_iter().count(), 0);
    }

    #[test]
    fn is_two_words_for_a_thin_or_a_fat_pointer() {
        use std::mem::size_of;
        use std::sync::Arc;
        assert_eq!(size_of::<OneOrMany<Arc<u64>>>(), 2 * size_of::<usize>());
        assert_eq!(size_of::<OneOrMany<Arc<str>>>(), 2 * size_of::<usize>());
    }
}
