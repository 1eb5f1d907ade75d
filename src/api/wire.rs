//! The two encodings of a Beacon API body: JSON (`application/json`) and SSZ
//! (`application/octet-stream`). Which one a request body is in
//! ([`MediaType::of_content_type`]), which one a client prefers for the
//! answer ([`Accept`], with the q-values of RFC 9110 §12.5.1), and SSZ lists
//! of fixed-size records read within bounds ([`decode_ssz_records`]).

use ssz::{Decode, Encode};

use super::error::ApiError;

/// A body encoding the Beacon API defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`.
    Json,
    /// `application/octet-stream`: SSZ bytes.
    Ssz,
}

impl MediaType {
    /// The `Content-Type` value of this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::Json => "application/json",
            MediaType::Ssz => "application/octet-stream",
        }
    }

    /// The encoding a `Content-Type` names (any parameters, any case), if
    /// it is one of the two.
    pub fn of_content_type(content_type: &str) -> Option<MediaType> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        [MediaType::Json, MediaType::Ssz]
            .into_iter()
            .find(|candidate| media_type.eq_ignore_ascii_case(candidate.content_type()))
    }
}

/// What a request's `Accept` header allows: the quality (in thousandths,
/// 0..=1000) it gives each encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    json: u16,
    ssz: u16,
}

impl Accept {
    /// Reads an `Accept` header; none (or an empty one) accepts anything.
    /// Each encoding takes the quality of the most specific range naming it
    /// (`application/octet-stream` over `application/*` over `*/*`); a range
    /// with a malformed q-value is ignored, as Lodestar's server does.
    pub fn parse(header: Option<&str>) -> Accept {
        let Some(header) = header.filter(|text| !text.trim().is_empty()) else {
            return Accept {
                json: 1000,
                ssz: 1000,
            };
        };
        // (specificity, quality) of the best range seen for each encoding.
        let mut json: Option<(u8, u16)> = None;
        let mut ssz: Option<(u8, u16)> = None;
        for range in header.split(',') {
            let mut parts = range.split(';');
            let media_range = parts.next().unwrap_or_default().trim();
            let Some(quality) = quality_of(parts) else {
                continue;
            };
            for (media_type, best) in [(MediaType::Json, &mut json), (MediaType::Ssz, &mut ssz)] {
                let Some(specificity) = specificity(media_range, media_type.content_type()) else {
                    continue;
                };
                if best.is_none_or(|(seen, _)| specificity > seen) {
                    *best = Some((specificity, quality));
                }
            }
        }
        Accept {
            json: json.map_or(0, |(_, quality)| quality),
            ssz: ssz.map_or(0, |(_, quality)| quality),
        }
    }

    /// Whether `media_type` is acceptable (quality above zero).
    pub fn accepts(&self, media_type: MediaType) -> bool {
        self.quality(media_type) > 0
    }

    /// The encoding to answer in among `offered`: the acceptable one of the
    /// highest quality, the first offered on a tie; `None` if the client
    /// accepts none of them (406).
    pub fn preferred(&self, offered: &[MediaType]) -> Option<MediaType> {
        let mut best: Option<MediaType> = None;
        for &candidate in offered {
            let better = match best {
                None => self.accepts(candidate),
                Some(seen) => self.quality(candidate) > self.quality(seen),
            };
            if better {
                best = Some(candidate);
            }
        }
        best
    }

    fn quality(&self, media_type: MediaType) -> u16 {
        match media_type {
            MediaType::Json => self.json,
            MediaType::Ssz => self.ssz,
        }
    }
}

/// How specifically `media_range` names `media_type`: 2 exactly, 1 as
/// `type/*`, 0 as `*/*`; `None` if it does not.
fn specificity(media_range: &str, media_type: &str) -> Option<u8> {
    if media_range.eq_ignore_ascii_case(media_type) {
        return Some(2);
    }
    if media_range == "*/*" {
        return Some(0);
    }
    let (range_type, range_subtype) = media_range.split_once('/')?;
    let (main_type, _) = media_type.split_once('/')?;
    (range_subtype == "*" && range_type.eq_ignore_ascii_case(main_type)).then_some(1)
}

/// The q-value among a range's parameters, in thousandths (1000 without
/// one); `None` if it is not a number in 0..=1 with at most three decimals.
fn quality_of<'a>(parameters: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut quality = 1000;
    for parameter in parameters {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            quality = parse_qvalue(value.trim())?;
        }
    }
    Some(quality)
}

/// RFC 9110's `qvalue`: `0[.ddd]` or `1[.000]`, in thousandths.
fn parse_qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// A Beacon API item whose SSZ form has a fixed size, so that a list of
/// them is a plain concatenation.
pub trait SszRecord: Encode + Decode {
    /// What the item is called in error messages.
    const NAME: &'static str;
}

impl SszRecord for super::types::BeaconCommitteeSelection {
    const NAME: &'static str = "BeaconCommitteeSelection";
}

impl SszRecord for super::types::SyncCommitteeSelection {
    const NAME: &'static str = "SyncCommitteeSelection";
}

/// The size of one SSZ record of `T`.
pub fn ssz_record_len<T: SszRecord>() -> usize {
    <T as Decode>::ssz_fixed_len()
}

