//! Site policy: rules that give each Slurm job a service class ([`SlaClass`]).
//!
//! Rules are tried in order; the first whose every given matcher fits the job decides.
//! A job no rule matches is [`SlaClass::Critical`] with floor 1: never paused, never
//! capped. A job whose GPUs could not be read is pinned whatever the rules say.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::SlurmError;
use crate::job::SlurmJob;

/// The service class of one job, resolved for one moment (deadlines are instants).
///
/// These are the classes of the gridflex planner (`gridflex::planner::JobClass`) plus
/// `Pinned` (the facade's `JobEntry::pinned`); the facade converts one into the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SlaClass {
    /// Never paused; throughput never below `floor` (1 = never curtailed).
    Critical {
        /// Minimum throughput fraction in `[0, 1]`.
        floor: f64,
    },
    /// May be capped to `floor` and paused for at most `max_pause` per event.
    Flexible {
        /// Minimum throughput fraction in `[0, 1]` while running.
        floor: f64,
        /// Longest allowed pause.
        #[serde(with = "secs")]
        max_pause: Duration,
    },
    /// May be stopped, but must be running again by `deadline`.
    Deferrable {
        /// When the job must be running again.
        deadline: DateTime<Utc>,
    },
    /// Never touched; its draw counts as fixed load.
    Pinned,
}

impl SlaClass {
    /// The class of a job no rule matches: critical with floor 1 (never curtailed).
    pub const UNMATCHED: SlaClass = SlaClass::Critical { floor: 1.0 };

    /// Whether gridflex may suspend a job of this class.
    pub fn may_pause(&self) -> bool {
        matches!(self, Self::Flexible { .. } | Self::Deferrable { .. })
    }
}

/// How a rule's class is written in configuration (deadlines not yet resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClassRule {
    /// [`SlaClass::Critical`].
    Critical {
        /// Throughput floor in `[0, 1]`.
        floor: f64,
    },
    /// [`SlaClass::Flexible`].
    Flexible {
        /// Throughput floor in `[0, 1]`.
        floor: f64,
        /// Longest pause, seconds (more than 0).
        max_pause_s: u64,
    },
    /// [`SlaClass::Deferrable`], with the deadline found as [`Deadline`] says.
    Deferrable {
        /// Where the deadline comes from.
        deadline: Deadline,
    },
    /// [`SlaClass::Pinned`].
    Pinned,
}

/// Where a deferrable job's deadline comes from.
///
/// When it cannot be found (no time limit, no tag, an unreadable tag), the job is
/// critical with floor 1: gridflex does not stop a job it cannot bring back in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case", deny_unknown_fields)]
pub enum Deadline {
    /// A fixed window from the moment of classification: `now + within_s`.
    Window {
        /// Seconds.
        within_s: u64,
    },
    /// The job's own end (start + time limit, as Slurm schedules it) less a margin
    /// to finish its work: `end - margin_s`. Pending and unlimited jobs have none.
    TimeLimit {
        /// Seconds of work the job still needs after resuming.
        margin_s: u64,
    },
    /// An RFC 3339 instant in the job's comment: `<key>=2026-08-14T21:00:00Z`.
    Tag {
        /// The comment key.
        key: String,
    },
}

/// Which jobs a rule applies to: every matcher given must fit (none given: every job).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Partition name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// QOS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A word of the job comment (`sbatch --comment "gridflex:flexible"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_tag: Option<String>,
    /// A GRES the job asked for, as a substring of its request (`gpu:a100`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
}

impl Match {
    fn fits(&self, job: &SlurmJob) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.partition, &job.partition)
            && eq(&self.qos, &job.qos)
            && eq(&self.account, &job.account)
            && eq(&self.user, &job.user)
            && self
                .comment_tag
                .as_deref()
                .is_none_or(|t| job.comment_has(t))
            && self
                .gres
                .as_deref()
                .is_none_or(|g| job.gres_request.contains(g))
    }
}

/// One rule: which jobs, and the class they get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Which jobs.
    #[serde(rename = "match", default)]
    pub matches: Match,
    /// The class they get.
    #[serde(flatten)]
    pub class: ClassRule,
}

/// Site policy: ordered rules; the first that fits decides; none: critical, floor 1.
///
/// ```
/// use chrono::Utc;
/// use gridflex_slurm::policy::{Policy, SlaClass};
///
/// let policy: Policy = serde_json::from_str(r#"{"rules": [
///   {"match": {"partition": "batch"}, "class": "deferrable",
///    "deadline": {"from": "window", "within_s": 7200}},
///   {"match": {"comment_tag": "gridflex:flexible"}, "class": "flexible",
///    "floor": 0.5, "max_pause_s": 600}
/// ]}"#)?;
/// policy.validate()?;
/// # let json = r#"{"meta":{"plugin":{"type":"openapi/v0.0.38"}},"jobs":[
/// #   {"job_id":9,"job_state":"RUNNING","partition":"gpu","comment":"gridflex:flexible"}]}"#;
/// # let job = &gridflex_slurm::squeue::parse(json.as_bytes())?[0];
/// let (class, rule) = policy.classify(job, Utc::now());
/// assert_eq!(rule, Some(1));
/// assert!(matches!(class, SlaClass::Flexible { floor: 0.5, .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The rules, in order.
    pub rules: Vec<Rule>,
}

