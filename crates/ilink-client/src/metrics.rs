//! The runtime's metrics, through the [`metrics`](https://docs.rs/metrics) crate's facade.
//!
//! ilink-client records metrics and installs no recorder: they cost next to nothing until
//! the application installs one (for example `metrics-exporter-prometheus`, as `ilink echo
//! --metrics ADDR` does). Call [`describe`] after installing it to give every metric its help
//! text and unit. The names are the constants of this module.
//!
//! | Name | Type | Labels | Unit | When it moves |
//! |---|---|---|---|---|
//! | [`ilink_messages_received_total`](MESSAGES_RECEIVED) | counter | `account` | messages | an inbound message is yielded to the application ([`Account::updates`](crate::Account::updates), [`Account::run`](crate::Account::run)); duplicates the runtime filters out and undecodable messages do not count |
//! | [`ilink_replies_total`](REPLIES) | counter | `outcome` = `delivered` \| `queued` \| `failed` | messages | `delivered`: the server accepted a sendmessage (`ret` 0, with or without a `message_id`): a text part, a media item, a caption, or a queued message sent later. `queued`: a send returned [`SendOutcome::Queued`] for a message (window used up, or a transient failure kept for retry). `failed`: a send call returned a [`SendError`] (once per call) |
//! | [`ilink_outbox_depth`](OUTBOX_DEPTH) | gauge | `account` | messages | messages waiting in the account's durable outbound queue ([`crate::outbox`]), set when the account opens and on every change of its queue |
//! | [`ilink_poll_latency_seconds`](POLL_LATENCY) | histogram | none | seconds | every getupdates round trip ends (an answer, an error, or the client-side timeout that ends an idle long-poll). An idle long-poll lasts about the server's `longpolling_timeout_ms` (35 s), so this shows the hold time when idle and the delivery latency when busy |
//! | [`ilink_poll_errors_total`](POLL_ERRORS) | counter | `kind` = `transport` \| `http_status` \| `server` \| `unreadable_body` \| `other` | polls | a poll fails ([`Update::PollFailed`](crate::Update::PollFailed), by [`PollErrorKind`]); `-14` counts in `ilink_session_expired_total` instead |
//! | [`ilink_handler_duration_seconds`](HANDLER_DURATION) | histogram | none | seconds | a handler of [`Account::run`](crate::Account::run) returns (or panics); the handler only: not the queue flush before it, nor the typing cancel after it |
//! | [`ilink_session_expired_total`](SESSION_EXPIRED) | counter | `account` | events | the session expired and notifystart could not revive it ([`Update::SessionExpired`](crate::Update::SessionExpired)): the account needs a new login |
//! | [`ilink_lease_changes_total`](LEASE_CHANGES) | counter | `change` = `acquired` \| `renewed` \| `lost` \| `released` | events | the fleet runtime (`ilink_client::fleet`) takes, renews, loses or gives up an account's lease |
//! | [`ilink_accounts_served`](ACCOUNTS_SERVED) | gauge | none | accounts | the accounts this process serves (holds the lease of) changes |
//!
//! Histograms are recorded in seconds as `f64`; an exporter chooses how to bucket them:
//! [`POLL_LATENCY_BUCKETS`] and [`HANDLER_DURATION_BUCKETS`] are bounds that suit them.
//!
//! # Label cardinality
//!
//! Every label value comes from a small fixed set, except `account`: one value per bot
//! account (`…@im.bot`) that the process serves. A fleet of *N* accounts spread over many
//! processes makes about 3*N* series in all (`ilink_messages_received_total`,
//! `ilink_outbox_depth`, `ilink_session_expired_total`), each process holding those of its
//! own accounts; thousands of accounts are well within what Prometheus handles. Beyond that,
//! or when per-account series are not wanted, [`set_account_labels(false)`](set_account_labels)
//! drops the label: the series then sum over the process's accounts (the depth gauge too).
//!
//! What is never a label: the WeChat user (`…@im.wechat`: unbounded, and personal data), a
//! message or `client_id`, an error message. The histograms carry no `account` label, since
//! each label value multiplies a histogram by its bucket count. Which process or fleet member
//! reported a series is the scrape target's business (Prometheus's `instance` label), not
//! this crate's.
//!
//! When the fleet runtime hands an account over to another process, this process keeps the
//! last value of that account's series (counters never go back; the depth gauge is set to 0
//! when the account is let go, so a sum over processes stays right).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use ::metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};

use crate::send::{SendError, SendOutcome};
use crate::updates::PollErrorKind;

