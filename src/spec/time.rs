//! Slot timing as arithmetic: which slot a moment falls in and when a slot
//! starts, from the genesis time and the slot duration. The moment is passed
//! in (time since the Unix epoch), so this module reads no clock; the roles
//! that run in real time read `SystemTime` and ask it.

use std::time::Duration;

use super::config::Preset;
use super::primitives::{Epoch, Slot};

/// Why a slot clock cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotClockError {
    /// A zero slot duration would put every moment in every slot.
    #[error("the slot duration must be positive")]
    ZeroSlotDuration,
}

/// The slot schedule of a chain: slot `s` starts at `genesis + s * slot_duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotClock {
    genesis: Duration,
    slot_duration: Duration,
}

impl SlotClock {
    /// A clock for a chain whose genesis is `genesis_time` (Unix seconds)
    /// and whose slots last `seconds_per_slot`.
    pub fn new(genesis_time: u64, seconds_per_slot: u64) -> Result<Self, SlotClockError> {
        Self::with_slot_duration(
            Duration::from_secs(genesis_time),
            Duration::from_secs(seconds_per_slot),
        )
    }

    /// A clock with any genesis moment and slot duration (devnets and tests
    /// run sub-second slots).
    pub fn with_slot_duration(
        genesis: Duration,
        slot_duration: Duration,
    ) -> Result<Self, SlotClockError> {
        if slot_duration.is_zero() {
            return Err(SlotClockError::ZeroSlotDuration);
        }
        Ok(Self {
            genesis,
            slot_duration,
        })
    }

    /// The genesis moment, as time since the Unix epoch.
    pub fn genesis(&self) -> Duration {
        self.genesis
    }

    /// How long a slot lasts.
    pub fn slot_duration(&self) -> Duration {
        self.slot_duration
    }

    /// The slot that `now` (time since the Unix epoch) falls in, or `None`
    /// before genesis.
    pub fn slot_at(&self, now: Duration) -> Option<Slot> {
        let since_genesis = now.checked_sub(self.genesis)?;
        let slot = since_genesis.as_nanos() / self.slot_duration.as_nanos();
        Some(u64::try_from(slot).unwrap_or(u64::MAX))
    }

    /// When `slot` starts, as time since the Unix epoch (saturating far in
    /// the future).
    pub fn slot_start(&self, slot: Slot) -> Duration {
        let offset = u32::try_from(slot)
            .ok()
            .and_then(|slot| self.slot_duration.checked_mul(slot))
            .unwrap_or(Duration::MAX);
        self.genesis.saturating_add(offset)
    }

    /// `fraction_numerator / fraction_denominator` of a slot into `slot`:
    /// the spec's attestation (1/3) and aggregation (2/3) moments.
    pub fn slot_fraction(&self, slot: Slot, numerator: u32, denominator: u32) -> Duration {
        let into_slot = self
            .slot_duration
            .checked_mul(numerator)
            .and_then(|d| d.checked_div(denominator))
            .unwrap_or(Duration::ZERO);
        self.slot_start(slot).saturating_add(into_slot)
    }

    /// Time from `now` until `slot` starts; zero if it has started.
    pub fn until_slot(&self, slot: Slot, now: Duration) -> Duration {
        self.slot_start(slot).saturating_sub(now)
    }

    /// The epoch that `now` falls in, or `None` before genesis.
    pub fn epoch_at(&self, now: Duration, preset: &Preset) -> Option<Epoch> {
        self.slot_at(now)
            .map(|slot| slot / preset.SLOTS_PER_EPOCH.max(1))
    }
}

/// Time since the Unix epoch by the system clock (zero if the clock is set
/// before 1970).
pub fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_start_at_genesis_plus_whole_slots() {
        let clock = SlotClock::new(1_000, 12).unwrap();
        assert_eq!(clock.slot_at(Duration::from_secs(999)), None);
        assert_eq!(clock.slot_at(Duration::from_secs(1_000)), Some(0));
        assert_eq!(clock.slot_at(Duration::from_millis(1_011_999)), Some(0));
        assert_eq!(clock.slot_at(Duration::from_secs(1_012)), Some(1));
        assert_eq!(clock.slot_start(3), Duration::from_secs(1_036));
        assert_eq!(clock.slot_fraction(3, 2, 3), Duration::from_secs(1_044));
        assert_eq!(
            clock.until_slot(3, Duration::from_secs(1_030)),
            Duration::from_secs(6)
        );
        assert_eq!(
            clock.until_slot(3, Duration::from_secs(1_040)),
            Duration::ZERO
        );
        let minimal = Preset::minimal();
        assert_eq!(
            clock.epoch_at(Duration::from_secs(1_000 + 12 * 8), &minimal),
            Some(1)
        );
    }

    #[test]
    fn sub_second_slots_and_extremes_do_not_overflow() {
        let clock =
            SlotClock::with_slot_duration(Duration::from_secs(5), Duration::from_millis(500))
                .unwrap();
        assert_eq!(clock.slot_at(Duration::from_millis(6_250)), Some(2));
        assert_eq!(clock.slot_start(u64::MAX), Duration::MAX);
        assert_eq!(clock.slot_at(Duration::MAX), Some(u64::MAX));
        assert_eq!(SlotClock::new(0, 0), Err(SlotClockError::ZeroSlotDuration));
    }
}