impl Policy {
    /// Checks every rule: floors in `[0, 1]`, pauses and windows longer than 0.
    pub fn validate(&self) -> Result<(), SlurmError> {
        for (i, rule) in self.rules.iter().enumerate() {
            let bad = |reason: String| SlurmError::InvalidConfig {
                field: "rules",
                reason: format!("rule {i}: {reason}"),
            };
            match &rule.class {
                ClassRule::Critical { floor } | ClassRule::Flexible { floor, .. }
                    if !(floor.is_finite() && (0.0..=1.0).contains(floor)) =>
                {
                    return Err(bad(format!("floor {floor} is not in [0, 1]")));
                }
                ClassRule::Flexible { max_pause_s: 0, .. } => {
                    return Err(bad("max_pause_s must be more than 0".into()));
                }
                ClassRule::Deferrable {
                    deadline: Deadline::Window { within_s: 0 },
                } => return Err(bad("within_s must be more than 0".into())),
                ClassRule::Deferrable {
                    deadline: Deadline::Tag { key },
                } if key.is_empty() => return Err(bad("the tag key is empty".into())),
                _ => {}
            }
        }
        Ok(())
    }

    /// The class of `job` at `now`, and the index of the rule that decided (`None`:
    /// no rule fitted, or the job's GPUs could not be read and it is pinned).
    pub fn classify(&self, job: &SlurmJob, now: DateTime<Utc>) -> (SlaClass, Option<usize>) {
        if job.problem.is_some() {
            return (SlaClass::Pinned, None);
        }
        let Some((i, rule)) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches.fits(job))
        else {
            return (SlaClass::UNMATCHED, None);
        };
        let class = match &rule.class {
            ClassRule::Critical { floor } => SlaClass::Critical { floor: *floor },
            ClassRule::Flexible { floor, max_pause_s } => SlaClass::Flexible {
                floor: *floor,
                max_pause: Duration::from_secs(*max_pause_s),
            },
            ClassRule::Pinned => SlaClass::Pinned,
            ClassRule::Deferrable { deadline } => match resolve(deadline, job, now) {
                Some(deadline) if deadline > now => SlaClass::Deferrable { deadline },
                _ => SlaClass::UNMATCHED,
            },
        };
        (class, Some(i))
    }
}

