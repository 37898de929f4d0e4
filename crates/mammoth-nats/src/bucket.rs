//! [`Bucket`]: a small key-value store on a stream that keeps one message per subject (what
//! JetStream's key-value buckets are, written here directly so it runs on servers from 2.9 on,
//! whose replies the client's key-value API does not read). A key is the last token of its
//! subject; an empty value is a deleted key.

use std::collections::HashMap;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use mammoth_core::bus::BusError;

use crate::bus::nats;

/// One bucket: stream `name` over subjects `{subject}.*`.
#[derive(Clone)]
pub(crate) struct Bucket {
    js: jetstream::Context,
    stream: stream::Stream,
    subject: String,
}

impl Bucket {
    /// Opens bucket `name` (creating its stream when missing) with keys under `subject`.
    pub(crate) async fn open(
        js: &jetstream::Context,
        name: &str,
        subject: &str,
    ) -> Result<Self, BusError> {
        let stream = js
            .get_or_create_stream(stream::Config {
                name: name.to_owned(),
                subjects: vec![format!("{subject}.*")],
                storage: stream::StorageType::File,
                max_messages_per_subject: 1,
                ..Default::default()
            })
            .await
            .map_err(nats("creating a bucket stream"))?;
        Ok(Self {
            js: js.clone(),
            stream,
            subject: subject.to_owned(),
        })
    }

    /// The value of `key`, `None` when it was never set or was deleted.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, BusError> {
        let subject = format!("{}.{key}", self.subject);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) if message.payload.is_empty() => Ok(None),
            Ok(message) => Ok(Some(message.payload)),
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                Ok(None)
            }
            Err(error) => Err(nats("reading a bucket")(error)),
        }
    }

    /// Sets `key` to `value` durably (an empty value deletes it).
    pub(crate) async fn put(&self, key: &str, value: Bytes) -> Result<(), BusError> {
        self.js
            .publish(format!("{}.{key}", self.subject), value)
            .await
            .map_err(nats("writing a bucket"))?
            .await
            .map_err(nats("writing a bucket"))?;
        Ok(())
    }

    /// Deletes `key`.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), BusError> {
        self.put(key, Bytes::new()).await
    }

    /// Every key with a value, and the value.
    pub(crate) async fn entries(&self) -> Result<HashMap<String, Bytes>, BusError> {
        let subjects: Vec<(String, usize)> = self
            .stream
            .info_with_subjects(format!("{}.*", self.subject))
            .await
            .map_err(nats("listing a bucket"))?
            .try_collect()
            .await
            .map_err(nats("listing a bucket"))?;
        let mut entries = HashMap::new();
        for (subject, _) in subjects {
            let Some(key) = subject.rsplit('.').next() else {
                continue;
            };
            if let Some(value) = self.get(key).await? {
                entries.insert(key.to_owned(), value);
            }
        }
        Ok(entries)
    }
}
