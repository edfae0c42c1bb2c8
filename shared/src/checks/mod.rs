//! The four built-in checks: health, sign-in, product listing and a sandbox payment.
//!
//! Each is a journey file of the checks folder (`checks/<name>.toml`), compiled into the
//! `synthetic` CLI, so what runs is what was reviewed. A team
//! adds a check with a journey file of its own; these four are not special to the engine.

use crate::catalog::{self, FolderDefaults};
use crate::journey::file::JourneyDef;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Health,
    Auth,
    Products,
    Payment,
}

impl Check {
    pub const ALL: [Check; 4] = [Check::Health, Check::Auth, Check::Products, Check::Payment];

    pub fn name(self) -> &'static str {
        match self {
            Check::Health => "health",
            Check::Auth => "auth",
            Check::Products => "products",
            Check::Payment => "payment",
        }
    }

    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The journey file, as compiled in.
    pub fn journey_source(self) -> &'static str {
        match self {
            Check::Health => include_str!("../../../checks/health.toml"),
            Check::Auth => include_str!("../../../checks/auth.toml"),
            Check::Products => include_str!("../../../checks/products.toml"),
            Check::Payment => include_str!("../../../checks/payment.toml"),
        }
    }

    /// The parsed journey, with the folder's defaults (`checks/defaults.toml`, compiled in too)
    /// applied as for every check of the folder. The built-in files are validated by
    /// `make test` (and by this module's tests), so a failure here is a build that skipped them.
    pub fn journey(self) -> JourneyDef {
        let parsed = FolderDefaults::parse(DEFAULTS_SOURCE).and_then(|defaults| {
            catalog::parse_check(&defaults, self.name(), self.journey_source(), &crate::journey::NoFiles)
        });
        match parsed {
            Ok((journey, _)) => journey,
            Err(problems) => panic!("checks/{}.toml is invalid: {problems}", self.name()),
        }
    }
}

/// `checks/defaults.toml`, which the built-in journeys inherit.
const DEFAULTS_SOURCE: &str = include_str!("../../../checks/defaults.toml");

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journey::StepRole;

    #[test]
    fn the_built_in_journeys_parse_and_keep_their_names_and_steps() {
        let steps = |check: Check| check.journey().steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(steps(Check::Health), ["health"]);
        assert_eq!(steps(Check::Auth), ["login"]);
        assert_eq!(steps(Check::Products), ["login", "products"]);
        assert_eq!(steps(Check::Payment), ["login", "payment_create", "payment_get", "payment_refund"]);
        for check in Check::ALL {
            assert_eq!(check.journey().check, check.name());
        }
        let payment = Check::Payment.journey();
        assert_eq!(payment.steps[3].role, StepRole::Cleanup);
        assert!(!Check::Health.journey().uses_secrets(), "health needs no account");
        assert_eq!(payment.secret_fields().collect::<Vec<_>>(), ["email", "password", "payment_token"]);
    }
}
