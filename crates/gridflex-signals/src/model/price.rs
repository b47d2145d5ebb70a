//! [`PricePoint`]: one locational marginal price for one node and interval.

use gridflex_core::{Interval, Price, PricingNodeId};
use serde::{Deserialize, Serialize};

use super::{Market, MarketRun};
use crate::SignalError;

/// One locational marginal price (LMP) for one pricing node, market run and interval,
/// with its components where the source gives them.
///
/// A component the source does not give is `None`, never zero: CAISO quotes energy
/// (`MCE`), congestion (`MCC`), loss (`MCL`) and, for some nodes, greenhouse-gas
/// (`MGHG`) components; PJM quotes system energy, congestion and marginal loss
/// (reference `markets.md` §f).
///
/// ```
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use gridflex_core::{Interval, Price, PricingNodeId};
/// use gridflex_signals::{Market, MarketRun, PricePoint};
///
/// let start = Utc.with_ymd_and_hms(2022, 2, 1, 15, 0, 0).unwrap();
/// let p = PricePoint::new(
///     MarketRun::CaisoDam,
///     PricingNodeId::new("0096WD_7_N001")?,
///     Interval::starting_at(start, TimeDelta::hours(1))?,
///     Price::per_megawatt_hour(74.63)?,
/// )
/// .with_congestion(Some(Price::per_megawatt_hour(0.0)?));
/// assert_eq!(p.market, Market::Caiso);
/// assert_eq!(p.energy, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PricePointWire")]
#[non_exhaustive]
pub struct PricePoint {
    /// The market (always `run.market()`).
    pub market: Market,
    /// The market run that produced the price.
    pub run: MarketRun,
    /// The pricing node: the key (CAISO node name, PJM `pnode_id`).
    pub node: PricingNodeId,
    /// The node's name where the source gives one beside its id (PJM `pnode_name`, for
    /// example `"AECO"` for id 51291); `None` otherwise. Not part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pnode_name: Option<String>,
    /// The interval the price applies to (UTC).
    pub interval: Interval,
    /// Total LMP.
    pub lmp: Price,
    /// Energy component (CAISO `MCE`, PJM `system_energy_price`).
    #[serde(default)]
    pub energy: Option<Price>,
    /// Congestion component (CAISO `MCC`, PJM `congestion_price`).
    #[serde(default)]
    pub congestion: Option<Price>,
    /// Loss component (CAISO `MCL`, PJM `marginal_loss_price`).
    #[serde(default)]
    pub loss: Option<Price>,
    /// Greenhouse-gas component (CAISO `MGHG`, only for some nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ghg: Option<Price>,
}

#[derive(Deserialize)]
struct PricePointWire {
    market: Market,
    run: MarketRun,
    node: PricingNodeId,
    #[serde(default)]
    pnode_name: Option<String>,
    interval: Interval,
    lmp: Price,
    #[serde(default)]
    energy: Option<Price>,
    #[serde(default)]
    congestion: Option<Price>,
    #[serde(default)]
    loss: Option<Price>,
    #[serde(default)]
    ghg: Option<Price>,
}

impl TryFrom<PricePointWire> for PricePoint {
    type Error = SignalError;
    fn try_from(w: PricePointWire) -> Result<Self, SignalError> {
        check_length(w.run, &w.interval)?;
        if w.run.market() != w.market {
            return Err(SignalError::invalid(
                "price point",
                format!(
                    "market run {} does not belong to market {}",
                    w.run, w.market
                ),
            ));
        }
        Ok(PricePoint {
            market: w.market,
            run: w.run,
            node: w.node,
            pnode_name: w.pnode_name,
            interval: w.interval,
            lmp: w.lmp,
            energy: w.energy,
            congestion: w.congestion,
            loss: w.loss,
            ghg: w.ghg,
        })
    }
}

/// Checks that `interval` has the length of `run`'s intervals
/// ([`MarketRun::nominal_length`]): a day-ahead price of 5 minutes or of 3 days is not
/// a day-ahead price. Intervals are in UTC, so the 23- and 25-hour local days of
/// daylight saving change still have 1-hour intervals.
pub fn check_length(run: MarketRun, interval: &Interval) -> Result<(), SignalError> {
    let length = interval.duration();
    if length == run.nominal_length() {
        Ok(())
    } else {
        Err(SignalError::invalid(
            "price point",
            format!(
                "a {run} interval lasts {} min, but this one ({} to {}) lasts {} s",
                run.nominal_length().num_minutes(),
                interval.start().to_rfc3339(),
                interval.end().to_rfc3339(),
                length.num_seconds()
            ),
        ))
    }
}