/// Counter of inbound messages yielded to the application. Label [`LABEL_ACCOUNT`].
pub const MESSAGES_RECEIVED: &str = "ilink_messages_received_total";
/// Counter of reply outcomes. Label [`LABEL_OUTCOME`]: [`OUTCOME_DELIVERED`],
/// [`OUTCOME_QUEUED`], [`OUTCOME_FAILED`].
pub const REPLIES: &str = "ilink_replies_total";
/// Gauge of the messages in an account's durable outbound queue. Label [`LABEL_ACCOUNT`].
pub const OUTBOX_DEPTH: &str = "ilink_outbox_depth";
/// Histogram of getupdates round trips, in seconds.
pub const POLL_LATENCY: &str = "ilink_poll_latency_seconds";
/// Counter of failed polls. Label [`LABEL_KIND`].
pub const POLL_ERRORS: &str = "ilink_poll_errors_total";
/// Histogram of handler run times of [`Account::run`](crate::Account::run), in seconds.
pub const HANDLER_DURATION: &str = "ilink_handler_duration_seconds";
/// Counter of session expiries not revived by notifystart. Label [`LABEL_ACCOUNT`].
pub const SESSION_EXPIRED: &str = "ilink_session_expired_total";
/// Counter of lease changes of the fleet runtime. Label [`LABEL_CHANGE`].
pub const LEASE_CHANGES: &str = "ilink_lease_changes_total";
/// Gauge of the accounts this process serves.
pub const ACCOUNTS_SERVED: &str = "ilink_accounts_served";

/// Every metric name of this module, in the order of the table above.
pub const ALL: &[&str] = &[
    MESSAGES_RECEIVED,
    REPLIES,
    OUTBOX_DEPTH,
    POLL_LATENCY,
    POLL_ERRORS,
    HANDLER_DURATION,
    SESSION_EXPIRED,
    LEASE_CHANGES,
    ACCOUNTS_SERVED,
];

/// The label naming the bot account (`…@im.bot`); see [`set_account_labels`].
pub const LABEL_ACCOUNT: &str = "account";
/// The label of [`REPLIES`].
pub const LABEL_OUTCOME: &str = "outcome";
/// The label of [`POLL_ERRORS`].
pub const LABEL_KIND: &str = "kind";
/// The label of [`LEASE_CHANGES`].
pub const LABEL_CHANGE: &str = "change";

/// [`REPLIES`]: the server accepted the message.
pub const OUTCOME_DELIVERED: &str = "delivered";
/// [`REPLIES`]: the message waits in the outbound queue.
pub const OUTCOME_QUEUED: &str = "queued";
/// [`REPLIES`]: the send failed.
pub const OUTCOME_FAILED: &str = "failed";

/// The values of [`LABEL_KIND`] on [`POLL_ERRORS`], by
/// [`PollErrorKind`]: `Transport`, `HttpStatus`, `Server`, `UnreadableBody`, `Other`.
pub const POLL_ERROR_KINDS: &[&str] = &[
    "transport",
    "http_status",
    "server",
    "unreadable_body",
    "other",
];

/// [`LEASE_CHANGES`]: a lease was taken.
pub const CHANGE_ACQUIRED: &str = "acquired";
/// [`LEASE_CHANGES`]: a held lease was extended.
pub const CHANGE_RENEWED: &str = "renewed";
/// [`LEASE_CHANGES`]: a lease was found taken by another holder.
pub const CHANGE_LOST: &str = "lost";
/// [`LEASE_CHANGES`]: a lease was given up.
pub const CHANGE_RELEASED: &str = "released";

/// Bucket bounds for [`POLL_LATENCY`], in seconds: fine below a second (a busy account's
/// answers), then around the 35 s an idle long-poll is held.
pub const POLL_LATENCY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 35.0, 40.0, 60.0,
];
/// Bucket bounds for [`HANDLER_DURATION`], in seconds.
pub const HANDLER_DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static ACCOUNT_LABELS: AtomicBool = AtomicBool::new(true);

/// Whether the per-account series carry the [`LABEL_ACCOUNT`] label (the default), or sum
/// over every account of the process (see [Label cardinality](self#label-cardinality)).
/// Process-wide, like the recorder: set it once at start, before any account is opened.
pub fn set_account_labels(on: bool) {
    ACCOUNT_LABELS.store(on, Ordering::Relaxed);
}

/// See [`set_account_labels`].
pub fn account_labels() -> bool {
    ACCOUNT_LABELS.load(Ordering::Relaxed)
}

