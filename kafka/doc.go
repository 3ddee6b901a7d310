// Package kafka connects stackprint to Kafka with franz-go: an input that
// consumes sensor events in a consumer group, and an output that produces
// alerts and fingerprint records.
//
// # Input
//
// Records are Zeek JSON log records as Zeek's Kafka writer sends them
// (format zeek-json: one record per message, flat field names, optionally
// tagged {"ssl": {...}} by the writer's tag_json, any of its timestamp
// modes) or Suricata EVE lines (format eve). The tailer's parsers decode
// them, so a record means what the same line in a file means. Each event
// carries File "topic/partition", Offset just past the record and Ident
// "kafka:<assignment>"; the alert id does not depend on them, so a replay
// keeps it.
//
// Delivery follows the rule of the file inputs (enrich.Ledger): a
// partition is one more checkpointed source, and its offset is committed
// only past records that are settled (judged, outputs durable: Durable is
// called first) or that were no event. Nothing is parked in the local DB:
// Kafka keeps the backlog, an unsettled record holds its partition back,
// and MaxPending bounds what is read ahead. On a crash the group's next
// owner of a partition replays at most its unsettled tail. A revoked
// partition (a member joins or leaves) waits up to RevokeWait for its
// events to settle, commits, and is forgotten; events of it that settle
// later are ignored (their new owner replays them). Lost partitions (the
// session expired) are dropped without a commit.
//
// # Output
//
// Alerts (ndjson, ecs or eve, as the alert files) and fingerprint records
// (stackprint.log's JSON) go to their topics keyed by the server ip:port,
// with franz-go's idempotent producer and acks from all in-sync replicas;
// Sync waits for every acknowledgement, and the ledgers call it before
// any position is committed.
package kafka
