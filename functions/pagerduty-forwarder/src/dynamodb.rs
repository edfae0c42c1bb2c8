//! DynamoDB adapter for [`StateStore`]: one table (`STATE_TABLE`), key `pk` + `sk`.
//!
//! - A subject's record: `pk = incident#<env>#<subject>`, `sk = state`, with `version` (number)
//!   and `record` (the JSON of [`Record`]). Saves are conditional on `version`, so concurrent
//!   writers cannot overwrite each other (`ConditionalCheckFailedException` = [`StoreError::Conflict`]).
//! - A silence: `pk = silence#<env>`, `sk = <check>#<id>`, one string attribute per field and
//!   `expires_at` (epoch seconds, a week after it ends) for the table's TTL.
//! - A subject with an open incident: `pk = open#<env>`, `sk = <subject>`, so the orphan sweep
//!   finds, with a query, subjects that stopped reporting.
//! - PagerDuty's sending window: `pk = sk = rate#pagerduty`, versioned like a record; the outbox:
//!   `pk = outbox`, `sk = <record key>`, one item per record with events waiting for the rate.
//!
//! Reads are strongly consistent: a decision must see the write of the invocation before it.
//! Every call is bounded (1 s to connect, 2 s per attempt, 3 attempts within 6 s), so an
//! unreachable table turns into [`StoreError::Unavailable`] with time left to page without it.

use crate::rate::Window;
use crate::state::{Record, Silence, StateStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::tracing::instrument;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const STATE_SORT_KEY: &str = "state";
/// PagerDuty's shared sending window: one item (see [`crate::rate`]).
const WINDOW_KEY: &str = "rate#pagerduty";
/// The outbox: one item per record with events waiting for PagerDuty's rate.
const OUTBOX_KEY: &str = "outbox";
/// How long an ended silence stays listed before the table's TTL removes it.
const SILENCE_HISTORY: time::Duration = time::Duration::days(7);

pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(config: &aws_config::SdkConfig, table: &str) -> Self {
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(config)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_attempt_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(6))
                    .build(),
            )
            .build();
        DynamoStore { client: Client::from_conf(dynamodb), table: table.to_string() }
    }

    fn silence_key(env: &str) -> AttributeValue {
        AttributeValue::S(format!("silence#{env}"))
    }

    fn open_key(env: &str) -> AttributeValue {
        AttributeValue::S(format!("open#{env}"))
    }

    /// Every item of partition `pk`, page by page, strongly consistent.
    async fn partition(&self, pk: AttributeValue) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let answer = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", pk.clone())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(answer.items.unwrap_or_default());
            match answer.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
    /// The JSON item `pk`/`sk` (its attribute `attribute`) and its version; the default and 0
    /// when there is none.
    async fn load_versioned<T: serde::de::DeserializeOwned + Default>(
        &self,
        pk: &str,
        sk: &str,
        attribute: &str,
    ) -> Result<(T, u64), StoreError> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = answer.item else { return Ok((T::default(), 0)) };
        let version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("{pk}: version is missing or not a number")))?;
        let value = serde_json::from_str(&text(&item, attribute)?)
            .map_err(|e| StoreError::Corrupt(format!("{pk}: {attribute}: {e}")))?;
        Ok((value, version))
    }

    /// Writes `value` as version `read + 1` of item `pk`/`sk`, only if the stored version is
    /// still `read` (`ConditionalCheckFailedException` is a [`StoreError::Conflict`]).
    async fn save_versioned<T: serde::Serialize>(
        &self,
        pk: &str,
        sk: &str,
        attribute: &str,
        value: &T,
        read: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk.into()))
            .item("sk", AttributeValue::S(sk.into()))
            .item("version", AttributeValue::N((read + 1).to_string()))
            .item(attribute, AttributeValue::S(json))
            .item("updated_at", rfc3339(OffsetDateTime::now_utc()));
        request = match read {
            0 => request.condition_expression("attribute_not_exists(pk)"),
            _ => request
                .condition_expression("version = :read")
                .expression_attribute_values(":read", AttributeValue::N(read.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(StoreError::Conflict)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Puts or deletes the marker item `pk`/`sk` (a list kept as a partition).
    async fn mark(&self, pk: AttributeValue, sk: &str, present: bool) -> Result<(), StoreError> {
        let sk = AttributeValue::S(sk.to_string());
        match present {
            true => self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", pk)
                .item("sk", sk)
                .send()
                .await
                .map(|_| ())
                .map_err(unavailable),
            false => self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .send()
                .await
                .map(|_| ())
                .map_err(unavailable),
        }
    }
}

fn unavailable<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(synthetic_checks::aws::describe(&error))
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("attribute {name} is missing or not a string")))
}