/// Give every metric of this module its unit and help text in the installed recorder (an
/// exporter prints them, e.g. Prometheus's `# HELP`), and make the series of [`REPLIES`] and
/// [`POLL_ERRORS`] exist at 0 for every label value, so that a rate or an alert sees them
/// before the first event. Call it after installing the recorder; without one it does
/// nothing. Calling it again changes no value.
pub fn describe() {
    describe_counter!(
        MESSAGES_RECEIVED,
        Unit::Count,
        "Inbound messages yielded to the application (duplicates filtered out)."
    );
    describe_counter!(
        REPLIES,
        Unit::Count,
        "Reply outcomes: delivered (the server accepted a message), queued (it waits in the \
         outbound queue), failed (a send call returned an error)."
    );
    describe_gauge!(
        OUTBOX_DEPTH,
        Unit::Count,
        "Messages waiting in the account's durable outbound queue."
    );
    describe_histogram!(
        POLL_LATENCY,
        Unit::Seconds,
        "getupdates round trips (an idle long-poll is held about 35 s)."
    );
    describe_counter!(
        POLL_ERRORS,
        Unit::Count,
        "Failed getupdates polls, by kind."
    );
    describe_histogram!(
        HANDLER_DURATION,
        Unit::Seconds,
        "Run time of the message handlers of Account::run."
    );
    describe_counter!(
        SESSION_EXPIRED,
        Unit::Count,
        "Session expiries (-14) that notifystart could not revive: a new login is needed."
    );
    describe_counter!(
        LEASE_CHANGES,
        Unit::Count,
        "Account lease changes of the fleet runtime: acquired, renewed, lost, released."
    );
    describe_gauge!(
        ACCOUNTS_SERVED,
        Unit::Count,
        "Accounts this process serves (holds the lease of)."
    );
    for outcome in [OUTCOME_DELIVERED, OUTCOME_QUEUED, OUTCOME_FAILED] {
        counter!(REPLIES, LABEL_OUTCOME => outcome).increment(0);
    }
    for kind in POLL_ERROR_KINDS {
        counter!(POLL_ERRORS, LABEL_KIND => *kind).increment(0);
    }
}

// ---------------------------------------------------------------------- recording (crate)

/// An inbound message of `account` was yielded.
pub(crate) fn received(account: &str) {
    if account_labels() {
        counter!(MESSAGES_RECEIVED, LABEL_ACCOUNT => account.to_owned()).increment(1);
    } else {
        counter!(MESSAGES_RECEIVED).increment(1);
    }
}

/// The server accepted one sendmessage.
pub(crate) fn delivered() {
    counter!(REPLIES, LABEL_OUTCOME => OUTCOME_DELIVERED).increment(1);
}

/// What a send call returns: one outcome or several.
pub(crate) trait Outcomes {
    /// How many of them are [`SendOutcome::Queued`].
    fn queued(&self) -> usize;
}

impl Outcomes for SendOutcome {
    fn queued(&self) -> usize {
        usize::from(self.is_queued())
    }
}

impl Outcomes for Vec<SendOutcome> {
    fn queued(&self) -> usize {
        self.iter().filter(|o| o.is_queued()).count()
    }
}

/// Count the result of a public send call: its queued outcomes (also those of a failed
/// call) and its failure. Delivered messages were counted as the server accepted them.
/// Called once per public call, at the outermost layer, so nested calls do not count twice.
pub(crate) fn replied<T: Outcomes>(r: Result<T, SendError>) -> Result<T, SendError> {
    let queued = match &r {
        Ok(o) => o.queued(),
        Err(e) => e.sent().iter().filter(|o| o.is_queued()).count(),
    };
    if queued > 0 {
        counter!(REPLIES, LABEL_OUTCOME => OUTCOME_QUEUED).increment(queued as u64);
    }
    if r.is_err() {
        counter!(REPLIES, LABEL_OUTCOME => OUTCOME_FAILED).increment(1);
    }
    r
}

/// The last depth reported per account, so that without the account label the one gauge
/// moves by differences (and sums over accounts).
static DEPTHS: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

/// The outbound queue of `account` now holds `depth` messages.
pub(crate) fn outbox_depth(account: &str, depth: usize) {
    let Ok(mut depths) = DEPTHS.lock() else {
        return;
    };
    let before = depths.insert(account.to_owned(), depth).unwrap_or(0);
    if account_labels() {
        gauge!(OUTBOX_DEPTH, LABEL_ACCOUNT => account.to_owned()).set(depth as f64);
    } else if depth != before {
        gauge!(OUTBOX_DEPTH).increment(depth as f64 - before as f64);
    }
}

/// `account` is no longer served by this process: its depth no longer counts here.
pub(crate) fn forget_account(account: &str) {
    outbox_depth(account, 0);
    if let Ok(mut depths) = DEPTHS.lock() {
        depths.remove(account);
    }
}

/// One getupdates round trip took `d`.
pub(crate) fn poll_latency(d: Duration) {
    ::metrics::histogram!(POLL_LATENCY).record(d.as_secs_f64());
}

