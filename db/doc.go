// Package db is the daemon's bbolt file: the operator's fingerprint
// database, the observations of every probed target, the state of learn
// runs, and the delivery state (checkpoints, pending events).
//
// # Schema (version 2)
//
// All keys and values below are bytes; "NUL" is a 0x00 byte; JSON values
// are UTF-8 objects; times are RFC 3339 UTC inside JSON.
//
// Bucket "meta":
//
//	schema_version → ASCII decimal, "2"
//	migrations     → JSON [{"from":1,"to":2,"at":…,"note":…}], one entry per migration run
//	last_import    → JSON ImportInfo {"time","name","format","accepted","rejected"}
//
// Bucket "fingerprints" (the operator DB, matched against every result):
//
//	kind NUL value → JSON Record
//
// kind is one of jarm (62 hex), atsf (64 hex: the sha256 of the combined
// ATSF string, docs/ATSF.md §2.2), cert_sha256 (64 hex) and cert_sha1
// (40 hex); value is lower-case hex without colons, never all zeros, so a
// match is one direct Get and a List of one kind is a prefix scan. Keys
// sort by kind, then value, which is the order List returns. The record
// repeats kind and value so an exported record stands on its own:
//
//	{"kind":"jarm","value":"2ad2ad…","label":"cobalt-strike-default",
//	 "category":"c2","source":"salesforce/jarm","confidence":"high",
//	 "notes":"","block_count":3,"top_count":0,
//	 "first_seen":"2025-01-02T03:04:05Z","last_seen":"2025-02-01T00:00:00Z",
//	 "added":"2025-01-02T03:04:05Z","updated":"2025-01-02T03:04:05Z"}
//
// first_seen/last_seen bound when the fingerprint was seen in the wild (a
// feed's listing date, a learn run, a probe by the daemon that matched it)
// and are omitted when it never was; added/updated are curation times.
// block_count/top_count are the learned counts B and T of docs/ATSF.md §3; the
// score B/(B+T) is computed, not stored.
//
// Bucket "observations" (the daemon's memory of probed targets):
//
//	ip:port NUL sni → JSON Observation
//
// with the last probe (time, status, error), the number of probes, the
// current fingerprints (jarm, atsf, cert_sha256, cert_sha1), when that set
// was first and last seen, and up to 16 earlier sets with their time range
// (history, newest first). ip is netip's canonical text (IPv4-mapped
// addresses unmapped, IPv6 compressed); sni is empty when none was used.
//
// Bucket "obs_index" (fingerprint → targets, for retro-hunts and exports):
//
//	kind NUL value NUL (observations key) → 8-byte big-endian Unix nanoseconds
//
// the last time a probe saw the target with that fingerprint. Entries stay
// when a target's fingerprint changes, so a retro-hunt still finds targets
// that carried a fingerprint inside its window; PruneObservations removes
// old ones.
//
// Bucket "learn_targets" (progress of `stackprint db learn`):
//
//	role NUL entry → JSON LearnResult
//
// role is block or top, entry the list entry as host:port. An entry is
// written once, in the same transaction that counts its fingerprints, so
// an interrupted run resumes without probing or counting anything twice.
//
// Bucket "learned" (learned counts of every fingerprint a learn run saw):
//
//	kind NUL value → JSON LearnStats {"block","top","hints","first_seen","last_seen"}
//
// Bucket "watch" (the watch list: own servers the daemon re-probes, package
// watch):
//
//	ip:port[/sni] → JSON watch.Entry
//
// with the settings (every in nanoseconds, label, origin, added), the
// baseline fingerprints (JARM, ATSF id and the ten answers by ClientHello
// name, certificate hash, key hash, issuer, serial and validity, HTTP
// Server) and the state of the last probes (status, consecutive failures,
// the alerts that stand). The bucket was added without a schema version
// change: an older file gains it, empty, at its next writable Open.
//
// Buckets "near_atsf" and "near_jarm" (the near-match index, derived from
// the fingerprints and rebuilt by a writable Open when meta near_indexed is
// missing; docs/ATSF.md §4):
//
//	near_atsf: position (1 byte) | FNV-64 of the nine other answers (8) | entry → empty
//	near_jarm: "c" proto first-30 NUL value | "e" proto last-32 NUL value → empty
//
// entry is the value's STARTTLS prefix (if any) and its 32 bytes. An atsf
// record keeps its ten answers in its "hellos" field.
//
// Bucket "obs_near" (the same index over the observations' answers, for
// retro-hunts of new ATSF entries; moved when a target's answers change,
// dropped with a pruned observation; complete when meta obs_near_indexed
// is set, else built by BuildObsNearIndex in batches, meta
// obs_near_cursor the last observation indexed):
//
//	position (1 byte) | FNV-64 of the nine other answers (8) | ip:port NUL sni → empty
//
// The hash includes the observation's hellos_proto (the STARTTLS prefix of
// the probe that gave the answers).
//
// Bucket "probe_log" (every probe of a target, at most 64 per target):
//
//	ip:port NUL sni NUL 8-byte big-endian Unix nanoseconds → JSON ProbeEntry
//
// Buckets "alerts" and "alert_index" (written alerts, for explain):
//
//	alerts:      alert id → JSON AlertRecord (rule, severity, match, the values the rule read, client)
//	alert_index: ip:port NUL sni NUL 8-byte time NUL alert id → empty
//
// Probe log entries and alerts are pruned with the observations.
//
// Bucket "backfill" (progress of `stackprint scan` over old logs):
//
//	run NUL ip:port NUL sni → 8-byte time the server was finished
//
// run names the pass by its files' contents, so the same files resume it.
//
// Buckets "checkpoints" and "pending" hold the daemon's delivery state
// (state.go): input name → opaque tailer position, and 8-byte big-endian
// sequence → JSON stackprint.Event parked before its probe finished.
//
// # Migrations
//
// A writable Open migrates an older file in the same transaction that
// opens it: either the whole migration commits or the file stays as it
// was. Version 1 (the walking skeleton) had only meta and fingerprints,
// and its records' first_seen/last_seen were the times the entry was added
// and last written; version 2 moves them to added/updated, leaves
// first/last seen empty, and adds the other buckets. A read-only Open of
// an older file fails and says how to migrate it; a newer file is refused.
//
// # Locking
//
// bbolt takes an exclusive flock on the file, so only one process can have
// it open for writing, and a shared (read-only) lock waits for it too.
// Open waits at most Options.Timeout (default 1s, never bbolt's "forever")
// and then fails with an error that says the file is locked, instead of
// hanging while `stackprint run` holds it. While the daemon runs, the
// `stackprint db` commands go through its admin socket instead.
package db