fn resolve(deadline: &Deadline, job: &SlurmJob, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match deadline {
        Deadline::Window { within_s } => {
            now.checked_add_signed(TimeDelta::seconds(i64::try_from(*within_s).ok()?))
        }
        Deadline::TimeLimit { margin_s } => {
            job.time_limit?;
            job.end?
                .checked_sub_signed(TimeDelta::seconds(i64::try_from(*margin_s).ok()?))
        }
        Deadline::Tag { key } => DateTime::parse_from_rfc3339(job.comment_value(key)?)
            .ok()
            .map(|d| d.with_timezone(&Utc)),
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::squeue;

    fn job(fields: serde_json::Value) -> SlurmJob {
        let mut j = serde_json::json!({"job_id": 1, "job_state": "RUNNING", "partition": "gpu"});
        if let (Some(j), Some(f)) = (j.as_object_mut(), fields.as_object()) {
            j.extend(f.clone());
        }
        let doc = serde_json::json!({"meta":{"plugin":{"type":squeue::MODEL}},"jobs":[j]});
        squeue::parse(doc.to_string().as_bytes())
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| panic!("bad test job"))
    }

    fn policy(json: &str) -> Policy {
        let p: Policy = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        p.validate().unwrap_or_else(|e| panic!("{e}"));
        p
    }

    #[test]
    fn first_fitting_rule_decides_and_unmatched_is_critical() {
        let p = policy(
            r#"{"rules":[
            {"match":{"partition":"gpu","qos":"high"},"class":"critical","floor":0.9},
            {"match":{"partition":"gpu"},"class":"flexible","floor":0.5,"max_pause_s":600},
            {"match":{"gres":"gpu:h100"},"class":"pinned"}]}"#,
        );
        let now = Utc::now();
        assert_eq!(
            p.classify(&job(serde_json::json!({"qos":"high"})), now),
            (SlaClass::Critical { floor: 0.9 }, Some(0))
        );
        assert_eq!(p.classify(&job(serde_json::json!({})), now).1, Some(1));
        assert_eq!(
            p.classify(
                &job(serde_json::json!({"partition":"cpu","tres_per_node":"gres:gpu:h100:2"})),
                now
            ),
            (SlaClass::Pinned, Some(2))
        );
        assert_eq!(
            p.classify(&job(serde_json::json!({"partition":"cpu"})), now),
            (SlaClass::UNMATCHED, None)
        );
        assert_eq!(
            Policy::default()
                .classify(&job(serde_json::json!({})), now)
                .0,
            SlaClass::UNMATCHED
        );
        // Unreadable GPUs: pinned, whatever the rules say.
        let bad = job(serde_json::json!({"nodes":"n1","gres_detail":["gpu:1(IDX:N/A)"]}));
        assert_eq!(p.classify(&bad, now), (SlaClass::Pinned, None));
    }

    #[test]
    fn deadlines_from_window_time_limit_and_tag() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let p = policy(
            r#"{"rules":[
            {"match":{"account":"w"},"class":"deferrable","deadline":{"from":"window","within_s":3600}},
            {"match":{"account":"t"},"class":"deferrable","deadline":{"from":"time_limit","margin_s":600}},
            {"match":{"account":"c"},"class":"deferrable","deadline":{"from":"tag","key":"by"}}]}"#,
        );
        let w = p.classify(&job(serde_json::json!({"account":"w"})), now).0;
        assert_eq!(
            w,
            SlaClass::Deferrable {
                deadline: now + TimeDelta::hours(1)
            }
        );
        let t = job(
            serde_json::json!({"account":"t","time_limit":120,"start_time":1_800_000_000 - 60,"end_time":1_800_000_000 + 7140}),
        );
        assert_eq!(
            p.classify(&t, now).0,
            SlaClass::Deferrable {
                deadline: now + TimeDelta::seconds(6540)
            }
        );
        // Unlimited: no deadline, so critical.
        let t = job(serde_json::json!({"account":"t","time_limit":null,"end_time":1_900_000_000}));
        assert_eq!(p.classify(&t, now).0, SlaClass::UNMATCHED);
        let c = job(serde_json::json!({"account":"c","comment":"by=2027-01-15T12:00:00Z"}));
        let by = DateTime::parse_from_rfc3339("2027-01-15T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(p.classify(&c, now).0, SlaClass::Deferrable { deadline: by });
        let c = job(serde_json::json!({"account":"c","comment":"by=soon"}));
        assert_eq!(p.classify(&c, now).0, SlaClass::UNMATCHED);
        // A deadline already passed: critical.
        let c = job(serde_json::json!({"account":"c","comment":"by=2020-01-01T00:00:00Z"}));
        assert_eq!(p.classify(&c, now).0, SlaClass::UNMATCHED);
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            r#"{"rules":[{"class":"critical","floor":1.5}]}"#,
            r#"{"rules":[{"class":"flexible","floor":0.5,"max_pause_s":0}]}"#,
            r#"{"rules":[{"class":"deferrable","deadline":{"from":"window","within_s":0}}]}"#,
            r#"{"rules":[{"class":"deferrable","deadline":{"from":"tag","key":""}}]}"#,
        ] {
            let p: Policy = serde_json::from_str(bad).unwrap_or_else(|e| panic!("{e}"));
            assert!(p.validate().is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<Policy>(
                r#"{"rules":[{"match":{"partiton":"x"},"class":"pinned"}]}"#
            )
            .is_err()
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn word() -> impl Strategy<Value = Option<String>> {
            proptest::option::of(prop_oneof![Just("a".to_owned()), Just("b".to_owned())])
        }

        fn rule() -> impl Strategy<Value = Rule> {
            (word(), word(), word(), word(), 0u8..4).prop_map(
                |(partition, qos, account, comment_tag, c)| Rule {
                    matches: Match {
                        partition,
                        qos,
                        account,
                        comment_tag,
                        ..Match::default()
                    },
                    class: match c {
                        0 => ClassRule::Critical { floor: 0.9 },
                        1 => ClassRule::Flexible {
                            floor: 0.5,
                            max_pause_s: 60,
                        },
                        2 => ClassRule::Deferrable {
                            deadline: Deadline::Window { within_s: 60 },
                        },
                        _ => ClassRule::Pinned,
                    },
                },
            )
        }

        proptest! {
            #[test]
            fn the_first_fitting_rule_decides(rules in proptest::collection::vec(rule(), 0..6),
                                             fields in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("")], 4)) {
                let j = job(serde_json::json!({"partition": fields[0], "qos": fields[1], "account": fields[2], "comment": fields[3]}));
                let p = Policy { rules };
                let (class, rule) = p.classify(&j, Utc::now());
                match rule {
                    None => {
                        prop_assert!(p.rules.iter().all(|r| !r.matches.fits(&j)));
                        prop_assert_eq!(class, SlaClass::UNMATCHED);
                    }
                    Some(i) => {
                        prop_assert!(p.rules[i].matches.fits(&j));
                        prop_assert!(p.rules[..i].iter().all(|r| !r.matches.fits(&j)));
                        let want_pause = matches!(p.rules[i].class, ClassRule::Flexible { .. } | ClassRule::Deferrable { .. });
                        prop_assert_eq!(class.may_pause(), want_pause);
                    }
                }
            }
        }
    }
}
