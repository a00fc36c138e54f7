//! Leader election against the test API server: one holder at a time, takeover only after
//! expiry, and a race for an expired lease has exactly one winner.

use std::time::Duration;

use sluice_controller::leader::{LeaseConfig, try_acquire};
use sluice_testapi::TestApi;

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "sluice-system".into(),
        name: "sluice-controller".into(),
        identity: identity.into(),
        duration: Duration::from_secs(3),
    }
}

#[test]
fn one_leader_at_a_time_and_takeover_after_expiry() {
    let api = TestApi::start().expect("api");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _guard = runtime.enter();
    let client =
        kube::Client::try_from(kube::Config::new(api.url.parse().expect("url"))).expect("client");
    let (a, b) = (config("a"), config("b"));
    let attempt = |c: &LeaseConfig| {
        runtime
            .block_on(try_acquire(&client, c))
            .expect("lease call")
    };
    assert!(attempt(&a), "the first candidate creates the lease");
    assert!(!attempt(&b), "a held lease is not taken");
    assert!(attempt(&a), "the holder renews");
    let lease = api
        .peek(
            "coordination.k8s.io/v1",
            "Lease",
            Some("sluice-system"),
            "sluice-controller",
        )
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "a");

    std::thread::sleep(Duration::from_millis(3300));
    assert!(attempt(&b), "an expired lease is taken over");
    assert!(!attempt(&a), "the old holder has lost it");
    let lease = api
        .peek(
            "coordination.k8s.io/v1",
            "Lease",
            Some("sluice-system"),
            "sluice-controller",
        )
        .expect("lease");
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // Racing for an expired lease: exactly one winner, every time.
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(3300));
        let (c, d) = (config(&format!("c{round}")), config(&format!("d{round}")));
        let (won_c, won_d) = runtime
            .block_on(async { tokio::join!(try_acquire(&client, &c), try_acquire(&client, &d)) });
        let winners = usize::from(won_c.expect("c")) + usize::from(won_d.expect("d"));
        assert_eq!(winners, 1, "round {round}");
    }
}