/// The [`LABEL_KIND`] value of a poll error (one of [`POLL_ERROR_KINDS`]).
fn poll_error_label(kind: PollErrorKind) -> &'static str {
    match kind {
        PollErrorKind::Transport => "transport",
        PollErrorKind::HttpStatus => "http_status",
        PollErrorKind::Server => "server",
        PollErrorKind::UnreadableBody => "unreadable_body",
        PollErrorKind::Other => "other",
    }
}

/// A poll failed.
pub(crate) fn poll_error(kind: PollErrorKind) {
    counter!(POLL_ERRORS, LABEL_KIND => poll_error_label(kind)).increment(1);
}

/// A handler ran for `d`.
pub(crate) fn handler_duration(d: Duration) {
    ::metrics::histogram!(HANDLER_DURATION).record(d.as_secs_f64());
}

/// The session of `account` expired for good (announced to the application).
pub(crate) fn session_expired(account: &str) {
    if account_labels() {
        counter!(SESSION_EXPIRED, LABEL_ACCOUNT => account.to_owned()).increment(1);
    } else {
        counter!(SESSION_EXPIRED).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    type Entry = (
        metrics_util::CompositeKey,
        Option<Unit>,
        Option<::metrics::SharedString>,
        DebugValue,
    );

    fn value<'a>(
        snapshot: &'a [Entry],
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<&'a DebugValue> {
        snapshot.iter().find_map(|(k, _, _, v)| {
            let key = k.key();
            let same = key.name() == name
                && key.labels().count() == labels.len()
                && labels
                    .iter()
                    .all(|(n, val)| key.labels().any(|l| l.key() == *n && l.value() == *val));
            same.then_some(v)
        })
    }

    #[test]
    fn names_are_prometheus_names_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for name in ALL {
            assert!(name.starts_with("ilink_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert!(seen.insert(*name), "{name} twice");
        }
        let kinds = [
            PollErrorKind::Transport,
            PollErrorKind::HttpStatus,
            PollErrorKind::Server,
            PollErrorKind::UnreadableBody,
            PollErrorKind::Other,
        ]
        .map(poll_error_label);
        assert_eq!(&kinds[..], POLL_ERROR_KINDS);
        for b in [POLL_LATENCY_BUCKETS, HANDLER_DURATION_BUCKETS] {
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        }
    }

    #[test]
    fn replies_count_queued_parts_and_failed_calls() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            let queued = |id: &str| SendOutcome::Queued {
                client_id: id.into(),
                position: 0,
                reason: crate::send::QueueReason::Window,
            };
            let accepted = SendOutcome::Accepted {
                client_id: "a".into(),
            };
            let _ = replied(Ok(vec![accepted.clone(), queued("b"), queued("c")]));
            let _ = replied(Ok(accepted));
            let err =
                SendError::new(crate::SendErrorKind::Transport, "x").with_sent(vec![queued("d")]);
            let _ = replied::<Vec<SendOutcome>>(Err(err));
            delivered();
        });
        let snap = snapshotter.snapshot().into_vec();
        let get = |o: &str| value(&snap, REPLIES, &[(LABEL_OUTCOME, o)]);
        assert_eq!(get(OUTCOME_QUEUED), Some(&DebugValue::Counter(3)));
        assert_eq!(get(OUTCOME_FAILED), Some(&DebugValue::Counter(1)));
        assert_eq!(get(OUTCOME_DELIVERED), Some(&DebugValue::Counter(1)));
    }

    #[test]
    fn the_depth_gauge_is_per_account_or_a_sum() {
        // The one test that switches the label off (a process-wide switch).
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        ::metrics::with_local_recorder(&recorder, || {
            outbox_depth("unit-a@im.bot", 3);
            outbox_depth("unit-a@im.bot", 2);
            set_account_labels(false);
            outbox_depth("unit-b@im.bot", 4);
            outbox_depth("unit-c@im.bot", 5);
            outbox_depth("unit-b@im.bot", 1);
            forget_account("unit-c@im.bot");
            received("unit-b@im.bot");
            set_account_labels(true);
        });
        let snap = snapshotter.snapshot().into_vec();
        assert_eq!(
            value(&snap, OUTBOX_DEPTH, &[(LABEL_ACCOUNT, "unit-a@im.bot")]),
            Some(&DebugValue::Gauge(2.0.into()))
        );
        // 4, +5, -3, -5.
        assert_eq!(
            value(&snap, OUTBOX_DEPTH, &[]),
            Some(&DebugValue::Gauge(1.0.into()))
        );
        assert_eq!(
            value(&snap, MESSAGES_RECEIVED, &[]),
            Some(&DebugValue::Counter(1))
        );
    }
}
