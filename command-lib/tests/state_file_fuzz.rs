//! Random and mutated state files never make the reader panic, and every
//! record that cannot be used is reported with its position.
//!
//! The default run is short. For a long one (millions of inputs):
//! `PROPTEST_CASES=1000000 cargo test --release -p sozu-command --test state_file_fuzz`

use proptest::prelude::*;
use sozu_command::state::{ConfigState, file};

const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/sozu-2.3/state.txt");

/// A change to apply to the fixture bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Truncate { at: usize },
    Delete { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0..FIXTURE.len();
    prop_oneof![
        (at.clone(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (
            at.clone(),
            prop_oneof![Just(0u8), Just(b'"'), Just(b'{'), Just(b'}'), any::<u8>()]
        )
            .prop_map(|(at, byte)| Mutation::Set { at, byte }),
        at.clone().prop_map(|at| Mutation::Truncate { at }),
        (at.clone(), 1..64usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (at, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Flip { at, bit } => {
            if let Some(byte) = bytes.get_mut(*at) {
                *byte ^= 1 << bit;
            }
        }
        Mutation::Set { at, byte } => {
            if let Some(slot) = bytes.get_mut(*at) {
                *slot = *byte;
            }
        }
        Mutation::Truncate { at } => bytes.truncate(*at),
        Mutation::Delete { at, len } => {
            let start = (*at).min(bytes.len());
            let end = (start + len).min(bytes.len());
            bytes.drain(start..end);
        }
        Mutation::Insert {
            at,
            bytes: inserted,
        } => {
            let at = (*at).min(bytes.len());
            bytes.splice(at..at, inserted.iter().copied());
        }
    }
}

/// Loads `bytes` and checks the report is coherent with the records found.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let records = file::parse_records(bytes);
    let mut state = ConfigState::new();
    let report = file::load(&mut state, bytes);
    prop_assert_eq!(report.applied + report.errors.len(), records.len());
    for error in &report.errors {
        prop_assert!(error.number >= 1 && error.number <= records.len());
        prop_assert!(error.offset <= bytes.len());
        prop_assert!(!error.reason.is_empty());
    }
    // Whatever loaded is a valid state: it saves and reloads identically.
    let mut reloaded = ConfigState::new();
    let second = file::load(&mut reloaded, &file::to_bytes(&state));
    prop_assert!(second.errors.is_empty(), "{:?}", second.errors);
    prop_assert_eq!(reloaded, state);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_state_files_never_panic(mutations in prop::collection::vec(mutation(), 1..8)) {
        let mut bytes = FIXTURE.to_vec();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        check(&bytes)?;
    }
}