fn instant(item: &HashMap<String, AttributeValue>, name: &str) -> Result<OffsetDateTime, StoreError> {
    let raw = text(item, name)?;
    OffsetDateTime::parse(&raw, &Rfc3339).map_err(|e| StoreError::Corrupt(format!("attribute {name}: {e}")))
}

fn rfc3339(at: OffsetDateTime) -> AttributeValue {
    AttributeValue::S(at.format(&Rfc3339).unwrap_or_default())
}

fn silence_from(item: &HashMap<String, AttributeValue>) -> Result<Silence, StoreError> {
    Ok(Silence {
        id: text(item, "id")?,
        env: text(item, "env")?,
        check: text(item, "check")?,
        starts: instant(item, "starts")?,
        ends: instant(item, "ends")?,
        reason: text(item, "reason")?,
        created_by: text(item, "created_by")?,
        created_at: instant(item, "created_at")?,
    })
}

#[async_trait]
impl StateStore for DynamoStore {
    #[instrument(skip(self))]
    async fn load(&self, key: &str) -> Result<(Record, u64), StoreError> {
        self.load_versioned(key, STATE_SORT_KEY, "record").await
    }

    #[instrument(skip(self, record))]
    async fn save(&self, key: &str, record: &Record, read: u64) -> Result<(), StoreError> {
        self.save_versioned(key, STATE_SORT_KEY, "record", record, read).await
    }

    #[instrument(skip(self))]
    async fn silences(&self, env: &str) -> Result<Vec<Silence>, StoreError> {
        self.partition(Self::silence_key(env)).await?.iter().map(silence_from).collect()
    }

    #[instrument(skip(self, silence), fields(env = %silence.env, check = %silence.check, id = %silence.id))]
    async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let expires = (silence.ends + SILENCE_HISTORY).unix_timestamp();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", Self::silence_key(&silence.env))
            .item("sk", AttributeValue::S(format!("{}#{}", silence.check, silence.id)))
            .item("id", AttributeValue::S(silence.id.clone()))
            .item("env", AttributeValue::S(silence.env.clone()))
            .item("check", AttributeValue::S(silence.check.clone()))
            .item("starts", rfc3339(silence.starts))
            .item("ends", rfc3339(silence.ends))
            .item("reason", AttributeValue::S(silence.reason.clone()))
            .item("created_by", AttributeValue::S(silence.created_by.clone()))
            .item("created_at", rfc3339(silence.created_at))
            .item("expires_at", AttributeValue::N(expires.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    #[instrument(skip(self))]
    async fn expire_silence(&self, env: &str, id: &str, at: OffsetDateTime) -> Result<Option<Silence>, StoreError> {
        let Some(mut silence) = self.silences(env).await?.into_iter().find(|s| s.id == id) else {
            return Ok(None);
        };
        silence.ends = silence.ends.min(at);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", Self::silence_key(env))
            .key("sk", AttributeValue::S(format!("{}#{}", silence.check, silence.id)))
            .update_expression("SET #ends = :ends, expires_at = :expires")
            .expression_attribute_names("#ends", "ends")
            .expression_attribute_values(":ends", rfc3339(silence.ends))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((silence.ends + SILENCE_HISTORY).unix_timestamp().to_string()),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(Some(silence))
    }

    #[instrument(skip(self))]
    async fn open_subjects(&self, env: &str) -> Result<Vec<String>, StoreError> {
        self.partition(Self::open_key(env)).await?.iter().map(|item| text(item, "sk")).collect()
    }

    #[instrument(skip(self))]
    async fn set_open(&self, env: &str, subject: &str, open: bool) -> Result<(), StoreError> {
        self.mark(Self::open_key(env), subject, open).await
    }

    #[instrument(skip(self))]
    async fn load_window(&self) -> Result<(Window, u64), StoreError> {
        self.load_versioned(WINDOW_KEY, WINDOW_KEY, "window").await
    }

    #[instrument(skip(self, window))]
    async fn save_window(&self, window: &Window, read: u64) -> Result<(), StoreError> {
        self.save_versioned(WINDOW_KEY, WINDOW_KEY, "window", window, read).await
    }

    #[instrument(skip(self))]
    async fn deferred(&self) -> Result<Vec<(String, String)>, StoreError> {
        let items = self.partition(AttributeValue::S(OUTBOX_KEY.into())).await?;
        items.iter().map(|item| Ok((text(item, "sk")?, text(item, "order")?))).collect()
    }

    #[instrument(skip(self))]
    async fn set_deferred(&self, key: &str, order: Option<&str>) -> Result<(), StoreError> {
        let pk = AttributeValue::S(OUTBOX_KEY.into());
        let Some(order) = order else { return self.mark(pk, key, false).await };
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", pk)
            .item("sk", AttributeValue::S(key.into()))
            .item("order", AttributeValue::S(order.into()))
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
