//! Local test stack for the synthetic-monitoring Lambdas: a fake production
//! service to check ([`shop`]), a Lambda Runtime API emulator that runs the
//! real function binaries ([`lambda_emulator`]), local AWS via moto
//! ([`local_aws`]), a fake PagerDuty ([`fake_pagerduty`]) that judges what it receives by
//! PagerDuty's published contract ([`pagerduty_contract`]), a fake of CodeDeploy's lifecycle
//! hook call ([`fake_codedeploy`]), and HTTPS targets with certificates made in the test
//! ([`tls_target`]). The end-to-end tests and `make demo`
//! are built on these.

pub mod build_time;
pub mod fake_apis;
pub mod fake_codedeploy;
pub mod fake_pagerduty;
pub mod hostile;
pub mod incident_replay;
pub mod lambda_emulator;
pub mod local_aws;
pub mod pagerduty_contract;
pub mod shop;
pub mod stack;
pub mod tls_target;