impl PricePoint {
    /// A price with its total LMP only; add components with the `with_*` methods.
    ///
    /// The interval's length is not checked here (the parsers and deserialisation
    /// check it with [`check_length`]); use [`PricePoint::checked`] to check it.
    pub fn new(run: MarketRun, node: PricingNodeId, interval: Interval, lmp: Price) -> Self {
        Self {
            market: run.market(),
            run,
            node,
            pnode_name: None,
            interval,
            lmp,
            energy: None,
            congestion: None,
            loss: None,
            ghg: None,
        }
    }

    /// A price as [`PricePoint::new`], refusing an interval whose length is not the
    /// run's ([`check_length`]).
    pub fn checked(
        run: MarketRun,
        node: PricingNodeId,
        interval: Interval,
        lmp: Price,
    ) -> Result<Self, SignalError> {
        check_length(run, &interval)?;
        Ok(Self::new(run, node, interval, lmp))
    }

    /// Sets the node's name (PJM `pnode_name`).
    pub fn with_pnode_name(mut self, name: Option<String>) -> Self {
        self.pnode_name = name;
        self
    }

    /// Sets the energy component.
    pub fn with_energy(mut self, energy: Option<Price>) -> Self {
        self.energy = energy;
        self
    }

    /// Sets the congestion component.
    pub fn with_congestion(mut self, congestion: Option<Price>) -> Self {
        self.congestion = congestion;
        self
    }

    /// Sets the loss component.
    pub fn with_loss(mut self, loss: Option<Price>) -> Self {
        self.loss = loss;
        self
    }

    /// Sets the greenhouse-gas component.
    pub fn with_ghg(mut self, ghg: Option<Price>) -> Self {
        self.ghg = ghg;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone, Utc};

    #[test]
    fn json_keeps_absent_components_null_and_checks_market() {
        let start = Utc.with_ymd_and_hms(2024, 9, 3, 3, 55, 0).unwrap();
        let p = PricePoint::new(
            MarketRun::PjmRealTimeFiveMinute,
            PricingNodeId::new("51291").unwrap(),
            Interval::starting_at(start, TimeDelta::minutes(5)).unwrap(),
            Price::per_megawatt_hour(31.5).unwrap(),
        )
        .with_loss(Some(Price::per_megawatt_hour(-0.25).unwrap()));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"market":"PJM","run":"PJM_RT_5MIN","node":"51291","interval":{"start":"2024-09-03T03:55:00Z","end":"2024-09-03T04:00:00Z"},"lmp":31.5,"energy":null,"congestion":null,"loss":-0.25}"#
        );
        assert_eq!(serde_json::from_str::<PricePoint>(&json).unwrap(), p);
        let wrong = json.replace("\"PJM\"", "\"CAISO\"");
        assert!(serde_json::from_str::<PricePoint>(&wrong).is_err());
        // A 5-minute run's point of 10 minutes is refused.
        let long = json.replace("04:00:00Z", "04:05:00Z");
        let err = serde_json::from_str::<PricePoint>(&long).unwrap_err();
        assert!(err.to_string().contains("lasts 600 s"), "{err}");
    }

    #[test]
    fn lengths_must_fit_the_run() {
        let start = Utc.with_ymd_and_hms(2024, 9, 3, 0, 0, 0).unwrap();
        let node = PricingNodeId::new("A").unwrap();
        let lmp = Price::per_megawatt_hour(1.0).unwrap();
        for (run, minutes, ok) in [
            (MarketRun::CaisoDam, 60, true),
            (MarketRun::CaisoDam, 5, false),
            (MarketRun::CaisoDam, 3 * 24 * 60, false),
            (MarketRun::CaisoRtpd, 15, true),
            (MarketRun::PjmRealTimeFiveMinute, 60, false),
        ] {
            let i = Interval::starting_at(start, TimeDelta::minutes(minutes)).unwrap();
            assert_eq!(
                PricePoint::checked(run, node.clone(), i, lmp).is_ok(),
                ok,
                "{run} {minutes}"
            );
        }
    }
}
