-- Score a Kafka topic of feature rows into another topic with a streamml model binary,
-- in micro-batches, in the task managers' own process. Submit with the SQL client:
--   sql-client.sh -f score.sql   (after replacing the ${...} placeholders; see README.md)
--
-- ${UDF_JAR}            the UDF jar this module builds (target/streamml-flink-udf-*.jar)
-- ${MODEL}              a model binary on every task manager (e.g. from `streamml compile`)
-- ${BOOTSTRAP}          the Kafka bootstrap servers
-- ${IN_TOPIC}, ${OUT_TOPIC}
-- ${SCAN_BOUNDED_MODE}  'unbounded' for a continuous job, 'latest-offset' to stop at the end

-- The async operator may keep this many rows in flight: several batches (8 x max-batch-rows;
-- with room for one or two the task stops reading rows while each batch is scored).
SET 'table.exec.async-scalar.max-concurrent-operations' = '4096';
-- Scoring is deterministic (a retry repeats the error) and a row waits at most max-wait plus
-- one native call: no retry path and no per-row timer (see BatchingPredictFunction).
SET 'table.exec.async-scalar.retry-strategy' = 'NO_RETRY';
SET 'table.exec.async-scalar.timeout' = '0 s';
SET 'pipeline.global-job-parameters' = 'streamml.max-batch-rows:512,streamml.max-wait:20ms';

CREATE TEMPORARY FUNCTION streamml_predict_batched
  AS 'dev.streamml.flink.BatchingPredictFunction' USING JAR '${UDF_JAR}';

CREATE TEMPORARY TABLE features (
  id BIGINT,
  x0 DOUBLE,
  x1 DOUBLE,
  x2 DOUBLE,
  x3 DOUBLE,
  x4 DOUBLE,
  x5 DOUBLE,
  x6 DOUBLE,
  x7 DOUBLE,
  x8 DOUBLE,
  x9 DOUBLE,
  x10 DOUBLE,
  x11 DOUBLE,
  x12 DOUBLE,
  x13 DOUBLE,
  x14 DOUBLE,
  x15 DOUBLE,
  x16 DOUBLE,
  x17 DOUBLE,
  x18 DOUBLE,
  x19 DOUBLE,
  x20 DOUBLE,
  x21 DOUBLE,
  x22 DOUBLE,
  x23 DOUBLE,
  x24 DOUBLE,
  x25 DOUBLE,
  x26 DOUBLE,
  x27 DOUBLE,
  x28 DOUBLE,
  x29 DOUBLE,
  x30 DOUBLE,
  x31 DOUBLE
) WITH (
  'connector' = 'kafka',
  'topic' = '${IN_TOPIC}',
  'properties.bootstrap.servers' = '${BOOTSTRAP}',
  'properties.group.id' = 'streamml-flink-udf',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = '${SCAN_BOUNDED_MODE}',
  'format' = 'json'
);

CREATE TEMPORARY TABLE scores (
  id BIGINT,
  probability DOUBLE
) WITH (
  'connector' = 'kafka',
  'topic' = '${OUT_TOPIC}',
  'properties.bootstrap.servers' = '${BOOTSTRAP}',
  'format' = 'json'
);

INSERT INTO scores
SELECT id, streamml_predict_batched('${MODEL}', x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, x16, x17, x18, x19, x20, x21, x22, x23, x24, x25, x26, x27, x28, x29, x30, x31)
FROM features;