/// Reads an SSZ list of `T` records of at most `max_items`. An empty body,
/// a length that is not a whole number of records and too many records are
/// each refused with a 400 that says which.
pub fn decode_ssz_records<T: SszRecord>(body: &[u8], max_items: usize) -> Result<Vec<T>, ApiError> {
    let record = ssz_record_len::<T>();
    if body.is_empty() {
        return Err(ApiError::BadRequest(format!(
            "the SSZ body is empty: expected a list of {} records of {record} bytes",
            T::NAME
        )));
    }
    let count = body.len() / record;
    let left_over = body.len() % record;
    if left_over != 0 {
        return Err(ApiError::BadRequest(format!(
            "the SSZ body of {} bytes is not a whole number of {} records of {record} bytes \
             ({count} records and {left_over} bytes over)",
            body.len(),
            T::NAME
        )));
    }
    if count > max_items {
        return Err(ApiError::BadRequest(format!(
            "the request holds {count} items, more than the {max_items} this endpoint accepts"
        )));
    }
    body.chunks_exact(record)
        .enumerate()
        .map(|(index, bytes)| {
            T::from_ssz_bytes(bytes).map_err(|error| {
                ApiError::BadRequest(format!("SSZ record {index} does not decode: {error:?}"))
            })
        })
        .collect()
}

/// An SSZ list of `T` records.
pub fn encode_ssz_records<T: SszRecord>(items: &[T]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(items.len().saturating_mul(ssz_record_len::<T>()));
    for item in items {
        item.ssz_append(&mut bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{BeaconCommitteeSelection, SignatureBytes, SyncCommitteeSelection};
    use MediaType::{Json, Ssz};

    #[test]
    fn content_types_are_recognised_with_parameters_and_any_case() {
        assert_eq!(
            MediaType::of_content_type("Application/JSON; charset=utf-8"),
            Some(Json)
        );
        assert_eq!(
            MediaType::of_content_type("application/octet-stream"),
            Some(Ssz)
        );
        for other in ["text/plain", "application/jsonx", "", "application/*"] {
            assert_eq!(MediaType::of_content_type(other), None, "{other}");
        }
    }

    #[test]
    fn accept_follows_q_values_and_specificity() {
        let lodestar = Accept::parse(Some("application/octet-stream;q=1,application/json;q=0.9"));
        assert_eq!(lodestar.preferred(&[Json, Ssz]), Some(Ssz));
        assert!(lodestar.accepts(Json));
        let json_first = Accept::parse(Some("application/json, application/octet-stream;q=0.5"));
        assert_eq!(json_first.preferred(&[Json, Ssz]), Some(Json));
        // None, empty, and */* accept both; a tie goes to the first offered.
        for header in [None, Some(""), Some("*/*")] {
            let accept = Accept::parse(header);
            assert_eq!(accept.preferred(&[Json, Ssz]), Some(Json), "{header:?}");
            assert_eq!(accept.preferred(&[Ssz, Json]), Some(Ssz), "{header:?}");
        }
        let ssz_only = Accept::parse(Some("application/octet-stream"));
        assert_eq!(
            (ssz_only.accepts(Json), ssz_only.preferred(&[Json, Ssz])),
            (false, Some(Ssz))
        );
        assert_eq!(ssz_only.preferred(&[Json]), None);
        // The most specific range wins, whatever its order: q=0 refuses.
        let no_json = Accept::parse(Some("*/*;q=0.8, application/json;q=0"));
        assert_eq!(no_json.preferred(&[Json, Ssz]), Some(Ssz));
        let wildcard = Accept::parse(Some("application/*;q=0.2, text/html"));
        assert_eq!(wildcard.preferred(&[Json, Ssz]), Some(Json));
        assert_eq!(
            Accept::parse(Some("text/html")).preferred(&[Json, Ssz]),
            None
        );
        // Malformed q-values drop their range.
        for bad in [
            "application/json;q=2",
            "application/json;q=0.1234",
            "application/json;q=x",
        ] {
            assert!(!Accept::parse(Some(bad)).accepts(Json), "{bad}");
        }
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("1.5"), None);
    }

    fn beacon(index: u64) -> BeaconCommitteeSelection {
        BeaconCommitteeSelection {
            validator_index: index,
            slot: 0x0102_0304_0506_0708,
            selection_proof: SignatureBytes([index as u8; 96]),
        }
    }

    #[test]
    fn selections_are_fixed_records_in_field_order() {
        assert_eq!(ssz_record_len::<BeaconCommitteeSelection>(), 112);
        assert_eq!(ssz_record_len::<SyncCommitteeSelection>(), 120);
        let bytes = encode_ssz_records(&[beacon(7), beacon(9)]);
        assert_eq!(bytes.len(), 224);
        assert_eq!(&bytes[..8], &7u64.to_le_bytes());
        assert_eq!(&bytes[8..16], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&bytes[16..112], &[7; 96]);
        assert_eq!(
            decode_ssz_records::<BeaconCommitteeSelection>(&bytes, 2).unwrap(),
            [beacon(7), beacon(9)]
        );
        let sync = SyncCommitteeSelection {
            validator_index: 1,
            slot: 2,
            subcommittee_index: 3,
            selection_proof: SignatureBytes([4; 96]),
        };
        let bytes = encode_ssz_records(std::slice::from_ref(&sync));
        assert_eq!(&bytes[16..24], &3u64.to_le_bytes());
        assert_eq!(
            decode_ssz_records::<SyncCommitteeSelection>(&bytes, 1).unwrap(),
            [sync]
        );
    }

    #[test]
    fn bad_ssz_lengths_are_named() {
        let bytes = encode_ssz_records(&[beacon(1), beacon(2), beacon(3)]);
        let message = |body: &[u8], max: usize| {
            decode_ssz_records::<BeaconCommitteeSelection>(body, max)
                .unwrap_err()
                .to_string()
        };
        assert!(message(&[], 10).contains("empty"), "{}", message(&[], 10));
        let truncated = message(&bytes[..bytes.len() - 5], 10);
        assert!(
            truncated.contains("331 bytes") && truncated.contains("2 records and 107 bytes over"),
            "{truncated}"
        );
        let too_many = message(&bytes, 2);
        assert!(too_many.contains("3 items, more than the 2"), "{too_many}");
    }
}
