//! The SSZ `List[T, N]` bodies of the pool and aggregate endpoints
//! (`Content-Type: application/octet-stream`): a list of variable-size items
//! is a table of four-byte offsets followed by the items; a list of
//! fixed-size items is the items back to back. The items themselves are
//! encoded and decoded by their types (`api::attestation`).

/// SSZ offsets are four bytes.
const OFFSET_LEN: usize = 4;

/// Why a body is not an SSZ list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SszListError {
    /// The list holds more items than the endpoint takes.
    #[error("the SSZ list holds {count} items, more than the {max} this endpoint takes")]
    TooManyItems {
        /// How many it holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A list of fixed-size items is not a whole number of them.
    #[error("an SSZ list of {item_len}-byte items cannot be {len} bytes long")]
    BadLength {
        /// The body's length.
        len: usize,
        /// One item's length.
        item_len: usize,
    },
    /// An offset points before the previous one, into the offset table or
    /// past the end.
    #[error("SSZ list offset {position} is {offset}, outside {min}..={max}")]
    BadOffset {
        /// Which offset.
        position: usize,
        /// Its value.
        offset: usize,
        /// The least it may be.
        min: usize,
        /// The most it may be.
        max: usize,
    },
}

/// Encodes a list of variable-size items, each given as its SSZ bytes.
pub fn encode_variable(items: &[Vec<u8>]) -> Vec<u8> {
    let table = items.len() * OFFSET_LEN;
    let total = table + items.iter().map(Vec::len).sum::<usize>();
    let mut bytes = Vec::with_capacity(total);
    let mut offset = table;
    for item in items {
        // Bodies are bounded far below 4 GiB.
        bytes.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += item.len();
    }
    for item in items {
        bytes.extend_from_slice(item);
    }
    bytes
}

/// Splits a list of variable-size items into each item's bytes, refusing
/// more than `max_items`.
pub fn decode_variable(bytes: &[u8], max_items: usize) -> Result<Vec<&[u8]>, SszListError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let first = read_offset(bytes, 0).ok_or(SszListError::BadOffset {
        position: 0,
        offset: 0,
        min: OFFSET_LEN,
        max: bytes.len(),
    })?;
    if first < OFFSET_LEN || first % OFFSET_LEN != 0 || first > bytes.len() {
        return Err(SszListError::BadOffset {
            position: 0,
            offset: first,
            min: OFFSET_LEN,
            max: bytes.len(),
        });
    }
    let count = first / OFFSET_LEN;
    if count > max_items {
        return Err(SszListError::TooManyItems {
            count,
            max: max_items,
        });
    }
    let mut offsets = Vec::with_capacity(count + 1);
    offsets.push(first);
    for position in 1..count {
        let previous = offsets[position - 1];
        let offset = read_offset(bytes, position * OFFSET_LEN).unwrap_or(0);
        if offset < previous || offset > bytes.len() {
            return Err(SszListError::BadOffset {
                position,
                offset,
                min: previous,
                max: bytes.len(),
            });
        }
        offsets.push(offset);
    }
    offsets.push(bytes.len());
    Ok(offsets
        .windows(2)
        .map(|pair| &bytes[pair[0]..pair[1]])
        .collect())
}

/// Splits a list of `item_len`-byte items, refusing more than `max_items`.
pub fn decode_fixed(
    bytes: &[u8],
    item_len: usize,
    max_items: usize,
) -> Result<Vec<&[u8]>, SszListError> {
    if item_len == 0 || bytes.len() % item_len != 0 {
        return Err(SszListError::BadLength {
            len: bytes.len(),
            item_len,
        });
    }
    let count = bytes.len() / item_len;
    if count > max_items {
        return Err(SszListError::TooManyItems {
            count,
            max: max_items,
        });
    }
    Ok(bytes.chunks_exact(item_len).collect())
}

fn read_offset(bytes: &[u8], at: usize) -> Option<usize> {
    let word: [u8; OFFSET_LEN] = bytes.get(at..at + OFFSET_LEN)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(word)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssz::Encode;
    use ssz_types::typenum::U16;
    use ssz_types::VariableList;

    #[test]
    fn variable_lists_encode_as_ssz_does_and_split_back() {
        let items: Vec<Vec<u8>> = vec![vec![1, 2, 3], vec![], vec![9; 40]];
        let reference: Vec<VariableList<u8, U16>> = items
            .iter()
            .map(|item| VariableList::new(item.clone()).unwrap_or_default())
            .collect();
        let items: Vec<Vec<u8>> = reference.iter().map(|item| item.as_ssz_bytes()).collect();
        let encoded = encode_variable(&items);
        assert_eq!(encoded, reference.as_ssz_bytes());
        let split = decode_variable(&encoded, 3).unwrap();
        assert_eq!(split, items.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert!(decode_variable(&[], 0).unwrap().is_empty());
        assert_eq!(
            decode_variable(&encoded, 2),
            Err(SszListError::TooManyItems { count: 3, max: 2 })
        );
    }

    #[test]
    fn bad_offsets_and_lengths_are_named() {
        // First offset not a multiple of four, past the end, or before the table's end.
        for body in [
            vec![5, 0, 0, 0, 0],
            vec![8, 0, 0, 0],
            vec![8, 0, 0, 0, 4, 0, 0, 0],
        ] {
            assert!(
                matches!(
                    decode_variable(&body, 10),
                    Err(SszListError::BadOffset { .. })
                ),
                "{body:?}"
            );
        }
        assert!(matches!(
            decode_variable(&[4, 0], 10),
            Err(SszListError::BadOffset { .. })
        ));
        assert_eq!(decode_fixed(&[0; 480], 240, 2).unwrap().len(), 2);
        assert!(matches!(
            decode_fixed(&[0; 481], 240, 9),
            Err(SszListError::BadLength { .. })
        ));
        assert!(matches!(
            decode_fixed(&[0; 720], 240, 2),
            Err(SszListError::TooManyItems { .. })
        ));
    }
}
