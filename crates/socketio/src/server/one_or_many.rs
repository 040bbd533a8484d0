//! A list that is almost always one item long, without a heap block.

/// None, one item held in place, or several in a boxed vector: a
/// connection's namespace sockets, a socket's rooms. Most hold one, and
/// that one costs no allocation; for a thin pointer the whole is 16 bytes
/// where a `Vec` takes 24 and a heap block.
#[derive(Debug, Clone, Default)]
pub(crate) enum OneOrMany<T> {
    #[default]
    None,
    One(T),
    #[allow(
        clippy::box_collection,
        reason = "16 bytes in every record instead of 24"
    )]
    Many(Box<Vec<T>>),
}

impl<T> OneOrMany<T> {
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            Self::None => [].iter(),
            Self::One(x) => std::slice::from_ref(x).iter(),
            Self::Many(v) => v.iter(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Self::None)
    }

    /// Appends `item`; the second one makes a vector with room for just two.
    pub(crate) fn push(&mut self, item: T) {
        *self = match std::mem::take(self) {
            Self::None => Self::One(item),
            Self::One(first) => Self::Many(Box::new(vec![first, item])),
            Self::Many(mut v) => {
                v.push(item);
                Self::Many(v)
            }
        };
    }

    /// Removes the items for which `gone` is true.
    pub(crate) fn remove_where(&mut self, gone: impl Fn(&T) -> bool) {
        *self = match std::mem::take(self) {
            Self::One(x) if gone(&x) => Self::None,
            Self::Many(mut v) => {
                v.retain(|x| !gone(x));
                match v.len() {
                    0 => Self::None,
                    1 => Self::One(v.swap_remove(0)),
                    _ => Self::Many(v),
                }
            }
            other => other,
        };
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
        match self {
            Self::None => Vec::new(),
            Self::One(x) => vec![x],
            Self::Many(v) => *v,
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
        let mut s = OneOrMany::<u8>::None;
        assert!(s.is_empty());
        s.push(1);
        assert!(matches!(s, OneOrMany::One(1)));
        s.push(2);
        s.push(3);
        assert_eq!(all(&s), [1, 2, 3]);
        s.remove_where(|&x| x == 2);
        assert_eq!(all(&s), [1, 3]);
        s.remove_where(|&x| x == 9);
        assert_eq!(s.to_vec(), [1, 3]);
        s.remove_where(|&x| x == 1);
        assert!(matches!(s, OneOrMany::One(3)), "{s:?}");
        s.push(4);
        assert_eq!(s.into_iter().collect::<Vec<_>>(), [3, 4]);
        let mut s = OneOrMany::One(5u8);
        s.remove_where(|&x| x == 5);
        assert!(s.is_empty());
        assert_eq!(s.into_iter().count(), 0);
    }

    #[test]
    fn is_no_bigger_than_a_vec_and_two_words_for_a_thin_pointer() {
        use std::mem::size_of;
        use std::sync::Arc;
        assert_eq!(size_of::<OneOrMany<Arc<u64>>>(), 2 * size_of::<usize>());
        assert!(size_of::<OneOrMany<Arc<str>>>() <= size_of::<Vec<Arc<str>>>());
    }
}
