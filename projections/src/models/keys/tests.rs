use std::collections::BTreeSet;
use std::ops::Bound;

use domain::ids::JobId;
use proptest::prelude::*;

use super::{JobKey, JobKeys, CHUNK};

fn key(time: i64, id: u8) -> JobKey {
    (time, JobId::new(1, u128::from(id)))
}

#[derive(Debug, Clone)]
enum Op {
    Insert(JobKey),
    Remove(JobKey),
}

/// Keys from a small space, so that inserts collide and removes hit; times mostly rising, as
/// jobs reach the log, with some out of order.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = (any::<bool>(), 0i64..4000, 0u8..4).prop_map(|(insert, time, id)| {
        if insert {
            Op::Insert(key(time, id))
        } else {
            Op::Remove(key(time, id))
        }
    });
    proptest::collection::vec(op, 0..3000).prop_map(|mut ops| {
        // Sort most of the inserts by time, the way a log delivers them.
        let cut = ops.len() * 3 / 4;
        ops[..cut].sort_by_key(|op| match op {
            Op::Insert(k) | Op::Remove(k) => k.0,
        });
        ops
    })
}

fn bound() -> impl Strategy<Value = Bound<JobKey>> {
    prop_oneof![
        Just(Bound::Unbounded),
        (0i64..4000, 0u8..4).prop_map(|(t, i)| Bound::Included(key(t, i))),
        (0i64..4000, 0u8..4).prop_map(|(t, i)| Bound::Excluded(key(t, i))),
    ]
}

/// `BTreeSet::range`, empty where it would panic.
fn model_range(set: &BTreeSet<JobKey>, lo: Bound<JobKey>, hi: Bound<JobKey>) -> Vec<JobKey> {
    set.iter()
        .filter(|k| match lo {
            Bound::Included(b) => **k >= b,
            Bound::Excluded(b) => **k > b,
            Bound::Unbounded => true,
        })
        .filter(|k| match hi {
            Bound::Included(b) => **k <= b,
            Bound::Excluded(b) => **k < b,
            Bound::Unbounded => true,
        })
        .copied()
        .collect()
}

proptest! {
    #[test]
    fn behaves_like_a_btree_set(ops in ops(), ranges in proptest::collection::vec((bound(), bound()), 8)) {
        let mut keys = JobKeys::default();
        let mut model = BTreeSet::new();
        for op in ops {
            match op {
                Op::Insert(k) => prop_assert_eq!(keys.insert(k), model.insert(k)),
                Op::Remove(k) => prop_assert_eq!(keys.remove(&k), model.remove(&k)),
            }
        }
        prop_assert_eq!(keys.len(), model.len());
        prop_assert_eq!(keys.is_empty(), model.is_empty());
        prop_assert_eq!(keys.first(), model.first());
        prop_assert_eq!(keys.last(), model.last());
        prop_assert!(keys.head.iter().all(|c| !c.is_empty() && c.len() <= CHUNK));
        prop_assert!(keys.tail.len() <= CHUNK);
        prop_assert_eq!(keys.tail.is_empty(), keys.is_empty());
        prop_assert!(keys.iter().eq(model.iter()));
        prop_assert!(keys.iter().rev().eq(model.iter().rev()));
        for (lo, hi) in ranges {
            let want = model_range(&model, lo, hi);
            let got = keys.range((lo, hi));
            prop_assert_eq!(got.len(), want.len());
            prop_assert_eq!(got.clone().copied().collect::<Vec<_>>(), want.clone());
            let mut back: Vec<JobKey> = got.clone().rev().copied().collect();
            back.reverse();
            prop_assert_eq!(&back, &want);
            // Taking from both ends meets in the middle without losing or repeating a key.
            let mut both = got;
            let (mut front, mut rear) = (Vec::new(), Vec::new());
            while let Some(k) = both.next() {
                front.push(*k);
                if let Some(k) = both.next_back() {
                    rear.push(*k);
                }
            }
            front.extend(rear.into_iter().rev());
            prop_assert_eq!(front, want);
        }
    }
}

/// Snapshots written with the `BTreeSet` keep loading: the bytes are the same.
#[test]
fn encodes_like_a_btree_set() {
    let config = bincode::config::standard();
    let mut keys = JobKeys::default();
    let mut model = BTreeSet::new();
    for i in (0..3 * CHUNK as i64).rev() {
        keys.insert(key(i / 3, (i % 3) as u8));
        model.insert(key(i / 3, (i % 3) as u8));
    }
    let ours = bincode::serde::encode_to_vec(&keys, config).unwrap();
    assert_eq!(ours, bincode::serde::encode_to_vec(&model, config).unwrap());
    let (back, _): (JobKeys, usize) = bincode::serde::decode_from_slice(&ours, config).unwrap();
    assert_eq!(back, keys);
    assert!(back.head.len() < keys.head.len(), "loaded keys are packed");
    assert_eq!(back.last(), model.last());
    assert_eq!(back.tail.last(), model.last());
}
