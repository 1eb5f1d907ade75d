//! Beacon and sync committee subscriptions: posted once per duty (again when
//! a duty turns out to aggregate), marked before the request so concurrent
//! rounds never post one twice, unmarked when the node did not take them.

use tracing::warn;

use super::duties::{sync_until_epoch, AttestationDuty};
use super::service::{State, Status, Vc, MAX_ITEMS_PER_REQUEST};
use crate::api::types::{BeaconCommitteeSubscription, SyncCommitteeSubscription};
use crate::api::ClientError;
use crate::spec::Epoch;

impl Vc {
    /// Posts a beacon committee subscription for each duty `select`ed whose
    /// `is_aggregator` was not posted yet or turned true since (an undecided
    /// duty is posted with false). Duties are marked before the request, so
    /// concurrent rounds never post one twice, and unmarked if it fails.
    pub(super) async fn subscribe_attestations(&self, select: impl Fn(&AttestationDuty) -> bool) {
        let items: Vec<(BeaconCommitteeSubscription, Option<bool>)> = {
            let mut state = self.lock();
            state
                .attestations
                .values_mut()
                .filter(|entry| select(&entry.duty))
                .filter_map(|entry| {
                    let is_aggregator = matches!(
                        entry.status,
                        Status::Decided {
                            is_aggregator: true,
                            ..
                        }
                    );
                    let due = match entry.subscribed {
                        None => true,
                        Some(posted) => !posted && is_aggregator,
                    };
                    if !due {
                        return None;
                    }
                    let before = entry.subscribed.replace(is_aggregator);
                    let item = BeaconCommitteeSubscription {
                        validator_index: entry.duty.validator_index,
                        committee_index: entry.duty.committee_index,
                        committees_at_slot: entry.duty.committees_at_slot,
                        slot: entry.duty.slot,
                        is_aggregator,
                    };
                    Some((item, before))
                })
                .collect()
        };
        for chunk in items.chunks(MAX_ITEMS_PER_REQUEST) {
            let subscriptions: Vec<BeaconCommitteeSubscription> =
                chunk.iter().map(|(item, _)| item.clone()).collect();
            let result = self
                .client
                .beacon_committee_subscriptions(&subscriptions)
                .await;
            let unposted = self.refused_positions(result, chunk.len(), |position, reason| {
                let item = &subscriptions[position];
                warn!(validator_index = item.validator_index, slot = item.slot, %reason, "the beacon node refused a beacon committee subscription");
            });
            let mut state = self.lock();
            for position in unposted {
                let (item, before) = &chunk[position];
                if let Some(entry) = state
                    .attestations
                    .get_mut(&(item.slot, item.validator_index))
                {
                    entry.subscribed = *before;
                }
            }
        }
    }

    /// The positions of a subscription request that were not accepted: those
    /// a 400 names (each passed to `refused` with the node's message), or all
    /// of them when the request failed otherwise (logged, posted again later).
    fn refused_positions(
        &self,
        result: Result<(), ClientError>,
        count: usize,
        refused: impl Fn(usize, &str),
    ) -> Vec<usize> {
        match result {
            Ok(()) => Vec::new(),
            Err(error) if error.status() == Some(400) && !error.failures().is_empty() => error
                .failures()
                .iter()
                .filter(|failure| failure.index < count)
                .map(|failure| {
                    refused(failure.index, &failure.message);
                    failure.index
                })
                .collect(),
            Err(error) => {
                warn!(%error, count, "cannot post subscriptions; trying again later");
                (0..count).collect()
            }
        }
    }

    /// Posts the sync committee subscription of every sync duty of `epoch`
    /// not yet posted for its period (marked first, as for beacon committees).
    pub(super) async fn subscribe_sync(&self, epoch: Epoch) {
        let until_epoch = sync_until_epoch(epoch, self.preset());
        let items: Vec<SyncCommitteeSubscription> = {
            let mut state = self.lock();
            let State {
                sync_duties,
                sync_subscribed,
                ..
            } = &mut *state;
            let Some(duties) = sync_duties.get(&epoch) else {
                return;
            };
            duties
                .iter()
                .filter(|duty| sync_subscribed.insert((until_epoch, duty.validator_index)))
                .map(|duty| SyncCommitteeSubscription {
                    validator_index: duty.validator_index,
                    sync_committee_indices: duty.positions.clone(),
                    until_epoch,
                })
                .collect()
        };
        for chunk in items.chunks(MAX_ITEMS_PER_REQUEST) {
            let result = self.client.sync_committee_subscriptions(chunk).await;
            let unposted = self.refused_positions(result, chunk.len(), |position, reason| {
                warn!(validator_index = chunk[position].validator_index, until_epoch, %reason, "the beacon node refused a sync committee subscription");
            });
            let mut state = self.lock();
            for position in unposted {
                state
                    .sync_subscribed
                    .remove(&(until_epoch, chunk[position].validator_index));
            }
        }
    }
}
